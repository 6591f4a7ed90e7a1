//! A bounded, process-wide pool of freed byte blocks, by size class, for the bindings'
//! buffers: allocating a large buffer takes a recently freed block of its class instead
//! of fresh memory from the allocator.
//!
//! Why: a transferred buffer is usually freed by another thread than the one that made
//! it, and a producer that runs ahead of its consumer has hundreds of blocks in flight.
//! When the consumer frees them, glibc coalesces them into the top of the heap and trims
//! it back to the kernel; the producer's next burst grows the heap again and every new
//! block is faulted in page by page (the kernel clears each page, then `calloc` clears
//! it again). On the benchmark machine a fresh 64 KiB block costs 15-25 µs that way, a
//! pooled one a lock and, when asked for, one pass over resident memory.
//!
//! Rules:
//! - Only blocks with a capacity in [`MIN_BLOCK`, `MAX_BLOCK`] are pooled; smaller ones
//!   are cheap for the allocator, larger ones are rare and big.
//! - A block sits in the class of the largest class size not above its capacity; a
//!   request for `n` bytes takes from the class of the smallest class size not below `n`,
//!   so any block there is large enough. Classes are a quarter power of two apart, so a
//!   block's slack is at most 25 %; blocks this module allocates have a class size as
//!   capacity, so they come back to the class they were taken from.
//! - The pool holds at most [`limit`](set_limit) bytes (capacities counted); a block that
//!   would go over is freed at once. A limit of 0 disables the pool.
//! - Reused memory is handed out as is only by [`take`], for takers that overwrite it
//!   whole; [`take_zeroed`] clears the `n` bytes it returns, [`take_filled`] fills them
//!   and [`take_copy`] overwrites them.
//! - Most recently freed blocks are reused first (warmest in the caches).
//! - A thread with nothing better to do can clear freed blocks ahead of need with
//!   [`scrub`]: a blocked receive does it while its queue is empty. A cleared block is
//!   kept apart and serves [`take_zeroed`] without a clearing pass; the other takers,
//!   which overwrite what they take, use uncleared blocks first. Scrubbing follows
//!   demand: it clears about as many blocks as [`take_zeroed`] has been asked for lately
//!   (at most [`MAX_ZERO_DEMAND`] ahead), so a program whose takers overwrite what they
//!   take (a fill, a copy) never pays for clearing it does not use.
//!
//! Why scrub: clearing a 64 KiB block that another thread last wrote costs a few
//! microseconds on the taker's thread, often the busiest one (a producer allocating a
//! zeroed buffer per message); a receiver waiting for that producer's next message has
//! the time, on another core.
//!
//! Nothing here calls back into user code; the one lock is held for a push or a pop.
//!
//! ```
//! use channel_messaging::pool;
//!
//! let block = pool::take_zeroed(64 * 1024); // 64 KiB of zeros
//! pool::give(block);                          // kept for the next taker
//! let again = pool::take_filled(64 * 1024, 7);
//! assert!(again.iter().all(|&b| b == 7));
//! assert!(pool::stats().hits >= 1);
//!
//! pool::give(again);                          // 7s: not cleared yet
//! pool::scrub(|| false);                      // cleared now, off the taker's path
//! let zeros = pool::take_zeroed(64 * 1024);   // no clearing pass here
//! assert!(zeros.iter().all(|&b| b == 0));
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The smallest pooled capacity (16 KiB).
pub const MIN_BLOCK: usize = 16 << 10;
/// The largest pooled capacity (16 MiB).
pub const MAX_BLOCK: usize = 16 << 20;
/// The default bound of the pool, in bytes.
pub const DEFAULT_LIMIT: usize = 16 << 20;
/// The most blocks [`scrub`] clears ahead of [`take_zeroed`] calls it has not served
/// yet: each such call lets one more block be cleared, each cleared block uses one up.
pub const MAX_ZERO_DEMAND: usize = 256;
/// The largest capacity [`scrub`] clears (256 KiB, some microseconds of work): a
/// scrubbing receiver notices a new message at most one such clearing late.
pub const MAX_SCRUB_BLOCK: usize = 256 << 10;

const MIN_SHIFT: u32 = MIN_BLOCK.trailing_zeros();
const MAX_SHIFT: u32 = MAX_BLOCK.trailing_zeros();
/// Four classes per power of two: 1, 1.25, 1.5, 1.75 times 2^k.
const STEPS: usize = 4;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT) as usize * STEPS + 1;

/// The size of class `c`.
const fn class_size(c: usize) -> usize {
    let k = MIN_SHIFT as usize + c / STEPS;
    let step = c % STEPS;
    (1usize << k) + step * (1usize << (k - 2))
}

/// The class of the largest class size `<= cap` (`cap` in `[MIN_BLOCK, MAX_BLOCK]`).
fn floor_class(cap: usize) -> usize {
    let k = usize::BITS - 1 - cap.leading_zeros();
    let step = (cap - (1usize << k)) >> (k - 2);
    (k - MIN_SHIFT) as usize * STEPS + step
}

/// The class of the smallest class size `>= n` (`n` in `[MIN_BLOCK, MAX_BLOCK]`).
fn ceil_class(n: usize) -> usize {
    let c = floor_class(n);
    if class_size(c) == n { c } else { c + 1 }
}

/// Whether a request of `n` bytes goes through the pool.
pub fn pooled_size(n: usize) -> bool {
    (MIN_BLOCK..=MAX_BLOCK).contains(&n)
}

struct Pool {
    /// Freed blocks, as they were given back.
    classes: [Vec<Vec<u8>>; CLASSES],
    /// Cleared blocks: every byte of the capacity is 0, and the length is the capacity.
    zeroed: [Vec<Vec<u8>>; CLASSES],
    /// Sum of the capacities of the blocks held (both kinds).
    bytes: usize,
    blocks: usize,
    /// How many of `blocks` are cleared.
    zeroed_blocks: usize,
    limit: usize,
    hits: u64,
    misses: u64,
    scrubbed: u64,
}

/// The classes `scrub` clears: `0..SCRUB_CLASSES`.
const SCRUB_CLASSES: usize = {
    let mut c = 0;
    while c < CLASSES && class_size(c) <= MAX_SCRUB_BLOCK {
        c += 1;
    }
    c
};

/// Uncleared blocks of a capacity `scrub` clears (`<= MAX_SCRUB_BLOCK`): changed only
/// with the lock held, read without it so that a [`scrub`] with nothing to do costs one
/// load (a blocked receive calls it on every wait).
static SCRUBBABLE: AtomicUsize = AtomicUsize::new(0);

/// Pooled [`take_zeroed`] calls not yet matched by a block [`scrub`] cleared (at most
/// [`MAX_ZERO_DEMAND`]).
static ZERO_DEMAND: AtomicUsize = AtomicUsize::new(0);

/// One more zeroed take for [`scrub`] to prepare for.
#[inline]
fn note_zero_demand() {
    if ZERO_DEMAND.load(Ordering::Relaxed) < MAX_ZERO_DEMAND {
        ZERO_DEMAND.fetch_add(1, Ordering::Relaxed);
    }
}

/// Uses up one unit of demand; false when there is none.
#[inline]
fn use_zero_demand() -> bool {
    ZERO_DEMAND
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| d.checked_sub(1))
        .is_ok()
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    classes: [const { Vec::new() }; CLASSES],
    zeroed: [const { Vec::new() }; CLASSES],
    bytes: 0,
    blocks: 0,
    zeroed_blocks: 0,
    limit: DEFAULT_LIMIT,
    hits: 0,
    misses: 0,
    scrubbed: 0,
});

fn pool() -> MutexGuard<'static, Pool> {
    // Nothing here panics while holding the lock, but a poisoned pool is still a
    // consistent pool (every update is a push or pop plus counters).
    POOL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which kind of block a taker wants first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prefer {
    /// A cleared block (the taker needs zeros).
    Zeroed,
    /// An uncleared one (the taker overwrites it), keeping cleared ones for those who
    /// need them.
    Uncleared,
}

impl Pool {
    /// A block for `n` bytes, and whether it is a cleared one.
    fn pop(&mut self, n: usize, prefer: Prefer) -> Option<(Vec<u8>, bool)> {
        let c = ceil_class(n);
        let zeroed = |p: &mut Self| p.pop_zeroed(c).map(|v| (v, true));
        let uncleared = |p: &mut Self| p.pop_uncleared(c).map(|v| (v, false));
        let taken = match prefer {
            Prefer::Zeroed => zeroed(self).or_else(|| uncleared(self)),
            Prefer::Uncleared => uncleared(self).or_else(|| zeroed(self)),
        };
        if taken.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        taken
    }

    /// Takes a cleared block of class `c`, accounting for it (as `push` does).
    fn pop_zeroed(&mut self, c: usize) -> Option<Vec<u8>> {
        let v = self.zeroed[c].pop()?;
        self.zeroed_blocks -= 1;
        self.forget(v.capacity());
        Some(v)
    }

    /// Takes an uncleared block of class `c`, accounting for it (as `push` does).
    fn pop_uncleared(&mut self, c: usize) -> Option<Vec<u8>> {
        let v = self.classes[c].pop()?;
        if c < SCRUB_CLASSES {
            SCRUBBABLE.fetch_sub(1, Ordering::Relaxed);
        }
        self.forget(v.capacity());
        Some(v)
    }

    /// A block of capacity `cap` left the pool.
    fn forget(&mut self, cap: usize) {
        self.bytes -= cap;
        self.blocks -= 1;
    }

    /// Keeps `v` in class `c` (uncleared or cleared) if the bound allows; gives it
    /// back otherwise.
    fn push(&mut self, c: usize, v: Vec<u8>, zeroed: bool) -> Option<Vec<u8>> {
        let cap = v.capacity();
        if self.bytes + cap > self.limit {
            return Some(v);
        }
        self.bytes += cap;
        self.blocks += 1;
        if zeroed {
            self.zeroed_blocks += 1;
            self.zeroed[c].push(v);
        } else {
            if c < SCRUB_CLASSES {
                SCRUBBABLE.fetch_add(1, Ordering::Relaxed);
            }
            self.classes[c].push(v);
        }
        None
    }

    /// Frees the largest blocks until the pool holds at most `limit` bytes; returns them.
    fn shrink_to(&mut self, limit: usize) -> Vec<Vec<u8>> {
        let mut freed = Vec::new();
        let mut c = CLASSES;
        while self.bytes > limit && c > 0 {
            c -= 1;
            while self.bytes > limit {
                let Some(v) = self.pop_uncleared(c).or_else(|| self.pop_zeroed(c)) else {
                    break;
                };
                freed.push(v);
            }
        }
        freed
    }
}

/// A fresh block of capacity `class_size(ceil_class(n))`, length `n`, every byte zero
/// (`vec![0; cap]` allocates zeroed memory, which skips clearing pages fresh from the
/// kernel).
fn fresh_zeroed(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; class_size(ceil_class(n))];
    v.truncate(n);
    v
}

/// A fresh block of capacity `class_size(ceil_class(n))` and length 0.
fn fresh_empty(n: usize) -> Vec<u8> {
    Vec::with_capacity(class_size(ceil_class(n)))
}

/// Pops a block for `n` bytes (`n` pooled) unless the pool is off or has none; with
/// whether it is a cleared one.
fn reuse_block(n: usize, prefer: Prefer) -> Option<(Vec<u8>, bool)> {
    let mut p = pool();
    if p.limit == 0 { None } else { p.pop(n, prefer) }
}

/// Pops a block for `n` bytes that its taker overwrites (uncleared ones first).
fn reuse(n: usize) -> Option<Vec<u8>> {
    reuse_block(n, Prefer::Uncleared).map(|(v, _)| v)
}

/// `n` zero bytes, in a pooled block when one is free (a block cleared by [`scrub`]
/// needs no clearing here).
pub fn take_zeroed(n: usize) -> Vec<u8> {
    if !pooled_size(n) {
        return vec![0u8; n];
    }
    note_zero_demand();
    match reuse_block(n, Prefer::Zeroed) {
        Some((mut v, true)) => {
            // all `capacity` bytes are zero and initialized
            v.truncate(n);
            v
        }
        Some((mut v, false)) => {
            v.clear();
            v.resize(n, 0);
            v
        }
        None => fresh_zeroed(n),
    }
}

/// As [`take_zeroed`], but `None` when the memory cannot be had, where `take_zeroed`
/// (as any Rust allocation) aborts the process: for sizes a caller asked for.
///
/// A size beyond the pooled ones is first reserved and given back (an allocation the
/// system refuses is reported), then allocated zeroed, so that fresh pages need no
/// clearing pass; memory that vanishes between the two still aborts.
pub fn try_take_zeroed(n: usize) -> Option<Vec<u8>> {
    if !pooled_size(n) {
        Vec::<u8>::new().try_reserve_exact(n).ok()?;
    }
    Some(take_zeroed(n))
}

/// As [`take_filled`], but `None` when the memory cannot be had (see
/// [`try_take_zeroed`]).
pub fn try_take_filled(n: usize, fill: u8) -> Option<Vec<u8>> {
    if fill == 0 {
        return try_take_zeroed(n);
    }
    if pooled_size(n) {
        return Some(take_filled(n, fill));
    }
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, fill);
    Some(v)
}

/// `n` bytes of unspecified content (a recycled block's old bytes, or zeros), in a pooled
/// block when one is free: for a buffer its taker overwrites whole.
pub fn take(n: usize) -> Vec<u8> {
    if !pooled_size(n) {
        return vec![0u8; n];
    }
    match reuse(n) {
        Some(mut v) => {
            if v.len() >= n {
                v.truncate(n);
            } else {
                v.resize(n, 0);
            }
            v
        }
        None => fresh_zeroed(n),
    }
}

/// `n` bytes of value `fill`, in a pooled block when one is free.
pub fn take_filled(n: usize, fill: u8) -> Vec<u8> {
    if fill == 0 {
        return take_zeroed(n);
    }
    if !pooled_size(n) {
        return vec![fill; n];
    }
    let mut v = reuse(n).unwrap_or_else(|| fresh_empty(n));
    v.clear();
    v.resize(n, fill);
    v
}

/// A copy of `bytes`, in a pooled block when one is free (no clearing: every byte is
/// overwritten).
pub fn take_copy(bytes: &[u8]) -> Vec<u8> {
    let n = bytes.len();
    if !pooled_size(n) {
        return bytes.to_vec();
    }
    let mut v = reuse(n).unwrap_or_else(|| fresh_empty(n));
    v.clear();
    v.extend_from_slice(bytes);
    v
}

/// Gives a block back: kept when its capacity is pooled and the pool has room, freed
/// otherwise.
pub fn give(v: Vec<u8>) {
    let cap = v.capacity();
    if !pooled_size(cap) {
        return;
    }
    let refused = pool().push(floor_class(cap), v, false);
    // freed outside the lock
    drop(refused);
}

/// Clears freed blocks ahead of need, one at a time, until `stop()` says so (it is asked
/// before each block), none is left to clear, or the demand is met: a thread that is
/// waiting anyway (a blocked receive, while its queue is empty) does the clearing that
/// [`take_zeroed`] would otherwise do on its caller's thread. It clears one block per
/// recent pooled [`take_zeroed`] call not yet matched by an earlier clearing (so none
/// when nobody asks for zeros), and only blocks of up to [`MAX_SCRUB_BLOCK`] bytes, so
/// `stop` is asked at least every few microseconds. Returns how many blocks were
/// cleared.
///
/// The lock is held only to take a block and to put it back; the clearing runs without
/// it. A block that no longer fits the bound when it comes back is freed.
pub fn scrub(mut stop: impl FnMut() -> bool) -> usize {
    let mut cleared = 0;
    loop {
        if SCRUBBABLE.load(Ordering::Relaxed) == 0
            || ZERO_DEMAND.load(Ordering::Relaxed) == 0
            || stop()
            || !use_zero_demand()
        {
            return cleared;
        }
        let found = {
            let mut p = pool();
            (0..SCRUB_CLASSES)
                .find(|&c| !p.classes[c].is_empty())
                .and_then(|c| Some((c, p.pop_uncleared(c)?)))
        };
        let Some((c, mut v)) = found else {
            // raced with a taker: the demand stays for next time
            note_zero_demand();
            return cleared;
        };
        v.clear();
        v.resize(v.capacity(), 0);
        cleared += 1;
        let refused = {
            let mut p = pool();
            p.scrubbed += 1;
            p.push(c, v, true)
        };
        drop(refused);
    }
}

/// Gives back the memory of `buffer` when this is its only handle (and it was made from
/// a `Vec`, so no copy is needed); a shared buffer just loses this reference.
pub fn give_buffer(buffer: crate::Buffer) {
    if buffer.is_unique() {
        give(buffer.into_vec());
    }
}

/// What [`stats`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// The bound, in bytes ([`set_limit`]).
    pub limit: usize,
    /// The capacities of the blocks held, summed.
    pub bytes: usize,
    /// How many blocks are held.
    pub blocks: usize,
    /// Requests served from the pool, since the process started.
    pub hits: u64,
    /// Requests of a pooled size that found no block (fresh memory), since the start.
    pub misses: u64,
    /// How many of the blocks held are already cleared ([`scrub`]).
    pub zeroed_blocks: usize,
    /// Blocks cleared by [`scrub`], since the start.
    pub scrubbed: u64,
}

/// The pool's bound, contents and counters.
pub fn stats() -> Stats {
    let p = pool();
    Stats {
        limit: p.limit,
        bytes: p.bytes,
        blocks: p.blocks,
        hits: p.hits,
        misses: p.misses,
        zeroed_blocks: p.zeroed_blocks,
        scrubbed: p.scrubbed,
    }
}

/// Sets the bound; when the pool holds more than the new bound, blocks are freed,
/// largest classes first, until it fits.
pub fn set_limit(limit: usize) {
    let freed = {
        let mut p = pool();
        p.limit = limit;
        p.shrink_to(limit)
    };
    // Freed outside the lock.
    drop(freed);
}

/// Frees every pooled block.
pub fn clear() {
    let freed = pool().shrink_to(0);
    drop(freed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_consistent() {
        for c in 0..CLASSES {
            let s = class_size(c);
            assert_eq!(floor_class(s), c);
            assert_eq!(ceil_class(s), c);
            if c + 1 < CLASSES {
                assert_eq!(floor_class(s + 1), c);
                assert_eq!(ceil_class(s + 1), c + 1);
            }
        }
        assert_eq!(class_size(0), MIN_BLOCK);
        assert_eq!(class_size(CLASSES - 1), MAX_BLOCK);
    }
}

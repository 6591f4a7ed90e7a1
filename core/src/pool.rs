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
//! ```

use std::sync::{Mutex, MutexGuard, PoisonError};

/// The smallest pooled capacity (16 KiB).
pub const MIN_BLOCK: usize = 16 << 10;
/// The largest pooled capacity (16 MiB).
pub const MAX_BLOCK: usize = 16 << 20;
/// The default bound of the pool, in bytes.
pub const DEFAULT_LIMIT: usize = 16 << 20;

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
    classes: [Vec<Vec<u8>>; CLASSES],
    /// Sum of the capacities of the blocks held.
    bytes: usize,
    blocks: usize,
    limit: usize,
    hits: u64,
    misses: u64,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    classes: [const { Vec::new() }; CLASSES],
    bytes: 0,
    blocks: 0,
    limit: DEFAULT_LIMIT,
    hits: 0,
    misses: 0,
});

fn pool() -> MutexGuard<'static, Pool> {
    // Nothing here panics while holding the lock, but a poisoned pool is still a
    // consistent pool (every update is a push or pop plus counters).
    POOL.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    fn pop(&mut self, n: usize) -> Option<Vec<u8>> {
        let c = ceil_class(n);
        match self.classes[c].pop() {
            Some(v) => {
                self.bytes -= v.capacity();
                self.blocks -= 1;
                self.hits += 1;
                Some(v)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    fn clear(&mut self) -> Vec<Vec<u8>> {
        self.bytes = 0;
        self.blocks = 0;
        self.classes.iter_mut().flat_map(std::mem::take).collect()
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

/// Pops a block for `n` bytes (`n` pooled) unless the pool is off or has none.
fn reuse(n: usize) -> Option<Vec<u8>> {
    let mut p = pool();
    if p.limit == 0 { None } else { p.pop(n) }
}

/// `n` zero bytes, in a pooled block when one is free.
pub fn take_zeroed(n: usize) -> Vec<u8> {
    if !pooled_size(n) {
        return vec![0u8; n];
    }
    match reuse(n) {
        Some(mut v) => {
            v.clear();
            v.resize(n, 0);
            v
        }
        None => fresh_zeroed(n),
    }
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
    let mut p = pool();
    if p.bytes + cap > p.limit {
        drop(p);
        drop(v);
        return;
    }
    p.bytes += cap;
    p.blocks += 1;
    p.classes[floor_class(cap)].push(v);
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
    }
}

/// Sets the bound; when the pool holds more than the new bound, blocks are freed,
/// largest classes first, until it fits.
pub fn set_limit(limit: usize) {
    let freed = {
        let mut p = pool();
        p.limit = limit;
        let mut freed = Vec::new();
        let mut c = CLASSES;
        while p.bytes > limit && c > 0 {
            c -= 1;
            while p.bytes > limit {
                let Some(v) = p.classes[c].pop() else { break };
                p.bytes -= v.capacity();
                p.blocks -= 1;
                freed.push(v);
            }
        }
        freed
    };
    // Freed outside the lock.
    drop(freed);
}

/// Frees every pooled block.
pub fn clear() {
    let freed = pool().clear();
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

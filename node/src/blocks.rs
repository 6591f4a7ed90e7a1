//! Zero-copy `ArrayBuffer`s: memory Rust owns ("blocks"), lent to JavaScript as
//! external `ArrayBuffer`s: over a V8 backing store whose deleter gives the memory back
//! (see [`v8`]), or else through `napi_create_external_arraybuffer` with a finalizer.
//!
//! - `allocBuffer(size)` makes one; every `ArrayBuffer` this package delivers (a
//!   side-table buffer of a received message) is one too.
//! - Transferring a block-backed `ArrayBuffer` (`postMessage(ab, [ab])`) takes its memory
//!   back from JavaScript (the `ArrayBuffer` is detached) and moves it into the message as
//!   a `Vec<u8>`: no byte is copied. The receiver lends the same memory to its own
//!   JavaScript as a new block.
//! - When a block's `ArrayBuffer` is garbage-collected or released, its memory goes to
//!   the core's process-wide pool of freed blocks (`channel_messaging::pool`, shared
//!   with the other faces), which `allocBuffer` and the copies made for other buffers
//!   draw from: recycled memory is already mapped, so it costs no page faults (which
//!   dominate fresh 64 KiB allocations).
//!
//! Ownership: a live block is listed in [`REGISTRY`] under its address, with the id that
//! its `ArrayBuffer`'s finalizer carries as hint. Whoever removes the entry owns the
//! memory: the transfer path (which then detaches the `ArrayBuffer` before anything else
//! can run on this thread) or the finalizer (which recycles it). A finalizer whose id no
//! longer matches (the memory moved on, and may be lent again under the same address)
//! does nothing. An address is in the registry only while the memory is live, so no other
//! `ArrayBuffer` can be mistaken for a block.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::hash::{BuildHasherDefault, Hasher};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};

use channel_messaging::{Buffer, pool};
use napi::sys;

use crate::lock;

/// A block's memory while JavaScript holds it: the raw parts of its `Vec<u8>`.
struct RawBlock {
    ptr: *mut u8,
    len: usize,
    cap: usize,
}

// SAFETY: the parts of a `Vec<u8>`, which is Send; whoever holds the entry owns it.
unsafe impl Send for RawBlock {}

impl RawBlock {
    fn from_vec(v: Vec<u8>) -> Self {
        let mut v = std::mem::ManuallyDrop::new(v);
        RawBlock {
            ptr: v.as_mut_ptr(),
            len: v.len(),
            cap: v.capacity(),
        }
    }

    /// # Safety
    ///
    /// Called once, by the owner of the entry, and only once JavaScript can no longer
    /// reach the memory (or never will again).
    unsafe fn into_vec(self) -> Vec<u8> {
        // SAFETY: the parts came from `from_vec`.
        unsafe { Vec::from_raw_parts(self.ptr, self.len, self.cap) }
    }
}

struct Entry {
    id: usize,
    block: RawBlock,
}

/// Live blocks by address, in shards (a sender and its receiver lend and take blocks
/// at the same rate: one lock would have them queue on it).
static REGISTRY: LazyLock<[Mutex<HashMap<usize, Entry, BuildAddrHasher>>; SHARDS]> =
    LazyLock::new(Default::default);
const SHARDS: usize = 16;
/// Ids for finalizer hints (0 is never used).
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// The registry shard of the block at `addr`, locked.
fn registry(addr: usize) -> MutexGuard<'static, HashMap<usize, Entry, BuildAddrHasher>> {
    lock(&REGISTRY[addr_hash(addr) as usize >> (usize::BITS - SHARDS.trailing_zeros())])
}

/// Fibonacci hashing of an address: blocks are far apart and aligned, so their low
/// bits say little; a multiply spreads the rest into the high bits.
fn addr_hash(addr: usize) -> u64 {
    (addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A hasher for address keys (SipHash would cost more than the lookup).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_usize(&mut self, addr: usize) {
        self.0 = addr_hash(addr);
    }
}

type BuildAddrHasher = BuildHasherDefault<AddrHasher>;

thread_local! {
    /// The block this thread is detaching after taking it (see [`take_detached`]): V8
    /// reports it gone during the detach, and there is nothing to look up.
    static DETACHING: Cell<usize> = const { Cell::new(0) };
}

/// A `Vec<u8>` of length `len`, from the pool when it has a block of that size. With
/// `zeroed` its bytes are 0; without, they are whatever a recycled block held (always
/// initialized). `None` when the memory cannot be had.
pub(crate) fn vec_of(len: usize, zeroed: bool) -> Option<Vec<u8>> {
    if pool::pooled_size(len) {
        return Some(if zeroed {
            pool::take_zeroed(len)
        } else {
            pool::take(len)
        });
    }
    // calloc: fresh pages come zeroed from the kernel, without a memset pass
    let layout = std::alloc::Layout::array::<u8>(len).ok()?;
    if len == 0 {
        return Some(Vec::new());
    }
    // SAFETY: a non-zero layout; the memory is zeroed, so all `len` bytes are
    // initialized, and it came from the global allocator with that capacity.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout);
        if p.is_null() {
            return None;
        }
        Some(Vec::from_raw_parts(p, len, len))
    }
}

/// Gives a block that nothing references any more back to the pool (or frees it).
pub(crate) fn recycle(v: Vec<u8>) {
    pool::give(v);
}

/// A copy of `bytes` in pooled memory.
pub(crate) fn copy_of(bytes: &[u8]) -> Buffer {
    match vec_of(bytes.len(), false) {
        Some(mut v) => {
            v.copy_from_slice(bytes);
            Buffer::from(v)
        }
        None => Buffer::copy_from_slice(bytes),
    }
}

/// Takes the block lent as the `ArrayBuffer` whose memory is `data[..len]`, if it is one,
/// with its finalizer's id. The caller now owns the memory and must detach that
/// `ArrayBuffer` before JavaScript runs again (or give the block back with [`untake`]).
pub(crate) fn take(data: *const u8, len: usize) -> Option<(Vec<u8>, usize)> {
    if data.is_null() || len == 0 {
        return None;
    }
    let mut registry = registry(data as usize);
    let entry = registry.get(&(data as usize))?;
    if entry.block.len != len {
        return None;
    }
    let entry = registry.remove(&(data as usize))?;
    // SAFETY: the entry was ours to remove; the caller detaches the ArrayBuffer.
    Some((unsafe { entry.block.into_vec() }, entry.id))
}

/// Takes the block lent as the `ArrayBuffer` `ab` and detaches `ab`, so that JavaScript
/// loses sight of the memory before anything else runs on this thread. `None`, with
/// nothing changed, when `ab` is not a live block (or not an `ArrayBuffer`: the query
/// fails without throwing).
///
/// # Safety
///
/// `env` is the current callback's environment and `ab` one of its values.
pub(crate) unsafe fn take_detached(env: sys::napi_env, ab: sys::napi_value) -> Option<Vec<u8>> {
    let (mut data, mut len) = (ptr::null_mut(), 0usize);
    // SAFETY: the caller's contract; `data` and `len` are writable.
    if unsafe { sys::napi_get_arraybuffer_info(env, ab, &mut data, &mut len) }
        != sys::Status::napi_ok
    {
        return None;
    }
    let (v, id) = take(data.cast_const().cast(), len)?;
    DETACHING.set(data as usize);
    // SAFETY: as above; nothing between the take and here calls into JavaScript.
    let status = unsafe { sys::napi_detach_arraybuffer(env, ab) };
    DETACHING.set(0);
    if status != sys::Status::napi_ok {
        // (never for a block, which is external) JS still holds it: give it back.
        untake(v, id);
        return None;
    }
    Some(v)
}

/// Gives back a block taken with [`take`] whose `ArrayBuffer` could not be detached.
pub(crate) fn untake(v: Vec<u8>, id: usize) {
    let block = RawBlock::from_vec(v);
    registry(block.ptr as usize).insert(block.ptr as usize, Entry { id, block });
}

/// What [`stats`] reports.
pub(crate) struct Stats {
    /// Blocks lent to JavaScript and not yet given back.
    pub live: usize,
    /// Free memory kept for reuse.
    pub pooled_bytes: usize,
    /// Blocks of a pooled size that had to be allocated fresh (the pool had none).
    pub fresh: usize,
    /// How blocks are lent: "v8" or "napi" (see [`v8`]).
    pub backend: &'static str,
}

/// The state of the blocks and their pool.
pub(crate) fn stats(env: sys::napi_env) -> Stats {
    Stats {
        live: REGISTRY.iter().map(|shard| lock(shard).len()).sum(),
        pooled_bytes: pool::stats().bytes,
        fresh: pool::stats().misses as usize,
        backend: if v8::enabled(env) { "v8" } else { "napi" },
    }
}

/// Whether blocks (and shared SharedArrayBuffers, see shared.rs) go through V8's API in
/// this process.
#[cfg(cm_v8)]
pub(crate) fn v8_enabled(env: sys::napi_env) -> bool {
    v8::enabled(env)
}

/// Whether `data[..len]` is a live block (for tests and assertions).
pub(crate) fn is_block(data: *const u8, len: usize) -> bool {
    registry(data as usize)
        .get(&(data as usize))
        .is_some_and(|e| e.block.len == len)
}

/// Lends `v` to JavaScript as an external `ArrayBuffer` (a block). Where external
/// buffers are not allowed, copies into a V8 `ArrayBuffer` instead.
///
/// # Safety
///
/// `env` is the current callback's environment.
pub(crate) unsafe fn lend(env: sys::napi_env, v: Vec<u8>) -> Option<sys::napi_value> {
    let mut out = ptr::null_mut();
    if v.is_empty() {
        // SAFETY: a plain value creation.
        let status = unsafe { sys::napi_create_arraybuffer(env, 0, ptr::null_mut(), &mut out) };
        return (status == sys::Status::napi_ok).then_some(out);
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let block = RawBlock::from_vec(v);
    let (data, len) = (block.ptr, block.len);
    registry(data as usize).insert(data as usize, Entry { id, block });
    // SAFETY: `data[..len]` stays valid until the registry entry is removed, which only
    // the finalizer (after the ArrayBuffer is gone) or `take` (followed by a detach) do.
    if let Some(ab) = unsafe { v8::external_arraybuffer(env, data, len, id) } {
        return Some(ab);
    }
    // SAFETY: as above.
    let status = unsafe {
        sys::napi_create_external_arraybuffer(
            env,
            data.cast(),
            len,
            Some(finalize_block),
            id as *mut c_void,
            &mut out,
        )
    };
    if status == sys::Status::napi_ok {
        return Some(out);
    }
    // Not created: the block is still ours (no finalizer will run).
    let entry = registry(data as usize).remove(&(data as usize))?;
    // SAFETY: nothing else refers to the memory.
    let v = unsafe { entry.block.into_vec() };
    let mut copy = ptr::null_mut();
    // SAFETY: a plain value creation; `copy` has room for `len` bytes when it succeeds.
    let status = unsafe { sys::napi_create_arraybuffer(env, len, &mut copy, &mut out) };
    let ok = status == sys::Status::napi_ok && !copy.is_null();
    if ok {
        // SAFETY: `copy` points at `len` fresh bytes of the new ArrayBuffer.
        unsafe { ptr::copy_nonoverlapping(v.as_ptr(), copy.cast(), len) };
    }
    recycle(v);
    ok.then_some(out)
}

/// The finalizer of a lent block: recycles it unless it was taken (transferred) first.
unsafe extern "C" fn finalize_block(_env: sys::napi_env, data: *mut c_void, hint: *mut c_void) {
    block_gone(data, hint as usize);
}

/// A lent block's `ArrayBuffer` is gone (collected, detached, or its isolate torn down):
/// recycles the memory, unless it was taken (transferred) first, when the entry at
/// `data` is gone or belongs to a later lending of the same address (another id).
fn block_gone(data: *mut c_void, id: usize) {
    if DETACHING.get() == data as usize {
        return; // taken by this thread, which is detaching it
    }
    let entry = {
        let mut registry = registry(data as usize);
        match registry.get(&(data as usize)) {
            Some(e) if e.id == id => registry.remove(&(data as usize)),
            _ => None,
        }
    };
    if let Some(entry) = entry {
        // SAFETY: the ArrayBuffer is gone; the entry was ours to remove.
        recycle(unsafe { entry.block.into_vec() });
    }
}

/// Blocks lent through V8's own API (node/src/v8_blocks.cc, built when build.rs finds
/// node's headers): an `ArrayBuffer` over a V8 backing store whose deleter calls
/// [`block_gone`], at a fraction of what `napi_create_external_arraybuffer` costs (it
/// makes a whole Node `Buffer`, with a weak handle, a cleanup hook and a finalizer
/// deferred to the event loop). Used only when the running node has the major version
/// whose headers the addon was built with (V8's ABI changes between majors), and not
/// when `CHANNEL_MESSAGING_NAPI_BLOCKS` is set (then every block goes through N-API).
mod v8 {
    #[cfg(cm_v8)]
    use std::ffi::c_void;

    use napi::sys;

    #[cfg(cm_v8)]
    unsafe extern "C" {
        fn cm_v8_node_major() -> i32;
        fn cm_v8_external_arraybuffer(
            data: *mut c_void,
            len: usize,
            hint: *mut c_void,
        ) -> sys::napi_value;
    }

    /// Called by V8 when the backing store of a block goes, on any thread (the GC's
    /// background sweeper included).
    #[cfg(cm_v8)]
    #[unsafe(no_mangle)]
    extern "C" fn cm_block_deleted(data: *mut c_void, _len: usize, hint: *mut c_void) {
        // never unwinds into V8 (a poisoned lock is recovered by `lock`)
        let _ = std::panic::catch_unwind(|| super::block_gone(data, hint as usize));
    }

    /// Whether this environment's node can take blocks through V8's API (decided once).
    #[cfg(cm_v8)]
    fn usable(env: sys::napi_env) -> bool {
        use std::sync::OnceLock;
        static USABLE: OnceLock<bool> = OnceLock::new();
        *USABLE.get_or_init(|| {
            if std::env::var_os("CHANNEL_MESSAGING_NAPI_BLOCKS").is_some() {
                return false;
            }
            let mut version = std::ptr::null();
            // SAFETY: `env` is a live environment; the result is static in node.
            let ok =
                unsafe { sys::napi_get_node_version(env, &mut version) } == sys::Status::napi_ok;
            // SAFETY: a non-null result points at node's static version record.
            ok && !version.is_null()
                && unsafe { (*version).major } as i32 == unsafe { cm_v8_node_major() }
        })
    }

    /// Whether blocks are lent through V8's API in this process.
    pub(super) fn enabled(env: sys::napi_env) -> bool {
        #[cfg(cm_v8)]
        return usable(env);
        #[cfg(not(cm_v8))]
        {
            let _ = env;
            false
        }
    }

    /// An `ArrayBuffer` owning the block `data[..len]` (registered under `id`), or
    /// `None` (the block is still the caller's) where V8's API is not to be used.
    ///
    /// # Safety
    ///
    /// `env` is the current callback's environment; `data[..len]` is a registered block.
    pub(super) unsafe fn external_arraybuffer(
        env: sys::napi_env,
        data: *mut u8,
        len: usize,
        id: usize,
    ) -> Option<sys::napi_value> {
        #[cfg(cm_v8)]
        if usable(env) {
            // SAFETY: the caller's contract; inside a N-API callback there is a current
            // isolate and a handle scope for the result.
            let ab = unsafe { cm_v8_external_arraybuffer(data.cast(), len, id as *mut c_void) };
            return (!ab.is_null()).then_some(ab);
        }
        let _ = (env, data, len, id);
        None
    }
}

/// A received side-table buffer as JavaScript gets it: a `SharedArrayBuffer` over the
/// same memory when it is a shared one (shared.rs), else an `ArrayBuffer` lent as
/// [`received`] says. `None` when V8 cannot allocate it.
///
/// # Safety
///
/// `env` is the current callback's environment.
pub(crate) unsafe fn materialize(env: sys::napi_env, b: Buffer) -> Option<sys::napi_value> {
    // SAFETY: the caller's contract.
    if let Some(sab) = unsafe { crate::shared::receive(&b) } {
        return Some(sab);
    }
    // SAFETY: as above.
    unsafe { lend(env, received(b)) }
}

/// The memory of a received side-table buffer, for lending: without a copy when the
/// message held the only handle (a transfer), else copied into pooled memory.
pub(crate) fn received(b: Buffer) -> Vec<u8> {
    if b.is_unique() {
        return b.into_vec();
    }
    match vec_of(b.len(), false) {
        Some(mut v) => {
            v.copy_from_slice(&b);
            v
        }
        None => b.into_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_recycles_and_zeroes() {
        let mut v = vec_of(64 * 1024, true).unwrap();
        assert_eq!(v.capacity(), 64 * 1024);
        v.fill(7);
        let p = v.as_ptr();
        recycle(v);
        let w = vec_of(60_000, false).unwrap();
        assert_eq!(w.as_ptr(), p);
        assert!(w.iter().all(|&b| b == 7));
        recycle(w);
        let z = vec_of(64 * 1024, true).unwrap();
        assert!(z.iter().all(|&b| b == 0));
        let odd = vec_of(3 << 20, true).unwrap();
        assert_eq!(odd.len(), 3 << 20);
        let big = vec_of(40 << 20, true).unwrap(); // past the pooled sizes
        assert_eq!(big.len(), 40 << 20);
    }
}

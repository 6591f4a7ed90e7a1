//! Zero-copy `ArrayBuffer`s: memory Rust owns ("blocks"), lent to JavaScript as
//! external `ArrayBuffer`s (`napi_create_external_arraybuffer`).
//!
//! - `allocBuffer(size)` makes one; every `ArrayBuffer` this package delivers (a
//!   side-table buffer of a received message) is one too.
//! - Transferring a block-backed `ArrayBuffer` (`postMessage(ab, [ab])`) takes its memory
//!   back from JavaScript (the `ArrayBuffer` is detached) and moves it into the message as
//!   a `Vec<u8>`: no byte is copied. The receiver lends the same memory to its own
//!   JavaScript as a new block.
//! - When a block's `ArrayBuffer` is garbage-collected, its memory goes to a small
//!   process-wide pool of recently freed blocks (size classes of powers of two from
//!   4 KiB to 1 MiB, at most [`POOL_BYTES_PER_CLASS`] each), which `allocBuffer` and the
//!   copies made for other buffers draw from: recycled memory is already mapped, so it
//!   costs no page faults (which dominate fresh 64 KiB allocations).
//!
//! Ownership: a live block is listed in [`REGISTRY`] under its address, with the id that
//! its `ArrayBuffer`'s finalizer carries as hint. Whoever removes the entry owns the
//! memory: the transfer path (which then detaches the `ArrayBuffer` before anything else
//! can run on this thread) or the finalizer (which recycles it). A finalizer whose id no
//! longer matches (the memory moved on, and may be lent again under the same address)
//! does nothing. An address is in the registry only while the memory is live, so no other
//! `ArrayBuffer` can be mistaken for a block.

use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

use channel_messaging::Buffer;
use napi::sys;

use crate::lock;

/// Smallest and largest pooled size class (bytes, powers of two).
const MIN_CLASS: usize = 4 * 1024;
const MAX_CLASS: usize = 1024 * 1024;
const CLASSES: usize = (MAX_CLASS.trailing_zeros() - MIN_CLASS.trailing_zeros() + 1) as usize;
/// At most this many bytes of free blocks are kept per size class.
pub(crate) const POOL_BYTES_PER_CLASS: usize = 16 * 1024 * 1024;

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

/// Live blocks by address.
static REGISTRY: LazyLock<Mutex<HashMap<usize, Entry>>> = LazyLock::new(Mutex::default);
/// Ids for finalizer hints (0 is never used).
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
/// Free blocks by size class.
static POOL: LazyLock<Mutex<[Vec<Vec<u8>>; CLASSES]>> = LazyLock::new(Mutex::default);

fn class_of(capacity: usize) -> Option<usize> {
    (MIN_CLASS..=MAX_CLASS)
        .contains(&capacity)
        .then_some(capacity)
        .filter(|c| c.is_power_of_two())
        .map(|c| (c.trailing_zeros() - MIN_CLASS.trailing_zeros()) as usize)
}

/// A `Vec<u8>` of length `len`, from the pool when one of its class is free. With
/// `zeroed` its bytes are 0; without, they are whatever a recycled block held (always
/// initialized). `None` when the memory cannot be had.
pub(crate) fn vec_of(len: usize, zeroed: bool) -> Option<Vec<u8>> {
    // small buffers are not worth a size class (up to half of it would be slack)
    let class_size = if len < MIN_CLASS / 2 {
        len
    } else {
        len.max(MIN_CLASS).checked_next_power_of_two()?
    };
    if let Some(class) = class_of(class_size) {
        let recycled = lock(&POOL)[class].pop();
        if let Some(mut v) = recycled {
            if zeroed || len > v.len() {
                // only the bytes past the initialized prefix need writing when not zeroed
                let keep = if zeroed { 0 } else { v.len() };
                v.truncate(keep);
                v.resize(len, 0);
            } else {
                v.truncate(len);
            }
            return Some(v);
        }
    }
    let capacity = if class_of(class_size).is_some() {
        class_size
    } else {
        len
    };
    // calloc: fresh pages come zeroed from the kernel, without a memset pass
    let layout = std::alloc::Layout::array::<u8>(capacity).ok()?;
    if capacity == 0 {
        return Some(Vec::new());
    }
    // SAFETY: a non-zero layout; the memory is zeroed, so all `capacity` bytes are
    // initialized, and it came from the global allocator with that capacity.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout);
        if p.is_null() {
            return None;
        }
        Some(Vec::from_raw_parts(p, len, capacity))
    }
}

/// Gives a block that nothing references any more back to the pool (or frees it).
pub(crate) fn recycle(v: Vec<u8>) {
    let Some(class) = class_of(v.capacity()) else {
        return;
    };
    let mut pool = lock(&POOL);
    if (pool[class].len() + 1) * v.capacity() <= POOL_BYTES_PER_CLASS {
        pool[class].push(v);
    }
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
    let mut registry = lock(&REGISTRY);
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
    // SAFETY: as above; nothing between the take and here calls into JavaScript.
    if unsafe { sys::napi_detach_arraybuffer(env, ab) } != sys::Status::napi_ok {
        // (never for a block, which is external) JS still holds it: give it back.
        untake(v, id);
        return None;
    }
    Some(v)
}

/// Gives back a block taken with [`take`] whose `ArrayBuffer` could not be detached.
pub(crate) fn untake(v: Vec<u8>, id: usize) {
    let block = RawBlock::from_vec(v);
    lock(&REGISTRY).insert(block.ptr as usize, Entry { id, block });
}

/// Whether `data[..len]` is a live block (for tests and assertions).
pub(crate) fn is_block(data: *const u8, len: usize) -> bool {
    lock(&REGISTRY)
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
    lock(&REGISTRY).insert(data as usize, Entry { id, block });
    // SAFETY: `data[..len]` stays valid until the registry entry is removed, which only
    // the finalizer (after the ArrayBuffer is gone) or `take` (followed by a detach) do.
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
    let entry = lock(&REGISTRY).remove(&(data as usize))?;
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
    let id = hint as usize;
    let entry = {
        let mut registry = lock(&REGISTRY);
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
    fn classes() {
        assert_eq!(class_of(4096), Some(0));
        assert_eq!(class_of(64 * 1024), Some(4));
        assert_eq!(class_of(1 << 20), Some(CLASSES - 1));
        assert_eq!(class_of(5000), None);
        assert_eq!(class_of(2 << 20), None);
    }

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
    }
}

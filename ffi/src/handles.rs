//! The handle table: 64-bit generational integer handles for the objects C holds.
//!
//! A handle is `generation << 32 | (slot index + 1)`. Slots live in chunks that are
//! allocated once and never freed, each behind its own mutex, so looking a handle up
//! costs one uncontended lock and two threads using different ports never share a lock.
//! Freeing a slot bumps its generation: a stale handle no longer matches and gives
//! `CM_ERR_INVALID_HANDLE`, as does 0, a number never issued, or any random number.
//!
//! Each slot also publishes a [`stamp`] without a lock (its generation while it holds an
//! object, 0 when empty, and whether the port has a wake-up installed), which lets
//! crate::port keep a per-thread cache of port lookups that is checked with one load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use crate::error::{CM_ERR_INVALID_ARGUMENT, CM_ERR_INVALID_HANDLE, Res, fail};

const CHUNK: usize = 1024;
const CHUNKS: usize = 1024;

/// What a handle stands for.
pub(crate) enum Object {
    Port(crate::port::PortEntry),
    Collection(std::sync::Arc<channel_messaging::PortCollection>),
    Broadcast(crate::group::BroadcastEntry),
}

struct SlotState {
    generation: u32,
    object: Option<Object>,
}

/// Cache-line aligned: two threads using neighbouring handles never share a line.
#[repr(align(128))]
struct Slot {
    state: Mutex<SlotState>,
    /// [`stamp`]'s value for this slot (written with the lock held).
    stamp: AtomicU64,
}

/// What a slot holding `object` under `generation` publishes: `generation << 1`, plus 1
/// when the object is a port with a wake-up installed (whose lookups take the lock).
fn stamp_of(generation: u32, object: &Object) -> u64 {
    let wake = matches!(object, Object::Port(e) if e.has_wake());
    (u64::from(generation) << 1) | u64::from(wake)
}

/// The stamp of the slot `handle` names: `generation << 1` (plus 1 when a wake-up is
/// installed) while it holds an object, 0 when it is empty or `handle` names no slot.
/// Compare with [`stamp_expected`]: equal means `handle` is valid and its port has no
/// wake-up installed (as of this load: a concurrent close may follow at once, as it may
/// after any lookup).
pub(crate) fn stamp(handle: u64) -> u64 {
    match split(handle).and_then(|(index, _)| slot(index)) {
        Some(slot) => slot.stamp.load(Ordering::Acquire),
        None => 0,
    }
}

/// The stamp a slot shows while `handle` is valid and its port has no wake-up installed.
pub(crate) fn stamp_expected(handle: u64) -> u64 {
    (handle >> 32) << 1
}

struct Table {
    chunks: [OnceLock<Box<[Slot]>>; CHUNKS],
    free: Mutex<FreeList>,
}

struct FreeList {
    free: Vec<u32>,
    next: u32,
}

static TABLE: Table = Table {
    chunks: [const { OnceLock::new() }; CHUNKS],
    free: Mutex::new(FreeList {
        free: Vec::new(),
        next: 0,
    }),
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn slot(index: u32) -> Option<&'static Slot> {
    let i = index as usize;
    TABLE.chunks.get(i / CHUNK)?.get()?.get(i % CHUNK)
}

fn split(handle: u64) -> Option<(u32, u32)> {
    let low = (handle & 0xffff_ffff) as u32;
    let generation = (handle >> 32) as u32;
    if low == 0 || generation == 0 {
        return None;
    }
    Some((low - 1, generation))
}

/// Stores `object` and returns its new handle.
pub(crate) fn insert(object: Object) -> Res<u64> {
    let index = {
        let mut free = lock(&TABLE.free);
        match free.free.pop() {
            Some(i) => i,
            None => {
                if free.next as usize >= CHUNK * CHUNKS {
                    return fail(
                        CM_ERR_INVALID_ARGUMENT,
                        "too many live handles (the table holds 1,048,576)",
                    );
                }
                let i = free.next;
                free.next += 1;
                i
            }
        }
    };
    let chunk = TABLE.chunks[index as usize / CHUNK].get_or_init(|| {
        (0..CHUNK)
            .map(|_| Slot {
                state: Mutex::new(SlotState {
                    generation: 1,
                    object: None,
                }),
                stamp: AtomicU64::new(0),
            })
            .collect()
    });
    let slot = &chunk[index as usize % CHUNK];
    let mut s = lock(&slot.state);
    slot.stamp
        .store(stamp_of(s.generation, &object), Ordering::Release);
    s.object = Some(object);
    Ok((u64::from(s.generation) << 32) | (u64::from(index) + 1))
}

/// Runs `f` on the object of `handle` (with its slot locked: `f` must be quick and must
/// not call back into the table for the same handle).
pub(crate) fn with<R>(handle: u64, f: impl FnOnce(&mut Object) -> Res<R>) -> Res<R> {
    let invalid = || fail(CM_ERR_INVALID_HANDLE, invalid_message(handle));
    let Some((index, generation)) = split(handle) else {
        return invalid();
    };
    let Some(slot) = slot(index) else {
        return invalid();
    };
    let mut s = lock(&slot.state);
    if s.generation != generation {
        return invalid();
    }
    match s.object.as_mut() {
        Some(o) => {
            let r = f(o);
            // `f` may have installed or removed a wake-up
            slot.stamp.store(stamp_of(generation, o), Ordering::Release);
            r
        }
        None => invalid(),
    }
}

/// Removes the object of `handle`; the handle (and every copy of it) becomes invalid.
/// `check` may refuse (the wrong kind of object): nothing is removed then.
pub(crate) fn remove(handle: u64, check: impl FnOnce(&Object) -> Res) -> Res<Object> {
    let invalid = || fail(CM_ERR_INVALID_HANDLE, invalid_message(handle));
    let Some((index, generation)) = split(handle) else {
        return invalid();
    };
    let Some(slot) = slot(index) else {
        return invalid();
    };
    let object = {
        let mut s = lock(&slot.state);
        if s.generation != generation || s.object.is_none() {
            return invalid();
        }
        if let Some(o) = s.object.as_ref() {
            check(o)?;
        }
        slot.stamp.store(0, Ordering::Release);
        let object = s.object.take();
        s.generation = s.generation.wrapping_add(1).max(1);
        object
    };
    lock(&TABLE.free).free.push(index);
    match object {
        Some(o) => Ok(o),
        None => invalid(),
    }
}

fn invalid_message(handle: u64) -> String {
    if handle == 0 {
        "invalid handle: 0 is never a valid handle".to_owned()
    } else {
        format!("invalid handle {handle:#x}: never issued, closed, or transferred away")
    }
}

/// The message for a handle of the wrong kind.
pub(crate) fn wrong_kind<T>(handle: u64, want: &'static str) -> Res<T> {
    fail(
        CM_ERR_INVALID_HANDLE,
        format!("invalid handle {handle:#x}: not a {want} handle"),
    )
}

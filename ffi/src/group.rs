//! PortCollection and BroadcastChannel.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use channel_messaging::{
    BroadcastChannel, PortCollection, RecvError, RecvTimeoutError, TryRecvError,
};

use crate::error::*;
use crate::handles::{self, Object, wrong_kind};
use crate::message::cm_message;
use crate::port::{cm_port, get_port};
use crate::value::{buffer_list, cm_buffer, cm_value, slice, utf8, value_ref};

/// A PortCollection handle (64-bit, 0 never valid): a weak, ordered set of ports that
/// can broadcast one message to all of them. Released with `cm_collection_free`.
pub type cm_collection = u64;

/// A BroadcastChannel handle (64-bit, 0 never valid). Released with
/// `cm_broadcast_close`.
pub type cm_broadcast = u64;

/// What the handle table holds for a broadcast channel.
pub(crate) struct BroadcastEntry {
    chan: BroadcastChannel,
}

pub(crate) fn collection(handle: cm_collection) -> Res<Arc<PortCollection>> {
    handles::with(handle, |o| match o {
        Object::Collection(c) => Ok(Arc::clone(c)),
        _ => wrong_kind(handle, "collection"),
    })
}

fn broadcast(handle: cm_broadcast) -> Res<BroadcastChannel> {
    handles::with(handle, |o| match o {
        Object::Broadcast(b) => Ok(b.chan.clone()),
        _ => wrong_kind(handle, "broadcast channel"),
    })
}

/// Writes `n` through an optional out-pointer.
///
/// # Safety
///
/// `out` must be NULL or writable.
unsafe fn put_opt(out: *mut usize, n: usize) {
    if !out.is_null() {
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { put(out, n) };
    }
}

/// Creates an empty PortCollection; `*collection` = its handle, owned by the caller
/// (`cm_collection_free`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_collection_new(collection: *mut cm_collection) -> cm_status {
    guard(|| {
        not_null(collection, "collection is NULL")?;
        let h = handles::insert(Object::Collection(Arc::new(PortCollection::new())))?;
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(collection, h) };
        Ok(CM_OK)
    })
}

/// Adds `port` to the collection (kept weakly: the collection never keeps a port open;
/// closed or transferred ports leave it by themselves). Adding a member again does
/// nothing; a closed port is not added.
#[unsafe(no_mangle)]
pub extern "C" fn cm_collection_add(collection: cm_collection, port: cm_port) -> cm_status {
    guard(|| {
        let c = self::collection(collection)?;
        c.add(&get_port(port)?);
        Ok(CM_OK)
    })
}

/// Removes `port` from the collection (nothing when it is not a member).
#[unsafe(no_mangle)]
pub extern "C" fn cm_collection_remove(collection: cm_collection, port: cm_port) -> cm_status {
    guard(|| {
        let c = self::collection(collection)?;
        c.remove(&get_port(port)?);
        Ok(CM_OK)
    })
}

/// `*member` = whether `port` is in the collection.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_collection_contains(
    collection: cm_collection,
    port: cm_port,
    member: *mut bool,
) -> cm_status {
    guard(|| {
        not_null(member, "member is NULL")?;
        let c = self::collection(collection)?;
        let r = c.contains(&get_port(port)?);
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(member, r) };
        Ok(CM_OK)
    })
}

/// Removes every port from the collection.
#[unsafe(no_mangle)]
pub extern "C" fn cm_collection_clear(collection: cm_collection) -> cm_status {
    guard(|| {
        self::collection(collection)?.clear();
        Ok(CM_OK)
    })
}

/// `*len` = the number of live member ports.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_collection_len(
    collection: cm_collection,
    len: *mut usize,
) -> cm_status {
    guard(|| {
        not_null(len, "len is NULL")?;
        let n = self::collection(collection)?.len();
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(len, n) };
        Ok(CM_OK)
    })
}

/// Posts `value` (borrowed; encoded once) to every member port, in order; the payload
/// is shared, not copied per port. `*delivered` (may be NULL) = the number of ports it
/// was posted to. A broadcast cannot transfer: a port value inside `value` is
/// `CM_ERR_DATA_CLONE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_collection_post(
    collection: cm_collection,
    value: *const cm_value,
    delivered: *mut usize,
) -> cm_status {
    guard(|| {
        // SAFETY: the caller passes a live value.
        let v = unsafe { value_ref(value)? };
        let n = self::collection(collection)?.post_message(v)?;
        // SAFETY: NULL or writable by contract.
        unsafe { put_opt(delivered, n) };
        Ok(CM_OK)
    })
}

/// As `cm_collection_post`, with an already-encoded message (see
/// `cm_port_post_encoded` for `bytes` and `buffers`, both borrowed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_collection_post_encoded(
    collection: cm_collection,
    bytes: *const u8,
    len: usize,
    buffers: *const *const cm_buffer,
    buffers_len: usize,
    delivered: *mut usize,
) -> cm_status {
    guard(|| {
        // SAFETY: the caller passes `len` readable bytes.
        let data = unsafe { slice(bytes, len, "bytes")? };
        // SAFETY: the caller passes `buffers_len` live cm_buffer pointers.
        let side = unsafe { buffer_list(buffers, buffers_len)? };
        let n = self::collection(collection)?.post_encoded(data, side, &[])?;
        // SAFETY: NULL or writable by contract.
        unsafe { put_opt(delivered, n) };
        Ok(CM_OK)
    })
}

/// Releases the collection handle (its member ports are not affected).
#[unsafe(no_mangle)]
pub extern "C" fn cm_collection_free(collection: cm_collection) -> cm_status {
    guard(|| {
        handles::remove(collection, |o| match o {
            Object::Collection(_) => Ok(()),
            _ => wrong_kind(collection, "collection"),
        })?;
        Ok(CM_OK)
    })
}

/// Joins the process-wide broadcast group `name` (UTF-8, `name_len` bytes, borrowed):
/// `*channel` = a new handle owned by the caller (`cm_broadcast_close`). Messages posted
/// by any other channel of the same name reach this one (never its own).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_broadcast_new(
    name: *const c_char,
    name_len: usize,
    channel: *mut cm_broadcast,
) -> cm_status {
    guard(|| {
        not_null(channel, "channel is NULL")?;
        // SAFETY: the caller passes `name_len` readable bytes.
        let n = unsafe { utf8(name, name_len, "name")? };
        let chan = BroadcastChannel::new(n);
        let h = handles::insert(Object::Broadcast(BroadcastEntry { chan }))?;
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(channel, h) };
        Ok(CM_OK)
    })
}

/// Posts `value` (borrowed) to every other channel of the same name. `*delivered` (may
/// be NULL) = how many received it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_broadcast_post(
    channel: cm_broadcast,
    value: *const cm_value,
    delivered: *mut usize,
) -> cm_status {
    guard(|| {
        // SAFETY: the caller passes a live value.
        let v = unsafe { value_ref(value)? };
        let n = broadcast(channel)?.post_message(v)?;
        // SAFETY: NULL or writable by contract.
        unsafe { put_opt(delivered, n) };
        Ok(CM_OK)
    })
}

/// As `cm_broadcast_post`, with an already-encoded message (see `cm_port_post_encoded`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_broadcast_post_encoded(
    channel: cm_broadcast,
    bytes: *const u8,
    len: usize,
    buffers: *const *const cm_buffer,
    buffers_len: usize,
    delivered: *mut usize,
) -> cm_status {
    guard(|| {
        // SAFETY: the caller passes `len` readable bytes.
        let data = unsafe { slice(bytes, len, "bytes")? };
        // SAFETY: the caller passes `buffers_len` live cm_buffer pointers.
        let side = unsafe { buffer_list(buffers, buffers_len)? };
        let n = broadcast(channel)?.post_encoded(data, side)?;
        // SAFETY: NULL or writable by contract.
        unsafe { put_opt(delivered, n) };
        Ok(CM_OK)
    })
}

/// Receives the next message of the channel, decoded (timeouts as `cm_port_recv`).
/// `*out` = a new message owned by the caller (`cm_message_free`), NULL otherwise.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_broadcast_recv(
    channel: cm_broadcast,
    timeout_ms: i64,
    out: *mut *mut cm_message,
) -> cm_status {
    guard(|| {
        not_null(out, "out is NULL")?;
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(out, std::ptr::null_mut()) };
        let b = broadcast(channel)?;
        let msg = if timeout_ms == 0 {
            match b.try_recv_message() {
                Ok(m) => cm_message::from_core(m, true)?,
                Err(TryRecvError::Empty) => return fail(CM_EMPTY, "no message is queued"),
                Err(_) => return fail(CM_CLOSED, "the broadcast channel is closed"),
            }
        } else {
            let r = if timeout_ms < 0 {
                b.recv().map_err(|e| match e {
                    RecvError::Closed => RecvTimeoutError::Closed,
                    RecvError::MessageError(d) => RecvTimeoutError::MessageError(d),
                })
            } else {
                b.recv_timeout(Duration::from_millis(timeout_ms as u64))
            };
            match r {
                Ok(ev) => cm_message::from_event(ev),
                Err(RecvTimeoutError::Timeout) => {
                    return fail(CM_TIMEOUT, "timed out waiting for a message");
                }
                Err(RecvTimeoutError::Closed) => {
                    return fail(CM_CLOSED, "the broadcast channel is closed");
                }
                Err(RecvTimeoutError::MessageError(d)) => return Err(d.into()),
            }
        };
        // SAFETY: as above.
        unsafe { put(out, Box::into_raw(Box::new(msg))) };
        Ok(CM_OK)
    })
}

/// Closes the channel (it leaves its group; a receive blocked on it returns
/// `CM_CLOSED`) and releases the handle.
#[unsafe(no_mangle)]
pub extern "C" fn cm_broadcast_close(channel: cm_broadcast) -> cm_status {
    guard(|| {
        let o = handles::remove(channel, |o| match o {
            Object::Broadcast(_) => Ok(()),
            _ => wrong_kind(channel, "broadcast channel"),
        })?;
        if let Object::Broadcast(b) = o {
            b.chan.close();
        }
        Ok(CM_OK)
    })
}

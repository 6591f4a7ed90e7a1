//! Streaming encoding: a C callback writes a message piece by piece with `cm_writer_*`,
//! straight into the wire format, without building a value tree (the fast path).

use std::cell::RefCell;
use std::ffi::{c_char, c_void};

use channel_messaging::wire::Writer;
use channel_messaging::{Buffer, DataCloneError, MessagePort};

use crate::error::*;
use crate::port::{cm_port, get_port, release_transferred, transfer_ports};
use crate::value::{cm_buffer, error_name_from, slice, utf8, view_kind_from};

/// A streaming message writer, lent to a `cm_write_fn` callback. It is valid only
/// during that callback: never keep the pointer.
///
/// Write exactly one value: containers are announced with their length
/// (`cm_writer_begin_array(w, 2)`, then two values) and close by themselves;
/// `cm_writer_view`, `cm_writer_boxed`, `cm_writer_shareable` and `cm_writer_error` with
/// a cause announce exactly one following value. A call that does not fit the structure
/// returns `CM_ERR_DATA_CLONE` and the whole post fails.
#[derive(Debug)]
pub struct cm_writer {
    _private: [u8; 0],
}

/// A callback that writes one message with `cm_writer_*` calls. Return `CM_OK`, or any
/// other status to cancel the post (which then returns that status). A number that is
/// no `cm_status` cancels it with `CM_ERR_INVALID_ARGUMENT`.
pub type cm_write_fn =
    Option<unsafe extern "C" fn(writer: *mut cm_writer, user_data: *mut c_void) -> cm_status>;

struct Ctx<'a> {
    w: Writer<'a>,
    error: Option<DataCloneError>,
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `write` over a fresh writer and hands the encoded message to `post`.
///
/// # Safety
///
/// `write` must be a valid callback for `user_data`.
unsafe fn encode_with<R>(
    write: cm_write_fn,
    user_data: *mut c_void,
    port_count: u32,
    post: impl FnOnce(&[u8], Vec<Buffer>) -> Res<R>,
) -> Res<R> {
    let Some(write) = write else {
        return fail(CM_ERR_NULL_POINTER, "the write callback is NULL");
    };
    let mut fresh = Vec::new();
    let scratch =
        SCRATCH.try_with(|s| s.try_borrow_mut().ok().map(|mut v| std::mem::take(&mut *v)));
    let mut bytes = match scratch {
        Ok(Some(v)) => v,
        _ => std::mem::take(&mut fresh),
    };
    bytes.clear();
    let mut buffers = Vec::new();
    let result = {
        let mut ctx = Ctx {
            w: Writer::new(&mut bytes, &mut buffers, port_count),
            error: None,
        };
        // SAFETY: the callback is the caller's, called with its user data; the writer
        // pointer is valid for the duration of the call (cm_writer's contract).
        let raw = unsafe { call_callback(write, (&raw mut ctx).cast::<cm_writer>(), user_data) };
        // (the writer is not moved out: it is large, and a move is a copy)
        match (ctx.error.take(), callback_status(raw, "write")) {
            (Some(e), _) => Err(e.into()),
            (None, Ok(CM_OK)) => ctx.w.finish().map_err(Failure::from),
            (None, Ok(s)) => fail(s, "the write callback cancelled the post"),
            (None, Err(f)) => Err(f),
        }
    };
    let out = result.and_then(|()| post(&bytes, buffers));
    if bytes.capacity() <= 1 << 16 {
        let _ = SCRATCH.try_with(|s| {
            if let Ok(mut v) = s.try_borrow_mut() {
                *v = bytes;
            }
        });
    }
    out
}

/// Posts one message written by `write(writer, user_data)` (called once, on this thread,
/// before this function returns) to the port's partner, transferring the ports in
/// `transfer` (borrowed; on success those handles become invalid). This is the fast path:
/// no value tree is built. `cm_writer_port(w, i)` stands for `transfer[i]`.
///
/// Errors: as `cm_port_post`; the transfer list is checked first (the port itself, a port
/// twice), then the message is written.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_port_post_with(
    port: cm_port,
    write: cm_write_fn,
    user_data: *mut c_void,
    transfer: *const cm_port,
    transfer_len: usize,
) -> cm_status {
    guard(|| {
        let p = get_port(port)?;
        if transfer_len == 0 {
            // the common case, kept apart: nothing to look up, check or release
            // SAFETY: the caller passes a valid callback for its user data.
            unsafe {
                encode_with(write, user_data, 0, |bytes, buffers| {
                    p.post_encoded(bytes, buffers, &[]).map_err(Failure::from)
                })?;
            }
            return Ok(CM_OK);
        }
        // SAFETY: the caller passes `transfer_len` handles at `transfer`.
        let ports = unsafe { transfer_ports(transfer, transfer_len)? };
        let refs: Vec<&MessagePort> = ports.iter().collect();
        p.check_transfer(&refs)?;
        let count = u32::try_from(refs.len()).unwrap_or(u32::MAX);
        // SAFETY: the caller passes a valid callback for its user data.
        unsafe {
            encode_with(write, user_data, count, |bytes, buffers| {
                p.post_encoded(bytes, buffers, &refs).map_err(Failure::from)
            })?;
        }
        release_transferred(&ports, transfer);
        Ok(CM_OK)
    })
}

/// As `cm_collection_post`, with the message written by `write` (no ports).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_collection_post_with(
    collection: crate::group::cm_collection,
    write: cm_write_fn,
    user_data: *mut c_void,
    delivered: *mut usize,
) -> cm_status {
    guard(|| {
        let c = crate::group::collection(collection)?;
        // SAFETY: the caller passes a valid callback for its user data.
        let n = unsafe {
            encode_with(write, user_data, 0, |b, s| {
                c.post_encoded(b, s, &[]).map_err(Failure::from)
            })?
        };
        if !delivered.is_null() {
            // SAFETY: non-NULL and writable by the caller's contract.
            unsafe { put(delivered, n) };
        }
        Ok(CM_OK)
    })
}

/// Runs a `cm_writer_*` call on the context behind `w`.
///
/// # Safety
///
/// `w` must be the writer lent to the running callback.
#[inline]
unsafe fn with_writer(
    w: *mut cm_writer,
    f: impl FnOnce(&mut Writer<'_>) -> Result<(), DataCloneError>,
) -> cm_status {
    guard(|| {
        not_null(w, "writer is NULL")?;
        // SAFETY: `w` is the `Ctx` lent to the running callback (cm_writer's contract).
        let ctx = unsafe { &mut *w.cast::<Ctx<'_>>() };
        if let Some(e) = &ctx.error {
            return fail(CM_ERR_DATA_CLONE, format!("the writer already failed: {e}"));
        }
        match f(&mut ctx.w) {
            Ok(()) => Ok(CM_OK),
            Err(e) => {
                let failure = Failure::from(e.clone());
                ctx.error = Some(e);
                Err(failure)
            }
        }
    })
}

/// Checks arguments outside the writer and converts the failure into a writer error.
fn arg<T>(r: Res<T>) -> Result<T, DataCloneError> {
    r.map_err(|f| DataCloneError::new(f.message))
}

/// Writes `undefined`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_undefined(w: *mut cm_writer) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.undefined()) }
}

/// Writes `null`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_null(w: *mut cm_writer) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.null()) }
}

/// Writes a boolean.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_bool(w: *mut cm_writer, b: bool) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.bool(b)) }
}

/// Writes an integer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_int(w: *mut cm_writer, i: i64) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.int(i)) }
}

/// Writes a double (kept bit for bit).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_float(w: *mut cm_writer, f: f64) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.float(f)) }
}

/// Writes a BigInt: sign and big-endian magnitude (`len` bytes, borrowed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_bigint(
    w: *mut cm_writer,
    negative: bool,
    magnitude: *const u8,
    len: usize,
) -> cm_status {
    // SAFETY: forwarded contract; the caller passes `len` readable bytes.
    unsafe {
        with_writer(w, |w| {
            w.bigint(negative, arg(slice(magnitude, len, "magnitude"))?)
        })
    }
}

/// Writes a string (`len` bytes of UTF-8, borrowed; need not be NUL-terminated).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_string(
    w: *mut cm_writer,
    s: *const c_char,
    len: usize,
) -> cm_status {
    // SAFETY: forwarded contract; the caller passes `len` readable bytes.
    unsafe { with_writer(w, |w| w.str(arg(utf8(s, len, "s"))?)) }
}

/// Writes a string given as `len` UTF-16 code units (borrowed; lone surrogates kept).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_utf16(
    w: *mut cm_writer,
    units: *const u16,
    len: usize,
) -> cm_status {
    // SAFETY: forwarded contract; the caller passes `len` readable units.
    unsafe { with_writer(w, |w| w.utf16(arg(slice(units, len, "units"))?)) }
}

/// Writes an ArrayBuffer holding a copy of `len` bytes (borrowed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_bytes(
    w: *mut cm_writer,
    bytes: *const u8,
    len: usize,
) -> cm_status {
    // SAFETY: forwarded contract; the caller passes `len` readable bytes.
    unsafe { with_writer(w, |w| w.bytes(arg(slice(bytes, len, "bytes"))?)) }
}

/// Writes an ArrayBuffer moving `buffer`'s bytes to the receiver without copying
/// (always in the side table). `buffer` is borrowed: the message shares its bytes, the
/// caller still frees its `cm_buffer` (typically right after the post).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_buffer(
    w: *mut cm_writer,
    buffer: *const cm_buffer,
) -> cm_status {
    // SAFETY: forwarded contract; `buffer` is NULL-checked, then a live cm_buffer.
    unsafe {
        with_writer(w, |w| {
            arg(not_null(buffer, "buffer is NULL"))?;
            w.transferred_buffer((*buffer).0.clone())
        })
    }
}

/// Writes an ArrayBuffer *moving* `*buffer` into the message (always in the side table):
/// unlike `cm_writer_buffer`, the message becomes the only holder of the bytes, so the
/// receiver gets them with nothing shared back to the sender. `*buffer` is consumed
/// whether or not the call succeeds: it is freed and set to NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_buffer_move(
    w: *mut cm_writer,
    buffer: *mut *mut cm_buffer,
) -> cm_status {
    // SAFETY: forwarded contract; `buffer` and `*buffer` are NULL-checked, then `*buffer`
    // is a live cm_buffer owned by the caller, which hands it over here.
    let taken = unsafe {
        if buffer.is_null() || (*buffer).is_null() {
            None
        } else {
            let b = Box::from_raw(*buffer);
            *buffer = std::ptr::null_mut();
            Some(b.0)
        }
    };
    // SAFETY: forwarded contract.
    unsafe {
        with_writer(w, move |w| {
            let b = arg(taken.ok_or_else(|| Failure::new(CM_ERR_NULL_POINTER, "buffer is NULL")))?;
            w.transferred_buffer(b)
        })
    }
}

/// Opens an array of `len` elements.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_begin_array(w: *mut cm_writer, len: usize) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.begin_array(len)) }
}

/// Writes a hole (a missing element of the array being written).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_hole(w: *mut cm_writer) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.hole()) }
}

/// Opens a plain object of `len` entries: write `cm_writer_key` then a value, `len` times.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_begin_object(w: *mut cm_writer, len: usize) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.begin_object(len)) }
}

/// Writes the key of the next object entry (`len` bytes of UTF-8, borrowed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_key(
    w: *mut cm_writer,
    key: *const c_char,
    len: usize,
) -> cm_status {
    // SAFETY: forwarded contract; the caller passes `len` readable bytes.
    unsafe { with_writer(w, |w| w.key(arg(utf8(key, len, "key"))?)) }
}

/// Opens a Map of `len` entries: a key value then a value, `len` times.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_begin_map(w: *mut cm_writer, len: usize) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.begin_map(len)) }
}

/// Opens a Set of `len` elements.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_begin_set(w: *mut cm_writer, len: usize) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.begin_set(len)) }
}

/// Writes a Date (milliseconds since the epoch).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_date(w: *mut cm_writer, ms: f64) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.date(ms)) }
}

/// Writes a RegExp (source and flags: UTF-8, borrowed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_regexp(
    w: *mut cm_writer,
    source: *const c_char,
    source_len: usize,
    flags: *const c_char,
    flags_len: usize,
) -> cm_status {
    // SAFETY: forwarded contract; the caller passes readable UTF-8 of these lengths.
    unsafe {
        with_writer(w, |w| {
            w.regexp(
                arg(utf8(source, source_len, "source"))?,
                arg(utf8(flags, flags_len, "flags"))?,
            )
        })
    }
}

/// Writes an Error (`name` a `cm_error_name`; `message`/`stack` UTF-8, borrowed, NULL =
/// absent). With `has_cause`, the next value written is its cause.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_error(
    w: *mut cm_writer,
    name: i32,
    message: *const c_char,
    message_len: usize,
    stack: *const c_char,
    stack_len: usize,
    has_cause: bool,
) -> cm_status {
    // SAFETY: forwarded contract; the caller passes readable UTF-8 (or NULL).
    unsafe {
        with_writer(w, |w| {
            let name = arg(error_name_from(name))?;
            let m = if message.is_null() {
                None
            } else {
                Some(arg(utf8(message, message_len, "message"))?)
            };
            let s = if stack.is_null() {
                None
            } else {
                Some(arg(utf8(stack, stack_len, "stack"))?)
            };
            w.error(name, m, s, has_cause)
        })
    }
}

/// Writes a typed array or DataView (`kind` a `cm_view_kind`): its buffer is the next
/// value written (bytes, a buffer, a shareable buffer or a reference to one).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_view(
    w: *mut cm_writer,
    kind: i32,
    byte_offset: u64,
    length: u64,
) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_writer(w, |w| {
            w.view(arg(view_kind_from(kind))?, byte_offset, length)
        })
    }
}

/// Writes a boxed primitive: the primitive is the next value written.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_boxed(w: *mut cm_writer) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.boxed()) }
}

/// Marks the next value as shared; `*id` (may be NULL) = its number for
/// `cm_writer_ref` (0, 1, ... in order).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_shareable(w: *mut cm_writer, id: *mut u32) -> cm_status {
    // SAFETY: forwarded contract; `id` is NULL or writable.
    unsafe {
        with_writer(w, |w| {
            let n = w.shareable()?;
            if !id.is_null() {
                put(id, n);
            }
            Ok(())
        })
    }
}

/// Writes another reference to shared value `id`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_ref(w: *mut cm_writer, id: u32) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.shared_ref(id)) }
}

/// Writes the `index`-th port of the transfer list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_writer_port(w: *mut cm_writer, index: u32) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { with_writer(w, |w| w.port(index)) }
}

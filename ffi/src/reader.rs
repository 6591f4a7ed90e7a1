//! Streaming decoding: a C callback reads a received message event by event with
//! `cm_reader_next`, straight from the wire format, without building a value tree (the
//! fast path of receiving).

use std::borrow::Cow;
use std::ffi::c_void;

use channel_messaging::DecodeError;
use channel_messaging::wire::{BufferData, Event, Reader};

use crate::error::*;
use crate::message::cm_message;
use crate::value::view_kind_to;

/// A streaming message reader, lent to a `cm_read_fn` callback by `cm_message_read`. It is
/// valid only during that callback: never keep the pointer.
#[derive(Debug)]
pub struct cm_reader {
    _private: [u8; 0],
}

/// A callback that reads one message with `cm_reader_next`. Its return value is returned
/// by `cm_message_read` (a number that is no `cm_status` becomes
/// `CM_ERR_INVALID_ARGUMENT`).
pub type cm_read_fn =
    Option<unsafe extern "C" fn(reader: *mut cm_reader, user_data: *mut c_void) -> cm_status>;

/// What `cm_reader_next` found (`cm_event.type`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum cm_event_type {
    /// `undefined`
    CM_EVENT_UNDEFINED = 0,
    /// `null`
    CM_EVENT_NULL = 1,
    /// a boolean: `flag`
    CM_EVENT_BOOL = 2,
    /// an integer: `i`
    CM_EVENT_INT = 3,
    /// a double: `f`
    CM_EVENT_FLOAT = 4,
    /// a BigInt: `flag` = negative, `ptr`/`len` = big-endian magnitude
    CM_EVENT_BIGINT = 5,
    /// a string: `ptr`/`len` = UTF-8 (not NUL-terminated)
    CM_EVENT_STRING = 6,
    /// a string with lone surrogates: `ptr` = little-endian UTF-16 code units, `len` = the
    /// number of units
    CM_EVENT_UTF16 = 7,
    /// a boxed primitive: the primitive follows
    CM_EVENT_BOXED = 8,
    /// an ArrayBuffer: `ptr`/`len` = its bytes
    CM_EVENT_BUFFER = 9,
    /// a typed array / DataView: `kind` = its `cm_view_kind`, `n2` = byte offset, `n` =
    /// length; its buffer follows
    CM_EVENT_VIEW = 10,
    /// an array of `n` elements follows
    CM_EVENT_ARRAY = 11,
    /// a missing array element
    CM_EVENT_HOLE = 12,
    /// a plain object of `n` entries follows: `CM_EVENT_KEY`, value, ...
    CM_EVENT_OBJECT = 13,
    /// a Map of `n` entries follows: key value, value, ...
    CM_EVENT_MAP = 14,
    /// a Set of `n` elements follows
    CM_EVENT_SET = 15,
    /// a Date: `f` = milliseconds since the epoch
    CM_EVENT_DATE = 16,
    /// a RegExp: `ptr`/`len` = source, `ptr2`/`len2` = flags
    CM_EVENT_REGEXP = 17,
    /// an Error: `kind` = its `cm_error_name`; `ptr`/`len` = message (NULL when absent),
    /// `ptr2`/`len2` = stack (NULL when absent); `flag` = a cause value follows
    CM_EVENT_ERROR = 18,
    /// the next value is shared value number `n`
    CM_EVENT_SHAREABLE = 19,
    /// another reference to shared value number `n`
    CM_EVENT_REF = 20,
    /// the message's port number `n`
    CM_EVENT_PORT = 21,
    /// an object key: `ptr`/`len` = UTF-8
    CM_EVENT_KEY = 22,
}

/// One step of a message (`cm_reader_next`). Which fields are set depends on `type`
/// (see `cm_event_type`); the others are zero. Pointers are borrowed from the message:
/// valid until `cm_message_free` (in `cm_port_recv_with`, which has no message object:
/// until the read callback returns).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cm_event {
    /// A `cm_event_type`.
    pub r#type: i32,
    /// A sub-kind: the `cm_view_kind` of a view, the `cm_error_name` of an error.
    pub kind: i32,
    /// A boolean's value, a BigInt's sign, whether an Error has a cause.
    pub flag: bool,
    /// An integer's value.
    pub i: i64,
    /// A double's value, a Date's time value.
    pub f: f64,
    /// A container's item count, a view's length, a shared id, a port index.
    pub n: u64,
    /// A view's byte offset.
    pub n2: u64,
    /// Bytes: a string, key, buffer, BigInt magnitude, UTF-16 units, RegExp source,
    /// Error message.
    pub ptr: *const u8,
    /// Their length (UTF-16: in units).
    pub len: usize,
    /// More bytes: RegExp flags, Error stack.
    pub ptr2: *const u8,
    /// Their length.
    pub len2: usize,
}

impl Default for cm_event {
    fn default() -> Self {
        cm_event {
            r#type: 0,
            kind: 0,
            flag: false,
            i: 0,
            f: 0.0,
            n: 0,
            n2: 0,
            ptr: std::ptr::null(),
            len: 0,
            ptr2: std::ptr::null(),
            len2: 0,
        }
    }
}

struct Ctx<'a> {
    r: Reader<'a>,
    /// The message's ports, when it is read straight off the port (`cm_port_recv_with`).
    ports: Vec<Option<channel_messaging::MessagePort>>,
    /// The BigInt magnitudes the reader had to compute, each kept as long as the bytes
    /// it stands beside (`cm_message_read` hands them to the message).
    owned: Vec<Vec<u8>>,
    error: Option<DecodeError>,
}

/// Reads the message with `read(reader, user_data)`, called once on this thread before
/// this returns; `cm_reader_next` yields its value as a sequence of events. Returns what
/// the callback returned, or `CM_ERR_MESSAGE` when the message turned out to be
/// malformed (even if the callback ignored that error). The callback may stop early.
/// `message` is borrowed (the caller still frees it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_message_read(
    message: *mut cm_message,
    read: cm_read_fn,
    user_data: *mut c_void,
) -> cm_status {
    guard(|| {
        not_null(message, "message is NULL")?;
        let Some(read) = read else {
            return fail(CM_ERR_NULL_POINTER, "the read callback is NULL");
        };
        // SAFETY: checked non-NULL; the caller passes a live message.
        let m = unsafe { &*message };
        let (bytes, buffers, ports) = m.parts()?;
        let mut ctx = Ctx {
            r: Reader::new(bytes, buffers, ports)?,
            ports: Vec::new(),
            owned: Vec::new(),
            error: None,
        };
        // SAFETY: the caller's callback with its user data; the reader pointer is valid
        // for the duration of the call (cm_reader's contract).
        let raw = unsafe { call_callback(read, (&raw mut ctx).cast::<cm_reader>(), user_data) };
        let Ctx {
            r, owned, error, ..
        } = ctx;
        drop(r);
        if !owned.is_empty() {
            // event pointers stay valid until cm_message_free (cm_event's contract)
            // SAFETY: the live message; nothing borrows it any more.
            unsafe { (*message).keep(owned) };
        }
        match error {
            Some(e) => Err(e.into()),
            None => callback_status(raw, "read"),
        }
    })
}

/// Receives the next message of `port` (timeouts as `cm_port_recv`) and reads it with
/// `read(reader, user_data)` straight from the queue: no message object is allocated,
/// no value tree is built (the fast path). The callback may adopt the message's ports
/// with `cm_reader_take_port`; ports it does not take are closed. Returns what the
/// callback returned, `CM_ERR_MESSAGE` when the message is malformed, or the receive's
/// status (`CM_EMPTY`, `CM_TIMEOUT`, `CM_CLOSED`) without calling the callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_port_recv_with(
    port: crate::port::cm_port,
    timeout_ms: i64,
    read: cm_read_fn,
    user_data: *mut c_void,
) -> cm_status {
    guard(|| {
        let Some(read) = read else {
            return fail(CM_ERR_NULL_POINTER, "the read callback is NULL");
        };
        let mut m = crate::port::receive(port, timeout_ms)?;
        let count = u32::try_from(m.port_count()).unwrap_or(u32::MAX);
        let ports = if count == 0 {
            Vec::new()
        } else {
            m.take_ports().into_iter().map(Some).collect()
        };
        let mut ctx = Ctx {
            // built in place (a reader is large; a move out of a Result is a copy)
            r: Reader::without_header(m.bytes(), m.buffers(), count),
            ports,
            owned: Vec::new(),
            error: None,
        };
        ctx.r.read_header()?;
        // SAFETY: the caller's callback with its user data; the reader pointer is valid
        // for the duration of the call (cm_reader's contract).
        let raw = unsafe { call_callback(read, (&raw mut ctx).cast::<cm_reader>(), user_data) };
        let error = ctx.error;
        drop(ctx.r);
        if !m.buffers().is_empty() {
            // the reader is done with the bytes: their memory goes back to the block pool
            m.take_buffers()
                .into_iter()
                .for_each(channel_messaging::pool::give_buffer);
        }
        match error {
            Some(e) => Err(e.into()),
            None => callback_status(raw, "read"),
        }
    })
}

/// Adopts port number `index` of a message being read by `cm_port_recv_with`: `*port` =
/// a new handle owned by the caller (`cm_port_close`). Once per port. (In
/// `cm_message_read`, take ports with `cm_message_take_port` instead.)
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_reader_take_port(
    reader: *mut cm_reader,
    index: usize,
    port: *mut crate::port::cm_port,
) -> cm_status {
    guard(|| {
        not_null(reader, "reader is NULL")?;
        not_null(port, "port is NULL")?;
        // SAFETY: `reader` is the context lent to the running callback.
        let ctx = unsafe { &mut *reader.cast::<Ctx<'_>>() };
        let n = ctx.ports.len();
        let Some(slot) = ctx.ports.get_mut(index) else {
            return fail(
                CM_ERR_OUT_OF_RANGE,
                format!("port index {index} out of range (this reader holds {n} ports)"),
            );
        };
        let Some(p) = slot.take() else {
            return fail(
                CM_ERR_INVALID_STATE,
                format!("port {index} was already taken"),
            );
        };
        let h = crate::port::new_port_handle(p)?;
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(port, h) };
        Ok(CM_OK)
    })
}

fn text(s: &str) -> (*const u8, usize) {
    (s.as_ptr(), s.len())
}

/// Fills `*event` with the next step of the message. `CM_ERR_MESSAGE` when the message
/// is malformed (the reader is then unusable); `CM_ERR_INVALID_STATE` once the whole
/// value has been read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_reader_next(reader: *mut cm_reader, event: *mut cm_event) -> cm_status {
    guard(|| {
        not_null(reader, "reader is NULL")?;
        not_null(event, "event is NULL")?;
        // SAFETY: `reader` is the context lent to the running callback.
        let ctx = unsafe { &mut *reader.cast::<Ctx<'_>>() };
        if let Some(e) = &ctx.error {
            return Err(e.clone().into());
        }
        if ctx.r.is_done() {
            return fail(
                CM_ERR_INVALID_STATE,
                "the message's value was read completely",
            );
        }
        let ev = match ctx.r.next() {
            Ok(ev) => ev,
            Err(e) => {
                ctx.error = Some(e.clone());
                return Err(e.into());
            }
        };
        use cm_event_type::*;
        let mut out = cm_event::default();
        let t = match ev {
            Event::Undefined => CM_EVENT_UNDEFINED,
            Event::Null => CM_EVENT_NULL,
            Event::Bool(b) => {
                out.flag = b;
                CM_EVENT_BOOL
            }
            Event::Int(i) => {
                out.i = i;
                CM_EVENT_INT
            }
            Event::Float(f) => {
                out.f = f;
                CM_EVENT_FLOAT
            }
            Event::BigInt {
                negative,
                magnitude,
            } => {
                out.flag = negative;
                let m: &[u8] = match magnitude {
                    Cow::Borrowed(m) => m,
                    Cow::Owned(m) => {
                        // (a Vec's heap buffer does not move when the Vec itself does)
                        ctx.owned.push(m);
                        ctx.owned.last().map_or(&[], Vec::as_slice)
                    }
                };
                (out.ptr, out.len) = (m.as_ptr(), m.len());
                CM_EVENT_BIGINT
            }
            Event::Str(s) => {
                (out.ptr, out.len) = text(s);
                CM_EVENT_STRING
            }
            Event::Key(s) => {
                (out.ptr, out.len) = text(s);
                CM_EVENT_KEY
            }
            Event::Utf16(u) => {
                // The units are stored as little-endian pairs: exposed in place.
                (out.ptr, out.len) = (u.as_le_bytes().as_ptr(), u.len());
                CM_EVENT_UTF16
            }
            Event::Buffer(b) => {
                let s = match b {
                    BufferData::Inline(s) => s,
                    BufferData::Side { buffer, .. } => buffer.as_slice(),
                };
                (out.ptr, out.len) = (s.as_ptr(), s.len());
                CM_EVENT_BUFFER
            }
            Event::ArrayStart(n) => {
                out.n = n as u64;
                CM_EVENT_ARRAY
            }
            Event::Hole => CM_EVENT_HOLE,
            Event::ObjectStart(n) => {
                out.n = n as u64;
                CM_EVENT_OBJECT
            }
            Event::MapStart(n) => {
                out.n = n as u64;
                CM_EVENT_MAP
            }
            Event::SetStart(n) => {
                out.n = n as u64;
                CM_EVENT_SET
            }
            Event::Date(ms) => {
                out.f = ms;
                CM_EVENT_DATE
            }
            Event::RegExp { source, flags } => {
                (out.ptr, out.len) = text(source);
                (out.ptr2, out.len2) = text(flags);
                CM_EVENT_REGEXP
            }
            Event::Error {
                name,
                message,
                stack,
                has_cause,
            } => {
                out.kind = crate::value::error_name_to(name);
                if let Some(m) = message {
                    (out.ptr, out.len) = text(m);
                }
                if let Some(s) = stack {
                    (out.ptr2, out.len2) = text(s);
                }
                out.flag = has_cause;
                CM_EVENT_ERROR
            }
            Event::View {
                kind,
                byte_offset,
                length,
            } => {
                out.kind = view_kind_to(kind);
                out.n = length;
                out.n2 = byte_offset;
                CM_EVENT_VIEW
            }
            Event::Boxed => CM_EVENT_BOXED,
            Event::Shareable(id) => {
                out.n = u64::from(id);
                CM_EVENT_SHAREABLE
            }
            Event::SharedRef(id) => {
                out.n = u64::from(id);
                CM_EVENT_REF
            }
            Event::Port(i) => {
                out.n = u64::from(i);
                CM_EVENT_PORT
            }
        };
        out.r#type = t as i32;
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(event, out) };
        Ok(CM_OK)
    })
}

/// Skips the next complete value (a container with everything in it).
/// `CM_ERR_INVALID_STATE` once the whole value has been read, as `cm_reader_next`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_reader_skip(reader: *mut cm_reader) -> cm_status {
    guard(|| {
        not_null(reader, "reader is NULL")?;
        // SAFETY: `reader` is the context lent to the running callback.
        let ctx = unsafe { &mut *reader.cast::<Ctx<'_>>() };
        if let Some(e) = &ctx.error {
            return Err(e.clone().into());
        }
        if ctx.r.is_done() {
            // (as cm_reader_next: not an error of the message)
            return fail(
                CM_ERR_INVALID_STATE,
                "the message's value was read completely",
            );
        }
        if let Err(e) = ctx.r.skip_value() {
            ctx.error = Some(e.clone());
            return Err(e.into());
        }
        Ok(CM_OK)
    })
}

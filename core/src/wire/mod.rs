//! The wire format of messages: CBOR (RFC 8949) with IANA tags where they exist.
//!
//! A message is **encoded bytes plus a side table** of byte buffers (large and
//! transferred ones travel there, shared instead of copied) and a count of
//! transferred ports. docs/wire-format.md in the repository specifies the format
//! exactly; this module implements it four ways:
//!
//! - [`encode_value`] / [`decode_value`]: a [`Value`] tree, as the port layer posts it;
//! - [`encode_serde`] / [`decode_serde`]: any `T: Serialize` / `T: DeserializeOwned`;
//! - [`Writer`] / [`Reader`]: streaming, for bindings that convert their native objects
//!   directly without building a `Value`;
//! - [`Value::to_bytes`] / [`Value::from_bytes`]: self-contained bytes, no side table.
//!
//! # Examples
//!
//! ```
//! use channel_messaging::wire::{decode_serde, decode_value, encode_serde};
//! use channel_messaging::Value;
//!
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Tick { seq: u64, name: String }
//!
//! let (mut bytes, mut buffers) = (Vec::new(), Vec::new());
//! encode_serde(&Tick { seq: 1, name: "tick".into() }, &mut bytes, &mut buffers)?;
//!
//! // The same bytes read as a Value ...
//! let v = decode_value(&bytes, &buffers, 0)?;
//! assert_eq!(v.get("seq"), Some(&Value::Int(1)));
//! // ... or as the struct.
//! let t: Tick = decode_serde(&bytes, &buffers)?;
//! assert_eq!(t, Tick { seq: 1, name: "tick".into() });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cbor;
mod de;
mod direct;
mod error;
mod reader;
mod ser;
mod writer;

pub use cbor::tag;
pub use error::{DecodeError, DecodeErrorKind};
use reader::FastValue;
pub use reader::{BufferData, Event, Reader, Utf16Units};
pub use writer::Writer;

use crate::value::{ErrorValue, View};
use crate::{Buffer, DataCloneError, Value, ViewKind};

/// The format version this crate writes (and the only one it reads).
pub const FORMAT_VERSION: u32 = 1;

/// Byte buffers of at least this many bytes travel in the side table instead of being
/// copied into the encoded stream (1 KiB).
pub const SIDE_TABLE_THRESHOLD: usize = 1024;

/// The most containers (arrays, objects, maps, sets, errors with a cause, views,
/// boxed primitives) that may be open at once. Deeper messages are a
/// [`DataCloneError`] when encoding and a [`DecodeErrorKind::DepthLimit`] when decoding.
pub const MAX_DEPTH: usize = 256;

/// The RFC 8746 typed-array tag (little-endian family) for a view kind; `None` for
/// a `DataView`.
pub(crate) fn view_kind_tag(kind: ViewKind) -> Option<u64> {
    Some(match kind {
        ViewKind::Uint8 => 64,
        ViewKind::Uint8Clamped => 68,
        ViewKind::Uint16 => 69,
        ViewKind::Uint32 => 70,
        ViewKind::BigUint64 => 71,
        ViewKind::Int8 => 72,
        ViewKind::Int16 => 77,
        ViewKind::Int32 => 78,
        ViewKind::BigInt64 => 79,
        ViewKind::Float16 => 84,
        ViewKind::Float32 => 85,
        ViewKind::Float64 => 86,
        ViewKind::DataView => return None,
    })
}

/// The view kind of an RFC 8746 typed-array tag (little-endian family only).
pub(crate) fn view_kind_from_tag(tag: u64) -> Option<ViewKind> {
    Some(match tag {
        64 => ViewKind::Uint8,
        68 => ViewKind::Uint8Clamped,
        69 => ViewKind::Uint16,
        70 => ViewKind::Uint32,
        71 => ViewKind::BigUint64,
        72 => ViewKind::Int8,
        77 => ViewKind::Int16,
        78 => ViewKind::Int32,
        79 => ViewKind::BigInt64,
        84 => ViewKind::Float16,
        85 => ViewKind::Float32,
        86 => ViewKind::Float64,
        _ => return None,
    })
}

/// Appends the encoding of `value` to `out`; buffers of [`SIDE_TABLE_THRESHOLD`]
/// bytes or more are pushed to `buffers` (shared, not copied).
///
/// [`Value::Port(i)`](Value::Port) refers to the `i`-th of `port_count` transferred ports.
///
/// # Errors
///
/// A [`DataCloneError`] naming what cannot be cloned: a [`Value::Hole`] outside an
/// array, a [`Value::Ref`] to a value not (yet) marked [`Value::Shared`], a shared mark
/// on a reference, a view whose buffer is not a buffer or is too short, a port index
/// of `port_count` or more, nesting deeper than [`MAX_DEPTH`]. On error `out` and
/// `buffers` are left as they were.
///
/// # Examples
///
/// ```
/// use channel_messaging::wire::{decode_value, encode_value};
/// use channel_messaging::{Buffer, Value};
///
/// let big = Buffer::from(vec![0u8; 64 * 1024]);
/// let msg = Value::Array(vec![Value::Port(0), Value::Buffer(big.clone())]);
/// let (mut out, mut buffers) = (Vec::new(), Vec::new());
/// encode_value(&msg, 1, &mut out, &mut buffers)?;
/// assert_eq!(buffers.len(), 1); // the 64 KiB travel beside the stream
/// assert!(out.len() < 16);
///
/// let back = decode_value(&out, &buffers, 1)?;
/// match &back {
///     Value::Array(items) => match &items[1] {
///         Value::Buffer(b) => assert_eq!(b.as_ptr(), big.as_ptr()), // same bytes, no copy
///         _ => unreachable!(),
///     },
///     _ => unreachable!(),
/// }
/// assert!(encode_value(&Value::Port(1), 1, &mut out, &mut buffers).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_value(
    value: &Value,
    port_count: u32,
    out: &mut Vec<u8>,
    buffers: &mut Vec<Buffer>,
) -> Result<(), DataCloneError> {
    direct::encode_message(value, port_count, SIDE_TABLE_THRESHOLD, out, buffers)
}

/// As [`encode_value`], moving the side-table buffers out of `value` instead of
/// sharing them: the receiver holds the only handle to each, so a buffer made from a
/// `Vec` arrives without a copy and without a shared reference count (which would cost
/// an allocation on the sender and a free on the receiver).
pub(crate) fn encode_value_moving(
    value: &mut Value,
    port_count: u32,
    out: &mut Vec<u8>,
    buffers: &mut Vec<Buffer>,
) -> Result<(), DataCloneError> {
    let (first, out_len) = (buffers.len(), out.len());
    let placed =
        direct::encode_message_with(value, port_count, SIDE_TABLE_THRESHOLD, true, out, buffers)?;
    if !placed || buffers.len() == first {
        return Ok(()); // shared by the Writer path, or no side-table buffer: nothing to move
    }
    // The direct encoder pushes one placeholder per side-table buffer in depth-first
    // order; `for_each_side_buffer` visits the same buffers in the same order.
    let slots = &mut buffers[first..];
    let mut count = 0;
    for_each_side_buffer(value, &mut |b| {
        if let Some(slot) = slots.get(count) {
            debug_assert!(slot.is_empty() && b.len() >= SIDE_TABLE_THRESHOLD);
        }
        count += 1;
    });
    if count != slots.len() {
        // Never expected; stay correct by sharing instead of moving.
        debug_assert_eq!(count, slots.len(), "side-table walk out of step");
        buffers.truncate(first);
        out.truncate(out_len);
        return encode_value(value, port_count, out, buffers);
    }
    let mut next = slots.iter_mut();
    for_each_side_buffer(value, &mut |b| {
        if let Some(slot) = next.next() {
            *slot = std::mem::take(b);
        }
    });
    Ok(())
}

/// Calls `f` on every buffer of `value` that [`encode_value`] puts in the side table,
/// in side-table order (depth first; a `Value::Ref` is not followed).
fn for_each_side_buffer(value: &mut Value, f: &mut impl FnMut(&mut Buffer)) {
    match value {
        Value::Buffer(b) => {
            if b.len() >= SIDE_TABLE_THRESHOLD {
                f(b);
            }
        }
        Value::View(v) => for_each_side_buffer(&mut v.buffer, f),
        Value::Boxed(inner) | Value::Shared(inner) => for_each_side_buffer(inner, f),
        Value::Array(items) | Value::Set(items) => {
            items.iter_mut().for_each(|v| for_each_side_buffer(v, f));
        }
        Value::Object(entries) => {
            entries
                .iter_mut()
                .for_each(|(_, v)| for_each_side_buffer(v, f));
        }
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            for_each_side_buffer(k, f);
            for_each_side_buffer(v, f);
        }),
        Value::Error(e) => {
            if let Some(cause) = e.cause.as_mut() {
                for_each_side_buffer(cause, f);
            }
        }
        Value::Undefined
        | Value::Null
        | Value::Bool(_)
        | Value::Int(_)
        | Value::Float(_)
        | Value::BigInt(_)
        | Value::String(_)
        | Value::Utf16(_)
        | Value::Hole
        | Value::Date(_)
        | Value::RegExp { .. }
        | Value::Ref(_)
        | Value::Port(_) => {}
    }
}

/// Writes `value` with `w` (the [`Writer`] checks structure and depth, which also
/// bounds this recursion).
pub fn write_value(w: &mut Writer<'_>, value: &Value) -> Result<(), DataCloneError> {
    match value {
        Value::Undefined => w.undefined(),
        Value::Null => w.null(),
        Value::Bool(b) => w.bool(*b),
        Value::Int(i) => w.int(*i),
        Value::Float(f) => w.float(*f),
        Value::BigInt(b) => w.bigint(b.negative, &b.magnitude),
        Value::String(s) => w.str(s),
        Value::Utf16(u) => w.utf16(u),
        Value::Boxed(inner) => {
            w.boxed()?;
            write_value(w, inner)
        }
        Value::Buffer(b) => w.buffer(b),
        Value::View(v) => {
            w.view(v.kind, v.byte_offset, v.length)?;
            write_value(w, &v.buffer)
        }
        Value::Array(items) => {
            w.begin_array(items.len())?;
            items.iter().try_for_each(|item| write_value(w, item))
        }
        Value::Hole => w.hole(),
        Value::Object(entries) => {
            w.begin_object(entries.len())?;
            entries.iter().try_for_each(|(k, v)| {
                w.key(k)?;
                write_value(w, v)
            })
        }
        Value::Map(entries) => {
            w.begin_map(entries.len())?;
            entries.iter().try_for_each(|(k, v)| {
                write_value(w, k)?;
                write_value(w, v)
            })
        }
        Value::Set(items) => {
            w.begin_set(items.len())?;
            items.iter().try_for_each(|item| write_value(w, item))
        }
        Value::Date(ms) => w.date(*ms),
        Value::RegExp { source, flags } => w.regexp(source, flags),
        Value::Error(e) => {
            w.error(
                e.name,
                e.message.as_deref(),
                e.stack.as_deref(),
                e.cause.is_some(),
            )?;
            match &e.cause {
                Some(cause) => write_value(w, cause),
                None => Ok(()),
            }
        }
        Value::Shared(inner) => {
            w.shareable()?;
            write_value(w, inner)
        }
        Value::Ref(id) => w.shared_ref(*id),
        Value::Port(i) => w.port(*i),
    }
}

/// Decodes a message: `bytes` as [`encode_value`] (or any encoder of the format)
/// wrote them, with its side table `buffers` and `port_count` transferred ports.
///
/// Side-table buffers come back as the very same [`Buffer`]s (no copy); inline ones
/// are copied out of `bytes`.
///
/// # Errors
///
/// A [`DecodeError`] for malformed, truncated or hostile input (never a panic):
/// see [`DecodeErrorKind`].
pub fn decode_value(
    bytes: &[u8],
    buffers: &[Buffer],
    port_count: u32,
) -> Result<Value, DecodeError> {
    let mut r = Reader::without_header(bytes, buffers, port_count);
    r.read_header()?;
    let v = read_value(&mut r)?;
    r.finish()?;
    Ok(v)
}

/// At most this many elements are reserved ahead for a container (its real size is
/// then driven by the elements actually present).
const MAX_RESERVE: usize = 1024;

/// Reads one complete value from `r` as a [`Value`] (the reader's depth limit bounds
/// this recursion).
pub fn read_value(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
    read_item(r)
}

/// [`read_value`], inlined where containers read their items: a scalar's [`Value`] is
/// then built in place, in the container's own storage, rather than returned through
/// a `Result` and moved (the moves showed in profiles as store-forwarding stalls).
#[inline(always)]
fn read_item(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
    Ok(match r.fast_value() {
        Some(FastValue::Int(i)) => Value::Int(i),
        Some(FastValue::Str(s)) => Value::String(s.to_owned()),
        Some(FastValue::Float(f)) => Value::Float(f),
        Some(FastValue::Bool(b)) => Value::Bool(b),
        Some(FastValue::Null) => Value::Null,
        Some(FastValue::Undefined) => Value::Undefined,
        Some(FastValue::Bytes(b)) => Value::Buffer(Buffer::copy_from_slice(b)),
        Some(FastValue::Array(n)) => read_array(r, n)?,
        Some(FastValue::Object(n)) => read_object(r, n)?,
        None => {
            let ev = r.next()?;
            read_value_from(r, ev)?
        }
    })
}

/// The `n` items of an array whose head has been read.
fn read_array(r: &mut Reader<'_>, n: usize) -> Result<Value, DecodeError> {
    let mut items = Vec::with_capacity(n.min(MAX_RESERVE));
    for _ in 0..n {
        items.push(read_item(r)?);
    }
    Ok(Value::Array(items))
}

/// The `n` entries of an object whose head has been read.
fn read_object(r: &mut Reader<'_>, n: usize) -> Result<Value, DecodeError> {
    let mut entries = Vec::with_capacity(n.min(MAX_RESERVE));
    for _ in 0..n {
        let key = match r.fast_key(|b| std::str::from_utf8(b).ok()) {
            Some(k) => k.to_owned(),
            None => match r.next()? {
                Event::Key(k) => k.to_owned(),
                _ => unreachable_key(r)?,
            },
        };
        entries.push((key, read_item(r)?));
    }
    Ok(Value::Object(entries))
}

fn read_value_from(r: &mut Reader<'_>, ev: Event<'_>) -> Result<Value, DecodeError> {
    Ok(match ev {
        Event::Undefined => Value::Undefined,
        Event::Null => Value::Null,
        Event::Bool(b) => Value::Bool(b),
        Event::Int(i) => Value::Int(i),
        Event::Float(f) => Value::Float(f),
        Event::BigInt {
            negative,
            magnitude,
        } => Value::BigInt(crate::BigInt {
            negative,
            magnitude: magnitude.into_owned(),
        }),
        Event::Str(s) => Value::String(s.to_owned()),
        Event::Utf16(u) => Value::Utf16(u.to_vec()),
        Event::Buffer(b) => Value::Buffer(b.to_buffer()),
        Event::ArrayStart(n) => read_array(r, n)?,
        Event::Hole => Value::Hole,
        Event::ObjectStart(n) => read_object(r, n)?,
        Event::Key(_) => return unreachable_key(r),
        Event::MapStart(n) => {
            let mut entries = Vec::with_capacity(n.min(MAX_RESERVE));
            for _ in 0..n {
                let k = read_value(r)?;
                entries.push((k, read_value(r)?));
            }
            Value::Map(entries)
        }
        Event::SetStart(n) => {
            let mut items = Vec::with_capacity(n.min(MAX_RESERVE));
            for _ in 0..n {
                items.push(read_value(r)?);
            }
            Value::Set(items)
        }
        Event::Date(ms) => Value::Date(ms),
        Event::RegExp { source, flags } => Value::RegExp {
            source: source.to_owned(),
            flags: flags.to_owned(),
        },
        Event::Error {
            name,
            message,
            stack,
            has_cause,
        } => Value::Error(Box::new(ErrorValue {
            name,
            message: message.map(str::to_owned),
            stack: stack.map(str::to_owned),
            cause: if has_cause {
                Some(read_value(r)?)
            } else {
                None
            },
        })),
        Event::View {
            kind,
            byte_offset,
            length,
        } => Value::View(View {
            kind,
            byte_offset,
            length,
            buffer: Box::new(read_value(r)?),
        }),
        Event::Boxed => Value::Boxed(Box::new(read_value(r)?)),
        Event::Shareable(_) => Value::Shared(Box::new(read_value(r)?)),
        Event::SharedRef(id) => Value::Ref(id),
        Event::Port(i) => Value::Port(i),
    })
}

fn unreachable_key<T>(r: &Reader<'_>) -> Result<T, DecodeError> {
    // The reader yields keys exactly where an object wants them; this is a bug guard.
    Err(DecodeError::new(
        DecodeErrorKind::Malformed,
        r.offset(),
        "object key out of place",
    ))
}

/// Appends the encoding of any `T: Serialize` to `out` (byte strings of
/// [`SIDE_TABLE_THRESHOLD`] bytes or more go to `buffers`).
///
/// Mapping: structs and string-keyed maps become objects, maps with other keys
/// become `Map`s (tag 259), sequences and tuples arrays, `None` and `()` null,
/// `Some(x)` x, enums are externally tagged (`"Unit"`, `{"Variant": value}`), byte
/// strings (`serialize_bytes`) buffers, integers beyond `i64` BigInts.
///
/// # Errors
///
/// A [`DataCloneError`] for nesting deeper than [`MAX_DEPTH`], a sequence whose length
/// differs from the announced one, or an error raised by the `Serialize` impl. On
/// error `out` and `buffers` are left as they were.
pub fn encode_serde<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    buffers: &mut Vec<Buffer>,
) -> Result<(), DataCloneError> {
    ser::encode(value, out, buffers)
}

/// Decodes a message into any `T: DeserializeOwned`.
///
/// Objects and `Map`s deserialize as maps or structs, arrays and `Set`s as
/// sequences (a hole as `()`/`None`), buffers and typed arrays as bytes, Dates as
/// `f64` milliseconds, boxed primitives as the primitive, BigInts as integers when
/// they fit `i128`/`u128`. A shared reference is read again from its shared value
/// (a cycle is an error); ports and strings with lone surrogates do not fit serde's
/// model and are a [`DecodeErrorKind::Mismatch`].
///
/// # Errors
///
/// A [`DecodeError`]: malformed input, or [`DecodeErrorKind::Mismatch`] when the
/// message does not fit `T`.
pub fn decode_serde<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    buffers: &[Buffer],
) -> Result<T, DecodeError> {
    de::decode(bytes, buffers)
}

impl Value {
    /// This value as self-contained bytes: every buffer inline (no side table), ports
    /// written as bare indices (any index is accepted; they mean nothing outside a
    /// message).
    ///
    /// ```
    /// use channel_messaging::Value;
    /// let v = Value::Array(vec![Value::Float(-0.0), Value::from("é")]);
    /// assert_eq!(Value::from_bytes(&v.to_bytes()?)?, v);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`encode_value`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, DataCloneError> {
        let (mut out, mut buffers) = (Vec::new(), Vec::new());
        direct::encode_message(self, u32::MAX, usize::MAX, &mut out, &mut buffers)?;
        debug_assert!(buffers.is_empty());
        Ok(out)
    }

    /// Reads self-contained bytes (no side table; any port index is accepted).
    ///
    /// # Errors
    ///
    /// As [`decode_value`]; a side-table reference is a [`DecodeErrorKind::BufferIndex`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Value, DecodeError> {
        decode_value(bytes, &[], u32::MAX)
    }
}

#[cfg(test)]
mod tests;

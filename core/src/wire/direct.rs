//! A direct [`Value`] encoder: walks the tree and writes it without the [`Writer`]'s
//! per-call state machine.
//!
//! It writes exactly the bytes the [`Writer`] writes for a valid tree and checks the
//! same rules (holes only in arrays, boxed primitives, views that fit their buffers,
//! shared marks and references, port indices, the depth limit). It does not build
//! error messages: on any problem it gives up with `Err(Fallback)` and the caller
//! encodes again with the [`Writer`], which reports the problem exactly as before.
//!
//! [`Writer`]: super::Writer

use super::cbor::{self, tag};
use super::{MAX_DEPTH, write_value};
use crate::{Buffer, DataCloneError, Value};

/// The encoding must be redone with the [`Writer`](super::Writer) (which explains why).
pub(crate) struct Fallback;

/// Where a value stands: what the innermost open container allows there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// At the top, in an object, a map, a set or an Error's cause.
    Plain,
    /// An array element (a hole is allowed).
    Element,
    /// The primitive of a boxed primitive.
    Boxed,
    /// The buffer of a view, which must hold at least this many bytes.
    ViewBuffer(u64),
}

const NOT_BUFFER: u64 = u64::MAX;

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    buffers: &'a mut Vec<Buffer>,
    port_count: u32,
    inline_limit: usize,
    /// Push an empty placeholder for each side-table buffer instead of a clone (the
    /// caller owns the value and moves the buffers in afterwards).
    placeholders: bool,
    /// Per shared id: the buffer's length, or `NOT_BUFFER`.
    shared: Vec<u64>,
}

/// Encodes `value` as a whole message (header included) to `out`, as
/// [`Writer::new`](super::Writer::new), [`write_value`] and
/// [`Writer::finish`](super::Writer::finish) would. On error, `out` and `buffers` are
/// left as they were and the [`Writer`](super::Writer) path gives the error.
pub(crate) fn encode_message(
    value: &Value,
    port_count: u32,
    inline_limit: usize,
    out: &mut Vec<u8>,
    buffers: &mut Vec<Buffer>,
) -> Result<(), DataCloneError> {
    encode_message_with(value, port_count, inline_limit, false, out, buffers).map(|_| ())
}

/// As [`encode_message`]; with `placeholders`, the side table gets an empty
/// placeholder per buffer instead of a clone, and the result says whether it did
/// (`Ok(true)`): the [`Writer`](super::Writer) path, taken when the direct one gives up,
/// always clones (`Ok(false)`).
pub(crate) fn encode_message_with(
    value: &Value,
    port_count: u32,
    inline_limit: usize,
    placeholders: bool,
    out: &mut Vec<u8>,
    buffers: &mut Vec<Buffer>,
) -> Result<bool, DataCloneError> {
    let (out_len, buffers_len) = (out.len(), buffers.len());
    out.extend_from_slice(&cbor::HEADER_V1);
    let mut e = Encoder {
        out: &mut *out,
        buffers: &mut *buffers,
        port_count,
        inline_limit,
        placeholders,
        shared: Vec::new(),
    };
    if e.value(value, Slot::Plain, None, 0).is_ok() {
        return Ok(placeholders);
    }
    out.truncate(out_len);
    buffers.truncate(buffers_len);
    let mut w = super::Writer::new(out, buffers, port_count);
    if inline_limit == usize::MAX {
        w = w.inline_buffers();
    }
    let result = write_value(&mut w, value).and_then(|()| w.finish());
    if result.is_err() {
        out.truncate(out_len);
        buffers.truncate(buffers_len);
    }
    result.map(|()| false)
}

type R = Result<(), Fallback>;

impl Encoder<'_> {
    /// The checks of `Writer::begin` for `v` in `slot` (behind a shareable mark
    /// `share`), and the shared-buffer bookkeeping.
    #[inline(never)]
    fn check(&mut self, v: &Value, slot: Slot, share: Option<u32>) -> R {
        let buffer_len = match v {
            Value::Buffer(b) => b.len() as u64,
            Value::Ref(id) => match self.shared.get(*id as usize) {
                Some(&len) => len,
                None => return Err(Fallback),
            },
            _ => NOT_BUFFER,
        };
        match slot {
            Slot::Boxed => {
                if !matches!(
                    v,
                    Value::Bool(_)
                        | Value::Int(_)
                        | Value::Float(_)
                        | Value::BigInt(_)
                        | Value::String(_)
                        | Value::Utf16(_)
                ) {
                    return Err(Fallback);
                }
            }
            Slot::ViewBuffer(needed) => {
                if buffer_len == NOT_BUFFER || buffer_len < needed {
                    return Err(Fallback);
                }
            }
            Slot::Element => {}
            Slot::Plain => {
                if matches!(v, Value::Hole) {
                    return Err(Fallback);
                }
            }
        }
        if let Some(id) = share {
            match v {
                Value::Ref(_) | Value::Hole => return Err(Fallback),
                Value::Buffer(_) => self.shared[id as usize] = buffer_len,
                _ => {}
            }
        }
        Ok(())
    }

    /// Opens a container (or another frame) at `depth`: its items stand at `depth + 1`.
    #[inline(always)]
    fn enter(depth: usize) -> Result<usize, Fallback> {
        if depth >= MAX_DEPTH {
            return Err(Fallback);
        }
        Ok(depth + 1)
    }

    /// Writes an item of an array or object: the common scalars inline, the rest
    /// through [`Encoder::value`].
    #[inline(always)]
    fn item(&mut self, v: &Value, slot: Slot, depth: usize) -> R {
        match v {
            Value::Int(i) => cbor::write_int(self.out, *i),
            Value::String(s) => cbor::write_text(self.out, s),
            Value::Null => self.out.push(cbor::NULL),
            Value::Bool(b) => self.out.push(if *b { cbor::TRUE } else { cbor::FALSE }),
            _ => return self.value(v, slot, None, depth),
        }
        Ok(())
    }

    /// Writes `v` standing in `slot`; `share` is the id of a shareable mark just
    /// written in front of it. `depth` is the number of open frames around it.
    fn value(&mut self, v: &Value, slot: Slot, share: Option<u32>, depth: usize) -> R {
        if let Value::Shared(inner) = v {
            // `Writer::shareable`: not inside a boxed primitive, not on a mark; the
            // value itself is checked for the slot.
            if slot == Slot::Boxed || share.is_some() {
                return Err(Fallback);
            }
            let id = u32::try_from(self.shared.len()).map_err(|_| Fallback)?;
            self.shared.push(NOT_BUFFER);
            cbor::write_tag(self.out, tag::SHAREABLE);
            return self.value(inner, slot, Some(id), depth);
        }
        if share.is_some()
            || !matches!(slot, Slot::Plain | Slot::Element)
            || matches!(v, Value::Hole | Value::Ref(_))
        {
            self.check(v, slot, share)?;
        }
        let out = &mut *self.out;
        match v {
            Value::Undefined => out.push(cbor::UNDEFINED),
            Value::Null => out.push(cbor::NULL),
            Value::Bool(b) => out.push(if *b { cbor::TRUE } else { cbor::FALSE }),
            Value::Int(i) => cbor::write_int(out, *i),
            Value::Float(f) => cbor::write_float(out, *f),
            Value::BigInt(b) => cbor::write_bigint(out, b.negative, &b.magnitude),
            Value::String(s) => cbor::write_text(out, s),
            Value::Utf16(u) => cbor::write_utf16(out, u),
            Value::Buffer(b) => {
                let placeholders = self.placeholders;
                cbor::write_bytes_or_side(out, self.buffers, self.inline_limit, b, || {
                    if placeholders {
                        Buffer::new()
                    } else {
                        b.clone()
                    }
                })
                .map_err(|_| Fallback)?;
            }
            Value::Array(items) => {
                cbor::write_head(out, cbor::MAJOR_ARRAY, items.len() as u64);
                let depth = Self::enter(depth)?;
                for item in items {
                    self.item(item, Slot::Element, depth)?;
                }
            }
            Value::Hole => out.extend_from_slice(&[0xd8, tag::ABSENT as u8, cbor::UNDEFINED]),
            Value::Object(entries) => {
                cbor::write_head(out, cbor::MAJOR_MAP, entries.len() as u64);
                let depth = Self::enter(depth)?;
                for (k, v) in entries {
                    cbor::write_text(self.out, k);
                    self.item(v, Slot::Plain, depth)?;
                }
            }
            Value::Map(entries) => {
                cbor::write_tag(out, tag::MAP);
                cbor::write_head(out, cbor::MAJOR_MAP, entries.len() as u64);
                let depth = Self::enter(depth)?;
                for (k, v) in entries {
                    self.value(k, Slot::Plain, None, depth)?;
                    self.value(v, Slot::Plain, None, depth)?;
                }
            }
            Value::Set(items) => {
                cbor::write_tag(out, tag::SET);
                cbor::write_head(out, cbor::MAJOR_ARRAY, items.len() as u64);
                let depth = Self::enter(depth)?;
                for item in items {
                    self.value(item, Slot::Plain, None, depth)?;
                }
            }
            Value::Date(ms) => cbor::write_date(out, *ms),
            Value::RegExp { source, flags } => cbor::write_regexp(out, source, flags),
            Value::Error(e) => {
                cbor::write_error(
                    out,
                    e.name,
                    e.message.as_deref(),
                    e.stack.as_deref(),
                    e.cause.is_some(),
                );
                if let Some(cause) = &e.cause {
                    let depth = Self::enter(depth)?;
                    self.value(cause, Slot::Plain, None, depth)?;
                }
            }
            Value::View(view) => {
                let needed = (view.kind.element_size() as u64)
                    .checked_mul(view.length)
                    .and_then(|n| n.checked_add(view.byte_offset))
                    .ok_or(Fallback)?;
                cbor::write_view(out, view.kind, view.byte_offset, view.length);
                let depth = Self::enter(depth)?;
                self.value(&view.buffer, Slot::ViewBuffer(needed), None, depth)?;
            }
            Value::Boxed(inner) => {
                cbor::write_tag(out, tag::BOXED);
                let depth = Self::enter(depth)?;
                self.value(inner, Slot::Boxed, None, depth)?;
            }
            // Handled above.
            Value::Shared(_) => return Err(Fallback),
            Value::Ref(id) => {
                cbor::write_tag(out, tag::SHARED_REF);
                cbor::write_head(out, cbor::MAJOR_UINT, u64::from(*id));
            }
            Value::Port(i) => {
                if *i >= self.port_count {
                    return Err(Fallback);
                }
                cbor::write_tag(out, tag::PORT);
                cbor::write_head(out, cbor::MAJOR_UINT, u64::from(*i));
            }
        }
        Ok(())
    }
}

//! [`Writer`]: a streaming, validating encoder.

use super::cbor::{self, Stack, tag};
use super::{MAX_DEPTH, SIDE_TABLE_THRESHOLD};
use crate::{Buffer, DataCloneError, ErrorName, ViewKind};

/// What an open container still expects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Frame {
    /// Nothing (never on the stack; makes `Default` cheap).
    #[default]
    None,
    /// Array elements left.
    Array(u64),
    /// Object keys and values left (twice the entry count; a key is due when even).
    Object(u64),
    /// Map keys and values left (twice the entry count).
    Map(u64),
    /// Set elements left.
    Set(u64),
    /// The cause of an Error.
    Cause,
    /// The primitive inside a boxed primitive.
    Boxed,
    /// The buffer of a view, which must hold at least this many bytes.
    ViewBuffer(u64),
}

/// What kind of value is about to be written (for the checks of `begin`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Primitive,
    Buffer(u64),
    Ref(u32),
    Hole,
    Other,
}

const NOT_BUFFER: u64 = u64::MAX;

/// A streaming encoder: writes one message value piece by piece, straight from a
/// language's native objects, validating the structure as it goes.
///
/// Containers are announced with their length ([`begin_array`](Writer::begin_array),
/// [`begin_object`](Writer::begin_object), ...) and are closed implicitly once that
/// many items have been written. A few calls announce exactly one following value:
/// [`error`](Writer::error) with a cause, [`view`](Writer::view) (its buffer),
/// [`boxed`](Writer::boxed) (the primitive) and [`shareable`](Writer::shareable).
/// [`finish`](Writer::finish) checks that exactly one complete value was written.
///
/// Every method returns a [`DataCloneError`] naming the problem when the call does not
/// fit the structure (a hole outside an array, a key where a value is due, a view out
/// of bounds of its buffer, a port index beyond the port count, nesting deeper than
/// [`MAX_DEPTH`], ...). After an error the output is unusable: discard it
/// ([`encode_value`](super::encode_value) truncates `out` and the side table back).
///
/// # Examples
///
/// ```
/// use channel_messaging::wire::{decode_value, Writer};
/// use channel_messaging::Value;
///
/// let (mut out, mut buffers) = (Vec::new(), Vec::new());
/// let mut w = Writer::new(&mut out, &mut buffers, 0);
/// w.begin_object(2)?;
/// w.key("seq")?;
/// w.int(1)?;
/// w.key("name")?;
/// w.str("tick")?;
/// w.finish()?;
///
/// let v = decode_value(&out, &buffers, 0).unwrap();
/// assert_eq!(v.get("name"), Some(&Value::from("tick")));
/// # Ok::<(), channel_messaging::DataCloneError>(())
/// ```
#[derive(Debug)]
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
    buffers: &'a mut Vec<Buffer>,
    port_count: u32,
    inline_limit: usize,
    stack: Stack<Frame>,
    /// Per shared id: the buffer's length, or `NOT_BUFFER`.
    shared: Vec<u64>,
    pending_share: Option<u32>,
    done: bool,
}

impl<'a> Writer<'a> {
    /// A writer appending a message to `out`: it writes the format header at once.
    /// Byte buffers of [`SIDE_TABLE_THRESHOLD`] bytes or more, and every transferred
    /// buffer, are pushed to `buffers`; `port_count` is the length of the transfer
    /// list's ports (valid port indices are `0..port_count`).
    #[inline]
    pub fn new(out: &'a mut Vec<u8>, buffers: &'a mut Vec<Buffer>, port_count: u32) -> Self {
        out.extend_from_slice(&cbor::HEADER_V1);
        Writer {
            out,
            buffers,
            port_count,
            inline_limit: SIDE_TABLE_THRESHOLD,
            stack: Stack::new(),
            shared: Vec::new(),
            pending_share: None,
            done: false,
        }
    }

    /// Makes every buffer written with [`bytes`](Writer::bytes) or
    /// [`buffer`](Writer::buffer) travel inline, whatever its size (a self-contained
    /// message, as [`Value::to_bytes`](crate::Value::to_bytes) writes).
    /// [`transferred_buffer`](Writer::transferred_buffer) still uses the side table.
    pub fn inline_buffers(mut self) -> Self {
        self.inline_limit = usize::MAX;
        self
    }

    fn err(what: &'static str) -> DataCloneError {
        DataCloneError::new(what)
    }

    /// Checks that a value of `class` may come next, and consumes a pending shareable.
    #[inline]
    fn begin(&mut self, class: Class) -> Result<(), DataCloneError> {
        if self.done {
            return Err(Self::err("the message already holds a complete value"));
        }
        match self.stack.last() {
            Some(Frame::Object(n)) if n % 2 == 0 => {
                return Err(Self::err("an object key is due, not a value"));
            }
            Some(Frame::Boxed) if class != Class::Primitive => {
                return Err(Self::err(
                    "a boxed primitive must hold a boolean, number, bigint or string",
                ));
            }
            Some(&Frame::ViewBuffer(needed)) => {
                let len = match class {
                    Class::Buffer(len) => len,
                    Class::Ref(id) => self.shared[id as usize],
                    _ => NOT_BUFFER,
                };
                if len == NOT_BUFFER {
                    return Err(Self::err(
                        "the buffer of a typed array or DataView is not an ArrayBuffer",
                    ));
                }
                if len < needed {
                    return Err(Self::err(
                        "typed array or DataView out of bounds of its ArrayBuffer",
                    ));
                }
            }
            Some(Frame::Array(_)) => {}
            _ if class == Class::Hole => {
                return Err(Self::err("an array hole outside an array"));
            }
            _ => {}
        }
        if let Some(id) = self.pending_share.take() {
            self.shared[id as usize] = match class {
                Class::Buffer(len) => len,
                Class::Ref(_) | Class::Hole => {
                    return Err(Self::err("a shareable mark on a reference or a hole"));
                }
                _ => NOT_BUFFER,
            };
        }
        Ok(())
    }

    /// Marks one value as written and closes the containers it completes.
    #[inline]
    fn complete(&mut self) {
        loop {
            match self.stack.last_mut() {
                None => {
                    self.done = true;
                    return;
                }
                Some(Frame::Array(n) | Frame::Object(n) | Frame::Map(n) | Frame::Set(n)) => {
                    *n -= 1;
                    if *n > 0 {
                        return;
                    }
                }
                Some(_) => {}
            }
            self.stack.pop();
        }
    }

    fn push(&mut self, frame: Frame) -> Result<(), DataCloneError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Self::err("nesting deeper than the depth limit (256)"));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Opens a container of `items` items, or completes it at once when empty.
    fn open(&mut self, frame: Frame, items: u64) -> Result<(), DataCloneError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Self::err("nesting deeper than the depth limit (256)"));
        }
        if items == 0 {
            self.complete()
        } else {
            self.stack.push(frame)
        }
        Ok(())
    }

    /// `undefined`.
    pub fn undefined(&mut self) -> Result<(), DataCloneError> {
        self.begin(Class::Other)?;
        self.out.push(cbor::UNDEFINED);
        self.complete();
        Ok(())
    }

    /// `null`.
    pub fn null(&mut self) -> Result<(), DataCloneError> {
        self.begin(Class::Other)?;
        self.out.push(cbor::NULL);
        self.complete();
        Ok(())
    }

    /// A boolean.
    pub fn bool(&mut self, v: bool) -> Result<(), DataCloneError> {
        self.begin(Class::Primitive)?;
        self.out.push(if v { cbor::TRUE } else { cbor::FALSE });
        self.complete();
        Ok(())
    }

    /// An integer (decodes as [`Value::Int`](crate::Value::Int)).
    #[inline]
    pub fn int(&mut self, v: i64) -> Result<(), DataCloneError> {
        self.begin(Class::Primitive)?;
        cbor::write_int(self.out, v);
        self.complete();
        Ok(())
    }

    /// A double (decodes as [`Value::Float`](crate::Value::Float), whatever its value);
    /// -0, NaN payloads and the infinities are kept bit for bit.
    pub fn float(&mut self, v: f64) -> Result<(), DataCloneError> {
        self.begin(Class::Primitive)?;
        cbor::write_float(self.out, v);
        self.complete();
        Ok(())
    }

    /// A JavaScript number: written as an integer when it is one (in the safe range,
    /// and not -0), as a double otherwise.
    pub fn number(&mut self, v: f64) -> Result<(), DataCloneError> {
        if v.fract() == 0.0
            && v.abs() <= 9_007_199_254_740_991.0
            && !(v == 0.0 && v.is_sign_negative())
        {
            self.int(v as i64)
        } else {
            self.float(v)
        }
    }

    /// A BigInt: its sign and its magnitude, big-endian (leading zeros allowed).
    pub fn bigint(&mut self, negative: bool, magnitude: &[u8]) -> Result<(), DataCloneError> {
        self.begin(Class::Primitive)?;
        cbor::write_bigint(self.out, negative, magnitude);
        self.complete();
        Ok(())
    }

    /// A string.
    #[inline]
    pub fn str(&mut self, s: &str) -> Result<(), DataCloneError> {
        self.begin(Class::Primitive)?;
        cbor::write_text(self.out, s);
        self.complete();
        Ok(())
    }

    /// A string given as UTF-16 code units, which may hold lone surrogates. When the
    /// units are valid UTF-16 it is written as an ordinary text string.
    pub fn utf16(&mut self, units: &[u16]) -> Result<(), DataCloneError> {
        self.begin(Class::Primitive)?;
        cbor::write_utf16(self.out, units);
        self.complete();
        Ok(())
    }

    /// An `ArrayBuffer` with a copy of `bytes` (inline when small, in the side table
    /// when [`SIDE_TABLE_THRESHOLD`] bytes or more).
    pub fn bytes(&mut self, bytes: &[u8]) -> Result<(), DataCloneError> {
        self.begin(Class::Buffer(bytes.len() as u64))?;
        cbor::write_bytes_or_side(self.out, self.buffers, self.inline_limit, bytes, || {
            Buffer::copy_from_slice(bytes)
        })?;
        self.complete();
        Ok(())
    }

    /// An `ArrayBuffer` sharing `buf`'s bytes: inline (copied) when small, in the side
    /// table without a copy when [`SIDE_TABLE_THRESHOLD`] bytes or more.
    pub fn buffer(&mut self, buf: &Buffer) -> Result<(), DataCloneError> {
        self.begin(Class::Buffer(buf.len() as u64))?;
        cbor::write_bytes_or_side(self.out, self.buffers, self.inline_limit, buf, || {
            buf.clone()
        })?;
        self.complete();
        Ok(())
    }

    /// A transferred `ArrayBuffer`: always goes to the side table, never copied.
    pub fn transferred_buffer(&mut self, buf: Buffer) -> Result<(), DataCloneError> {
        self.begin(Class::Buffer(buf.len() as u64))?;
        cbor::write_side(self.out, self.buffers, buf)?;
        self.complete();
        Ok(())
    }

    /// Opens an array of `len` elements; write each element (or a [`hole`](Writer::hole)) next.
    pub fn begin_array(&mut self, len: usize) -> Result<(), DataCloneError> {
        self.begin(Class::Other)?;
        cbor::write_head(self.out, cbor::MAJOR_ARRAY, len as u64);
        self.open(Frame::Array(len as u64), len as u64)
    }

    /// A missing element of the array being written.
    pub fn hole(&mut self) -> Result<(), DataCloneError> {
        self.begin(Class::Hole)?;
        self.out
            .extend_from_slice(&[0xd8, tag::ABSENT as u8, cbor::UNDEFINED]);
        self.complete();
        Ok(())
    }

    /// Opens a plain object of `len` entries; write [`key`](Writer::key) and a value for each.
    #[inline]
    pub fn begin_object(&mut self, len: usize) -> Result<(), DataCloneError> {
        self.begin(Class::Other)?;
        cbor::write_head(self.out, cbor::MAJOR_MAP, len as u64);
        self.open(Frame::Object(len as u64 * 2), len as u64)
    }

    /// The key of the next entry of the object being written.
    #[inline]
    pub fn key(&mut self, key: &str) -> Result<(), DataCloneError> {
        match self.stack.last_mut() {
            Some(Frame::Object(n)) if *n % 2 == 0 => {
                *n -= 1;
                cbor::write_text(self.out, key);
                Ok(())
            }
            _ => Err(Self::err("an object key where no object key is due")),
        }
    }

    /// Opens a `Map` of `len` entries; write a key value and a value for each.
    pub fn begin_map(&mut self, len: usize) -> Result<(), DataCloneError> {
        self.begin(Class::Other)?;
        cbor::write_tag(self.out, tag::MAP);
        cbor::write_head(self.out, cbor::MAJOR_MAP, len as u64);
        self.open(Frame::Map(len as u64 * 2), len as u64)
    }

    /// Opens a `Set` of `len` elements.
    pub fn begin_set(&mut self, len: usize) -> Result<(), DataCloneError> {
        self.begin(Class::Other)?;
        cbor::write_tag(self.out, tag::SET);
        cbor::write_head(self.out, cbor::MAJOR_ARRAY, len as u64);
        self.open(Frame::Set(len as u64), len as u64)
    }

    /// A `Date`: milliseconds since the Unix epoch (kept exactly, NaN included).
    pub fn date(&mut self, ms: f64) -> Result<(), DataCloneError> {
        self.begin(Class::Other)?;
        cbor::write_date(self.out, ms);
        self.complete();
        Ok(())
    }

    /// A `RegExp`.
    pub fn regexp(&mut self, source: &str, flags: &str) -> Result<(), DataCloneError> {
        self.begin(Class::Other)?;
        cbor::write_regexp(self.out, source, flags);
        self.complete();
        Ok(())
    }

    /// An `Error`. When `has_cause` is true the next value written is its `cause`.
    pub fn error(
        &mut self,
        name: ErrorName,
        message: Option<&str>,
        stack: Option<&str>,
        has_cause: bool,
    ) -> Result<(), DataCloneError> {
        self.begin(Class::Other)?;
        if has_cause && self.stack.len() >= MAX_DEPTH {
            return Err(Self::err("nesting deeper than the depth limit (256)"));
        }
        cbor::write_error(self.out, name, message, stack, has_cause);
        if has_cause {
            self.push(Frame::Cause)
        } else {
            self.complete();
            Ok(())
        }
    }

    /// A typed array (or `DataView`) of `length` elements (bytes for a `DataView`)
    /// starting `byte_offset` bytes into its buffer. The next value written must be
    /// that buffer: [`bytes`](Writer::bytes), [`buffer`](Writer::buffer),
    /// [`transferred_buffer`](Writer::transferred_buffer), a
    /// [`shareable`](Writer::shareable) one of those, or a
    /// [`shared_ref`](Writer::shared_ref) to one, holding at least
    /// `byte_offset + length * element size` bytes.
    pub fn view(
        &mut self,
        kind: ViewKind,
        byte_offset: u64,
        length: u64,
    ) -> Result<(), DataCloneError> {
        self.begin(Class::Other)?;
        let needed = (kind.element_size() as u64)
            .checked_mul(length)
            .and_then(|n| n.checked_add(byte_offset))
            .ok_or_else(|| Self::err("typed array or DataView out of bounds of its ArrayBuffer"))?;
        cbor::write_view(self.out, kind, byte_offset, length);
        self.push(Frame::ViewBuffer(needed))
    }

    /// A boxed primitive (`new Number(1)`, `new String("s")`, ...): the next value
    /// written must be the primitive (boolean, number, bigint or string).
    pub fn boxed(&mut self) -> Result<(), DataCloneError> {
        self.begin(Class::Other)?;
        cbor::write_tag(self.out, tag::BOXED);
        self.push(Frame::Boxed)
    }

    /// Marks the next value as shared, so that [`shared_ref`](Writer::shared_ref) can
    /// refer to it later (or from inside it: a cycle). Returns its id: 0 for the first
    /// shareable of the message, then 1, 2, ...
    pub fn shareable(&mut self) -> Result<u32, DataCloneError> {
        if self.done {
            return Err(Self::err("the message already holds a complete value"));
        }
        match self.stack.last() {
            Some(Frame::Object(n)) if n % 2 == 0 => {
                return Err(Self::err("an object key is due, not a shared value"));
            }
            Some(Frame::Boxed) => return Err(Self::err("a boxed primitive cannot be shared")),
            _ => {}
        }
        if self.pending_share.is_some() {
            return Err(Self::err("a shareable mark on a shareable mark"));
        }
        let id = u32::try_from(self.shared.len())
            .map_err(|_| Self::err("too many shared values in one message"))?;
        self.shared.push(NOT_BUFFER);
        self.pending_share = Some(id);
        cbor::write_tag(self.out, tag::SHAREABLE);
        Ok(id)
    }

    /// Another reference to the shared value `id` (returned by
    /// [`shareable`](Writer::shareable) earlier in this message).
    pub fn shared_ref(&mut self, id: u32) -> Result<(), DataCloneError> {
        if id as usize >= self.shared.len() {
            return Err(DataCloneError::new(format!(
                "a reference to shared value {id}, which has not been marked shareable"
            )));
        }
        self.begin(Class::Ref(id))?;
        cbor::write_tag(self.out, tag::SHARED_REF);
        cbor::write_head(self.out, cbor::MAJOR_UINT, u64::from(id));
        self.complete();
        Ok(())
    }

    /// The `index`-th port of the message's transfer list.
    pub fn port(&mut self, index: u32) -> Result<(), DataCloneError> {
        if index >= self.port_count {
            return Err(DataCloneError::new(format!(
                "MessagePort {index} is not in the transfer list (it has {} ports)",
                self.port_count
            )));
        }
        self.begin(Class::Other)?;
        cbor::write_tag(self.out, tag::PORT);
        cbor::write_head(self.out, cbor::MAJOR_UINT, u64::from(index));
        self.complete();
        Ok(())
    }

    /// Checks that exactly one complete value has been written.
    pub fn finish(&self) -> Result<(), DataCloneError> {
        if self.done {
            Ok(())
        } else if self.pending_share.is_some() || self.stack.len() > 0 {
            Err(Self::err("the message ends inside an unfinished value"))
        } else {
            Err(Self::err("the message holds no value"))
        }
    }
}

//! [`Reader`]: a streaming, validating pull decoder.

use std::borrow::Cow;

use super::MAX_DEPTH;
use super::cbor::{self, Stack, tag};
use super::error::{DecodeError, DecodeErrorKind as K};
use crate::{Buffer, ErrorName, ViewKind};

/// The bytes of an `ArrayBuffer` as the reader found them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BufferData<'a> {
    /// Bytes inside the encoded stream.
    Inline(&'a [u8]),
    /// A buffer of the message's side table: the very same bytes the sender
    /// posted, shared without a copy.
    Side {
        /// Its index in the side table.
        index: u32,
        /// The buffer.
        buffer: &'a Buffer,
    },
}

impl<'a> BufferData<'a> {
    /// The bytes.
    pub fn as_slice(&self) -> &'a [u8] {
        match *self {
            BufferData::Inline(b) => b,
            BufferData::Side { buffer, .. } => buffer.as_slice(),
        }
    }

    /// The bytes as a [`Buffer`]: a copy of inline bytes, a shared handle (no copy)
    /// of a side-table buffer.
    pub fn to_buffer(&self) -> Buffer {
        match *self {
            BufferData::Inline(b) => Buffer::copy_from_slice(b),
            BufferData::Side { buffer, .. } => buffer.clone(),
        }
    }
}

/// The UTF-16 code units of a string with lone surrogates, as stored in the message
/// (little-endian byte pairs); borrowed, not copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf16Units<'a>(&'a [u8]);

impl<'a> Utf16Units<'a> {
    /// The number of code units.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    /// Whether there are no code units.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The code units.
    pub fn iter(&self) -> impl Iterator<Item = u16> + 'a {
        self.0
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
    }

    /// The code units in a new vector.
    pub fn to_vec(&self) -> Vec<u16> {
        self.iter().collect()
    }

    /// The code units as stored: little-endian byte pairs, borrowed from the input.
    pub fn as_le_bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// One step of a message, as [`Reader::next`] yields them.
///
/// Containers announce their item count; their items are the following values (an
/// object's items are `Key` then value, `count` times; a map's are key value then
/// value). [`Event::Error`] with a cause, [`Event::View`], [`Event::Boxed`] and
/// [`Event::Shareable`] are followed by exactly one value (the cause, the buffer, the
/// primitive, the shared value).
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// `undefined`.
    Undefined,
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// A BigInt: sign and big-endian magnitude without leading zeros (empty for 0).
    BigInt {
        /// Whether it is below zero.
        negative: bool,
        /// The magnitude (borrowed from the input when possible).
        magnitude: Cow<'a, [u8]>,
    },
    /// A string.
    Str(&'a str),
    /// A string with lone surrogates.
    Utf16(Utf16Units<'a>),
    /// An `ArrayBuffer`.
    Buffer(BufferData<'a>),
    /// An array of this many elements (values or [`Event::Hole`]s) follows.
    ArrayStart(usize),
    /// A missing array element.
    Hole,
    /// A plain object of this many entries: `Key`, value, `Key`, value, ...
    ObjectStart(usize),
    /// An object key.
    Key(&'a str),
    /// A `Map` of this many entries: key value, value, ...
    MapStart(usize),
    /// A `Set` of this many elements.
    SetStart(usize),
    /// A `Date` (milliseconds since the epoch).
    Date(f64),
    /// A `RegExp`.
    RegExp {
        /// The pattern.
        source: &'a str,
        /// The flags.
        flags: &'a str,
    },
    /// An `Error`; when `has_cause` is true the next value is its cause.
    Error {
        /// The constructor name.
        name: ErrorName,
        /// `message`, if the error had one.
        message: Option<&'a str>,
        /// `stack`, if the sender had one.
        stack: Option<&'a str>,
        /// Whether a cause value follows.
        has_cause: bool,
    },
    /// A typed array or DataView; its buffer follows (an [`Event::Buffer`], an
    /// [`Event::Shareable`] then an `Event::Buffer`, or an [`Event::SharedRef`] to a
    /// buffer). The reader has checked that the view fits that buffer.
    View {
        /// The element type.
        kind: ViewKind,
        /// Where the view starts, in bytes.
        byte_offset: u64,
        /// Its length in elements (bytes for a DataView).
        length: u64,
    },
    /// A boxed primitive; the primitive follows.
    Boxed,
    /// The next value is shared value number `id` (ids count up from 0 in the order
    /// their marks appear).
    Shareable(u32),
    /// Another reference to shared value `id` (possibly one still being read: a cycle).
    SharedRef(u32),
    /// The `i`-th port of the message.
    Port(u32),
}

/// What [`Reader::fast_value`] read: scalars as they stand in the input (the caller
/// builds its [`Value`] once, where it keeps it), containers as their counts.
#[derive(Debug)]
pub(crate) enum FastValue<'a> {
    /// `undefined`.
    Undefined,
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A float.
    Float(f64),
    /// A valid text string.
    Str(&'a str),
    /// An inline byte string (a buffer).
    Bytes(&'a [u8]),
    /// An array of this many elements was opened.
    Array(usize),
    /// An object of this many entries was opened.
    Object(usize),
}

/// An open container, packed in one word: the kind in the low 3 bits, the items
/// still due (or, for a view, the bytes its buffer needs) above them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Frame(u64);

const F_ARRAY: u64 = 1;
const F_OBJECT: u64 = 2;
const F_MAP: u64 = 3;
const F_SET: u64 = 4;
const F_CAUSE: u64 = 5;
const F_BOXED: u64 = 6;
const F_VIEW: u64 = 7;

impl Frame {
    #[inline]
    const fn new(kind: u64, n: u64) -> Self {
        Frame(kind | (n << 3))
    }
    #[inline]
    const fn kind(self) -> u64 {
        self.0 & 7
    }
    #[inline]
    const fn n(self) -> u64 {
        self.0 >> 3
    }
}

/// Per shared id: where its value starts, and the buffer length (if a buffer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SharedSlot {
    pub(crate) offset: usize,
    buffer_len: u64,
}

const NOT_BUFFER: u64 = u64::MAX;

/// A streaming decoder: reads a message as a sequence of [`Event`]s without building
/// a tree, checking bounds, structure, references, port and side-table indices and
/// the depth limit as it goes. Lengths it reports are never larger than the input
/// left, so a caller may reserve them.
///
/// # Examples
///
/// ```
/// use channel_messaging::wire::{Event, Reader};
/// use channel_messaging::Value;
///
/// let bytes = Value::Array(vec![Value::Int(1), Value::from("a")]).to_bytes()?;
/// let mut r = Reader::new(&bytes, &[], 0)?;
/// assert_eq!(r.next()?, Event::ArrayStart(2));
/// assert_eq!(r.next()?, Event::Int(1));
/// assert_eq!(r.next()?, Event::Str("a"));
/// r.finish()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    buffers: &'a [Buffer],
    port_count: u32,
    /// The innermost open container (`Frame(0)` when none is open).
    top: Frame,
    /// The open containers around `top`.
    stack: Stack<Frame>,
    base_depth: usize,
    shared: Vec<SharedSlot>,
    /// Shared containers still being read: (id, depth inside them).
    open_shared: Vec<(u32, usize)>,
    pending_share: Option<u32>,
    done: bool,
}

type R<T> = Result<T, DecodeError>;

impl<'a> Reader<'a> {
    /// A reader over the message `bytes`, whose side table is `buffers` and which
    /// carries `port_count` ports. Checks the format header.
    ///
    /// # Errors
    ///
    /// [`DecodeErrorKind::UnsupportedVersion`](super::DecodeErrorKind::UnsupportedVersion)
    /// for a message of another format version,
    /// [`Malformed`](super::DecodeErrorKind::Malformed) when the bytes do not start with
    /// a message header, [`Truncated`](super::DecodeErrorKind::Truncated) when they end first.
    #[inline]
    pub fn new(bytes: &'a [u8], buffers: &'a [Buffer], port_count: u32) -> R<Self> {
        let mut r = Self::without_header(bytes, buffers, port_count);
        r.read_header()?;
        Ok(r)
    }

    /// A reader whose header has not been checked yet ([`Reader::read_header`] does),
    /// built in place without moving it out of a `Result` (a reader is a few hundred
    /// bytes: a binding that keeps one in a context struct saves a copy per message).
    #[inline]
    pub fn without_header(bytes: &'a [u8], buffers: &'a [Buffer], port_count: u32) -> Self {
        Reader {
            input: bytes,
            pos: 0,
            buffers,
            port_count,
            top: Frame(0),
            stack: Stack::new(),
            base_depth: 0,
            shared: Vec::new(),
            open_shared: Vec::new(),
            pending_share: None,
            done: false,
        }
    }

    /// Reads and checks the format header (what [`Reader::new`] does first).
    ///
    /// # Errors
    ///
    /// As [`Reader::new`].
    #[inline]
    pub fn read_header(&mut self) -> R<()> {
        if let [0xd9, 0xcb, 0x01, ..] = self.input {
            self.pos = 3;
            return Ok(());
        }
        let (major, arg) = self.head()?;
        if major == cbor::MAJOR_TAG && (tag::PRIVATE_BASE..=tag::ENVELOPE_LAST).contains(&arg) {
            if arg == tag::ENVELOPE_V1 {
                return Ok(()); // non-shortest header: accepted
            }
            return Err(DecodeError::new(
                K::UnsupportedVersion,
                0,
                format!(
                    "format version {} (this decoder reads version 1)",
                    arg - tag::PRIVATE_BASE
                ),
            ));
        }
        Err(DecodeError::new(
            K::Malformed,
            0,
            "not a message: missing the format header tag",
        ))
    }

    /// A reader for the shared value `id` alone, starting where its mark's content
    /// begins, at the current depth (serde uses it to read a reference again).
    pub(crate) fn replay(&self, id: u32) -> R<Reader<'a>> {
        let slot = self
            .shared
            .get(id as usize)
            .ok_or_else(|| self.error(K::BadReference, "no such shared value"))?;
        let mut shared = self.shared[..id as usize].to_vec();
        shared.push(*slot);
        Ok(Reader {
            input: self.input,
            pos: slot.offset,
            buffers: self.buffers,
            port_count: self.port_count,
            top: Frame(0),
            stack: Stack::new(),
            base_depth: self.depth(),
            shared,
            open_shared: self.open_shared.clone(),
            pending_share: Some(id),
            done: false,
        })
    }

    /// How many containers are open.
    pub fn depth(&self) -> usize {
        self.base_depth + self.stack.len() + usize::from(self.top.0 != 0)
    }

    /// The byte offset of the next item.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Whether the message's value has been read completely.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn error(&self, kind: K, detail: &'static str) -> DecodeError {
        DecodeError::new(kind, self.pos, detail)
    }

    #[inline]
    fn byte(&mut self) -> R<u8> {
        match self.input.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.error(K::Truncated, "input ends inside an item")),
        }
    }

    /// Reads the head of an array of `n` items (in any head width, as every head), the
    /// fixed shape of a tag's content; Malformed at `at`, explained by `what`, for
    /// anything else.
    fn fixed_array(&mut self, n: u8, at: usize, what: &'static str) -> R<()> {
        match self.head()? {
            (cbor::MAJOR_ARRAY, len) if len == u64::from(n) => Ok(()),
            _ => Err(DecodeError::new(K::Malformed, at, what)),
        }
    }

    #[inline]
    fn take(&mut self, n: u64) -> R<&'a [u8]> {
        let left = (self.input.len() - self.pos) as u64;
        if n > left {
            self.pos = self.input.len();
            return Err(self.error(K::Truncated, "input ends inside an item"));
        }
        let s = &self.input[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn remaining(&self) -> u64 {
        (self.input.len() - self.pos) as u64
    }

    /// Reads a head: major type and argument (for major type 7: the simple value, or
    /// the raw bits of a float, whose width the caller reads from the initial byte).
    #[inline]
    fn head(&mut self) -> R<(u8, u64)> {
        let b = self.byte()?;
        let major = b >> 5;
        let info = b & 0x1f;
        let arg = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => {
                let s = self.take(2)?;
                u64::from(u16::from_be_bytes([s[0], s[1]]))
            }
            26 => {
                let s = self.take(4)?;
                u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            }
            27 => {
                let s = self.take(8)?;
                u64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
            }
            31 => {
                self.pos -= 1;
                return Err(self.error(
                    K::Malformed,
                    "indefinite-length items are not used by this format",
                ));
            }
            _ => {
                self.pos -= 1;
                return Err(self.error(K::Malformed, "reserved additional information (28..30)"));
            }
        };
        Ok((major, arg))
    }

    /// The content of tag 0xCB16 (its head read, at `at`): the view's start.
    fn view_start(&mut self, at: usize) -> R<Event<'a>> {
        self.fixed_array(3, at, "a view must hold [byte_offset, length, buffer]")?;
        let byte_offset = self.uint("a view's byte offset must be an unsigned integer")?;
        let length = self.uint("a view's length must be an unsigned integer")?;
        let mut kind = ViewKind::DataView;
        let save = self.pos;
        if let Ok((cbor::MAJOR_TAG, t)) = self.head() {
            match super::view_kind_from_tag(t) {
                Some(k) => kind = k,
                None => self.pos = save,
            }
        } else {
            self.pos = save;
        }
        Ok(Event::View {
            kind,
            byte_offset,
            length,
        })
    }

    /// The content of tag 0xCB11 (its head read, at `at`): the side-table buffer.
    fn side_buffer(&mut self, at: usize) -> R<BufferData<'a>> {
        let i = self.uint("a side-table buffer must hold an unsigned integer")?;
        let buffers: &'a [Buffer] = self.buffers;
        match buffers.get(i as usize) {
            Some(buffer) if i <= u64::from(u32::MAX) => Ok(BufferData::Side {
                index: i as u32,
                buffer,
            }),
            _ => Err(DecodeError::new(
                K::BufferIndex,
                at,
                "buffer index beyond the side table",
            )),
        }
    }

    fn uint(&mut self, what: &'static str) -> R<u64> {
        let at = self.pos;
        let b = *self
            .input
            .get(self.pos)
            .ok_or_else(|| self.error(K::Truncated, "input ends inside an item"))?;
        if b >> 5 != cbor::MAJOR_UINT {
            return Err(DecodeError::new(K::Malformed, at, what));
        }
        Ok(self.head()?.1)
    }

    #[inline]
    fn text(&mut self, what: &'static str) -> R<&'a str> {
        let at = self.pos;
        let b = *self
            .input
            .get(self.pos)
            .ok_or_else(|| self.error(K::Truncated, "input ends inside an item"))?;
        if b >> 5 != cbor::MAJOR_TEXT {
            return Err(DecodeError::new(K::Malformed, at, what));
        }
        let (_, len) = self.head()?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map_err(|_| DecodeError::new(K::InvalidUtf8, at, "text string is not valid UTF-8"))
    }

    fn push(&mut self, frame: Frame) -> R<()> {
        if self.depth() >= MAX_DEPTH {
            return Err(self.error(K::DepthLimit, "more than 256 nested containers"));
        }
        self.push_frame(frame);
        Ok(())
    }

    fn open(&mut self, frame: Frame, items: u64) -> R<()> {
        if self.depth() >= MAX_DEPTH {
            return Err(self.error(K::DepthLimit, "more than 256 nested containers"));
        }
        if items == 0 {
            self.complete()
        } else {
            self.push_frame(frame)
        }
        Ok(())
    }

    #[inline(always)]
    fn push_frame(&mut self, frame: Frame) {
        if self.top.0 != 0 {
            self.stack.push(self.top);
        }
        self.top = frame;
    }

    /// Marks one value as read and closes the containers it completes.
    #[inline]
    fn complete(&mut self) {
        loop {
            let f = &mut self.top;
            if f.0 == 0 {
                self.done = true;
                return;
            }
            if f.kind() <= F_SET {
                f.0 -= 8;
                if f.n() > 0 {
                    return;
                }
            }
            self.pop_frame();
        }
    }

    /// Closes the innermost container.
    fn pop_frame(&mut self) {
        self.top = self.stack.pop().unwrap_or_default();
        while let Some(&(_, d)) = self.open_shared.last() {
            if d > self.depth() {
                self.open_shared.pop();
            } else {
                break;
            }
        }
    }

    /// Whether shared value `id` is still being read (a reference to it now is a cycle).
    pub fn is_open(&self, id: u32) -> bool {
        self.open_shared.iter().any(|&(i, _)| i == id)
    }

    /// Checks that `count` items of at least one byte each can still follow.
    #[inline]
    fn count(&self, count: u64, per_item: u64, at: usize) -> R<usize> {
        match count.checked_mul(per_item) {
            Some(n) if n <= self.remaining() => Ok(count as usize),
            _ => Err(DecodeError::new(
                K::Truncated,
                at,
                "container longer than the input left",
            )),
        }
    }

    /// The innermost open container (`Frame(0)`, kind none, at the top level).
    #[inline(always)]
    fn top(&self) -> Frame {
        self.top
    }

    /// Whether the next item is a value (not a key) in a plain position: the message
    /// is not complete, no shareable mark is pending, and the innermost container (if
    /// any) is an array, object, map or set. Such a value needs no check beyond its
    /// own bytes (and, for a container, the depth limit).
    #[inline(always)]
    fn plain_value_due(&self) -> bool {
        let f = self.top();
        !self.done
            && self.pending_share.is_none()
            && f.kind() <= F_SET
            && !(f.kind() == F_OBJECT && f.n().is_multiple_of(2))
    }

    /// The head at the current position, not consumed: major type, argument and the
    /// head's length in bytes. `None` when it is truncated, indefinite or reserved
    /// (the general path reports those).
    #[inline(always)]
    fn peek_head(&self) -> Option<(u8, u64, usize)> {
        let rest = self.input.get(self.pos..)?;
        let &b = rest.first()?;
        let info = b & 0x1f;
        let (arg, n) = match info {
            0..=23 => (u64::from(info), 1),
            24 => (u64::from(*rest.get(1)?), 2),
            25 => {
                let s: [u8; 2] = rest.get(1..3)?.try_into().ok()?;
                (u64::from(u16::from_be_bytes(s)), 3)
            }
            26 => {
                let s: [u8; 4] = rest.get(1..5)?.try_into().ok()?;
                (u64::from(u32::from_be_bytes(s)), 5)
            }
            27 => {
                let s: [u8; 8] = rest.get(1..9)?.try_into().ok()?;
                (u64::from_be_bytes(s), 9)
            }
            _ => return None,
        };
        Some((b >> 5, arg, n))
    }

    /// The text string whose head is at the current position (`n` head bytes, `len`
    /// payload bytes), if it is complete; not consumed, not validated.
    #[inline(always)]
    fn peek_text_bytes(&self, n: usize, len: u64) -> Option<&'a [u8]> {
        let start = self.pos + n;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.input.get(start..end)
    }

    /// Fast path: when an integer that fits `i64` stands in a plain value position,
    /// reads it (exactly as [`Reader::next`] would). `None`, with nothing consumed,
    /// for anything else.
    #[inline]
    pub(crate) fn fast_int(&mut self) -> Option<i64> {
        if !self.plain_value_due() {
            return None;
        }
        let (major, arg, n) = self.peek_head()?;
        let i = match major {
            cbor::MAJOR_UINT if arg <= i64::MAX as u64 => arg as i64,
            cbor::MAJOR_NINT if arg <= i64::MAX as u64 => -1 - arg as i64,
            _ => return None,
        };
        self.pos += n;
        self.complete();
        Some(i)
    }

    /// Fast path: when a valid text string stands in a plain value position, reads
    /// it (exactly as [`Reader::next`] would). `None`, with nothing consumed, for
    /// anything else (including invalid UTF-8, which the general path reports).
    #[inline]
    pub(crate) fn fast_str(&mut self) -> Option<&'a str> {
        if !self.plain_value_due() {
            return None;
        }
        let (major, len, n) = self.peek_head()?;
        if major != cbor::MAJOR_TEXT {
            return None;
        }
        let bytes = self.peek_text_bytes(n, len)?;
        let s = std::str::from_utf8(bytes).ok()?;
        self.pos += n + bytes.len();
        self.complete();
        Some(s)
    }

    /// Fast path for an object key: when a key is due and is a complete text string,
    /// passes its bytes to `check`; if that accepts them (it must only accept valid
    /// UTF-8), consumes the key as [`Reader::next`] would and returns the result.
    /// `None`, with nothing consumed, otherwise.
    #[inline]
    pub(crate) fn fast_key<T>(&mut self, check: impl FnOnce(&'a [u8]) -> Option<T>) -> Option<T> {
        let f = self.top();
        if self.done || f.kind() != F_OBJECT || !f.n().is_multiple_of(2) {
            return None;
        }
        let (major, len, n) = self.peek_head()?;
        if major != cbor::MAJOR_TEXT {
            return None;
        }
        let bytes = self.peek_text_bytes(n, len)?;
        let t = check(bytes)?;
        self.pos += n + bytes.len();
        self.top.0 -= 8;
        Some(t)
    }

    /// Fast path: when an untagged array (`major` 4) or object (`major` 5) head
    /// stands in a plain value position, and its count fits the input left and the
    /// depth limit, opens it (exactly as [`Reader::next`] would) and returns its
    /// count. `None`, with nothing consumed, otherwise.
    #[inline]
    pub(crate) fn fast_container(&mut self, major: u8) -> Option<usize> {
        if !self.plain_value_due() {
            return None;
        }
        let (m, count, n) = self.peek_head()?;
        if m != major {
            return None;
        }
        self.open_peeked_container(major, count, n)
    }

    /// Opens the untagged array or map (`major`) whose head was peeked: `count` items,
    /// `n` head bytes. `None`, with nothing consumed, at the depth limit or when the
    /// input cannot hold that many items.
    #[inline]
    fn open_peeked_container(&mut self, major: u8, count: u64, n: usize) -> Option<usize> {
        if self.depth() >= MAX_DEPTH {
            return None;
        }
        let (kind, per_item) = if major == cbor::MAJOR_MAP {
            (F_OBJECT, 2)
        } else {
            (F_ARRAY, 1)
        };
        let items = count.checked_mul(per_item)?;
        if items > self.remaining() - n as u64 {
            return None;
        }
        self.pos += n;
        if count == 0 {
            self.complete();
        } else {
            self.push_frame(Frame::new(kind, items));
        }
        Some(count as usize)
    }

    /// Fast path for [`read_value`](super::read_value): when an untagged value stands
    /// in a plain position, reads it (exactly as [`Reader::next`] would): a scalar as
    /// its [`Value`], an array or object as its count (opened; its items follow).
    /// `None`, with nothing consumed, for anything else (tags, errors, keys, ...).
    #[inline]
    pub(crate) fn fast_value(&mut self) -> Option<FastValue<'a>> {
        if !self.plain_value_due() {
            return None;
        }
        let (major, arg, n) = self.peek_head()?;
        let v = match major {
            cbor::MAJOR_UINT if arg <= i64::MAX as u64 => FastValue::Int(arg as i64),
            cbor::MAJOR_NINT if arg <= i64::MAX as u64 => FastValue::Int(-1 - arg as i64),
            cbor::MAJOR_TEXT => {
                let bytes = self.peek_text_bytes(n, arg)?;
                let s = std::str::from_utf8(bytes).ok()?;
                self.pos += n + bytes.len();
                self.complete();
                return Some(FastValue::Str(s));
            }
            cbor::MAJOR_BYTES => {
                let bytes = self.peek_text_bytes(n, arg)?;
                self.pos += n + bytes.len();
                self.complete();
                return Some(FastValue::Bytes(bytes));
            }
            cbor::MAJOR_ARRAY | cbor::MAJOR_MAP => {
                let count = self.open_peeked_container(major, arg, n)?;
                return Some(if major == cbor::MAJOR_MAP {
                    FastValue::Object(count)
                } else {
                    FastValue::Array(count)
                });
            }
            7 => match self.input[self.pos] {
                cbor::FALSE => FastValue::Bool(false),
                cbor::TRUE => FastValue::Bool(true),
                cbor::NULL => FastValue::Null,
                cbor::UNDEFINED => FastValue::Undefined,
                0xf9 => FastValue::Float(cbor::f16_to_f64(arg as u16)),
                0xfa => FastValue::Float(cbor::f32_to_f64(arg as u32)),
                0xfb => FastValue::Float(f64::from_bits(arg)),
                _ => return None,
            },
            _ => return None,
        };
        self.pos += n;
        self.complete();
        Some(v)
    }

    /// Fast path: when `null` or `undefined` stands in a plain value position, reads
    /// it and returns true.
    #[inline]
    pub(crate) fn fast_null(&mut self) -> bool {
        if self.plain_value_due()
            && matches!(
                self.input.get(self.pos),
                Some(&(cbor::NULL | cbor::UNDEFINED))
            )
        {
            self.pos += 1;
            self.complete();
            return true;
        }
        false
    }

    /// Whether the next item is an untagged value in a plain position (its event
    /// will be the value itself, never a shareable mark).
    #[inline]
    pub(crate) fn untagged_value_due(&self) -> bool {
        self.plain_value_due()
            && self
                .input
                .get(self.pos)
                .is_some_and(|&b| b >> 5 != cbor::MAJOR_TAG)
    }

    /// Reads the next event.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] for anything malformed, truncated or out of bounds; and when
    /// called after the message's value has been read completely.
    #[inline]
    #[allow(clippy::should_implement_trait)] // fallible, and not an iterator
    pub fn next(&mut self) -> R<Event<'a>> {
        if self.done {
            return Err(self.error(K::TrailingBytes, "read past the end of the message's value"));
        }
        let at = self.pos;
        let frame = self.top();
        if frame.kind() == F_OBJECT && frame.n().is_multiple_of(2) {
            let key = self.text("object keys must be text strings")?;
            self.top.0 -= 8;
            return Ok(Event::Key(key));
        }
        let (major, arg) = self.head()?;
        // Fast path: an untagged value inside a plain container (or at the top), not
        // marked shareable, needs no checks beyond its own bytes (and the depth limit).
        if self.pending_share.is_none() && frame.kind() <= F_SET {
            let ev = match major {
                cbor::MAJOR_UINT if arg <= i64::MAX as u64 => Event::Int(arg as i64),
                cbor::MAJOR_NINT if arg <= i64::MAX as u64 => Event::Int(-1 - arg as i64),
                cbor::MAJOR_TEXT => {
                    let bytes = self.take(arg)?;
                    Event::Str(std::str::from_utf8(bytes).map_err(|_| {
                        DecodeError::new(K::InvalidUtf8, at, "text string is not valid UTF-8")
                    })?)
                }
                cbor::MAJOR_BYTES => Event::Buffer(BufferData::Inline(self.take(arg)?)),
                cbor::MAJOR_ARRAY => {
                    let n = self.count(arg, 1, at)?;
                    self.open(Frame::new(F_ARRAY, n as u64), n as u64)?;
                    return Ok(Event::ArrayStart(n));
                }
                cbor::MAJOR_MAP => {
                    let n = self.count(arg, 2, at)?;
                    self.open(Frame::new(F_OBJECT, n as u64 * 2), n as u64)?;
                    return Ok(Event::ObjectStart(n));
                }
                7 => self.simple(arg, at)?,
                _ => return self.next_slow(major, arg, at, frame),
            };
            self.complete();
            return Ok(ev);
        }
        self.next_slow(major, arg, at, frame)
    }

    #[inline(never)]
    fn next_slow(&mut self, major: u8, arg: u64, at: usize, frame: Frame) -> R<Event<'a>> {
        let ev = match major {
            cbor::MAJOR_UINT => match i64::try_from(arg) {
                Ok(i) => Event::Int(i),
                Err(_) => Event::BigInt {
                    negative: false,
                    magnitude: Cow::Owned(arg.to_be_bytes().to_vec()),
                },
            },
            cbor::MAJOR_NINT => match i64::try_from(arg) {
                Ok(i) => Event::Int(-1 - i),
                Err(_) => {
                    let m = (u128::from(arg) + 1).to_be_bytes();
                    let first = m.iter().position(|&b| b != 0).unwrap_or(m.len());
                    Event::BigInt {
                        negative: true,
                        magnitude: Cow::Owned(m[first..].to_vec()),
                    }
                }
            },
            cbor::MAJOR_BYTES => Event::Buffer(BufferData::Inline(self.take(arg)?)),
            cbor::MAJOR_TEXT => {
                let bytes = self.take(arg)?;
                Event::Str(std::str::from_utf8(bytes).map_err(|_| {
                    DecodeError::new(K::InvalidUtf8, at, "text string is not valid UTF-8")
                })?)
            }
            cbor::MAJOR_ARRAY => Event::ArrayStart(self.count(arg, 1, at)?),
            cbor::MAJOR_MAP => Event::ObjectStart(self.count(arg, 2, at)?),
            cbor::MAJOR_TAG => self.tagged(arg, at, frame)?,
            _ => self.simple(arg, at)?,
        };
        self.check_and_track(&ev, frame, at)?;
        Ok(ev)
    }

    fn simple(&mut self, arg: u64, at: usize) -> R<Event<'a>> {
        let b = self.input[at];
        Ok(match b {
            cbor::FALSE => Event::Bool(false),
            cbor::TRUE => Event::Bool(true),
            cbor::NULL => Event::Null,
            cbor::UNDEFINED => Event::Undefined,
            0xf9 => Event::Float(cbor::f16_to_f64(arg as u16)),
            0xfa => Event::Float(cbor::f32_to_f64(arg as u32)),
            0xfb => Event::Float(f64::from_bits(arg)),
            _ => {
                return Err(DecodeError::new(
                    K::Malformed,
                    at,
                    "a simple value this format does not use",
                ));
            }
        })
    }

    fn number(&mut self, what: &'static str) -> R<f64> {
        let at = self.pos;
        let (major, arg) = self.head()?;
        match major {
            cbor::MAJOR_UINT => Ok(arg as f64),
            // -1 - arg exactly, then rounded once (`-1.0 - arg as f64` rounds twice)
            cbor::MAJOR_NINT => Ok((-1 - i128::from(arg)) as f64),
            7 => match self.input[at] {
                0xf9 => Ok(cbor::f16_to_f64(arg as u16)),
                0xfa => Ok(cbor::f32_to_f64(arg as u32)),
                0xfb => Ok(f64::from_bits(arg)),
                _ => Err(DecodeError::new(K::Malformed, at, what)),
            },
            _ => Err(DecodeError::new(K::Malformed, at, what)),
        }
    }

    fn tagged(&mut self, t: u64, at: usize, frame: Frame) -> R<Event<'a>> {
        Ok(match t {
            tag::SHAREABLE => {
                if self.pending_share.is_some() {
                    return Err(DecodeError::new(
                        K::BadTag,
                        at,
                        "a shareable mark on a shareable mark",
                    ));
                }
                if frame.kind() == F_BOXED {
                    return Err(DecodeError::new(
                        K::BadTag,
                        at,
                        "a shareable mark inside a boxed primitive",
                    ));
                }
                let id = u32::try_from(self.shared.len())
                    .map_err(|_| DecodeError::new(K::BadReference, at, "too many shared values"))?;
                self.shared.push(SharedSlot {
                    offset: self.pos,
                    buffer_len: NOT_BUFFER,
                });
                self.pending_share = Some(id);
                return Ok(Event::Shareable(id));
            }
            tag::SHARED_REF => {
                let n = self.uint("tag 29 must hold an unsigned integer")?;
                if n >= self.shared.len() as u64 {
                    return Err(DecodeError::new(
                        K::BadReference,
                        at,
                        "a reference to a value not marked shareable (yet)",
                    ));
                }
                Event::SharedRef(n as u32)
            }
            tag::ABSENT => {
                if self.byte()? != cbor::UNDEFINED {
                    return Err(DecodeError::new(
                        K::Malformed,
                        at,
                        "tag 31 must hold undefined",
                    ));
                }
                Event::Hole
            }
            tag::EPOCH_DATE => Event::Date(self.number("tag 1 must hold a number")? * 1000.0),
            tag::DATE_MS => Event::Date(self.number("a date must hold a number")?),
            tag::POS_BIGNUM | tag::NEG_BIGNUM => {
                let b = *self
                    .input
                    .get(self.pos)
                    .ok_or_else(|| self.error(K::Truncated, "input ends inside an item"))?;
                if b >> 5 != cbor::MAJOR_BYTES {
                    return Err(DecodeError::new(
                        K::Malformed,
                        at,
                        "a bignum must hold a byte string",
                    ));
                }
                let (_, len) = self.head()?;
                let bytes = self.take(len)?;
                let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
                let n = &bytes[first..];
                if t == tag::POS_BIGNUM {
                    Event::BigInt {
                        negative: false,
                        magnitude: Cow::Borrowed(n),
                    }
                } else {
                    let mut m = Vec::with_capacity(n.len() + 1);
                    m.push(0);
                    m.extend_from_slice(n);
                    for b in m.iter_mut().rev() {
                        if *b == 0xff {
                            *b = 0;
                        } else {
                            *b += 1;
                            break;
                        }
                    }
                    if m[0] == 0 {
                        m.remove(0);
                    }
                    Event::BigInt {
                        negative: true,
                        magnitude: Cow::Owned(m),
                    }
                }
            }
            tag::SET => {
                let (major, len) = self.head()?;
                if major != cbor::MAJOR_ARRAY {
                    return Err(DecodeError::new(
                        K::Malformed,
                        at,
                        "tag 258 must hold an array",
                    ));
                }
                Event::SetStart(self.count(len, 1, at)?)
            }
            tag::MAP => {
                let (major, len) = self.head()?;
                if major != cbor::MAJOR_MAP {
                    return Err(DecodeError::new(
                        K::Malformed,
                        at,
                        "tag 259 must hold a map",
                    ));
                }
                Event::MapStart(self.count(len, 2, at)?)
            }
            tag::PORT => {
                let i = self.uint("a port must hold an unsigned integer")?;
                if i >= u64::from(self.port_count) {
                    return Err(DecodeError::new(
                        K::PortIndex,
                        at,
                        "port index beyond the message's ports",
                    ));
                }
                Event::Port(i as u32)
            }
            tag::SIDE_BUFFER => Event::Buffer(self.side_buffer(at)?),
            tag::RESIZABLE => {
                // [max_byte_length, buffer]: the bytes are the buffer's; the maximum is
                // for languages with resizable buffers (JavaScript), dropped here
                self.fixed_array(
                    2,
                    at,
                    "a resizable buffer must hold [max_byte_length, buffer]",
                )?;
                let max =
                    self.uint("a resizable buffer's max_byte_length must be an unsigned integer")?;
                let inner = self.pos;
                let data = match self.head()? {
                    (cbor::MAJOR_BYTES, len) => BufferData::Inline(self.take(len)?),
                    (cbor::MAJOR_TAG, tag::SIDE_BUFFER) => self.side_buffer(inner)?,
                    _ => {
                        return Err(DecodeError::new(
                            K::Malformed,
                            inner,
                            "a resizable buffer must hold a byte string or a side-table buffer",
                        ));
                    }
                };
                if data.as_slice().len() as u64 > max {
                    return Err(DecodeError::new(
                        K::Malformed,
                        at,
                        "a resizable buffer longer than its max_byte_length",
                    ));
                }
                Event::Buffer(data)
            }
            tag::UTF16 => {
                let b = *self
                    .input
                    .get(self.pos)
                    .ok_or_else(|| self.error(K::Truncated, "input ends inside an item"))?;
                if b >> 5 != cbor::MAJOR_BYTES {
                    return Err(DecodeError::new(
                        K::Malformed,
                        at,
                        "a UTF-16 string must hold a byte string",
                    ));
                }
                let (_, len) = self.head()?;
                let bytes = self.take(len)?;
                if bytes.len() % 2 != 0 {
                    return Err(DecodeError::new(
                        K::Malformed,
                        at,
                        "a UTF-16 string must hold an even number of bytes",
                    ));
                }
                Event::Utf16(Utf16Units(bytes))
            }
            tag::REGEXP => {
                self.fixed_array(2, at, "a RegExp must hold [source, flags]")?;
                let source = self.text("a RegExp source must be a text string")?;
                let flags = self.text("RegExp flags must be a text string")?;
                Event::RegExp { source, flags }
            }
            tag::ERROR => self.error_fields(at)?,
            tag::BOXED => Event::Boxed,
            tag::VIEW => self.view_start(at)?,
            tag::LENGTH_TRACKING => match self.head()? {
                // a mark on a view (JavaScript's length-tracking views); the view itself
                // says how long it is now, which is all languages without them need
                (cbor::MAJOR_TAG, tag::VIEW) => self.view_start(at)?,
                _ => {
                    return Err(DecodeError::new(
                        K::Malformed,
                        at,
                        "a length-tracking mark must hold a view",
                    ));
                }
            },
            tag::SHARED_MEMORY => {
                // (before looking at the buffer: other threads may be writing it)
                return Err(DecodeError::new(
                    K::BadTag,
                    at,
                    "a SharedArrayBuffer: shared memory is received by the Node face only",
                ));
            }
            tag::SPARSE_ARRAY => {
                return Err(DecodeError::new(
                    K::BadTag,
                    at,
                    "a sparse array: only the Node face receives arrays in sparse form",
                ));
            }
            _ => {
                return Err(DecodeError::new(
                    K::BadTag,
                    at,
                    "a tag this format does not use here",
                ));
            }
        })
    }

    fn error_fields(&mut self, at: usize) -> R<Event<'a>> {
        let (major, n) = self.head()?;
        if major != cbor::MAJOR_MAP || !(1..=4).contains(&n) {
            return Err(DecodeError::new(
                K::Malformed,
                at,
                "an Error must hold a map of 1 to 4 entries",
            ));
        }
        if self.text("Error fields are text keys")? != "name" {
            return Err(DecodeError::new(
                K::Malformed,
                at,
                "an Error's first key must be \"name\"",
            ));
        }
        let name = ErrorName::from_name(self.text("an Error's name must be a text string")?);
        let last = n - 1;
        let (mut message, mut stack, mut has_cause) = (None, None, false);
        let mut order = 0;
        for i in 1..n {
            let key_at = self.pos;
            let key = self.text("Error fields are text keys")?;
            let rank = match key {
                "message" => 1,
                "stack" => 2,
                "cause" => 3,
                _ => 0,
            };
            if rank <= order {
                return Err(DecodeError::new(
                    K::Malformed,
                    key_at,
                    "Error keys must be name, message, stack, cause, in this order",
                ));
            }
            order = rank;
            match rank {
                1 => message = Some(self.text("an Error's message must be a text string")?),
                2 => stack = Some(self.text("an Error's stack must be a text string")?),
                _ if i == last => has_cause = true,
                _ => {
                    return Err(DecodeError::new(
                        K::Malformed,
                        key_at,
                        "an Error's cause must be its last entry",
                    ));
                }
            }
        }
        Ok(Event::Error {
            name,
            message,
            stack,
            has_cause,
        })
    }

    /// Checks that `ev` may stand where it is, then does the bookkeeping: shared slots,
    /// containers opened or completed.
    #[inline]
    fn check_and_track(&mut self, ev: &Event<'a>, frame: Frame, at: usize) -> R<()> {
        if matches!(ev, Event::Shareable(_)) {
            return Ok(());
        }
        // What kind of value starts here?
        let buffer_len = match ev {
            Event::Buffer(b) => b.as_slice().len() as u64,
            Event::SharedRef(id) => self.shared[*id as usize].buffer_len,
            _ => NOT_BUFFER,
        };
        match frame.kind() {
            // a hole only stands in an array (BadTag elsewhere, docs/wire-format.md 3.6)
            F_BOXED if matches!(ev, Event::Hole) => {
                return Err(DecodeError::new(
                    K::BadTag,
                    at,
                    "a hole inside a boxed primitive",
                ));
            }
            F_BOXED
                if !matches!(
                    ev,
                    Event::Bool(_)
                        | Event::Int(_)
                        | Event::Float(_)
                        | Event::BigInt { .. }
                        | Event::Str(_)
                        | Event::Utf16(_)
                ) =>
            {
                return Err(DecodeError::new(
                    K::Malformed,
                    at,
                    "a boxed primitive must hold a boolean, number, bigint or string",
                ));
            }
            F_BOXED => {}
            F_VIEW => {
                let needed = frame.n();
                if buffer_len == NOT_BUFFER {
                    return Err(DecodeError::new(
                        if matches!(ev, Event::SharedRef(_)) {
                            K::BadReference
                        } else {
                            K::BadView
                        },
                        at,
                        "the buffer of a view is not an ArrayBuffer",
                    ));
                }
                if buffer_len < needed {
                    return Err(DecodeError::new(
                        K::BadView,
                        at,
                        "a view out of bounds of its buffer",
                    ));
                }
            }
            F_ARRAY => {}
            _ if matches!(ev, Event::Hole) => {
                return Err(DecodeError::new(
                    K::BadTag,
                    at,
                    "an array hole outside an array",
                ));
            }
            _ => {}
        }
        let share = self.pending_share.take();
        if let Some(id) = share {
            if matches!(ev, Event::SharedRef(_) | Event::Hole) {
                return Err(DecodeError::new(
                    K::BadTag,
                    at,
                    "a shareable mark on a reference or a hole",
                ));
            }
            self.shared[id as usize].buffer_len = match ev {
                Event::Buffer(_) => buffer_len,
                _ => NOT_BUFFER,
            };
        }
        let depth = self.depth();
        let result = match *ev {
            Event::ArrayStart(n) => self.open(Frame::new(F_ARRAY, n as u64), n as u64),
            Event::ObjectStart(n) => self.open(Frame::new(F_OBJECT, n as u64 * 2), n as u64),
            Event::MapStart(n) => self.open(Frame::new(F_MAP, n as u64 * 2), n as u64),
            Event::SetStart(n) => self.open(Frame::new(F_SET, n as u64), n as u64),
            Event::Error {
                has_cause: true, ..
            } => self.push(Frame::new(F_CAUSE, 1)),
            Event::Boxed => self.push(Frame::new(F_BOXED, 1)),
            Event::View {
                kind,
                byte_offset,
                length,
            } => {
                let needed = (kind.element_size() as u64)
                    .checked_mul(length)
                    .and_then(|n| n.checked_add(byte_offset))
                    .filter(|&n| n < 1 << 60)
                    .ok_or_else(|| {
                        DecodeError::new(K::BadView, at, "a view out of bounds of its buffer")
                    })?;
                self.push(Frame::new(F_VIEW, needed))
            }
            _ => {
                self.complete();
                Ok(())
            }
        };
        if let Some(id) = share
            && self.depth() > depth
        {
            self.open_shared.push((id, self.depth()));
        }
        result
    }

    /// Reads and discards one complete value (with everything inside it).
    pub fn skip_value(&mut self) -> R<()> {
        let start = self.depth();
        loop {
            let ev = self.next()?;
            if !matches!(ev, Event::Shareable(_)) && (self.done || self.depth() <= start) {
                return Ok(());
            }
        }
    }

    /// Checks that the message's value has been read completely and that no bytes
    /// follow it.
    pub fn finish(&self) -> R<()> {
        if !self.done {
            return Err(self.error(K::Truncated, "the message ends inside its value"));
        }
        if self.pos != self.input.len() {
            return Err(self.error(K::TrailingBytes, "bytes after the message's value"));
        }
        Ok(())
    }
}

//! [`DecodeError`]: why bytes could not be read as a message.

use std::borrow::Cow;
use std::fmt;

/// What kind of problem a [`DecodeError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ended in the middle of an item.
    Truncated,
    /// The bytes are not a well-formed message (reserved CBOR encodings, indefinite
    /// lengths, a wrong item type where the format wants another, ...).
    Malformed,
    /// The message envelope names a format version this decoder does not know.
    UnsupportedVersion,
    /// More than [`MAX_DEPTH`](super::MAX_DEPTH) containers are nested.
    DepthLimit,
    /// A tag that the format does not use, or a tag where it is not allowed (a hole
    /// outside an array, a shareable mark on a reference, ...).
    BadTag,
    /// A shared reference (tag 29) to a value that has not been marked (tag 28), or to
    /// a value of the wrong kind (a view's buffer that is not a buffer).
    BadReference,
    /// A transferred port index beyond the message's port count.
    PortIndex,
    /// A side-table buffer index beyond the message's side table.
    BufferIndex,
    /// A text string that is not valid UTF-8.
    InvalidUtf8,
    /// A typed array or DataView that does not fit its buffer.
    BadView,
    /// Bytes left over after the message's single value.
    TrailingBytes,
    /// The message is well formed but does not fit the Rust type asked for (serde).
    Mismatch,
}

impl DecodeErrorKind {
    /// A short lowercase description.
    pub const fn as_str(self) -> &'static str {
        match self {
            DecodeErrorKind::Truncated => "truncated input",
            DecodeErrorKind::Malformed => "malformed input",
            DecodeErrorKind::UnsupportedVersion => "unsupported format version",
            DecodeErrorKind::DepthLimit => "nesting depth limit exceeded",
            DecodeErrorKind::BadTag => "unexpected tag",
            DecodeErrorKind::BadReference => "bad shared reference",
            DecodeErrorKind::PortIndex => "port index out of range",
            DecodeErrorKind::BufferIndex => "side-table buffer index out of range",
            DecodeErrorKind::InvalidUtf8 => "invalid UTF-8",
            DecodeErrorKind::BadView => "typed array or DataView out of bounds",
            DecodeErrorKind::TrailingBytes => "trailing bytes",
            DecodeErrorKind::Mismatch => "type mismatch",
        }
    }
}

/// Bytes could not be decoded as a message.
///
/// Carries the [kind](DecodeErrorKind) of problem, the byte offset in the input where
/// it was found, and a human-readable detail. The port layer turns it into a
/// `messageerror` event (spec E1).
///
/// ```
/// use channel_messaging::wire::{decode_value, DecodeErrorKind};
///
/// let err = decode_value(&[0xd9, 0xcb, 0x01, 0x63, b'a'], &[], 0).unwrap_err();
/// assert_eq!(err.kind(), DecodeErrorKind::Truncated);
/// assert_eq!(err.offset(), 5); // a 3-byte string with 1 byte left
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(Box<Inner>);

/// The payload of a [`DecodeError`], boxed so that `Result<_, DecodeError>` stays one
/// word wider than its value (decoding returns results on every step).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    kind: DecodeErrorKind,
    offset: usize,
    detail: Cow<'static, str>,
}

impl DecodeError {
    /// An error of `kind` at byte `offset`, explained by `detail`.
    #[cold]
    pub fn new(kind: DecodeErrorKind, offset: usize, detail: impl Into<Cow<'static, str>>) -> Self {
        DecodeError(Box::new(Inner {
            kind,
            offset,
            detail: detail.into(),
        }))
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> DecodeErrorKind {
        self.0.kind
    }

    /// The byte offset in the input where the problem was found.
    pub fn offset(&self) -> usize {
        self.0.offset
    }

    /// A human-readable explanation.
    pub fn detail(&self) -> &str {
        &self.0.detail
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot decode message: {} at byte {}",
            self.0.kind.as_str(),
            self.0.offset
        )?;
        if !self.0.detail.is_empty() {
            write!(f, ": {}", self.0.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for DecodeError {}

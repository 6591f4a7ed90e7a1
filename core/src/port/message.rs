//! What travels between ports: an encoded message with its side tables, and the close
//! markers that share its queue.

use std::fmt;

use bytes::Bytes;

use super::MessagePort;
use super::inbox::Inbox;
use crate::sync::Arc;
use crate::wire::{self, DecodeError};
use crate::{Buffer, DataCloneError, Value};

/// What a queue holds: messages, and the in-band close markers behind them.
pub(crate) enum Envelope {
    Message(Message),
    /// The partner closed or went away (everything it sent before is ahead of this).
    PartnerClosed,
    /// The owning port itself closed.
    SelfClosed,
}

/// How many encoded bytes a message keeps inline, without a heap allocation.
const INLINE: usize = 46;

/// The encoded bytes of a message: inline when small, else shared (a broadcast shares one
/// allocation among every receiver).
#[derive(Clone)]
pub(crate) enum Payload {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Bytes),
}

impl Payload {
    #[inline]
    pub(crate) fn copy_from(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut inline = [0u8; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Payload::Inline {
                len: bytes.len() as u8,
                bytes: inline,
            }
        } else {
            Payload::Shared(Bytes::copy_from_slice(bytes))
        }
    }

    /// Takes the bytes of `scratch`: copied inline when small, moved when large.
    #[inline]
    pub(crate) fn from_scratch(scratch: &mut Vec<u8>) -> Self {
        const MOVE_ABOVE: usize = 4096;
        if scratch.len() > MOVE_ABOVE {
            Payload::Shared(Bytes::from(std::mem::take(scratch)))
        } else {
            Payload::copy_from(scratch)
        }
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Payload::Shared(b) => b,
        }
    }
}

/// The out-of-band buffers of an encoded message. One buffer (a transferred
/// `ArrayBuffer`, the common case) travels without any allocation besides its own.
pub(crate) enum SideBuffers {
    None,
    One(Buffer),
    Many(Vec<Buffer>),
}

impl SideBuffers {
    /// Takes the buffers out of `v`, leaving it empty with its capacity (a reused
    /// per-thread table).
    fn drain_from(v: &mut Vec<Buffer>) -> Self {
        match v.len() {
            0 => SideBuffers::None,
            1 => SideBuffers::One(v.pop().expect("one buffer")),
            _ => SideBuffers::Many(std::mem::take(v)),
        }
    }
}

impl From<Vec<Buffer>> for SideBuffers {
    fn from(mut v: Vec<Buffer>) -> Self {
        SideBuffers::drain_from(&mut v)
    }
}

/// Runs `encode` into reusable per-thread buffers (the bytes and the side table) and
/// returns the encoded payload with its side-table buffers.
pub(crate) fn encode_payload(
    encode: impl FnOnce(&mut Vec<u8>, &mut Vec<Buffer>) -> Result<(), DataCloneError>,
) -> Result<(Payload, SideBuffers), DataCloneError> {
    let mut encode = Some(encode);
    #[cfg(not(loom))]
    {
        #[derive(Default)]
        struct Scratch {
            bytes: Vec<u8>,
            buffers: Vec<Buffer>,
        }
        thread_local! {
            static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
        }
        // The scratch is busy when a Serialize impl posts from inside serialization, and
        // gone while the thread exits: both fall back to fresh vectors below.
        let reused = SCRATCH
            .try_with(|cell| {
                let mut scratch = cell.try_borrow_mut().ok()?;
                let encode = encode.take()?;
                let Scratch { bytes, buffers } = &mut *scratch;
                bytes.clear();
                let result = encode(bytes, buffers);
                // Never keep a buffer alive in the scratch, even after a failure.
                let side = SideBuffers::drain_from(buffers);
                let result = result.map(|()| (Payload::from_scratch(bytes), side));
                if bytes.capacity() > 1 << 20 {
                    *bytes = Vec::new();
                }
                Some(result)
            })
            .ok()
            .flatten();
        if let Some(result) = reused {
            return result;
        }
    }
    let mut out = Vec::new();
    let mut buffers = Vec::new();
    if let Some(encode) = encode.take() {
        encode(&mut out, &mut buffers)?;
    }
    Ok((Payload::from_scratch(&mut out), buffers.into()))
}

/// A port travelling inside a message: its inbox (with everything queued in it) and its
/// link to its partner. Dropping one that was never adopted closes the port, so its
/// partner learns of it (DESIGN.md §7.6) and nothing leaks.
pub(crate) struct PortTransfer {
    pub(crate) inbox: Option<Arc<Inbox>>,
    pub(crate) link: Option<Arc<Inbox>>,
}

impl Drop for PortTransfer {
    fn drop(&mut self) {
        if let Some(inbox) = self.inbox.take() {
            super::disentangle(&inbox, self.link.take());
        }
    }
}

struct SideTable {
    buffers: Vec<Buffer>,
    ports: Vec<PortTransfer>,
}

/// How many encoded bytes a message with one out-of-band buffer keeps inline.
const ONE_BUFFER_INLINE: usize = 14;

/// A message's contents, laid out so that the common shapes need no allocation of
/// their own: small data (inline bytes), and small data with one transferred buffer.
/// Every variant fits the 56 bytes of the first, which keeps queue slots small.
enum Body {
    /// Encoded bytes only.
    Plain(Payload),
    /// A few encoded bytes and one side-table buffer.
    OneBuffer {
        len: u8,
        bytes: [u8; ONE_BUFFER_INLINE],
        buffer: Buffer,
    },
    /// Anything else: several buffers, or transferred ports.
    Full {
        payload: Payload,
        side: Box<SideTable>,
    },
}

// Queue slots hold an `Envelope`: keep it as small as a plain inline payload (W5).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Envelope>() <= 56);

/// A received message, still encoded: the bytes of docs/wire-format.md plus its side
/// tables (out-of-band buffers and transferred ports).
///
/// Most code calls [`MessagePort::recv`], which decodes for you. A language binding
/// receives a `Message` with [`MessagePort::try_recv_message`] and decodes it straight
/// into its own objects with [`wire::Reader`](crate::wire), adopting the ports with
/// [`Message::take_ports`].
///
/// Dropping a message closes the ports it carries that were not taken.
pub struct Message {
    body: Body,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("bytes", &self.bytes().len())
            .field("buffers", &self.buffers().len())
            .field("ports", &self.port_count())
            .finish()
    }
}

impl Message {
    #[inline]
    pub(crate) fn new(
        payload: Payload,
        buffers: impl Into<SideBuffers>,
        ports: Vec<PortTransfer>,
    ) -> Self {
        let buffers = buffers.into();
        let body = match (buffers, ports.is_empty()) {
            (SideBuffers::None, true) => Body::Plain(payload),
            (SideBuffers::One(buffer), true) if payload.as_slice().len() <= ONE_BUFFER_INLINE => {
                let src = payload.as_slice();
                let mut bytes = [0u8; ONE_BUFFER_INLINE];
                bytes[..src.len()].copy_from_slice(src);
                Body::OneBuffer {
                    len: src.len() as u8,
                    bytes,
                    buffer,
                }
            }
            (buffers, _) => {
                let buffers = match buffers {
                    SideBuffers::None => Vec::new(),
                    SideBuffers::One(b) => vec![b],
                    SideBuffers::Many(v) => v,
                };
                Body::Full {
                    payload,
                    side: Box::new(SideTable { buffers, ports }),
                }
            }
        };
        Message { body }
    }

    /// A copy sharing the payload and buffers (broadcasts; never used with ports).
    #[cfg_attr(loom, allow(dead_code))] // used by PortCollection and BroadcastChannel
    pub(crate) fn share(&self) -> Self {
        debug_assert_eq!(self.port_count(), 0);
        let body = match &self.body {
            Body::Plain(p) => Body::Plain(p.clone()),
            Body::OneBuffer { len, bytes, buffer } => Body::OneBuffer {
                len: *len,
                bytes: *bytes,
                buffer: buffer.clone(),
            },
            Body::Full { payload, side } => Body::Full {
                payload: payload.clone(),
                side: Box::new(SideTable {
                    buffers: side.buffers.clone(),
                    ports: Vec::new(),
                }),
            },
        };
        Message { body }
    }

    /// Whether one of the ports this message carries owns `inbox` (the doomed case).
    pub(crate) fn carries_inbox(&self, inbox: &Arc<Inbox>) -> bool {
        self.side().is_some_and(|s| {
            s.ports
                .iter()
                .any(|p| p.inbox.as_ref().is_some_and(|i| Arc::ptr_eq(i, inbox)))
        })
    }

    fn side(&self) -> Option<&SideTable> {
        match &self.body {
            Body::Full { side, .. } => Some(side),
            _ => None,
        }
    }

    /// The encoded bytes (docs/wire-format.md).
    pub fn bytes(&self) -> &[u8] {
        match &self.body {
            Body::Plain(p) | Body::Full { payload: p, .. } => p.as_slice(),
            Body::OneBuffer { len, bytes, .. } => &bytes[..usize::from(*len)],
        }
    }

    /// The out-of-band buffers the bytes refer to by index.
    pub fn buffers(&self) -> &[Buffer] {
        match &self.body {
            Body::Plain(_) => &[],
            Body::OneBuffer { buffer, .. } => std::slice::from_ref(buffer),
            Body::Full { side, .. } => &side.buffers,
        }
    }

    /// How many ports the message carries (those not taken yet).
    pub fn port_count(&self) -> usize {
        self.side().map_or(0, |s| s.ports.len())
    }

    /// The bytes this message counts for in flow control: encoded bytes plus buffers.
    pub fn byte_size(&self) -> usize {
        self.bytes().len() + self.buffers().iter().map(|b| b.len()).sum::<usize>()
    }

    /// Takes the out-of-band buffers, leaving the table empty. A binding that has decoded
    /// the bytes takes them to own the memory: a buffer whose last handle is the one
    /// taken here reaches the receiver without a copy ([`Buffer::into_vec`]).
    pub fn take_buffers(&mut self) -> Vec<Buffer> {
        match &mut self.body {
            Body::Plain(_) => Vec::new(),
            Body::OneBuffer { .. } => {
                let plain = Body::Plain(Payload::copy_from(self.bytes()));
                match std::mem::replace(&mut self.body, plain) {
                    Body::OneBuffer { buffer, .. } => vec![buffer],
                    _ => unreachable!("matched OneBuffer above"),
                }
            }
            Body::Full { side, .. } => std::mem::take(&mut side.buffers),
        }
    }

    /// Adopts the transferred ports, in transfer-list order: the `i`-th is what
    /// `Value::Port(i)` in the data refers to. Each starts with its queue disabled
    /// (spec B9) and receives every message that was queued or in flight for it.
    pub fn take_ports(&mut self) -> Vec<MessagePort> {
        match &mut self.body {
            Body::Full { side, .. } => side.ports.drain(..).map(MessagePort::adopt).collect(),
            _ => Vec::new(),
        }
    }

    /// Decodes the data and adopts the ports.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] when the bytes are not a valid message (the web's
    /// `messageerror`); the ports the message carried are then closed.
    pub fn decode(mut self) -> Result<MessageEvent, DecodeError> {
        let data = wire::decode_value(self.bytes(), self.buffers(), self.port_count() as u32)?;
        let ports = self.take_ports();
        Ok(MessageEvent { data, ports })
    }

    /// Decodes the data into any `T: Deserialize`. Ports the message carried are closed
    /// (a serde type cannot hold them; use [`Message::take_ports`] first to keep them).
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] when the bytes do not decode as a `T`.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, DecodeError> {
        wire::decode_serde(self.bytes(), self.buffers())
    }
}

/// A decoded message: the web's `MessageEvent` for a port (`data` and `ports`).
#[derive(Debug)]
pub struct MessageEvent {
    /// The structured clone of what was posted.
    pub data: Value,
    /// The transferred ports, in transfer-list order; `Value::Port(i)` in `data` is
    /// `ports[i]`.
    pub ports: Vec<MessagePort>,
}

//! [`BroadcastChannel`]: process-wide named one-to-many messaging (spec I).

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{LazyLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

use crate::port::error::{InvalidStateError, PostError, RecvError, RecvTimeoutError, TryRecvError};
use crate::port::message::{Message, Payload, encode_payload};
use crate::port::{End, Endpoint, Inbox, MessageEvent, PollRecv, Popped, ReadyHook, Recv};
use crate::sync::{Arc, AtomicBool, Mutex, Ordering, lock};
use crate::{Buffer, Value, wire};

struct ChannelState {
    name: String,
    endpoint: Endpoint,
    closed: AtomicBool,
}

/// Every open channel, by name, in creation order (spec I3 step 5).
static REGISTRY: LazyLock<Mutex<HashMap<String, Vec<Weak<ChannelState>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl Drop for ChannelState {
    fn drop(&mut self) {
        unregister(&self.name, self as *const ChannelState);
    }
}

fn unregister(name: &str, me: *const ChannelState) {
    let mut registry = lock(&REGISTRY);
    if let Some(members) = registry.get_mut(name) {
        members.retain(|w| w.as_ptr() != me && w.strong_count() > 0);
        if members.is_empty() {
            registry.remove(name);
        }
    }
}

/// A named channel that every thread of the process can join (the web's
/// `BroadcastChannel`, spec I).
///
/// A message posted on one channel reaches every *other* open channel with the same
/// name, in creation order, never the sender itself. Messages are cloned, never
/// transferred (there is no transfer list). Receiving works as on a
/// [`MessagePort`](crate::MessagePort): `recv`, `try_recv`, `recv_timeout`, `recv_async`,
/// a `Stream`, and a ready hook once [`start`](Self::start)ed.
///
/// The channel closes when [`close`](Self::close) is called or its last handle is
/// dropped; messages still queued for it are then dropped (spec I4).
///
/// # Examples
///
/// ```
/// use channel_messaging::{BroadcastChannel, Value};
///
/// let a = BroadcastChannel::new("jobs");
/// let b = BroadcastChannel::new("jobs");
/// let c = BroadcastChannel::new("jobs");
/// a.post_message(&Value::from("go")).unwrap();
/// assert_eq!(b.recv().unwrap().data, Value::from("go"));
/// assert_eq!(c.recv().unwrap().data, Value::from("go"));
/// assert!(a.try_recv().is_err()); // not to itself
/// ```
#[derive(Clone)]
pub struct BroadcastChannel(Arc<ChannelState>);

impl fmt::Debug for BroadcastChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastChannel")
            .field("name", &self.0.name)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl BroadcastChannel {
    /// Joins the channel called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let state = Arc::new(ChannelState {
            name: name.clone(),
            endpoint: Endpoint::new(Arc::new(Inbox::new())),
            closed: AtomicBool::new(false),
        });
        lock(&REGISTRY)
            .entry(name)
            .or_default()
            .push(Arc::downgrade(&state));
        BroadcastChannel(state)
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// Posts a clone of `message` to every other open channel of this name (spec I3).
    /// Returns how many channels it was posted to.
    ///
    /// # Errors
    ///
    /// [`PostError::InvalidState`] when this channel is closed, checked before the
    /// message is looked at; [`PostError::DataClone`] when it cannot be encoded (a
    /// `Value::Port` included: a broadcast cannot transfer).
    pub fn post_message(&self, message: &Value) -> Result<usize, PostError> {
        self.check_open()?;
        let (payload, buffers) =
            encode_payload(|out, bufs| wire::encode_value(message, 0, out, bufs))?;
        Ok(self.deliver(&Message::new(payload, buffers, Vec::new())))
    }

    /// Posts any `T: Serialize` to every other open channel of this name.
    ///
    /// # Errors
    ///
    /// As [`post_message`](Self::post_message).
    pub fn post<T: serde::Serialize + ?Sized>(&self, message: &T) -> Result<usize, PostError> {
        self.check_open()?;
        let (payload, buffers) =
            encode_payload(|out, bufs| wire::encode_serde(message, out, bufs))?;
        Ok(self.deliver(&Message::new(payload, buffers, Vec::new())))
    }

    /// Posts an already encoded message (for bindings; see
    /// [`MessagePort::post_encoded`](crate::MessagePort::post_encoded)).
    ///
    /// # Errors
    ///
    /// [`PostError::InvalidState`] when this channel is closed.
    pub fn post_encoded(&self, bytes: &[u8], buffers: Vec<Buffer>) -> Result<usize, PostError> {
        self.check_open()?;
        Ok(self.deliver(&Message::new(
            Payload::copy_from(bytes),
            buffers,
            Vec::new(),
        )))
    }

    fn check_open(&self) -> Result<(), InvalidStateError> {
        if self.is_closed() {
            Err(InvalidStateError::new("the BroadcastChannel is closed"))
        } else {
            Ok(())
        }
    }

    fn deliver(&self, msg: &Message) -> usize {
        let me = Arc::as_ptr(&self.0);
        let destinations: Vec<Arc<ChannelState>> = lock(&REGISTRY)
            .get(&self.0.name)
            .map(|members| {
                members
                    .iter()
                    .filter(|w| w.as_ptr() != me)
                    .filter_map(Weak::upgrade)
                    .collect()
            })
            .unwrap_or_default();
        let mut count = 0;
        for dest in &destinations {
            if dest.closed.load(Ordering::Acquire) {
                continue;
            }
            if let Some(inbox) = dest.endpoint.inbox()
                && inbox.push_message(msg.share()).is_ok()
            {
                count += 1;
            }
        }
        count
    }

    /// Closes the channel: it leaves the group, receives nothing more, and what was
    /// queued for it is dropped (spec I4). Idempotent.
    pub fn close(&self) {
        if self.0.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        unregister(&self.0.name, Arc::as_ptr(&self.0));
        let (inbox, garbage) = {
            let mut c = lock(&self.0.endpoint.consumer);
            c.ended = Some(End::SelfClosed);
            match &c.inbox {
                Some(inbox) => {
                    inbox.stop_accepting();
                    (Some(Arc::clone(inbox)), inbox.drain())
                }
                None => (None, Vec::new()),
            }
        };
        drop(garbage);
        if let Some(inbox) = inbox {
            inbox.wake_all();
        }
    }

    /// Enables the queue, so that the ready hook fires (see
    /// [`MessagePort::start`](crate::MessagePort::start)).
    pub fn start(&self) {
        if let Some(inbox) = self.0.endpoint.inbox() {
            inbox.enable();
        }
    }

    /// Registers the binding's ready hook (see
    /// [`MessagePort::set_ready_hook`](crate::MessagePort::set_ready_hook)).
    pub fn set_ready_hook(&self, hook: Option<ReadyHook>) {
        if let Some(inbox) = self.0.endpoint.inbox() {
            inbox.set_hook(hook);
        }
    }

    /// The next message without blocking, still encoded.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], or [`TryRecvError::Closed`] once closed.
    pub fn try_recv_message(&self) -> Result<Message, TryRecvError> {
        match self.0.endpoint.try_pop() {
            Popped::Message(m) => Ok(m),
            Popped::Empty => Err(TryRecvError::Empty),
            Popped::Ended(..) | Popped::Detached => Err(TryRecvError::Closed),
        }
    }

    /// The next message without blocking, decoded.
    ///
    /// # Errors
    ///
    /// As [`MessagePort::try_recv`](crate::MessagePort::try_recv).
    pub fn try_recv(&self) -> Result<MessageEvent, TryRecvError> {
        self.try_recv_message()?
            .decode()
            .map_err(TryRecvError::MessageError)
    }

    /// Blocks for the next message.
    ///
    /// # Errors
    ///
    /// As [`MessagePort::recv`](crate::MessagePort::recv).
    pub fn recv(&self) -> Result<MessageEvent, RecvError> {
        self.recv_message()?
            .decode()
            .map_err(RecvError::MessageError)
    }

    /// Blocks for the next message, still encoded (for bindings).
    ///
    /// # Errors
    ///
    /// [`RecvError::Closed`] once the channel is closed.
    pub fn recv_message(&self) -> Result<Message, RecvError> {
        self.0.endpoint.recv_message(|| self.try_recv_message())
    }

    /// Blocks for at most `timeout` for the next message, still encoded (for bindings).
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] when nothing arrived in time, otherwise as
    /// [`recv_message`](Self::recv_message).
    pub fn recv_message_timeout(&self, timeout: Duration) -> Result<Message, RecvTimeoutError> {
        self.0
            .endpoint
            .recv_message_timeout(timeout, || self.try_recv_message())
    }

    /// Blocks for the next message and deserializes it as a `T`.
    ///
    /// # Errors
    ///
    /// As [`MessagePort::recv_as`](crate::MessagePort::recv_as).
    pub fn recv_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, RecvError> {
        self.recv_message()?
            .deserialize()
            .map_err(RecvError::MessageError)
    }

    /// Blocks for at most `timeout` for the next message.
    ///
    /// # Errors
    ///
    /// As [`MessagePort::recv_timeout`](crate::MessagePort::recv_timeout).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<MessageEvent, RecvTimeoutError> {
        self.recv_message_timeout(timeout)?
            .decode()
            .map_err(RecvTimeoutError::MessageError)
    }

    /// Polls for the next message, still encoded (see
    /// [`MessagePort::poll_recv_message`](crate::MessagePort::poll_recv_message)).
    ///
    /// # Errors
    ///
    /// `Ready(Err(TryRecvError::Closed))` once the channel is closed.
    pub fn poll_recv_message(&self, cx: &mut Context<'_>) -> Poll<Result<Message, TryRecvError>> {
        self.0.endpoint.poll_pop(cx, || self.try_recv_message())
    }

    /// The next message, asynchronously (cancel-safe).
    pub fn recv_async(&self) -> Recv<'_> {
        Recv { src: self }
    }
}

impl PollRecv for BroadcastChannel {
    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<MessageEvent, TryRecvError>> {
        self.0.endpoint.poll_pop(cx, || self.try_recv())
    }
}

impl Stream for BroadcastChannel {
    /// Each message or its decode error; ends when the channel is closed.
    type Item = Result<MessageEvent, wire::DecodeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_recv(cx).map(|r| match r {
            Ok(ev) => Some(Ok(ev)),
            Err(TryRecvError::MessageError(e)) => Some(Err(e)),
            Err(_) => None,
        })
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<BroadcastChannel>();
};

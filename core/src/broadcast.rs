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
    group: Arc<Group>,
    /// The channel's own inbox (also in `endpoint`, and in the group's member list).
    inbox: Arc<Inbox>,
    endpoint: Endpoint,
    closed: AtomicBool,
}

/// One open channel as its group sees it.
#[derive(Clone)]
struct Member {
    /// The address of its `ChannelState`, to recognise the sender and to leave.
    id: usize,
    inbox: Arc<Inbox>,
}

/// The open channels of one name, in creation order (spec I3 step 5). A post reads a
/// snapshot: the list is replaced, never changed in place, when a channel joins or leaves.
#[derive(Default)]
struct Group {
    members: Mutex<Arc<[Member]>>,
}

/// The groups, by name. A group lives as long as one of its channels.
static REGISTRY: LazyLock<Mutex<HashMap<String, Weak<Group>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl Group {
    fn join(&self, member: Member) {
        let mut members = lock(&self.members);
        let mut list = members.to_vec();
        list.push(member);
        *members = list.into();
    }

    /// Removes `id`; returns whether the group is now empty.
    fn leave(&self, id: usize) -> bool {
        let mut members = lock(&self.members);
        if members.iter().any(|m| m.id == id) {
            let list: Vec<Member> = members.iter().filter(|m| m.id != id).cloned().collect();
            *members = list.into();
        }
        members.is_empty()
    }
}

impl ChannelState {
    /// Leaves the group; the last channel to leave takes the name out of the registry.
    /// Under the registry's lock, as joining is: a channel of the same name made
    /// meanwhile joins this group before it empties, or a new group after the name is
    /// gone, never a group that is leaving the registry (which would split the name in
    /// two, and posts on one half would miss the other).
    fn leave(&self) {
        let mut registry = lock(&REGISTRY);
        if self.group.leave(self as *const ChannelState as usize)
            && registry
                .get(&self.name)
                .is_some_and(|g| g.strong_count() == 0 || g.as_ptr() == Arc::as_ptr(&self.group))
        {
            registry.remove(&self.name);
        }
    }
}

impl Drop for ChannelState {
    fn drop(&mut self) {
        self.leave();
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
        let inbox = Arc::new(Inbox::new());
        // Finding the group and joining it are one step under the registry's lock (see
        // `ChannelState::leave`).
        let mut registry = lock(&REGISTRY);
        let group = match registry.get(&name).and_then(Weak::upgrade) {
            Some(group) => group,
            None => {
                let group = Arc::new(Group::default());
                registry.insert(name.clone(), Arc::downgrade(&group));
                group
            }
        };
        let state = Arc::new(ChannelState {
            name,
            group: Arc::clone(&group),
            inbox: Arc::clone(&inbox),
            endpoint: Endpoint::new(inbox.clone()),
            closed: AtomicBool::new(false),
        });
        group.join(Member {
            id: Arc::as_ptr(&state) as usize,
            inbox,
        });
        drop(registry);
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
        let me = Arc::as_ptr(&self.0) as usize;
        let members = Arc::clone(&*lock(&self.0.group.members));
        members
            .iter()
            .filter(|m| m.id != me && m.inbox.push_message(msg.share()).is_ok())
            .count()
    }

    /// Closes the channel: it leaves the group, receives nothing more, and what was
    /// queued for it is dropped (spec I4). Idempotent.
    pub fn close(&self) {
        if self.0.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.0.leave();
        let (inbox, garbage) = {
            let mut c = lock(&self.0.endpoint.consumer);
            c.ended = Some(End::SelfClosed);
            match &c.inbox {
                Some(inbox) => {
                    inbox.mark_dead();
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
        self.0.inbox.enable();
    }

    /// Registers the binding's ready hook (see
    /// [`MessagePort::set_ready_hook`](crate::MessagePort::set_ready_hook)).
    pub fn set_ready_hook(&self, hook: Option<ReadyHook>) {
        self.0.inbox.set_hook(hook);
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

    /// Polls until a receive would not find the queue empty, taking nothing (see
    /// [`MessagePort::poll_readable`](crate::MessagePort::poll_readable)).
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.endpoint.poll_readable(cx)
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

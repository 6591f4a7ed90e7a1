//! `MessageChannel` and `MessagePort` (spec sections (a)–(f)).

mod endpoint;
pub(crate) mod error;
pub(crate) mod inbox;
pub(crate) mod message;

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

pub use endpoint::Recv;
pub(crate) use endpoint::{End, Endpoint, PollRecv, Popped};
use error::{RecvError, RecvTimeoutError, TryRecvError};
pub(crate) use inbox::Inbox;
pub use inbox::{Limits, ReadyHook};
pub use message::{Message, MessageEvent};
use message::{Payload, PortTransfer, SideBuffers, encode_payload};

use crate::sync::{Arc, AtomicU8, MutexGuard, Ordering, lock};
use crate::{Buffer, DataCloneError, Value, wire};

/// A channel: two entangled ports (spec A1, A2). Whatever one port posts, the other
/// receives.
///
/// # Examples
///
/// ```
/// use channel_messaging::{MessageChannel, Value};
///
/// let channel = MessageChannel::new();
/// channel.port1().post_message(&Value::from("hello"), &[]).unwrap();
/// let event = channel.port2().recv().unwrap();
/// assert_eq!(event.data, Value::from("hello"));
/// ```
#[derive(Debug)]
pub struct MessageChannel {
    port1: MessagePort,
    port2: MessagePort,
}

impl Default for MessageChannel {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageChannel {
    /// Creates two new ports and entangles them.
    pub fn new() -> Self {
        let inbox1 = Arc::new(Inbox::new());
        let inbox2 = Arc::new(Inbox::new());
        let port1 = MessagePort::from_parts(Arc::clone(&inbox1), Some(Arc::clone(&inbox2)));
        let port2 = MessagePort::from_parts(inbox2, Some(inbox1));
        MessageChannel { port1, port2 }
    }

    /// The first port. Always the same port object, even after it was transferred away
    /// or closed (spec A3).
    pub fn port1(&self) -> &MessagePort {
        &self.port1
    }

    /// The second port (spec A3).
    pub fn port2(&self) -> &MessagePort {
        &self.port2
    }

    /// The two ports, `(port1, port2)`.
    pub fn into_ports(self) -> (MessagePort, MessagePort) {
        (self.port1, self.port2)
    }
}

const CLOSED: u8 = 1;
const DETACHED: u8 = 2;
const LINK_CUT: u8 = 4;

/// Aligned to two cache lines (as crossbeam pads, for the adjacent-line prefetcher): the
/// two ports of a channel are allocated one after the other, and without it the lock
/// word the receiver writes on every receive could share a line with the flags its
/// partner reads on every post. Whether they did depended on the heap's layout, so W1
/// moved by ±20% from one build or run to the next.
#[repr(align(128))]
pub(crate) struct PortState {
    /// The partner's inbox. It never changes: disentangling sets `LINK_CUT` instead,
    /// so a post reads one flag and pushes, with no reference counting and no lock.
    partner: Option<Arc<Inbox>>,
    endpoint: Endpoint,
    flags: AtomicU8,
}

impl PortState {
    /// The partner's inbox while entangled.
    #[inline]
    fn target(&self) -> Option<&Arc<Inbox>> {
        if self.flags.load(Ordering::Acquire) & LINK_CUT != 0 {
            None
        } else {
            self.partner.as_ref()
        }
    }

    /// Disentangles this side; returns the partner's inbox the first time only.
    fn cut_link(&self) -> Option<Arc<Inbox>> {
        let before = self.flags.fetch_or(LINK_CUT, Ordering::AcqRel);
        if before & LINK_CUT == 0 {
            self.partner.clone()
        } else {
            None
        }
    }
}

impl Drop for PortState {
    fn drop(&mut self) {
        // The last handle is gone: the Rust analogue of garbage collection (spec F6).
        let inbox = lock(&self.endpoint.consumer).inbox.take();
        if let Some(inbox) = inbox {
            let link = self.cut_link();
            disentangle(&inbox, link);
        }
    }
}

/// Closes a port that no handle can reach any more: its queue is dropped (closing the
/// ports inside it) and its partner is told.
pub(crate) fn disentangle(inbox: &Arc<Inbox>, link: Option<Arc<Inbox>>) {
    inbox.mark_dead();
    inbox.wake_space_waiters();
    drop(inbox.drain());
    if let Some(partner) = link {
        partner.push_partner_closed();
    }
}

/// One end of a channel (the web's `MessagePort`).
///
/// A `MessagePort` is a handle: clones refer to the same port, and the port closes when
/// the last handle is dropped (the analogue of garbage collection, spec F6). Ports are
/// `Send + Sync` and can be used from any thread.
///
/// # Receiving
///
/// Every way to receive reads the same FIFO queue:
///
/// - pull: [`recv`](Self::recv), [`recv_timeout`](Self::recv_timeout),
///   [`try_recv`](Self::try_recv) read the queue whether or not it is started, like
///   Node's `receiveMessageOnPort`;
/// - async: [`recv_async`](Self::recv_async), and the port is a [`Stream`];
/// - push: a binding registers a [`ReadyHook`] with [`set_ready_hook`](Self::set_ready_hook),
///   which fires only once the queue is enabled by [`start`](Self::start) (spec B2).
///
/// # Closing
///
/// [`close`](Self::close) is in-band: the partner receives everything posted before it,
/// then sees the close (`recv` returns [`RecvError::Closed`], the stream ends, the hook
/// fires).
///
/// # Transfer
///
/// A port listed in another port's `post_message` transfer list moves, with every
/// message queued or still arriving for it, to whoever receives that message. The
/// handle it was posted from is inert from then on (spec C9).
#[derive(Clone)]
pub struct MessagePort(pub(crate) Arc<PortState>);

impl fmt::Debug for MessagePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = self.0.flags.load(Ordering::Relaxed);
        f.debug_struct("MessagePort")
            .field("closed", &(flags & CLOSED != 0))
            .field("detached", &(flags & DETACHED != 0))
            .field("entangled", &self.is_entangled())
            .finish()
    }
}

impl PartialEq for MessagePort {
    /// Two handles are equal when they refer to the same port.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for MessagePort {}

/// What one port reports about its queue (see [`MessagePort::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PortStats {
    /// Messages queued and not received yet.
    pub queued_messages: usize,
    /// Their size: encoded bytes plus buffers.
    pub queued_bytes: usize,
    /// The port will not receive new messages: it was closed, its partner closed (even
    /// before this side has received the close), or it was transferred away. Messages
    /// already queued can still be received.
    pub closed: bool,
    /// The flow-control limits set on this port.
    pub limits: Limits,
}

/// A weak reference to a [`MessagePort`] ([`MessagePort::downgrade`]).
#[cfg(not(loom))]
#[derive(Clone, Debug)]
pub struct WeakPort(std::sync::Weak<PortState>);

#[cfg(not(loom))]
impl WeakPort {
    /// The port, if any `MessagePort` handle to it is still alive.
    pub fn upgrade(&self) -> Option<MessagePort> {
        self.0.upgrade().map(MessagePort)
    }
}

impl MessagePort {
    fn from_parts(inbox: Arc<Inbox>, link: Option<Arc<Inbox>>) -> Self {
        MessagePort(Arc::new(PortState {
            partner: link,
            endpoint: Endpoint::new(inbox),
            flags: AtomicU8::new(0),
        }))
    }

    /// A new port object for a port received in a message (spec C9, receiver side).
    pub(crate) fn adopt(mut t: PortTransfer) -> Self {
        match t.inbox.take() {
            Some(inbox) => Self::from_parts(inbox, t.link.take()),
            // Unreachable: a transfer always carries its inbox until adopted or dropped.
            None => {
                let inbox = Arc::new(Inbox::new());
                disentangle(&inbox, None);
                Self::from_parts(inbox, None)
            }
        }
    }

    fn flags(&self) -> u8 {
        self.0.flags.load(Ordering::Acquire)
    }

    // ---- posting ---------------------------------------------------------------------

    /// Posts `message` to the partner, transferring the ports in `transfer`
    /// (the web's `postMessage(message, transfer)`, spec C3).
    ///
    /// `Value::Port(i)` inside `message` refers to `transfer[i]`. The receiver gets the
    /// listed ports, in order, in [`MessageEvent::ports`]; each one moves with every
    /// message queued or still arriving for it, and the handles listed here become inert.
    /// Buffers inside `message` are shared, never copied: a [`Buffer`] is immutable, so
    /// sharing is indistinguishable from the copy structured clone asks for.
    ///
    /// Posting on a port that is closed, transferred away, or whose partner closed does
    /// nothing after the checks (spec C4). Listing the partner itself ("doomed", spec
    /// C11) is no error either: the message is dropped and the channel is lost.
    ///
    /// # Errors
    ///
    /// A [`DataCloneError`], with nothing detached or sent, when `transfer` lists this
    /// port itself (checked first), lists a port twice, lists a port that is closed or
    /// already transferred, or when `message` cannot be encoded (for example a
    /// `Value::Port(i)` with `i` beyond the transfer list: a port must be transferred,
    /// never copied, spec C15).
    ///
    /// # Examples
    ///
    /// ```
    /// use channel_messaging::{MessageChannel, Value};
    ///
    /// let (a, b) = MessageChannel::new().into_ports();
    /// let (mine, theirs) = MessageChannel::new().into_ports();
    /// a.post_message(&Value::Port(0), &[&theirs]).unwrap();
    ///
    /// let mut event = b.recv().unwrap();
    /// let theirs = event.ports.remove(0);
    /// mine.post_message(&Value::from(1), &[]).unwrap();
    /// assert_eq!(theirs.recv().unwrap().data, Value::from(1));
    /// ```
    pub fn post_message(
        &self,
        message: &Value,
        transfer: &[&MessagePort],
    ) -> Result<(), DataCloneError> {
        self.check_transfer(transfer)?;
        let count = transfer_count(transfer)?;
        let (payload, buffers) =
            encode_payload(|out, bufs| wire::encode_value(message, count, out, bufs))?;
        self.finish_post(payload, buffers, transfer)
    }

    /// As [`post_message`](Self::post_message), taking the message by value: the
    /// buffers in it are *transferred*. Each reaches the receiver as the only handle to
    /// its bytes, so [`Buffer::into_vec`] there gives back the very allocation the sender
    /// made, and no shared reference count is ever created. Use it to hand large
    /// buffers to another thread; errors are those of `post_message`, and on error the
    /// message is dropped.
    ///
    /// # Errors
    ///
    /// As [`post_message`](Self::post_message).
    ///
    /// # Examples
    ///
    /// ```
    /// use channel_messaging::{Buffer, MessageChannel, Value};
    ///
    /// let (a, b) = MessageChannel::new().into_ports();
    /// let frame = vec![7u8; 64 * 1024];
    /// let address = frame.as_ptr();
    /// a.post_message_owned(Value::Buffer(Buffer::from(frame)), &[]).unwrap();
    ///
    /// let Value::Buffer(got) = b.recv().unwrap().data else { unreachable!() };
    /// assert!(got.is_unique());
    /// let frame = got.into_vec(); // no copy: the sender's allocation
    /// assert_eq!(frame.as_ptr(), address);
    /// ```
    pub fn post_message_owned(
        &self,
        mut message: Value,
        transfer: &[&MessagePort],
    ) -> Result<(), DataCloneError> {
        self.check_transfer(transfer)?;
        let count = transfer_count(transfer)?;
        let (payload, buffers) =
            encode_payload(|out, bufs| wire::encode_value_moving(&mut message, count, out, bufs))?;
        drop(message);
        self.finish_post(payload, buffers, transfer)
    }

    /// Posts any `T: Serialize` (no transfer list). The receiver reads it with
    /// [`recv_as`](Self::recv_as), or as a [`Value`].
    ///
    /// # Errors
    ///
    /// A [`DataCloneError`] when `T`'s serialization fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use channel_messaging::MessageChannel;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Tick { seq: u64, name: String }
    ///
    /// let (a, b) = MessageChannel::new().into_ports();
    /// a.post(&Tick { seq: 1, name: "tick".into() }).unwrap();
    /// assert_eq!(b.recv_as::<Tick>().unwrap(), Tick { seq: 1, name: "tick".into() });
    /// ```
    pub fn post<T: serde::Serialize + ?Sized>(&self, message: &T) -> Result<(), DataCloneError> {
        let (payload, buffers) =
            encode_payload(|out, bufs| wire::encode_serde(message, out, bufs))?;
        self.finish_post(payload, buffers, &[])
    }

    /// Posts a message that is already encoded (docs/wire-format.md), for bindings that
    /// encode with [`wire::Writer`](crate::wire) and for raw CBOR from C. `buffers` is
    /// the out-of-band buffer table the bytes refer to; `transfer` as for
    /// [`post_message`](Self::post_message).
    ///
    /// The bytes are not validated here: a receiver that cannot decode them gets a
    /// `messageerror` ([`RecvError::MessageError`]).
    ///
    /// # Errors
    ///
    /// A [`DataCloneError`] for the transfer-list cases of `post_message`.
    pub fn post_encoded(
        &self,
        bytes: &[u8],
        buffers: Vec<Buffer>,
        transfer: &[&MessagePort],
    ) -> Result<(), DataCloneError> {
        self.check_transfer(transfer)?;
        self.finish_post(Payload::copy_from(bytes), buffers, transfer)
    }

    /// The checks that come before serialization (spec C3 step 1, C5 first pass): this
    /// port is not in `transfer`, and no port is listed twice. Bindings that encode with
    /// their own walker call this first, so that the errors come in the spec's order.
    ///
    /// # Errors
    ///
    /// A [`DataCloneError`] naming the failed rule.
    pub fn check_transfer(&self, transfer: &[&MessagePort]) -> Result<(), DataCloneError> {
        if transfer.contains(&self) {
            return Err(DataCloneError::new(
                "the source port cannot be in its own transfer list",
            ));
        }
        for (i, p) in transfer.iter().enumerate() {
            if transfer[..i].contains(p) {
                return Err(DataCloneError::new(format!(
                    "the port at transfer index {i} is listed twice"
                )));
            }
        }
        Ok(())
    }

    fn finish_post(
        &self,
        payload: Payload,
        buffers: impl Into<SideBuffers>,
        transfer: &[&MessagePort],
    ) -> Result<(), DataCloneError> {
        let ports = if transfer.is_empty() {
            Vec::new()
        } else {
            detach_all(transfer)?
        };
        let msg = message::Message::new(payload, buffers, ports);
        let refused = match self.0.target() {
            // Spec C11: the target itself is in the transfer list ("doomed"): no error,
            // the message and the channel are lost.
            Some(inbox) if !msg.carries_inbox(inbox) => inbox.push_message(msg).err(),
            _ => Some(msg),
        };
        // Dropping a refused message closes any ports it carried.
        drop(refused);
        Ok(())
    }

    /// Queues a copy of a broadcast message (sharing its payload) at the partner.
    #[cfg_attr(loom, allow(dead_code))] // used by PortCollection and BroadcastChannel
    pub(crate) fn deliver_shared(&self, msg: &Message) {
        if let Some(inbox) = self.0.target() {
            drop(inbox.push_message(msg.share()));
        }
    }

    // ---- receiving -------------------------------------------------------------------

    /// Takes the next message without blocking, still encoded (for bindings that decode
    /// into their own objects; most code wants [`try_recv`](Self::try_recv)).
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when nothing is queued, [`TryRecvError::Closed`] once the
    /// port has ended. Never `MessageError`: nothing is decoded here.
    pub fn try_recv_message(&self) -> Result<Message, TryRecvError> {
        match self.0.endpoint.try_pop() {
            Popped::Message(m) => Ok(m),
            Popped::Empty => Err(TryRecvError::Empty),
            Popped::Ended(End::PartnerClosed, first) => {
                if first {
                    // Disentangled: later posts from this side go nowhere (spec D3).
                    self.0.cut_link();
                }
                Err(TryRecvError::Closed)
            }
            Popped::Ended(End::SelfClosed, _) | Popped::Detached => Err(TryRecvError::Closed),
        }
    }

    /// Takes the next message without blocking and decodes it.
    ///
    /// Reads the queue whether or not it was started (like Node's
    /// `receiveMessageOnPort`).
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when nothing is queued; [`TryRecvError::Closed`] once the
    /// partner closed and every earlier message was received (or this port was closed or
    /// transferred away); [`TryRecvError::MessageError`] when the next message cannot be
    /// decoded; that message is consumed and the next call goes on normally (spec E1).
    pub fn try_recv(&self) -> Result<MessageEvent, TryRecvError> {
        self.try_recv_message()?
            .decode()
            .map_err(TryRecvError::MessageError)
    }

    /// Blocks until a message arrives, and decodes it. Spins briefly, then parks: no
    /// polling. The spin adapts per port between 4 and 32 µs: it lengthens when parks
    /// keep being cut short by the next message (a steady sender, where each park would
    /// cost a kernel wake-up and tens of microseconds of latency) and shrinks back when
    /// the port goes quiet. Past its first 4 µs the spin yields the CPU between checks,
    /// so it does not starve the sender when threads outnumber cores.
    ///
    /// # Errors
    ///
    /// [`RecvError::Closed`] once the port has ended; [`RecvError::MessageError`] for a
    /// message that cannot be decoded (not terminal: call again for the next one).
    pub fn recv(&self) -> Result<MessageEvent, RecvError> {
        self.recv_message()?
            .decode()
            .map_err(RecvError::MessageError)
    }

    /// Blocks for the next message, still encoded.
    ///
    /// # Errors
    ///
    /// [`RecvError::Closed`] once the port has ended.
    pub fn recv_message(&self) -> Result<Message, RecvError> {
        self.0.endpoint.recv_message(|| self.try_recv_message())
    }

    /// Blocks for at most `timeout` for the next message, and decodes it.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] when nothing arrived in time; otherwise as
    /// [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<MessageEvent, RecvTimeoutError> {
        self.recv_message_timeout(timeout)?
            .decode()
            .map_err(RecvTimeoutError::MessageError)
    }

    /// Blocks for the next message, still encoded, for at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout), never `MessageError`.
    pub fn recv_message_timeout(&self, timeout: Duration) -> Result<Message, RecvTimeoutError> {
        self.0
            .endpoint
            .recv_message_timeout(timeout, || self.try_recv_message())
    }

    /// Blocks for the next message and deserializes it as a `T`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Closed`] once the port has ended; [`RecvError::MessageError`] when
    /// the message is not a `T` (it is consumed; the next call goes on).
    pub fn recv_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, RecvError> {
        self.recv_message()?
            .deserialize()
            .map_err(RecvError::MessageError)
    }

    /// Polls for the next message, still encoded: the building block of a binding's own
    /// future. On `Pending`, the task's waker is registered and is woken by the next
    /// message or the close.
    ///
    /// # Errors
    ///
    /// `Ready(Err(TryRecvError::Closed))` once the port has ended; never `Empty` (that is
    /// `Pending`) and never `MessageError`.
    pub fn poll_recv_message(&self, cx: &mut Context<'_>) -> Poll<Result<Message, TryRecvError>> {
        self.0.endpoint.poll_pop(cx, || self.try_recv_message())
    }

    /// Polls until a receive would not find the queue empty (a message or the end is
    /// queued), without taking anything: the building block of a binding's receive that
    /// must stay cancel-safe where a future's result can be dropped unread (an asyncio
    /// task cancelled after its future completed). The binding waits for this, then takes
    /// the message with [`try_recv_message`](Self::try_recv_message) in the code that
    /// uses it. On `Pending`, the task's waker is registered and is woken by the next
    /// message or the close. Another receiver of the same port may take the message
    /// first: the receive then finds the queue empty and polls again.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.endpoint.poll_readable(cx)
    }

    /// The next message, asynchronously. The future is cancel-safe.
    ///
    /// # Examples
    ///
    /// ```
    /// use channel_messaging::{MessageChannel, Value};
    ///
    /// let (a, b) = MessageChannel::new().into_ports();
    /// a.post_message(&Value::from(5), &[]).unwrap();
    /// let event = futures::executor::block_on(b.recv_async()).unwrap();
    /// assert_eq!(event.data, Value::from(5));
    /// ```
    pub fn recv_async(&self) -> Recv<'_> {
        Recv { src: self }
    }

    // ---- the queue's state -----------------------------------------------------------

    /// Enables the port message queue (the web's `start()`, spec B2): from now on the
    /// ready hook fires when something arrives. Messages queued before are kept and
    /// delivered in order (spec B1, B8). Idempotent.
    pub fn start(&self) {
        if let Some(inbox) = self.0.endpoint.inbox() {
            inbox.enable();
        }
    }

    /// Whether the queue is enabled.
    pub fn is_started(&self) -> bool {
        self.0.endpoint.inbox().is_some_and(|i| i.is_enabled())
    }

    /// Registers (or with `None`, removes) the hook a binding uses to learn, on any
    /// thread, that this started port has something to read: a message or the close.
    ///
    /// Wake-ups are coalesced: after the hook fires it does not fire again until a
    /// receive on this port finds the queue empty (or ended). So a binding's loop is:
    /// on the hook, schedule a drain on your own thread; the drain calls
    /// [`try_recv_message`](Self::try_recv_message) until it returns `Empty` or `Closed`.
    /// A drain that stops early (a bounded batch) must schedule itself again.
    ///
    /// The hook runs on whichever thread made the port ready (usually a posting thread,
    /// or the caller of `start`/`set_ready_hook`), with no lock of this crate held. It
    /// must be quick and must not block. Setting a hook does not start the queue: call
    /// [`start`](Self::start) when your runtime's rules say the port is started.
    pub fn set_ready_hook(&self, hook: Option<ReadyHook>) {
        if let Some(inbox) = self.0.endpoint.inbox() {
            inbox.set_hook(hook);
        }
    }

    /// Registers (or with `None`, removes) a hook called once when the partner goes away:
    /// it closed, was dropped, or was lost in a message that was never delivered. Unlike
    /// the ready hook it does not wait for the queue: it fires whether or not this port
    /// is started, and before this side has received what the partner posted before it
    /// closed (that is still delivered; then receives report `Closed`). For runtimes that
    /// fire `close` on ports that were never started (Node). If the partner is already
    /// gone, the hook is called at once, on the caller's thread; otherwise on the thread
    /// that closed the partner, with no lock of this crate held. A transferred port starts
    /// without one.
    pub fn set_close_hook(&self, hook: Option<ReadyHook>) {
        if let Some(inbox) = self.0.endpoint.inbox() {
            inbox.set_close_hook(hook);
        }
    }

    // ---- closing ---------------------------------------------------------------------

    /// Closes the port (the web's `close()`, spec D1). Idempotent, never fails.
    ///
    /// The partner receives everything this port posted before, then sees the close.
    /// Messages already queued here can still be received; anything arriving later is
    /// dropped (DESIGN.md §7.2). A closed port cannot be transferred (spec D2).
    pub fn close(&self) {
        let (inbox, link) = {
            let c = lock(&self.0.endpoint.consumer);
            if self.flags() & (CLOSED | DETACHED) != 0 {
                return;
            }
            self.0.flags.fetch_or(CLOSED, Ordering::AcqRel);
            let inbox = if c.ended.is_none() {
                c.inbox.clone()
            } else {
                None
            };
            (inbox, self.0.cut_link())
        };
        if let Some(inbox) = inbox {
            inbox.push_self_closed();
        }
        if let Some(partner) = link {
            partner.push_partner_closed();
            // This port's own `ready()` waiters are registered there; it is ready now.
            partner.wake_space_waiters();
        }
    }

    /// Whether [`close`](Self::close) was called on this port.
    pub fn is_closed(&self) -> bool {
        self.flags() & CLOSED != 0
    }

    /// Whether this handle was transferred away (and is therefore inert).
    pub fn is_detached(&self) -> bool {
        self.flags() & DETACHED != 0
    }

    /// A reference to this port that does not keep it alive: when the last
    /// `MessagePort` handle goes, the port is closed as if garbage-collected (spec F6)
    /// whatever weak references remain. For caches and registries of ports.
    ///
    /// ```
    /// use channel_messaging::MessageChannel;
    ///
    /// let (a, b) = MessageChannel::new().into_ports();
    /// let weak = a.downgrade();
    /// assert!(weak.upgrade().is_some());
    /// drop(a);
    /// assert!(weak.upgrade().is_none());
    /// assert!(b.recv().is_err()); // the partner sees the close
    /// ```
    #[cfg(not(loom))]
    pub fn downgrade(&self) -> WeakPort {
        WeakPort(std::sync::Arc::downgrade(&self.0))
    }

    /// Whether the port still has a partner to post to (false once either side closed
    /// and this side has seen it, or once transferred away).
    pub fn is_entangled(&self) -> bool {
        self.0.target().is_some_and(|i| i.is_accepting())
    }

    // ---- flow control ----------------------------------------------------------------

    /// Sets flow-control limits on this port's queue (off by default, as in the spec).
    ///
    /// Limits never drop or refuse a message: posting always queues. They give the
    /// partner a pressure signal: its [`is_ready`](Self::is_ready) turns false and its
    /// [`ready`](Self::ready) waits while this queue is at or above a limit. Limits move
    /// with the port when it is transferred.
    pub fn set_limits(&self, limits: Limits) {
        if let Some(inbox) = self.0.endpoint.inbox() {
            inbox.set_limits(limits);
        }
    }

    /// Whether the partner's queue is below its limits, so posting now adds no pressure.
    /// True when the partner has no limits, and when there is no partner any more.
    pub fn is_ready(&self) -> bool {
        self.0
            .target()
            .is_none_or(|i| !i.is_accepting() || i.has_capacity())
    }

    /// Resolves once [`is_ready`](Self::is_ready) is true.
    ///
    /// # Examples
    ///
    /// ```
    /// use channel_messaging::{Limits, MessageChannel, Value};
    ///
    /// let (a, b) = MessageChannel::new().into_ports();
    /// b.set_limits(Limits { max_messages: Some(1), max_bytes: None });
    /// a.post_message(&Value::from(1), &[]).unwrap();
    /// assert!(!a.is_ready());
    /// b.try_recv().unwrap();
    /// futures::executor::block_on(a.ready());
    /// ```
    pub fn ready(&self) -> Ready<'_> {
        Ready { port: self }
    }

    /// Queue statistics of this port.
    pub fn stats(&self) -> PortStats {
        let c = lock(&self.0.endpoint.consumer);
        let Some(inbox) = &c.inbox else {
            return PortStats {
                closed: true,
                ..PortStats::default()
            };
        };
        let (queued_messages, queued_bytes) = inbox.queued();
        PortStats {
            queued_messages,
            queued_bytes,
            closed: c.ended.is_some()
                || !inbox.is_accepting()
                || self.flags() & (CLOSED | DETACHED) != 0
                || self
                    .0
                    .target()
                    .is_none_or(|partner| !partner.is_accepting()),
            limits: inbox.limits(),
        }
    }
}

#[cfg(not(loom))]
mod handles {
    use std::collections::HashMap;
    use std::sync::atomic::AtomicU64;
    use std::sync::{LazyLock, Mutex};

    use super::message::PortTransfer;
    use super::{MessagePort, detach_all};
    use crate::DataCloneError;
    use crate::sync::{Ordering, lock};

    /// Ports detached by `export_handle`, waiting for `import_handle`.
    static EXPORTED: LazyLock<Mutex<HashMap<u64, PortTransfer>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    static NEXT: AtomicU64 = AtomicU64::new(1);

    /// A per-process key mixed into every handle, so that numbers are not guessable
    /// from one another.
    static KEY: LazyLock<u64> = LazyLock::new(|| {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(0x636d_u64) | 1
    });

    fn mix(n: u64) -> u64 {
        // A bijection on u64 (odd multiplier, xor-shift), keyed per process.
        let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ *KEY;
        x ^= x >> 31;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^ (x >> 29)
    }

    impl MessagePort {
        /// Detaches this port, exactly as a transfer would, and parks it under a
        /// single-use number that any thread of this process can adopt with
        /// [`MessagePort::import_handle`]. This is how a port moves to code that shares no
        /// channel with this one yet (a Node `Worker`, a thread of another binding).
        /// Messages queued or arriving meanwhile wait for the new owner; the port stays
        /// open until it is imported. Never 0.
        ///
        /// # Errors
        ///
        /// A [`DataCloneError`] when the port is closed or already transferred.
        ///
        /// # Examples
        ///
        /// ```
        /// use channel_messaging::{MessageChannel, MessagePort, Value};
        ///
        /// let (a, b) = MessageChannel::new().into_ports();
        /// let handle = b.export_handle().unwrap();
        /// a.post_message(&Value::from(1), &[]).unwrap();
        /// let b = std::thread::spawn(move || MessagePort::import_handle(handle).unwrap())
        ///     .join()
        ///     .unwrap();
        /// assert_eq!(b.recv().unwrap().data, Value::from(1));
        /// assert!(MessagePort::import_handle(handle).is_none()); // single use
        /// ```
        pub fn export_handle(&self) -> Result<u64, DataCloneError> {
            let mut detached = detach_all(&[self])?;
            let Some(transfer) = detached.pop() else {
                return Err(DataCloneError::new("the port could not be detached"));
            };
            let handle = mix(NEXT.fetch_add(1, Ordering::Relaxed));
            lock(&EXPORTED).insert(handle, transfer);
            Ok(handle)
        }

        /// Adopts a port parked by [`export_handle`](Self::export_handle). The new port
        /// starts with its queue disabled, as any received port (spec B9).
        ///
        /// Returns `None` for a number that was never issued, or was already imported.
        pub fn import_handle(handle: u64) -> Option<MessagePort> {
            let transfer = lock(&EXPORTED).remove(&handle)?;
            Some(MessagePort::adopt(transfer))
        }
    }
}

/// The number of ports in a transfer list, as the wire format counts them.
fn transfer_count(transfer: &[&MessagePort]) -> Result<u32, DataCloneError> {
    u32::try_from(transfer.len()).map_err(|_| DataCloneError::new("the transfer list is too long"))
}

/// The second pass of spec C5, all-or-nothing: every listed port is locked (in address
/// order, so concurrent posts cannot deadlock), checked, and only then detached.
fn detach_all(transfer: &[&MessagePort]) -> Result<Vec<PortTransfer>, DataCloneError> {
    let mut order: Vec<usize> = (0..transfer.len()).collect();
    order.sort_by_key(|&i| Arc::as_ptr(&transfer[i].0) as usize);
    let mut guards: Vec<Option<MutexGuard<'_, endpoint::Consumer>>> =
        transfer.iter().map(|_| None).collect();
    for &i in &order {
        guards[i] = Some(lock(&transfer[i].0.endpoint.consumer));
    }
    for (i, (p, g)) in transfer.iter().zip(&guards).enumerate() {
        let flags = p.flags();
        let what = if flags & DETACHED != 0 || g.as_ref().is_none_or(|g| g.inbox.is_none()) {
            "was already transferred"
        } else if flags & CLOSED != 0 {
            "is closed"
        } else {
            continue;
        };
        return Err(DataCloneError::new(format!(
            "the port at transfer index {i} {what} and cannot be transferred"
        )));
    }
    let mut out = Vec::with_capacity(transfer.len());
    let mut garbage = Vec::new();
    let mut partner_gone = Vec::new();
    for (p, g) in transfer.iter().zip(guards.iter_mut()) {
        let Some(c) = g.as_mut() else { continue };
        p.0.flags.fetch_or(DETACHED, Ordering::AcqRel);
        let inbox = c.inbox.take();
        let mut link = p.0.cut_link();
        if let Some(inbox) = &inbox {
            inbox.reset_for_transfer();
            if c.ended == Some(End::PartnerClosed) {
                // Already disentangled: the new owner must see the close too.
                garbage.extend(inbox.drain());
                link = None;
                partner_gone.push(Arc::clone(inbox));
            }
        }
        out.push(PortTransfer { inbox, link });
    }
    // Nothing that can run user code (wakers, hooks, dropping messages) runs under the
    // consumer locks.
    drop(guards);
    drop(garbage);
    for inbox in partner_gone {
        inbox.push_partner_closed_always();
    }
    // Receivers blocked on the old handles wake, and find the port detached.
    for inbox in out.iter().filter_map(|t| t.inbox.as_ref()) {
        inbox.wake_all();
    }
    // Waiters in the old handles' `ready()` resolve: a detached port is ready.
    for link in out.iter().filter_map(|t| t.link.as_ref()) {
        link.wake_space_waiters();
    }
    Ok(out)
}

impl PollRecv for MessagePort {
    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<MessageEvent, TryRecvError>> {
        self.0.endpoint.poll_pop(cx, || self.try_recv())
    }
}

impl Stream for MessagePort {
    /// Each message, or its decode error (a `messageerror`, after which the stream goes
    /// on). The stream ends when the port does.
    type Item = Result<MessageEvent, crate::wire::DecodeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_recv(cx).map(|r| match r {
            Ok(ev) => Some(Ok(ev)),
            Err(TryRecvError::MessageError(e)) => Some(Err(e)),
            Err(TryRecvError::Empty | TryRecvError::Closed) => None,
        })
    }
}

/// The future of [`MessagePort::ready`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Ready<'a> {
    port: &'a MessagePort,
}

impl std::future::Future for Ready<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.port.is_ready() {
            return Poll::Ready(());
        }
        let Some(target) = self.port.0.target() else {
            return Poll::Ready(());
        };
        target.register_space_waker(cx.waker());
        if self.port.is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Compile-time proof that ports can be shared between threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MessagePort>();
    assert_send_sync::<MessageChannel>();
    assert_send_sync::<Message>();
    assert_send_sync::<MessageEvent>();
};

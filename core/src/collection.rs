//! [`PortCollection`]: a weak, ordered set of ports that can broadcast (spec H).

use std::cell::RefCell;
use std::fmt;
use std::sync::Weak;

use crate::port::message::{Message, encode_payload};
use crate::port::{MessagePort, PortState};
use crate::sync::{Arc, Mutex, lock};
use crate::{Buffer, DataCloneError, Value, wire};

/// A weak, insertion-ordered set of ports, with a broadcast.
///
/// This is the historical `PortCollection` of the web platform (spec H2–H5), with the
/// choices of spec H7: the collection holds no strong reference (a port whose last
/// handle is dropped leaves it), closed, transferred-away and disentangled ports leave
/// it by themselves, duplicates are ignored and iteration is in insertion order.
///
/// [`post_message`](Self::post_message) broadcasts: the message is encoded once and
/// every member's queue shares the same payload. It has clone semantics only: a transfer
/// list would send one object to many places, so it is a `DataCloneError`.
///
/// # Examples
///
/// ```
/// use channel_messaging::{MessageChannel, PortCollection, Value};
///
/// let workers = PortCollection::new();
/// let mut inboxes = Vec::new();
/// for _ in 0..3 {
///     let (mine, theirs) = MessageChannel::new().into_ports();
///     workers.add(&mine);
///     inboxes.push((mine, theirs));
/// }
/// assert_eq!(workers.post_message(&Value::from("stop")).unwrap(), 3);
/// for (_, theirs) in &inboxes {
///     assert_eq!(theirs.recv().unwrap().data, Value::from("stop"));
/// }
/// ```
#[derive(Default)]
pub struct PortCollection {
    ports: Mutex<Vec<Weak<PortState>>>,
}

impl fmt::Debug for PortCollection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortCollection")
            .field("len", &self.len())
            .finish()
    }
}

fn is_member(p: &MessagePort) -> bool {
    !p.is_closed() && !p.is_detached() && p.is_entangled()
}

impl PortCollection {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `port` at the end; does nothing when it is already present (spec H4), or when
    /// it is closed, transferred away or disentangled.
    pub fn add(&self, port: &MessagePort) {
        if !is_member(port) {
            return;
        }
        let mut ports = lock(&self.ports);
        let ptr = Arc::as_ptr(&port.0);
        if !ports.iter().any(|w| w.as_ptr() == ptr) {
            ports.push(Arc::downgrade(&port.0));
        }
    }

    /// Removes `port`; does nothing when it is absent.
    pub fn remove(&self, port: &MessagePort) {
        let ptr = Arc::as_ptr(&port.0);
        lock(&self.ports).retain(|w| w.as_ptr() != ptr);
    }

    /// Whether `port` is a member.
    pub fn contains(&self, port: &MessagePort) -> bool {
        is_member(port) && {
            let ptr = Arc::as_ptr(&port.0);
            lock(&self.ports).iter().any(|w| w.as_ptr() == ptr)
        }
    }

    /// Empties the collection.
    pub fn clear(&self) {
        lock(&self.ports).clear();
    }

    /// The live members, oldest first. Members that went away are forgotten.
    pub fn ports(&self) -> Vec<MessagePort> {
        let mut live = Vec::new();
        self.live_into(&mut live);
        live
    }

    /// Appends the live members to `live`, forgetting the others.
    fn live_into(&self, live: &mut Vec<MessagePort>) {
        // A port that left (closed, transferred) may lose its last handle here, when
        // another thread drops its own meanwhile: its close (which can run hooks) happens
        // after the lock is released.
        let mut left = Vec::new();
        {
            let mut ports = lock(&self.ports);
            live.reserve(ports.len());
            ports.retain(|w| match w.upgrade() {
                Some(state) => {
                    let port = MessagePort(state);
                    let keep = is_member(&port);
                    if keep {
                        live.push(port);
                    } else {
                        left.push(port);
                    }
                    keep
                }
                None => false,
            });
        }
        drop(left);
    }

    /// The number of live members.
    pub fn len(&self) -> usize {
        self.ports().len()
    }

    /// Whether there is no live member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with each live member, oldest first (the web's `iterate`). `f` may
    /// add or remove members; it sees the members as they were when the call began.
    pub fn iterate(&self, mut f: impl FnMut(&MessagePort)) {
        for port in self.ports() {
            f(&port);
        }
    }

    /// Posts `message` to every member, encoding it once. Returns how many ports it was
    /// posted to.
    ///
    /// # Errors
    ///
    /// A [`DataCloneError`] when `message` cannot be encoded (a `Value::Port` included:
    /// a broadcast cannot transfer).
    pub fn post_message(&self, message: &Value) -> Result<usize, DataCloneError> {
        let (payload, buffers) =
            encode_payload(|out, bufs| wire::encode_value(message, 0, out, bufs))?;
        Ok(self.deliver(&Message::new(payload, buffers, Vec::new())))
    }

    /// Posts any `T: Serialize` to every member, encoding it once.
    ///
    /// # Errors
    ///
    /// A [`DataCloneError`] when serialization fails.
    pub fn post<T: serde::Serialize + ?Sized>(&self, message: &T) -> Result<usize, DataCloneError> {
        let (payload, buffers) =
            encode_payload(|out, bufs| wire::encode_serde(message, out, bufs))?;
        Ok(self.deliver(&Message::new(payload, buffers, Vec::new())))
    }

    /// Posts an already encoded message to every member (for bindings).
    ///
    /// # Errors
    ///
    /// A [`DataCloneError`] when `transfer` is not empty: one object cannot be
    /// transferred to many ports (spec H7).
    pub fn post_encoded(
        &self,
        bytes: &[u8],
        buffers: Vec<Buffer>,
        transfer: &[&MessagePort],
    ) -> Result<usize, DataCloneError> {
        if !transfer.is_empty() {
            return Err(DataCloneError::new(
                "a PortCollection broadcast cannot transfer: one object cannot go to many ports",
            ));
        }
        let payload = crate::port::message::Payload::copy_from(bytes);
        Ok(self.deliver(&Message::new(payload, buffers, Vec::new())))
    }

    /// Queues `msg` at every member's partner. The members are gathered under the lock
    /// and served after it is released (a ready hook may run while delivering), into a
    /// per-thread buffer so that a broadcast allocates nothing.
    fn deliver(&self, msg: &Message) -> usize {
        thread_local! {
            static MEMBERS: RefCell<Vec<MessagePort>> = const { RefCell::new(Vec::new()) };
        }
        let serve = |members: &mut Vec<MessagePort>| {
            self.live_into(members);
            for port in members.iter() {
                port.deliver_shared(msg);
            }
            let n = members.len();
            members.clear();
            n
        };
        // A hook that broadcasts from inside a broadcast finds the buffer busy.
        MEMBERS
            .try_with(|cell| cell.try_borrow_mut().ok().map(|mut m| serve(&mut m)))
            .ok()
            .flatten()
            .unwrap_or_else(|| serve(&mut Vec::new()))
    }
}

//! The receiving side shared by [`MessagePort`](crate::MessagePort) and
//! [`BroadcastChannel`](crate::BroadcastChannel): every way to receive, over one queue.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::error::{RecvError, RecvTimeoutError, TryRecvError};
use super::inbox::Inbox;
use super::message::{Envelope, Message, MessageEvent};
use crate::sync::{Arc, Mutex, MutexGuard, lock};

/// How many times a blocked receive checks the queue, one spin-loop hint apart, before
/// it yields; and how many times it yields before it parks.
#[cfg(not(loom))]
const SPIN_CHECKS: u32 = 256;
#[cfg(not(loom))]
const YIELDS: u32 = 4;

/// How a port's queue ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// This side called `close()` (or was dropped).
    SelfClosed,
    /// The partner closed or went away.
    PartnerClosed,
}

pub(crate) struct Consumer {
    /// `None` once the port was transferred away.
    pub(crate) inbox: Option<Arc<Inbox>>,
    /// `Some` once the queue's close marker has been received.
    pub(crate) ended: Option<End>,
}

/// One pop, as seen by the endpoint's owner.
pub(crate) enum Popped {
    Message(Message),
    Empty,
    /// The queue has ended; `true` the first time this endpoint sees it.
    Ended(End, bool),
    Detached,
}

pub(crate) struct Endpoint {
    pub(crate) consumer: Mutex<Consumer>,
}

impl Endpoint {
    pub(crate) fn new(inbox: Arc<Inbox>) -> Self {
        Endpoint {
            consumer: Mutex::new(Consumer {
                inbox: Some(inbox),
                ended: None,
            }),
        }
    }

    /// The inbox, while this endpoint owns one.
    pub(crate) fn inbox(&self) -> Option<Arc<Inbox>> {
        lock(&self.consumer).inbox.clone()
    }

    /// Pops one envelope. Nothing that can run user code (dropping messages, firing the
    /// hook) happens while the consumer lock is held.
    #[inline]
    pub(crate) fn try_pop(&self) -> Popped {
        let c = lock(&self.consumer);
        if c.ended.is_none()
            && let Some(inbox) = &c.inbox
        {
            match inbox.pop() {
                Some(Envelope::Message(m)) => {
                    if inbox.space_wake_due() {
                        let inbox = Arc::clone(inbox);
                        drop(c);
                        inbox.wake_space_waiters();
                    }
                    return Popped::Message(m);
                }
                None if !inbox.hook_needs_rearm() => return Popped::Empty,
                other => return Self::try_pop_slow(c, other),
            }
        }
        Self::try_pop_slow(c, None)
    }

    /// Everything but "a message" and "empty with nothing to re-arm": the end of the
    /// queue, a detached port, re-arming the hook.
    #[cold]
    fn try_pop_slow(mut guard: MutexGuard<'_, Consumer>, popped: Option<Envelope>) -> Popped {
        let c = &mut *guard;
        let Some(inbox) = c.inbox.clone() else {
            return Popped::Detached;
        };
        let (result, garbage) = match (c.ended, popped) {
            (Some(end), _) => (Popped::Ended(end, false), inbox.drain()),
            (None, Some(Envelope::Message(m))) => return Popped::Message(m),
            (None, Some(Envelope::PartnerClosed)) => {
                c.ended = Some(End::PartnerClosed);
                inbox.stop_accepting();
                (Popped::Ended(End::PartnerClosed, true), inbox.drain())
            }
            (None, Some(Envelope::SelfClosed)) => {
                c.ended = Some(End::SelfClosed);
                (Popped::Ended(End::SelfClosed, true), inbox.drain())
            }
            (None, None) => (Popped::Empty, Vec::new()),
        };
        // Nothing that can run user code (dropping messages, which closes the ports they
        // carry; firing the hook) happens while the consumer lock is held.
        drop(guard);
        drop(garbage);
        match result {
            Popped::Empty => inbox.rearm_hook(),
            Popped::Ended(_, true) => inbox.wake_space_waiters(),
            _ => {}
        }
        result
    }

    /// Blocks until a pop gives something other than `Empty`, or `deadline` passes:
    /// spins briefly, then parks until a push wakes it. `pop` is the owner's `try_pop`
    /// (which also applies the owner's side effects, such as cutting a port's link).
    pub(crate) fn wait<T>(
        &self,
        deadline: Option<Instant>,
        mut pop: impl FnMut() -> Result<T, TryRecvError>,
    ) -> Result<T, RecvTimeoutError> {
        #[cfg(not(loom))]
        let mut spun = false;
        let mut watched: Option<Arc<Inbox>> = None;
        loop {
            match pop() {
                Ok(v) => return Ok(v),
                Err(TryRecvError::Closed) => return Err(RecvTimeoutError::Closed),
                Err(TryRecvError::MessageError(e)) => {
                    return Err(RecvTimeoutError::MessageError(e));
                }
                Err(TryRecvError::Empty) => {}
            }
            if watched.is_none() {
                watched = self.inbox();
            }
            let Some(inbox) = &watched else {
                return Err(RecvTimeoutError::Closed);
            };
            // Spin on the queue itself (no lock) until something arrives or the backoff
            // is spent; `pop` then takes it, or reports the port detached or ended.
            #[cfg(not(loom))]
            if !spun {
                spun = true;
                // First a tight spin (a reply often comes within a microsecond), then a
                // few yields, then park.
                for _ in 0..SPIN_CHECKS {
                    if !inbox.is_empty() {
                        break;
                    }
                    std::hint::spin_loop();
                }
                for _ in 0..YIELDS {
                    if !inbox.is_empty() {
                        break;
                    }
                    std::thread::yield_now();
                }
                if !inbox.is_empty() {
                    continue;
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RecvTimeoutError::Timeout);
            }
            inbox.register_sleeper();
            if inbox.is_empty() && self.owns(inbox) {
                crate::sync::park(deadline);
            }
            if deadline.is_some() {
                inbox.unregister_sleeper();
            }
        }
    }

    /// Blocks for the next message (see `wait`), reporting a decode error never.
    pub(crate) fn recv_message(
        &self,
        pop: impl FnMut() -> Result<Message, TryRecvError>,
    ) -> Result<Message, RecvError> {
        self.wait(None, pop).map_err(|e| match e {
            RecvTimeoutError::MessageError(d) => RecvError::MessageError(d),
            RecvTimeoutError::Timeout | RecvTimeoutError::Closed => RecvError::Closed,
        })
    }

    /// Blocks for at most `timeout` for the next message.
    pub(crate) fn recv_message_timeout(
        &self,
        timeout: Duration,
        pop: impl FnMut() -> Result<Message, TryRecvError>,
    ) -> Result<Message, RecvTimeoutError> {
        self.wait(Instant::now().checked_add(timeout), pop)
    }

    fn owns(&self, inbox: &Arc<Inbox>) -> bool {
        lock(&self.consumer)
            .inbox
            .as_ref()
            .is_some_and(|i| Arc::ptr_eq(i, inbox))
    }

    /// One poll of an async receive: `pop`, and when it is empty, register the task's
    /// waker and pop once more (so a push between the two is never missed).
    pub(crate) fn poll_pop<T>(
        &self,
        cx: &mut Context<'_>,
        mut pop: impl FnMut() -> Result<T, TryRecvError>,
    ) -> Poll<Result<T, TryRecvError>> {
        match pop() {
            Err(TryRecvError::Empty) => {}
            other => return Poll::Ready(other),
        }
        let Some(inbox) = self.inbox() else {
            return Poll::Ready(Err(TryRecvError::Closed));
        };
        inbox.register_waker(cx.waker());
        match pop() {
            Err(TryRecvError::Empty) => Poll::Pending,
            other => Poll::Ready(other),
        }
    }
}

/// Something that can be polled for its next message (a port or a broadcast channel).
pub(crate) trait PollRecv: Sync {
    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<MessageEvent, TryRecvError>>;
}

/// The future of `recv_async`: resolves with the next message.
///
/// Cancel safety: dropping it before it resolves loses nothing; the message stays
/// queued for the next receive.
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a> {
    pub(crate) src: &'a dyn PollRecv,
}

impl std::fmt::Debug for Recv<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recv")
    }
}

impl Future for Recv<'_> {
    type Output = Result<MessageEvent, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.src.poll_recv(cx).map(|r| {
            r.map_err(|e| match e {
                TryRecvError::MessageError(e) => RecvError::MessageError(e),
                TryRecvError::Empty | TryRecvError::Closed => RecvError::Closed,
            })
        })
    }
}

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

/// A blocked receive first checks the queue `FAST_CHECKS` times, one spin-loop hint
/// apart (a few microseconds, no clock read: a reply often comes within one); then, for
/// an adaptive time of up to `SPIN_MAX` nanoseconds, it keeps checking with the CPU
/// offered between checks; then it yields a few times and parks.
///
/// Parking costs a kernel wake-up on the sender's side and 5–80 µs of wake latency on
/// the receiver's, during which a steady sender queues up messages (and the buffers
/// they carry stay allocated). The adaptive part therefore grows (doubling, from
/// `SPIN_STEP`) when a park was cut short by a message, one that arrived within
/// `SPIN_GROW_WINDOW`, or woke to several queued messages (the sender kept posting while
/// this thread slept); it shrinks when messages come within the first checks or parks
/// are long and end with one message: a port fed every few microseconds stops parking,
/// an idle one does not spin past the first checks.
#[cfg(not(loom))]
const FAST_CHECKS: u32 = 256;
#[cfg(not(loom))]
const SPIN_STEP: u32 = 4_000;
#[cfg(not(loom))]
const SPIN_MAX: u32 = 32_000;
#[cfg(not(loom))]
const SPIN_GROW_WINDOW: Duration = Duration::from_micros(50);
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
    /// The adaptive part of a blocked receive's spin, in nanoseconds (see `FAST_CHECKS`).
    #[cfg(not(loom))]
    spin_ns: std::sync::atomic::AtomicU32,
}

impl Endpoint {
    pub(crate) fn new(inbox: Arc<Inbox>) -> Self {
        Endpoint {
            consumer: Mutex::new(Consumer {
                inbox: Some(inbox),
                ended: None,
            }),
            #[cfg(not(loom))]
            spin_ns: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Spins (then yields) until `inbox` is non-empty or the budget is spent; returns
    /// whether something arrived.
    #[cfg(not(loom))]
    fn spin(&self, inbox: &Inbox) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        for _ in 0..FAST_CHECKS {
            if !inbox.is_empty() {
                // Arrived within the first checks: the adaptive part was not needed.
                let budget = self.spin_ns.load(Relaxed);
                if budget > 0 {
                    self.spin_ns.store(budget - budget.div_ceil(16), Relaxed);
                }
                return true;
            }
            std::hint::spin_loop();
        }
        let budget = u128::from(self.spin_ns.load(Relaxed));
        if budget > 0 {
            let start = Instant::now();
            loop {
                for _ in 0..8 {
                    if !inbox.is_empty() {
                        return true;
                    }
                    std::hint::spin_loop();
                }
                if start.elapsed().as_nanos() >= budget {
                    break;
                }
                // When threads outnumber cores, the sender may be waiting for this very
                // CPU: offer it between checks.
                std::thread::yield_now();
            }
        }
        for _ in 0..YIELDS {
            if !inbox.is_empty() {
                return true;
            }
            std::thread::yield_now();
        }
        !inbox.is_empty()
    }

    /// Adapts the spin budget after a park that lasted `slept` and woke to `queued`
    /// messages: a message that came soon after the spin gave up, or a sender that kept
    /// posting while this thread slept, would have been met by a longer spin.
    #[cfg(not(loom))]
    fn parked(&self, slept: Duration, queued: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let budget = self.spin_ns.load(Relaxed);
        let next = if slept <= SPIN_GROW_WINDOW || queued >= 2 {
            budget.saturating_mul(2).clamp(SPIN_STEP, SPIN_MAX)
        } else {
            budget / 2
        };
        if next != budget {
            self.spin_ns.store(next, Relaxed);
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
            Popped::Ended(_, true) => {
                // Other receivers of this port (its clones, on other threads) may be
                // blocked on the queue that just ended: they wake and see the end.
                inbox.wake_receivers();
                inbox.wake_space_waiters();
            }
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
                // While the queue is empty, clear freed buffer blocks for the next
                // zeroed allocation (pool::scrub; one load when there are none).
                crate::pool::scrub(|| !inbox.is_empty());
                // First spin (a reply often comes within microseconds), then park.
                if self.spin(inbox) {
                    continue;
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RecvTimeoutError::Timeout);
            }
            inbox.register_sleeper();
            if inbox.is_empty() && self.owns(inbox) {
                #[cfg(not(loom))]
                let parked_at = Instant::now();
                crate::sync::park(deadline);
                #[cfg(not(loom))]
                if !inbox.is_empty() {
                    self.parked(parked_at.elapsed(), inbox.queued().0);
                }
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

    /// Whether this endpoint still receives from `inbox`: it owns it and has not seen
    /// its end (another receiver of the same port may have taken the end marker, leaving
    /// the queue empty for good: a wait must not park on it).
    fn owns(&self, inbox: &Arc<Inbox>) -> bool {
        let c = lock(&self.consumer);
        c.ended.is_none() && c.inbox.as_ref().is_some_and(|i| Arc::ptr_eq(i, inbox))
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

    /// Whether a pop would not find the queue empty: something is queued (a message or
    /// the end), or the endpoint has ended or was transferred away.
    fn readable(&self) -> bool {
        let c = lock(&self.consumer);
        match (&c.ended, &c.inbox) {
            (None, Some(inbox)) => !inbox.is_empty(),
            _ => true,
        }
    }

    /// Ready once a pop would not find the queue empty (see `readable`); registers the
    /// task's waker otherwise, then looks again (so a push between the two is never
    /// missed). Takes nothing.
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.readable() {
            return Poll::Ready(());
        }
        let Some(inbox) = self.inbox() else {
            return Poll::Ready(());
        };
        inbox.register_waker(cx.waker());
        if self.readable() {
            Poll::Ready(())
        } else {
            Poll::Pending
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

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use super::{Endpoint, SPIN_GROW_WINDOW, SPIN_MAX, SPIN_STEP};
    use crate::port::inbox::Inbox;
    use crate::sync::Arc;

    fn budget(e: &Endpoint) -> u32 {
        e.spin_ns.load(Relaxed)
    }

    #[test]
    fn the_spin_budget_grows_after_short_parks_and_decays_after_long_ones() {
        let e = Endpoint::new(Arc::new(Inbox::new()));
        assert_eq!(budget(&e), 0, "an idle port spins only its first checks");
        e.parked(SPIN_GROW_WINDOW / 2, 1);
        assert_eq!(budget(&e), SPIN_STEP, "a message came soon after parking");
        e.parked(Duration::from_millis(1), 5);
        assert_eq!(
            budget(&e),
            SPIN_STEP * 2,
            "a long park that woke to a backlog doubles it"
        );
        for _ in 0..10 {
            e.parked(Duration::from_micros(1), 1);
        }
        assert_eq!(budget(&e), SPIN_MAX, "bounded above");
        e.parked(Duration::from_millis(5), 1);
        assert_eq!(budget(&e), SPIN_MAX / 2, "a long park halves it");
        for _ in 0..40 {
            e.parked(Duration::from_secs(1), 1);
        }
        assert_eq!(budget(&e), 0, "down to no adaptive spin");
    }

    #[test]
    fn a_spin_ends_with_what_is_already_queued() {
        let inbox = Arc::new(Inbox::new());
        let e = Endpoint::new(Arc::clone(&inbox));
        e.spin_ns.store(SPIN_STEP, Relaxed);
        assert!(!e.spin(&inbox), "nothing queued: the spin gives up");
        e.spin_ns.store(SPIN_MAX, Relaxed);
        let message = crate::port::message::Message::new(
            crate::port::message::Payload::copy_from(&[1]),
            Vec::new(),
            Vec::new(),
        );
        assert!(inbox.push_message(message).is_ok(), "the inbox accepts");
        assert!(e.spin(&inbox));
        assert!(
            budget(&e) < SPIN_MAX,
            "found at once: the adaptive part shrinks"
        );
    }
}

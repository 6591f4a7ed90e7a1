//! The inbox: a port's message queue and everything that waits on it.
//!
//! One inbox belongs to one port at a time and moves with the port when the port is
//! transferred (spec C9). Any number of threads push into it through the partner's link;
//! one consumer at a time pops (the owning port's endpoint, under its consumer lock).
//!
//! Wake-ups: a pusher publishes its envelope, issues a `SeqCst` fence, then reads
//! `interest`. A waiter (a parked thread, an async task, the binding's ready hook) sets its
//! bit in `interest` under the `notify` lock, issues a `SeqCst` fence, then re-checks the
//! queue. One of the two always sees the other, so no wake-up is lost, and the hot path of
//! a post with nobody waiting is a fence and one load.

use std::fmt;
use std::task::Waker;

use crossbeam_utils::CachePadded;

use super::message::{Envelope, Message};
use crate::sync::{
    AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Mutex, Ordering, Queue, Unparker, fence, lock,
};

/// The hook a binding registers to learn that a started port has something to read
/// (see [`MessagePort::set_ready_hook`](crate::MessagePort::set_ready_hook)).
pub type ReadyHook = std::sync::Arc<dyn Fn() + Send + Sync>;

const SLEEPERS: u8 = 1;
const WAKERS: u8 = 2;
const HOOK: u8 = 4;

#[derive(Default)]
struct Notify {
    sleepers: Vec<Unparker>,
    wakers: Vec<Waker>,
    hook: Option<ReadyHook>,
    /// The hook may fire on the next push (it is set, the queue is enabled, and it has
    /// not fired since the consumer last found the queue empty).
    hook_armed: bool,
    /// Called once when the partner goes away (not in-band; see `set_close_hook`).
    close_hook: Option<ReadyHook>,
    /// The partner went away (its close marker is queued or was received).
    partner_gone: bool,
}

/// Running totals of messages and bytes, packed into one word so that a post costs one
/// atomic add: `messages << BYTES_BITS | bytes`. The totals wrap; their difference
/// (sent minus received) is exact as long as fewer than 2^28 messages and 2^36 bytes
/// (64 GiB) are queued at once, since the packing is linear.
const BYTES_BITS: u32 = 36;
const BYTES_MASK: u64 = (1 << BYTES_BITS) - 1;

#[inline]
fn packed(bytes: usize) -> u64 {
    (1 << BYTES_BITS) | (bytes as u64 & BYTES_MASK)
}

/// Optional limits on what may queue in one port (flow control, off by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Above this many queued messages the port's partner sees pressure.
    pub max_messages: Option<usize>,
    /// Above this many queued bytes (encoded payload plus buffers) the port's partner
    /// sees pressure.
    pub max_bytes: Option<usize>,
}

pub(crate) struct Inbox {
    queue: Queue<Envelope>,
    /// Which kinds of waiter are registered (`SLEEPERS | WAKERS | HOOK`).
    interest: AtomicU8,
    /// Cleared when the owning port closes or goes away: later posts are dropped.
    accepting: AtomicBool,
    /// Set when no consumer will ever take from the queue again (the port was dropped,
    /// the channel closed): a post that got past `accepting` before it was cleared
    /// drops what it queued (see `push_message`).
    dead: AtomicBool,
    /// The port message queue is enabled (spec B2): the ready hook may fire.
    enabled: AtomicBool,
    /// The hook fired and has not been re-armed yet (read by the consumer's fast path).
    hook_fired: AtomicBool,
    notify: Mutex<Notify>,
    sent: CachePadded<AtomicU64>,
    received: CachePadded<AtomicU64>,
    max_messages: AtomicUsize,
    max_bytes: AtomicUsize,
    limited: AtomicBool,
    space_interest: AtomicBool,
    space_wakers: Mutex<Vec<Waker>>,
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (messages, bytes) = self.queued();
        f.debug_struct("Inbox")
            .field("queued_messages", &messages)
            .field("queued_bytes", &bytes)
            .field("accepting", &self.accepting.load(Ordering::Relaxed))
            .field("enabled", &self.enabled.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Inbox {
    pub(crate) fn new() -> Self {
        Inbox {
            queue: Queue::new(),
            interest: AtomicU8::new(0),
            accepting: AtomicBool::new(true),
            dead: AtomicBool::new(false),
            enabled: AtomicBool::new(false),
            hook_fired: AtomicBool::new(false),
            notify: Mutex::new(Notify::default()),
            sent: CachePadded::new(AtomicU64::new(0)),
            received: CachePadded::new(AtomicU64::new(0)),
            max_messages: AtomicUsize::new(usize::MAX),
            max_bytes: AtomicUsize::new(usize::MAX),
            limited: AtomicBool::new(false),
            space_interest: AtomicBool::new(false),
            space_wakers: Mutex::new(Vec::new()),
        }
    }

    // ---- producers -------------------------------------------------------------------

    /// Queues `msg`, or gives it back when the owning port is closed or gone (the caller
    /// drops it outside any lock, which closes the ports it carries).
    #[inline]
    pub(crate) fn push_message(&self, msg: Message) -> Result<(), Message> {
        if !self.accepting.load(Ordering::Acquire) {
            return Err(msg);
        }
        self.sent
            .fetch_add(packed(msg.byte_size()), Ordering::Relaxed);
        self.queue.push(Envelope::Message(msg));
        self.wake_consumer();
        // (after wake_consumer's SeqCst fence) The consumer went for good between the
        // check above and the push, and drained the queue as it went: this message may
        // have missed that drain, and would sit here, with the ports it carries, for as
        // long as a sender holds the inbox. The pusher drops it (no lock is held here).
        if self.dead.load(Ordering::SeqCst) {
            self.discard();
        }
        Ok(())
    }

    /// Empties a dead queue, from any thread (its counters no longer matter).
    fn discard(&self) {
        while self.queue.pop().is_some() {}
    }

    /// Marks the queue as never to be read again (before the final drain; see `dead`).
    pub(crate) fn mark_dead(&self) {
        self.stop_accepting();
        self.dead.store(true, Ordering::SeqCst);
    }

    /// Queues the partner's close marker (in-band: behind everything it sent before).
    pub(crate) fn push_partner_closed(&self) {
        if self.accepting.load(Ordering::Acquire) {
            self.queue.push(Envelope::PartnerClosed);
            self.wake_consumer();
            self.partner_went_away();
        }
    }

    /// Records that the partner went away and fires the close hook, once.
    fn partner_went_away(&self) {
        let hook = {
            let mut n = lock(&self.notify);
            n.partner_gone = true;
            n.close_hook.take()
        };
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Sets the hook called once when the partner goes away; at once when it already has.
    pub(crate) fn set_close_hook(&self, hook: Option<ReadyHook>) {
        let now = {
            let mut n = lock(&self.notify);
            if n.partner_gone {
                n.close_hook = None;
                hook
            } else {
                n.close_hook = hook;
                None
            }
        };
        if let Some(hook) = now {
            hook();
        }
    }

    /// Queues a partner-closed marker even though the inbox no longer accepts messages:
    /// a port that was already disentangled, moving to a new owner.
    pub(crate) fn push_partner_closed_always(&self) {
        self.queue.push(Envelope::PartnerClosed);
        self.wake_consumer();
        self.partner_went_away();
    }

    /// Queues the owner's own close marker and stops accepting messages: what is queued
    /// now is still received, then the port ends (DESIGN.md §7.2).
    pub(crate) fn push_self_closed(&self) {
        self.accepting.store(false, Ordering::Release);
        self.queue.push(Envelope::SelfClosed);
        self.wake_consumer();
        // Posts to this port are dropped from now on: waiting senders are ready.
        self.wake_space_waiters();
    }

    pub(crate) fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
    }

    pub(crate) fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    #[inline]
    fn wake_consumer(&self) {
        fence(Ordering::SeqCst);
        if self.interest.load(Ordering::Relaxed) != 0 {
            self.wake_slow();
        }
    }

    #[cold]
    fn wake_slow(&self) {
        self.wake(true);
    }

    /// Wakes the blocked receivers and async waiters and, `with_hook`, fires the ready
    /// hook if it is armed.
    fn wake(&self, with_hook: bool) {
        let (sleepers, wakers, hook) = {
            let mut n = lock(&self.notify);
            let hook = if with_hook && n.hook_armed {
                n.hook_armed = false;
                self.hook_fired.store(true, Ordering::Relaxed);
                n.hook.clone()
            } else {
                None
            };
            // (without the hook, its interest stays)
            let kept = if with_hook { 0 } else { HOOK };
            self.interest.fetch_and(kept, Ordering::SeqCst);
            (
                std::mem::take(&mut n.sleepers),
                std::mem::take(&mut n.wakers),
                hook,
            )
        };
        for t in sleepers {
            t.unpark();
        }
        for w in wakers {
            w.wake();
        }
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Wakes every waiter whatever the queue holds (after a transfer or a close, so that
    /// blocked receivers re-check their port).
    pub(crate) fn wake_all(&self) {
        self.wake_slow();
    }

    /// Wakes the blocked receivers and async waiters, not the ready hook: a receiver of
    /// the same port has seen its end, which the others then see too.
    pub(crate) fn wake_receivers(&self) {
        self.wake(false);
    }

    // ---- the consumer ------------------------------------------------------------------

    /// Pops the next envelope. Only the owning endpoint calls this, under its lock.
    #[inline]
    pub(crate) fn pop(&self) -> Option<Envelope> {
        let env = self.queue.pop()?;
        if let Envelope::Message(m) = &env {
            // One consumer at a time: plain load + store, no read-modify-write.
            let r = self.received.load(Ordering::Relaxed);
            self.received
                .store(r.wrapping_add(packed(m.byte_size())), Ordering::Relaxed);
        }
        Some(env)
    }

    /// Whether senders wait for space that a pop has just made (the caller then calls
    /// `wake_space_waiters` once it holds no lock: wakers may run user code).
    #[inline]
    pub(crate) fn space_wake_due(&self) -> bool {
        if !self.limited.load(Ordering::Relaxed) {
            return false;
        }
        fence(Ordering::SeqCst);
        self.space_interest.load(Ordering::Relaxed) && self.has_capacity()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Pops everything that is queued (to be dropped by the caller outside any lock).
    pub(crate) fn drain(&self) -> Vec<Envelope> {
        let mut out = Vec::new();
        while let Some(e) = self.pop() {
            out.push(e);
        }
        out
    }

    /// Registers the current thread to be unparked by the next push.
    pub(crate) fn register_sleeper(&self) {
        {
            let mut n = lock(&self.notify);
            n.sleepers.push(Unparker::current());
            self.interest.fetch_or(SLEEPERS, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
    }

    /// Forgets the current thread after a timed-out wait.
    pub(crate) fn unregister_sleeper(&self) {
        let mut n = lock(&self.notify);
        n.sleepers.retain(|t| !t.is_current());
        if n.sleepers.is_empty() {
            self.interest.fetch_and(!SLEEPERS, Ordering::SeqCst);
        }
    }

    /// Registers `waker` to be woken by the next push.
    pub(crate) fn register_waker(&self, waker: &Waker) {
        {
            let mut n = lock(&self.notify);
            if !n.wakers.iter().any(|w| w.will_wake(waker)) {
                n.wakers.push(waker.clone());
            }
            self.interest.fetch_or(WAKERS, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
    }

    // ---- the ready hook and the enabled flag --------------------------------------------

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Enables the port message queue (spec B2); fires the hook when something waits.
    pub(crate) fn enable(&self) {
        if self.enabled.swap(true, Ordering::AcqRel) {
            return;
        }
        self.arm_hook(false);
    }

    /// Disables the queue and forgets the hook (a transferred port starts anew, spec B9).
    /// Its blocked receivers and async waiters are then the caller's to wake (`wake_all`),
    /// outside any lock: a waker may run user code.
    pub(crate) fn reset_for_transfer(&self) {
        self.enabled.store(false, Ordering::Release);
        {
            let mut n = lock(&self.notify);
            n.hook = None;
            n.hook_armed = false;
            n.close_hook = None;
            self.interest.fetch_and(!HOOK, Ordering::SeqCst);
        }
        self.hook_fired.store(false, Ordering::Relaxed);
        // (the caller wakes the waiters, once it holds no lock: wake_all)
    }

    pub(crate) fn set_hook(&self, hook: Option<ReadyHook>) {
        {
            let mut n = lock(&self.notify);
            n.hook = hook;
            n.hook_armed = false;
            self.interest.fetch_and(!HOOK, Ordering::SeqCst);
        }
        self.hook_fired.store(false, Ordering::Relaxed);
        self.arm_hook(false);
    }

    /// Whether the hook fired and waits to be re-armed (the consumer's fast check).
    #[inline]
    pub(crate) fn hook_needs_rearm(&self) -> bool {
        self.hook_fired.load(Ordering::Relaxed)
    }

    /// Re-arms the hook after the consumer found the queue empty (or ended): the next push
    /// fires it again. `ended` fires it at once when the port has ended meanwhile.
    pub(crate) fn rearm_hook(&self) {
        self.arm_hook(true);
    }

    fn arm_hook(&self, only_if_fired: bool) {
        let armed = {
            let mut n = lock(&self.notify);
            if only_if_fired && !self.hook_fired.load(Ordering::Relaxed) {
                return;
            }
            if n.hook.is_none() || n.hook_armed || !self.enabled.load(Ordering::Acquire) {
                false
            } else {
                n.hook_armed = true;
                self.hook_fired.store(false, Ordering::Relaxed);
                self.interest.fetch_or(HOOK, Ordering::SeqCst);
                true
            }
        };
        if armed {
            fence(Ordering::SeqCst);
            if !self.queue.is_empty() {
                self.wake_slow();
            }
        }
    }

    // ---- counters and flow control -----------------------------------------------------

    /// (queued messages, queued bytes).
    pub(crate) fn queued(&self) -> (usize, usize) {
        let received = self.received.load(Ordering::Relaxed);
        let sent = self.sent.load(Ordering::Relaxed);
        let diff = sent.wrapping_sub(received);
        // A read racing a pop can see the pop first: clamp that to empty.
        if diff > 1 << 63 {
            return (0, 0);
        }
        ((diff >> BYTES_BITS) as usize, (diff & BYTES_MASK) as usize)
    }

    pub(crate) fn limits(&self) -> Limits {
        let get = |a: &AtomicUsize| match a.load(Ordering::Relaxed) {
            usize::MAX => None,
            n => Some(n),
        };
        Limits {
            max_messages: get(&self.max_messages),
            max_bytes: get(&self.max_bytes),
        }
    }

    pub(crate) fn set_limits(&self, limits: Limits) {
        self.max_messages
            .store(limits.max_messages.unwrap_or(usize::MAX), Ordering::Relaxed);
        self.max_bytes
            .store(limits.max_bytes.unwrap_or(usize::MAX), Ordering::Relaxed);
        self.limited.store(
            limits.max_messages.is_some() || limits.max_bytes.is_some(),
            Ordering::SeqCst,
        );
        // Raising or removing a limit may release waiting senders.
        if self.has_capacity() {
            self.wake_space_waiters();
        }
    }

    /// Whether the queue is below its limits (always, when it has none).
    pub(crate) fn has_capacity(&self) -> bool {
        if !self.limited.load(Ordering::Relaxed) {
            return true;
        }
        let (m, b) = self.queued();
        m < self.max_messages.load(Ordering::Relaxed) && b < self.max_bytes.load(Ordering::Relaxed)
    }

    /// Registers a sender's waker until the queue is below its limits again.
    pub(crate) fn register_space_waker(&self, waker: &Waker) {
        {
            let mut w = lock(&self.space_wakers);
            if !w.iter().any(|x| x.will_wake(waker)) {
                w.push(waker.clone());
            }
            self.space_interest.store(true, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
    }

    #[cold]
    pub(crate) fn wake_space_waiters(&self) {
        let wakers = {
            let mut w = lock(&self.space_wakers);
            self.space_interest.store(false, Ordering::SeqCst);
            std::mem::take(&mut *w)
        };
        for w in wakers {
            w.wake();
        }
    }
}

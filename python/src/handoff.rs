//! GIL handoff: a posting thread lets a backlogged receiver thread run.
//!
//! Why: under the GIL, a thread that posts in a loop keeps the GIL for a whole switch
//! interval (`sys.getswitchinterval()`, 5 ms) while the thread that would receive waits
//! for it. A producer of 64 KiB Buffers queues hundreds of them (30-90 MB) in that time;
//! every block is cache-cold by the time the receiver reads and frees it, and cold again
//! when the producer reuses it. CPython gives no voluntary handoff: a thread waiting in
//! `take_gil` only asks for the GIL (`gil_drop_request`) after waiting a whole interval,
//! and a thread that releases and at once retakes the GIL usually gets it back before the
//! waiter has even woken up.
//!
//! How:
//! - A thread blocked in `recv()` (or iteration) on a `MessagePort` is *registered* here,
//!   with its port, from the moment it releases the GIL to wait until it holds the GIL
//!   again. That covers both halves of its wait: asleep on an empty queue, and (after the
//!   core woke it with a message) waiting for the GIL to deliver it.
//! - After each successful `post_message`, the posting thread adds the message's size
//!   (encoded bytes plus buffers, what the core counts as queued bytes) to a per-thread
//!   credit. Once the credit reaches `threshold / 8` and someone is registered, it resets
//!   the credit and looks for a registered receiver whose queue holds at least
//!   `threshold` bytes. If there is one, the poster releases the GIL and waits, without
//!   it, until that receiver has taken the GIL (it unregisters) or 50 ms have passed
//!   (clearing freed blocks with `pool::scrub` first, then parked).
//!   Then, for up to 300 µs, it polls (still without the GIL, clearing the blocks the
//!   receiver frees meanwhile with `pool::scrub`, else yielding the CPU) for a
//!   registered receiver to release the GIL again, which the receiver does when its
//!   queue is drained and it blocks; only then does it ask for the GIL back (CPython's
//!   `take_gil` sleeps on a condition variable, and waking from it costs tens of µs on
//!   a busy host). A receiver that keeps the GIL longer loses it after one switch
//!   interval as usual.
//! - So a Python receiver's queue stays near `threshold` bytes (4 MiB by default; 1 MiB
//!   measured worse, as a handoff costs about 30 µs; 8 MiB alike). Small messages cost
//!   one thread-local addition and one atomic load per post, and hand off only when a
//!   receiver really has `threshold` bytes of them queued (100,000 W1 messages).
//! - A port that nobody receives from, or whose reader does not block in `recv()` (a
//!   handler, polling with `recv_nowait()`, a thread of another binding), never causes
//!   a handoff.
//!
//! The registry lock is only ever taken with the GIL held (registering, unregistering,
//! the scan), so it is uncontended and never held by another thread when `os.fork()`
//! runs. A poster waits without the GIL on an atomic flag of the registration, parked
//! (`std::thread::park_timeout`); the receiver unparks it when it unregisters. Nothing
//! here calls into Python.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use channel_messaging::MessagePort as CorePort;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The default threshold, in bytes.
pub const DEFAULT_THRESHOLD: usize = 4 << 20;

/// The longest a poster waits, without the GIL, for the receiver to take it (a safety
/// net: a registered receiver with a backlog takes the GIL as soon as it is free).
const MAX_WAIT: Duration = Duration::from_millis(50);

/// Queued bytes at which a waiting receiver gets the GIL (0: never).
static THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_THRESHOLD);
/// How many receivers are registered (read on every post without the lock).
static WAITING: AtomicUsize = AtomicUsize::new(0);
/// Handoffs made since the process started (tests, diagnostics).
static HANDOFFS: AtomicU64 = AtomicU64::new(0);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);
/// Bumped by a registered receiver each time it has released the GIL to wait.
static RELEASES: AtomicU64 = AtomicU64::new(0);

/// How long a poster whose receiver took the GIL keeps polling (without the GIL) for the
/// receiver to release it again, instead of sleeping in CPython's `take_gil`.
const SPIN: Duration = Duration::from_micros(SPIN_US);
const SPIN_US: u64 = 300;

struct Entry {
    token: u64,
    port: CorePort,
    /// Set when the receiver holds the GIL again (it unregistered).
    done: Arc<AtomicBool>,
    /// Posters waiting for `done`, unparked when it is set.
    posters: Vec<Thread>,
}

static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

thread_local! {
    /// Bytes this thread posted since it last checked the registry.
    static CREDIT: Cell<usize> = const { Cell::new(0) };
}

fn registry() -> MutexGuard<'static, Vec<Entry>> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn threshold() -> usize {
    THRESHOLD.load(Ordering::Relaxed)
}

/// A receiver's registration; unregisters when dropped (drop it with the GIL held).
pub struct Waiting(u64);

impl Waiting {
    /// Registers a thread holding the GIL and about to release it to wait for a message
    /// on `port`.
    pub fn register(port: &CorePort) -> Waiting {
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        registry().push(Entry {
            token,
            port: port.clone(),
            done: Arc::new(AtomicBool::new(false)),
            posters: Vec::new(),
        });
        WAITING.fetch_add(1, Ordering::Release);
        Waiting(token)
    }

    /// Called by the receiver once it has released the GIL (inside `detach`).
    pub fn released(&self) {
        RELEASES.fetch_add(1, Ordering::Release);
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let removed = {
            let mut r = registry();
            let i = r.iter().position(|e| e.token == self.0);
            let removed = i.map(|i| r.swap_remove(i));
            WAITING.fetch_sub(1, Ordering::Release);
            removed
        };
        // Outside the lock: wake the posters, and release the port handle (dropping the
        // last handle of a port closes it, which takes the core's own locks).
        if let Some(e) = removed {
            e.done.store(true, Ordering::Release);
            for t in &e.posters {
                t.unpark();
            }
        }
    }
}

/// Called after a successful post of `size` bytes (encoded message plus buffers) by a
/// thread holding the GIL.
#[inline]
pub fn after_post(py: Python<'_>, size: usize) {
    let credit = CREDIT.with(|c| {
        let v = c.get().saturating_add(size);
        c.set(v);
        v
    });
    let threshold = threshold();
    if threshold == 0 || credit < (threshold / 8).max(1) || WAITING.load(Ordering::Acquire) == 0 {
        return;
    }
    CREDIT.with(|c| c.set(0));
    handoff(py, threshold);
}

#[cold]
fn handoff(py: Python<'_>, threshold: usize) {
    let done = {
        let mut r = registry();
        let Some(e) = r
            .iter_mut()
            .find(|e| e.port.stats().queued_bytes >= threshold)
        else {
            return;
        };
        e.posters.push(thread::current());
        Arc::clone(&e.done)
    };
    HANDOFFS.fetch_add(1, Ordering::Relaxed);
    // Releasing the GIL wakes a thread waiting in take_gil; the receiver gets it because
    // this thread does not ask for it again until the receiver has it (or time is up).
    py.detach(|| {
        let deadline = Instant::now() + MAX_WAIT;
        channel_messaging::pool::scrub(|| done.load(Ordering::Acquire));
        while !done.load(Ordering::Acquire) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::park_timeout(left);
        }
        if !done.load(Ordering::Acquire) {
            return;
        }
        // The receiver drains its queue with the GIL and releases it when it blocks
        // again; poll for that briefly, so as to take the GIL at once.
        // Meanwhile, clear the blocks the receiver frees (pool::scrub), so that the
        // zeroed Buffers this thread allocates next need no clearing pass.
        let seen = RELEASES.load(Ordering::Acquire);
        let until = Instant::now() + SPIN;
        let waiting = || RELEASES.load(Ordering::Acquire) == seen && Instant::now() < until;
        while waiting() {
            if channel_messaging::pool::scrub(|| !waiting()) == 0 {
                thread::yield_now();
            }
        }
    });
}

/// Sets the GIL handoff threshold: once a thread blocked in ``MessagePort.recv()`` has
/// ``max_bytes`` or more queued, a thread posting (to it or to any port) lets it have
/// the GIL. ``0`` turns handoffs off. The default is 4 MiB.
#[pyfunction]
pub fn set_handoff_threshold(max_bytes: i64) -> PyResult<()> {
    let t = usize::try_from(max_bytes).map_err(|_| {
        pyo3::exceptions::PyValueError::new_err("the handoff threshold must not be negative")
    })?;
    THRESHOLD.store(t, Ordering::Relaxed);
    Ok(())
}

/// GIL handoff state, as a dict: ``threshold`` (bytes; 0 when off), ``handoffs`` (how
/// many times a posting thread let a backlogged receiver have the GIL since the process
/// started) and ``waiting`` (threads blocked in ``recv()`` right now).
#[pyfunction]
pub fn handoff_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("threshold", threshold())?;
    d.set_item("handoffs", HANDOFFS.load(Ordering::Relaxed))?;
    d.set_item("waiting", WAITING.load(Ordering::Relaxed))?;
    Ok(d)
}

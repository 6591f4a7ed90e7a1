//! The synchronisation primitives the port layer is written against.
//!
//! Normal builds use `std` and `crossbeam`. Under `--cfg loom` the same code runs on
//! loom's model-checked primitives (ci/loom.sh), with the lock-free queue replaced by a
//! simple locked equivalent whose behaviour is the same linearizable one: the models
//! check this crate's protocol (wake-ups, close, transfer), not crossbeam's queue, which
//! has its own.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: every critical section in this crate leaves its data
/// consistent before anything that can panic runs, so a poisoned lock is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A handle that wakes one parked thread (see [`park`]).
#[cfg(not(loom))]
#[derive(Clone, Debug)]
pub(crate) struct Unparker(std::thread::Thread);

#[cfg(not(loom))]
impl Unparker {
    pub(crate) fn current() -> Self {
        Unparker(std::thread::current())
    }
    pub(crate) fn unpark(&self) {
        self.0.unpark();
    }
    pub(crate) fn is_current(&self) -> bool {
        self.0.id() == std::thread::current().id()
    }
}

/// Parks the current thread until unparked, or until `deadline` passes. Spurious
/// returns are allowed: callers re-check their condition.
#[cfg(not(loom))]
pub(crate) fn park(deadline: Option<std::time::Instant>) {
    match deadline {
        None => std::thread::park(),
        Some(d) => {
            let now = std::time::Instant::now();
            if d > now {
                std::thread::park_timeout(d - now);
            }
        }
    }
}

/// Under loom, parking is a flag and a condition variable per thread: loom's own
/// `unpark` misbehaves when it reaches a thread that is blocked on a mutex, which a
/// stale wake-up legitimately does.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Parker {
    notified: Mutex<bool>,
    cv: loom::sync::Condvar,
}

#[cfg(loom)]
loom::thread_local! {
    static PARKER: Arc<Parker> = Arc::new(Parker { notified: Mutex::new(false), cv: loom::sync::Condvar::new() });
}

#[cfg(loom)]
#[derive(Clone, Debug)]
pub(crate) struct Unparker(Arc<Parker>);

#[cfg(loom)]
impl Unparker {
    pub(crate) fn current() -> Self {
        PARKER.with(|p| Unparker(Arc::clone(p)))
    }
    pub(crate) fn unpark(&self) {
        *lock(&self.0.notified) = true;
        self.0.cv.notify_one();
    }
    pub(crate) fn is_current(&self) -> bool {
        PARKER.with(|p| Arc::ptr_eq(p, &self.0))
    }
}

#[cfg(loom)]
pub(crate) fn park(_deadline: Option<std::time::Instant>) {
    PARKER.with(|p| {
        let mut notified = lock(&p.notified);
        while !*notified {
            notified = match p.cv.wait(notified) {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
        *notified = false;
    });
}

/// An unbounded multi-producer queue.
#[cfg(not(loom))]
pub(crate) type Queue<T> = crossbeam_queue::SegQueue<T>;

/// Under loom: a locked `VecDeque` with `SegQueue`'s interface.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Queue<T>(Mutex<std::collections::VecDeque<T>>);

#[cfg(loom)]
impl<T> Queue<T> {
    pub(crate) fn new() -> Self {
        Queue(Mutex::new(std::collections::VecDeque::new()))
    }
    pub(crate) fn push(&self, v: T) {
        lock(&self.0).push_back(v);
    }
    pub(crate) fn pop(&self) -> Option<T> {
        lock(&self.0).pop_front()
    }
    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.0).is_empty()
    }
}

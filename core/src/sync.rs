//! The synchronisation primitives the port layer is written against.
//!
//! Normal builds use `std`, `crossbeam` and `arc-swap`. Under `--cfg loom` the same code
//! runs on loom's model-checked primitives (ci/loom.sh), with the lock-free queue and the
//! atomic link replaced by simple locked equivalents whose behaviour is the same
//! linearizable one: the models check this crate's protocol (wake-ups, close, transfer),
//! not crossbeam's queue, which has its own.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread::{Thread, current as current_thread};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread::{Thread, current as current_thread};

/// Locks `m`, ignoring poisoning: every critical section in this crate leaves its data
/// consistent before anything that can panic runs, so a poisoned lock is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Parks the current thread until unparked, or until `deadline` passes.
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

#[cfg(loom)]
pub(crate) fn park(_deadline: Option<std::time::Instant>) {
    loom::thread::park();
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

/// An atomically replaceable `Option<Arc<T>>`: a port's link to its partner's inbox.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct Link<T>(arc_swap::ArcSwapOption<T>);

#[cfg(not(loom))]
impl<T> Link<T> {
    pub(crate) fn new(v: Option<Arc<T>>) -> Self {
        Link(arc_swap::ArcSwapOption::new(v))
    }
    /// Runs `f` on the current target without touching its reference count.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(Option<&Arc<T>>) -> R) -> R {
        let guard = self.0.load();
        f(guard.as_ref())
    }
    pub(crate) fn load_full(&self) -> Option<Arc<T>> {
        self.0.load_full()
    }
    pub(crate) fn take(&self) -> Option<Arc<T>> {
        self.0.swap(None)
    }
}

#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Link<T>(Mutex<Option<Arc<T>>>);

#[cfg(loom)]
impl<T> Link<T> {
    pub(crate) fn new(v: Option<Arc<T>>) -> Self {
        Link(Mutex::new(v))
    }
    pub(crate) fn with<R>(&self, f: impl FnOnce(Option<&Arc<T>>) -> R) -> R {
        let v = lock(&self.0).clone();
        f(v.as_ref())
    }
    pub(crate) fn load_full(&self) -> Option<Arc<T>> {
        lock(&self.0).clone()
    }
    pub(crate) fn take(&self) -> Option<Arc<T>> {
        lock(&self.0).take()
    }
}

//! The dispatcher thread: runs handlers of ports installed outside an asyncio loop, and
//! carries wake-ups that arrive on threads not holding the GIL.
//!
//! It is a daemon `threading.Thread` named `channel_messaging-dispatcher`, started the
//! first time it is needed, that blocks (GIL released) on a queue of jobs. At exit (an
//! `atexit` handler, which runs before the interpreter finalizes) it is stopped and
//! joined: jobs still queued are dropped, as messages pending at exit are (spec F7). A
//! daemon thread still running handlers when the interpreter finalizes would be ended
//! by it mid-call, which crashes the process. In a child process after `fork()` (which
//! copies no thread), a new queue and a new dispatcher take over.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, LazyLock, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::capi;

/// Work for the dispatcher (run with the GIL held).
pub type Job = Box<dyn FnOnce(Python<'_>) + Send>;

struct Queue {
    tx: Mutex<Sender<Job>>,
    rx: Mutex<Receiver<Job>>,
}

impl Queue {
    fn new() -> Arc<Queue> {
        let (tx, rx) = channel();
        Arc::new(Queue {
            tx: Mutex::new(tx),
            rx: Mutex::new(rx),
        })
    }
}

/// The jobs' queue; replaced in a child process after `fork()`, where the dispatcher
/// thread does not exist but the lock it was waiting under is still taken.
static QUEUE: LazyLock<Mutex<Arc<Queue>>> = LazyLock::new(|| Mutex::new(Queue::new()));

fn queue() -> Option<Arc<Queue>> {
    QUEUE.lock().ok().map(|q| Arc::clone(&q))
}
static STARTED: AtomicBool = AtomicBool::new(false);
/// Set at exit: the dispatcher runs no more jobs and returns.
static STOPPING: AtomicBool = AtomicBool::new(false);
/// The dispatcher's `threading.Thread`, for the exit handler to join.
static THREAD: Mutex<Option<Py<PyAny>>> = Mutex::new(None);
/// How long the exit handler waits for a handler that is still running.
const EXIT_JOIN_SECONDS: f64 = 10.0;

/// Whether the dispatcher was stopped (the interpreter is exiting).
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Acquire)
}

/// Queues `job` for the dispatcher thread (callable without the GIL).
pub fn push(job: Job) {
    if let Some(q) = queue()
        && let Ok(tx) = q.tx.lock()
    {
        // The receiver lives as long as the queue: sending cannot fail.
        let _ = tx.send(job);
    }
}

/// Runs `job` now when this thread holds the GIL, else hands it to the dispatcher.
pub fn run_or_push(job: Job) {
    if capi::gil_held() {
        Python::attach(job);
    } else {
        push(job);
    }
}

/// Starts the dispatcher thread if it is not running yet.
pub fn ensure(py: Python<'_>) -> PyResult<()> {
    if STARTED.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    let target = py
        .import("channel_messaging._native")?
        .getattr("_dispatcher_main")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("target", target)?;
    kwargs.set_item("name", "channel_messaging-dispatcher")?;
    kwargs.set_item("daemon", true)?;
    let thread = py
        .import("threading")?
        .getattr("Thread")?
        .call((), Some(&kwargs))?;
    if let Err(e) = thread.call_method0("start") {
        STARTED.store(false, Ordering::Release);
        return Err(e);
    }
    if let Ok(mut t) = THREAD.lock() {
        *t = Some(thread.unbind());
    }
    if !HOOKS_REGISTERED.swap(true, Ordering::AcqRel) {
        let native = py.import("channel_messaging._native")?;
        py.import("atexit")?
            .call_method1("register", (native.getattr("_dispatcher_stop")?,))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("after_in_child", native.getattr("_dispatcher_after_fork")?)?;
        py.import("os")?
            .call_method("register_at_fork", (), Some(&kwargs))?;
    }
    Ok(())
}

/// The exit and fork handlers are registered (once per process).
static HOOKS_REGISTERED: AtomicBool = AtomicBool::new(false);

/// In a child process after `fork()` (internal: `os.register_at_fork`): the parent's
/// dispatcher thread does not exist here; a new queue and a new dispatcher take over, so
/// that handlers and awaitables go on working in the child.
#[pyfunction]
pub fn _dispatcher_after_fork(py: Python<'_>) -> PyResult<()> {
    if let Ok(mut q) = QUEUE.lock() {
        *q = Queue::new();
    }
    if let Ok(mut t) = THREAD.lock() {
        // (the parent's thread object: nothing to join here)
        t.take();
    }
    STOPPING.store(false, Ordering::Release);
    if STARTED.swap(false, Ordering::AcqRel) {
        ensure(py)?;
    }
    Ok(())
}

/// Stops the dispatcher thread and waits for the job it is running (internal: the exit
/// handler `ensure` registers).
#[pyfunction]
pub fn _dispatcher_stop(py: Python<'_>) -> PyResult<()> {
    STOPPING.store(true, Ordering::Release);
    push(Box::new(|_| {})); // (wakes it when idle)
    let thread = THREAD.lock().ok().and_then(|mut t| t.take());
    if let Some(thread) = thread {
        thread.call_method1(py, "join", (EXIT_JOIN_SECONDS,))?;
    }
    Ok(())
}

/// The dispatcher thread's body (internal).
#[pyfunction]
pub fn _dispatcher_main(py: Python<'_>) -> PyResult<()> {
    let Some(queue) = queue() else {
        return Err(PyRuntimeError::new_err("the dispatcher queue is gone"));
    };
    loop {
        let job = py.detach(|| match queue.rx.lock() {
            Ok(rx) => rx.recv().ok(),
            Err(_) => None,
        });
        let Some(job) = job else {
            return Err(PyRuntimeError::new_err("the dispatcher queue is gone"));
        };
        if STOPPING.load(Ordering::Acquire) {
            drop(job);
            return Ok(());
        }
        if catch_unwind(AssertUnwindSafe(|| job(py))).is_err() {
            PyRuntimeError::new_err("a channel_messaging dispatcher job panicked")
                .write_unraisable(py, None);
        }
    }
}

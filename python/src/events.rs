//! Event handlers (`onmessage`, `add_event_listener`, ...) and where they run.
//!
//! Rules (README "Where handlers run"): handlers of a port run on the asyncio loop that was
//! running in the thread that last installed a handler on it, woken with
//! `loop.call_soon_threadsafe`; when that thread had no running loop, on the library's
//! dispatcher thread. Each wake-up drains a bounded batch and reschedules itself, so a
//! busy port does not starve the loop (spec B4). An exception in a handler goes to the
//! loop's exception handler (or `sys.unraisablehook`) and delivery goes on (spec E5).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use channel_messaging::{
    BroadcastChannel as CoreBroadcast, Message, MessagePort as CorePort, RecvTimeoutError,
    TryRecvError,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyWeakrefReference};
use pyo3::{PyTraverseError, PyVisit};

use crate::convert;
use crate::dispatch;

/// What a receiving object reads from: a port or a broadcast channel.
#[derive(Debug)]
pub enum Source {
    Port(CorePort),
    Broadcast(CoreBroadcast),
}

impl Source {
    pub fn try_recv_message(&self) -> Result<Message, TryRecvError> {
        match self {
            Source::Port(p) => p.try_recv_message(),
            Source::Broadcast(b) => b.try_recv_message(),
        }
    }

    fn start(&self) {
        match self {
            Source::Port(p) => p.start(),
            Source::Broadcast(b) => b.start(),
        }
    }

    fn set_ready_hook(&self, hook: Option<channel_messaging::ReadyHook>) {
        match self {
            Source::Port(p) => p.set_ready_hook(hook),
            Source::Broadcast(b) => b.set_ready_hook(hook),
        }
    }

    /// Whether this side closed itself (so that its end fires no `close` event).
    fn closed_by_self(&self) -> bool {
        match self {
            Source::Port(p) => p.is_closed() || p.is_detached(),
            Source::Broadcast(b) => b.is_closed(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Message,
    MessageError,
    Close,
}

impl Kind {
    /// A BroadcastChannel's event types: a port's but 'close' (spec I).
    pub fn parse_broadcast(s: &str) -> PyResult<Kind> {
        match Kind::parse(s) {
            Ok(Kind::Close) | Err(_) => Err(PyValueError::new_err(format!(
                "unknown event type {s:?} for a BroadcastChannel (expected 'message' or 'messageerror')"
            ))),
            Ok(kind) => Ok(kind),
        }
    }

    pub fn parse(s: &str) -> PyResult<Kind> {
        match s {
            "message" => Ok(Kind::Message),
            "messageerror" => Ok(Kind::MessageError),
            "close" => Ok(Kind::Close),
            other => Err(PyValueError::new_err(format!(
                "unknown event type {other:?} (expected 'message', 'messageerror' or 'close')"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::MessageError => "messageerror",
            Kind::Close => "close",
        }
    }
}

#[derive(Default, Debug)]
struct Handlers {
    on: [Option<Py<PyAny>>; 3],
    listeners: Vec<(Kind, Py<PyAny>)>,
    hooked: bool,
}

/// State the ready hook reaches from any thread.
#[derive(Default, Debug)]
pub struct Shared {
    /// A weak reference to the Python object (the hook must not keep it alive).
    me: Mutex<Option<Py<PyAny>>>,
    /// A strong reference while the object listens for messages and has not ended
    /// (spec F1: an entangled port with a message listener stays alive).
    keepalive: Mutex<Option<Py<PyAny>>>,
    /// The loop handlers run on; None: the dispatcher thread.
    event_loop: Mutex<Option<Py<PyAny>>>,
    close_fired: AtomicBool,
    ended: AtomicBool,
}

/// The handlers of one receiving object.
#[derive(Default, Debug)]
pub struct Events {
    handlers: Mutex<Handlers>,
    pub shared: Arc<Shared>,
}

fn slot(kind: Kind) -> usize {
    kind as usize
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Whether an asyncio loop is closed (or cannot say).
pub fn loop_closed(lp: &Bound<'_, PyAny>) -> bool {
    lp.call_method0("is_closed")
        .and_then(|c| c.is_truthy())
        .unwrap_or(true)
}

/// A receive's `timeout` argument: None or a non-negative number of seconds, checked
/// before anything is received.
pub fn check_timeout(timeout: Option<f64>) -> PyResult<()> {
    if timeout.is_some_and(|t| t.is_nan() || t < 0.0) {
        return Err(PyValueError::new_err(
            "timeout must be a non-negative number",
        ));
    }
    Ok(())
}

/// The running asyncio loop of this thread, if any.
pub fn running_loop(py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    let f = GET_RUNNING_LOOP.import(py, "asyncio", "_get_running_loop")?;
    let l = f.call0()?;
    Ok(if l.is_none() { None } else { Some(l) })
}

impl Events {
    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(h) = self.handlers.try_lock() {
            for o in h.on.iter().flatten() {
                visit.call(o)?;
            }
            for (_, o) in &h.listeners {
                visit.call(o)?;
            }
        }
        if let Ok(l) = self.shared.event_loop.try_lock()
            && let Some(l) = l.as_ref()
        {
            visit.call(l)?;
        }
        Ok(())
    }

    pub fn clear(&self) {
        let taken = self.handlers.lock().map(|mut h| {
            let on = std::mem::take(&mut h.on);
            let listeners = std::mem::take(&mut h.listeners);
            (on, listeners)
        });
        let l = self.shared.event_loop.lock().map(|mut l| l.take());
        drop(taken);
        drop(l);
    }

    pub fn get(&self, py: Python<'_>, kind: Kind) -> Option<Py<PyAny>> {
        self.handlers
            .lock()
            .ok()
            .and_then(|h| h.on[slot(kind)].as_ref().map(|o| o.clone_ref(py)))
    }

    /// `on<kind> = value`. Returns whether a handler is now set.
    pub fn set(
        &self,
        obj: &Bound<'_, PyAny>,
        src: &Source,
        kind: Kind,
        value: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let value = match value {
            Some(v) if v.is_none() => None,
            Some(v) if !v.is_callable() => {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "on{} must be callable or None",
                    kind.name()
                )));
            }
            v => v,
        };
        let set = value.is_some();
        let old = {
            let mut h = self.handlers.lock().map_err(poisoned)?;
            std::mem::replace(&mut h.on[slot(kind)], value.map(Bound::unbind))
        };
        drop(old);
        self.installed(obj, src)?;
        Ok(set)
    }

    pub fn add_listener(
        &self,
        obj: &Bound<'_, PyAny>,
        src: &Source,
        kind: Kind,
        listener: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if !listener.is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "the listener must be callable",
            ));
        }
        if self.find_listener(obj.py(), kind, listener)?.is_some() {
            return Ok(());
        }
        {
            let mut h = self.handlers.lock().map_err(poisoned)?;
            // (another thread may have added this very object meanwhile)
            if h.listeners
                .iter()
                .any(|(k, l)| *k == kind && l.is(listener))
            {
                return Ok(());
            }
            h.listeners.push((kind, listener.clone().unbind()));
        }
        self.installed(obj, src)
    }

    /// The registered listener of `kind` equal to `listener` (`==`, so that a bound
    /// method found again is the same listener). Compared outside the handlers' lock: an
    /// `__eq__` is user code, which may look at the port or let another thread run.
    fn find_listener(
        &self,
        py: Python<'_>,
        kind: Kind,
        listener: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let candidates: Vec<Py<PyAny>> = {
            let h = self.handlers.lock().map_err(poisoned)?;
            h.listeners
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, l)| l.clone_ref(py))
                .collect()
        };
        Ok(candidates
            .into_iter()
            .find(|l| l.is(listener) || l.bind(py).eq(listener).unwrap_or(false)))
    }

    pub fn remove_listener(
        &self,
        obj: &Bound<'_, PyAny>,
        kind: Kind,
        listener: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let Some(found) = self.find_listener(obj.py(), kind, listener)? else {
            return Ok(());
        };
        let removed = {
            let mut h = self.handlers.lock().map_err(poisoned)?;
            let pos = h
                .listeners
                .iter()
                .position(|(k, l)| *k == kind && l.is(&found));
            pos.map(|i| h.listeners.remove(i))
        };
        drop((removed, found));
        self.update_keepalive(obj)
    }

    fn listens_for_messages(&self) -> bool {
        self.handlers.lock().is_ok_and(|h| {
            h.on[slot(Kind::Message)].is_some()
                || h.on[slot(Kind::MessageError)].is_some()
                || h.listeners.iter().any(|(k, _)| *k != Kind::Close)
        })
    }

    fn update_keepalive(&self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let keep = self.listens_for_messages() && !self.shared.ended.load(Ordering::Acquire);
        let old = {
            let mut k = self.shared.keepalive.lock().map_err(poisoned)?;
            if keep {
                k.replace(obj.clone().unbind())
            } else {
                k.take()
            }
        };
        drop(old);
        Ok(())
    }

    /// A handler was installed: pick where handlers run, hook the source once.
    fn installed(&self, obj: &Bound<'_, PyAny>, src: &Source) -> PyResult<()> {
        let py = obj.py();
        // A port's handlers run in one place, in one order: on the asyncio loop of the
        // latest installer that had a running loop. One installed from a thread without
        // a loop does not move them off that loop (unless it is closed); with no loop at
        // all they run on the dispatcher thread.
        let old = match running_loop(py)? {
            Some(lp) => self
                .shared
                .event_loop
                .lock()
                .map_err(poisoned)?
                .replace(lp.unbind()),
            None => {
                // (is_closed() is Python code, which may let another thread take the GIL:
                // it is asked outside the lock, which threads that post take while they
                // hold the GIL)
                let current = self
                    .shared
                    .event_loop
                    .lock()
                    .map_err(poisoned)?
                    .as_ref()
                    .map(|lp| lp.clone_ref(py));
                let closed = current.as_ref().is_some_and(|lp| loop_closed(lp.bind(py)));
                let mut l = self.shared.event_loop.lock().map_err(poisoned)?;
                // (unless another installer replaced it meanwhile)
                let still = matches!((&current, l.as_ref()), (Some(c), Some(now)) if c.is(now));
                let old = if closed && still { l.take() } else { None };
                let none = l.is_none();
                drop(l);
                drop(current);
                if none {
                    dispatch::ensure(py)?;
                }
                old
            }
        };
        drop(old);
        // (the weak reference is made before taking the lock: making it may run a garbage
        // collection, and with it Python code)
        let weak = PyWeakrefReference::new(obj)?.into_any().unbind();
        let unused = {
            let mut me = self.shared.me.lock().map_err(poisoned)?;
            if me.is_none() {
                *me = Some(weak);
                None
            } else {
                Some(weak)
            }
        };
        drop(unused);
        self.update_keepalive(obj)?;
        let hook = {
            let mut h = self.handlers.lock().map_err(poisoned)?;
            !std::mem::replace(&mut h.hooked, true)
        };
        if hook && !self.shared.ended.load(Ordering::Acquire) {
            let shared = Arc::clone(&self.shared);
            src.set_ready_hook(Some(Arc::new(move || Shared::wake(&shared))));
        }
        Ok(())
    }

    /// Enables the queue (spec B2).
    pub fn start(&self, src: &Source) {
        src.start();
    }

    /// The object ended (closed, transferred away): stop listening, drop the keepalive.
    pub fn release(&self, src: &Source) {
        self.shared.ended.store(true, Ordering::Release);
        src.set_ready_hook(None);
        let old = self.shared.keepalive.lock().ok().and_then(|mut k| k.take());
        drop(old);
    }

    fn snapshot(&self, py: Python<'_>, kind: Kind) -> Vec<Py<PyAny>> {
        let Ok(h) = self.handlers.lock() else {
            return Vec::new();
        };
        h.on[slot(kind)]
            .iter()
            .map(|o| o.clone_ref(py))
            .chain(
                h.listeners
                    .iter()
                    .filter(|(k, _)| *k == kind)
                    .map(|(_, o)| o.clone_ref(py)),
            )
            .collect()
    }

    /// Calls every handler of `kind` with `event`; reports their exceptions.
    pub fn fire(&self, obj: &Bound<'_, PyAny>, kind: Kind, event: &Bound<'_, PyAny>) {
        let py = obj.py();
        for (i, handler) in self.snapshot(py, kind).into_iter().enumerate() {
            let handler = handler.bind(py);
            // One that an earlier handler of this event removed is not called (the DOM's
            // "removed" flag). (The first: nothing ran since the snapshot.)
            if i > 0 && !self.registered(kind, handler) {
                continue;
            }
            if let Err(e) = handler.call1((event,)) {
                self.report(py, obj, kind, handler, e);
            }
        }
    }

    /// Whether `handler` is (still) a handler or listener of `kind`.
    fn registered(&self, kind: Kind, handler: &Bound<'_, PyAny>) -> bool {
        self.handlers.lock().is_ok_and(|h| {
            h.on[slot(kind)].as_ref().is_some_and(|o| o.is(handler))
                || h.listeners.iter().any(|(k, l)| *k == kind && l.is(handler))
        })
    }

    fn report(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        kind: Kind,
        handler: &Bound<'_, PyAny>,
        e: PyErr,
    ) {
        let lp = self
            .shared
            .event_loop
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|l| l.clone_ref(py)));
        if let Some(lp) = lp {
            let ctx = PyDict::new(py);
            let ok = ctx
                .set_item(
                    "message",
                    format!(
                        "exception in a '{}' handler of {}",
                        kind.name(),
                        obj.repr().map(|r| r.to_string()).unwrap_or_default()
                    ),
                )
                .and_then(|()| ctx.set_item("exception", e.value(py)))
                .and_then(|()| ctx.set_item("handler", handler))
                .and_then(|()| lp.bind(py).call_method1("call_exception_handler", (ctx,)));
            if let Err(e2) = ok {
                e2.write_unraisable(py, Some(handler));
            }
        } else {
            e.write_unraisable(py, Some(handler));
        }
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err("internal lock poisoned")
}

impl Shared {
    /// The ready hook: called on any thread.
    fn wake(shared: &Arc<Shared>) {
        let s = Arc::clone(shared);
        dispatch::run_or_push(Box::new(move |py| s.schedule(py)));
    }

    fn target<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        let me = self.me.lock().ok()?.as_ref()?.clone_ref(py);
        let obj = me.bind(py).call0().ok()?;
        if obj.is_none() { None } else { Some(obj) }
    }

    /// Schedules a drain where handlers run.
    pub fn schedule(&self, py: Python<'_>) {
        let Some(obj) = self.target(py) else { return };
        let lp = self
            .event_loop
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|l| l.clone_ref(py)));
        if let Some(lp) = lp {
            let task = DrainTask {
                obj: Some(obj.clone().unbind()),
                ran: AtomicBool::new(false),
            };
            let sent = Bound::new(py, task).and_then(|task| {
                lp.bind(py)
                    .call_method1("call_soon_threadsafe", (task,))
                    .map(|_| ())
            });
            match sent {
                Ok(()) => return,
                // The loop is closed: fall back to the dispatcher.
                Err(_) => {
                    if let Ok(mut l) = self.event_loop.lock() {
                        *l = None;
                    }
                    if dispatch::ensure(py).is_err() {
                        return;
                    }
                }
            }
        }
        let obj = obj.unbind();
        dispatch::push(Box::new(move |py| drain(obj.bind(py))));
    }
}

/// A drain scheduled on an asyncio loop. A loop that closes before running it drops it
/// (`close()` clears the callbacks it had not run): the drain then happens on the
/// dispatcher thread instead, as every later one will (`Shared::schedule`), rather than
/// never, which left the port's hook unarmed and its handlers silent for good.
#[pyclass(module = "channel_messaging._native", frozen)]
#[derive(Debug)]
pub struct DrainTask {
    obj: Option<Py<PyAny>>,
    ran: AtomicBool,
}

#[pymethods]
impl DrainTask {
    fn __call__(&self, py: Python<'_>) {
        self.ran.store(true, Ordering::Release);
        if let Some(obj) = &self.obj {
            drain(obj.bind(py));
        }
    }
}

impl Drop for DrainTask {
    fn drop(&mut self) {
        if !*self.ran.get_mut()
            && let Some(obj) = self.obj.take()
        {
            // (dropped by the loop, which holds the GIL; the dispatcher may not run yet,
            // and is not started while the interpreter exits)
            let started = Python::attach(|py| {
                let exiting = dispatch::stopping()
                    || py
                        .import("sys")
                        .and_then(|sys| sys.call_method0("is_finalizing"))
                        .and_then(|f| f.is_truthy())
                        .unwrap_or(true);
                !exiting && dispatch::ensure(py).is_ok()
            });
            if started {
                dispatch::push(Box::new(move |py| drain(obj.bind(py))));
            }
        }
    }
}

/// How many messages one wake-up dispatches before yielding (spec B4).
const BATCH: usize = 64;

/// Dispatches what is queued on `obj` (a MessagePort or BroadcastChannel).
fn drain(obj: &Bound<'_, PyAny>) {
    if let Ok(p) = obj.cast::<crate::port::MessagePort>() {
        let p = p.get();
        drain_source(obj, &p.source, &p.events);
    } else if let Ok(b) = obj.cast::<crate::broadcast::BroadcastChannel>() {
        let b = b.get();
        drain_source(obj, &b.source, &b.events);
    }
}

fn drain_source(obj: &Bound<'_, PyAny>, src: &Source, events: &Events) {
    let py = obj.py();
    for _ in 0..BATCH {
        match src.try_recv_message() {
            Ok(msg) => match convert::decode_message(py, msg) {
                Ok(d) => {
                    if let Ok(ev) =
                        crate::port::MessageEvent::create(py, "message", d.data, d.ports, obj)
                    {
                        events.fire(obj, Kind::Message, &ev);
                    }
                }
                Err(_) => fire_simple(obj, events, Kind::MessageError),
            },
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::MessageError(_)) => fire_simple(obj, events, Kind::MessageError),
            Err(TryRecvError::Closed) => {
                if !src.closed_by_self() && !events.shared.close_fired.swap(true, Ordering::AcqRel)
                {
                    fire_simple(obj, events, Kind::Close);
                }
                events.release(src);
                return;
            }
        }
    }
    events.shared.schedule(py);
}

fn fire_simple(obj: &Bound<'_, PyAny>, events: &Events, kind: Kind) {
    let py = obj.py();
    if let Ok(ev) = crate::port::MessageEvent::create(
        py,
        kind.name(),
        py.None().into_bound(py),
        Vec::new(),
        obj,
    ) {
        events.fire(obj, kind, &ev);
    }
}

/// Blocks (GIL released, in slices so that Ctrl-C works) for the next message of a port.
pub fn blocking_recv(
    py: Python<'_>,
    port: &CorePort,
    timeout: Option<f64>,
) -> PyResult<Result<Message, RecvTimeoutError>> {
    // (the argument is checked first, whether or not a message is queued)
    check_timeout(timeout)?;
    match port.try_recv_message() {
        Ok(m) => return Ok(Ok(m)),
        Err(TryRecvError::Empty) => {}
        Err(TryRecvError::Closed) => return Ok(Err(RecvTimeoutError::Closed)),
        Err(TryRecvError::MessageError(e)) => return Ok(Err(RecvTimeoutError::MessageError(e))),
    }
    let deadline = timeout.map(|t| std::time::Instant::now() + Duration::from_secs_f64(t.min(1e9)));
    const SLICE: Duration = Duration::from_millis(50);
    // Registered from the first wait until this returns, with the GIL held again
    // (handoff.rs): a poster that sees this port's queue grow past the handoff threshold
    // lets this thread have the GIL.
    let mut waiting = None;
    loop {
        let wait = match deadline {
            None => SLICE,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Ok(Err(RecvTimeoutError::Timeout));
                }
                left.min(SLICE)
            }
        };
        let w = waiting.get_or_insert_with(|| crate::handoff::Waiting::register(port));
        match py.detach(|| {
            w.released();
            port.recv_message_timeout(wait)
        }) {
            Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            other => return Ok(other),
        }
    }
}

/// The ports of an event as the frozen sequence `MessageEvent.ports` exposes.
pub fn ports_tuple<'py>(
    py: Python<'py>,
    ports: Vec<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, ports)
}

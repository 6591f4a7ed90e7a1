//! `MessageChannel`, `MessagePort` and `MessageEvent`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

use channel_messaging::{
    Buffer as CoreBuffer, Limits, MessageChannel as CoreChannel, MessagePort as CorePort,
    RecvTimeoutError, TryRecvError,
};
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyWeakrefReference};
use pyo3::{PyTraverseError, PyVisit};

use crate::broadcast::BroadcastChannel;
use crate::convert::{self, Encoder, Transfer};
use crate::errors;
use crate::events::{self, Events, Kind, Source};
use crate::{buffer, dispatch, handoff};

/// A message, a `messageerror` or a `close`, as handlers receive it.
#[pyclass(module = "channel_messaging._native", frozen)]
#[derive(Debug)]
pub struct MessageEvent {
    #[pyo3(get, name = "type")]
    kind: String,
    #[pyo3(get)]
    data: Py<PyAny>,
    #[pyo3(get)]
    ports: Py<PyTuple>,
    #[pyo3(get)]
    target: Py<PyAny>,
}

impl MessageEvent {
    pub fn create<'py>(
        py: Python<'py>,
        kind: &str,
        data: Bound<'py, PyAny>,
        ports: Vec<Bound<'py, PyAny>>,
        target: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(Bound::new(
            py,
            MessageEvent {
                kind: kind.to_owned(),
                data: data.unbind(),
                ports: events::ports_tuple(py, ports)?.unbind(),
                target: target.clone().unbind(),
            },
        )?
        .into_any())
    }
}

#[pymethods]
impl MessageEvent {
    fn __repr__(&self, py: Python<'_>) -> String {
        let data = self
            .data
            .bind(py)
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_default();
        format!(
            "<MessageEvent type={:?} data={} ports={}>",
            self.kind,
            data,
            self.ports.bind(py).len()
        )
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Encodes `message` with a per-thread scratch buffer and hands the bytes to `post`.
pub fn encode_and<'py, R>(
    py: Python<'py>,
    message: &Bound<'py, PyAny>,
    ports: &[Bound<'py, crate::port::MessagePort>],
    tbufs: &[(Bound<'py, PyAny>, CoreBuffer)],
    post: impl FnOnce(&[u8], Vec<CoreBuffer>) -> PyResult<R>,
) -> PyResult<R> {
    let run = |out: &mut Vec<u8>| {
        out.clear();
        // A flat dict of plain scalars, the most common message: straight to CBOR.
        if ports.is_empty()
            && tbufs.is_empty()
            && let Ok(d) = message.cast_exact::<PyDict>()
        {
            if convert::encode_flat_dict(d, out)? {
                return post(out, Vec::new());
            }
            out.clear();
        }
        let mut buffers = Vec::new();
        Encoder::new(py, ports, tbufs)?.encode(message, out, &mut buffers)?;
        post(out, buffers)
    };
    // One thread-local access per post. The scratch is busy when encoding runs Python code
    // that posts again (a __del__, a helper): that nested post uses a fresh buffer.
    let mut run = Some(run);
    let reused = SCRATCH.try_with(|s| {
        let mut s = s.try_borrow_mut().ok()?;
        let run = run.take()?;
        let r = run(&mut s);
        if s.capacity() > 1 << 16 {
            *s = Vec::new();
        }
        Some(r)
    });
    match (reused, run) {
        (Ok(Some(r)), _) => r,
        (_, Some(run)) => run(&mut Vec::new()),
        // `run` was taken only when it ran, which returns above.
        (_, None) => Err(pyo3::exceptions::PyRuntimeError::new_err(
            "internal error: scratch buffer state",
        )),
    }
}

/// One end of a channel.
///
/// Handlers (`onmessage`, `add_event_listener`) and pull-style receives (`recv`,
/// iteration, `recv_async`) read the same queue.
#[pyclass(module = "channel_messaging._native", frozen, weakref)]
#[derive(Debug)]
pub struct MessagePort {
    pub source: Source,
    pub events: Events,
    /// The awaitables (`recv_async`, `ready`, `async for`) waiting on this port.
    pub waiters: Arc<Waiters>,
}

impl MessagePort {
    pub fn from_core(port: CorePort) -> Self {
        MessagePort {
            source: Source::Port(port),
            events: Events::default(),
            waiters: Arc::default(),
        }
    }

    pub fn core(&self) -> &CorePort {
        match &self.source {
            Source::Port(p) => p,
            // Never built: a MessagePort always wraps a port.
            Source::Broadcast(_) => unreachable_port(),
        }
    }

    fn closed_error(&self, py: Python<'_>) -> PyErr {
        let p = self.core();
        let why = if p.is_detached() {
            "the port was transferred away"
        } else if p.is_closed() {
            "the port is closed"
        } else {
            "the port's partner closed (or was dropped) and every message it sent was received"
        };
        errors::port_closed(py, why)
    }

    /// `post_message` (see fast.rs for its entry point).
    pub fn post_impl(
        &self,
        py: Python<'_>,
        message: &Bound<'_, PyAny>,
        transfer: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let size = post_to(py, self.core(), message, transfer)?;
        handoff::after_post(py, size);
        Ok(())
    }

    /// `recv` (see fast.rs for its entry point).
    pub fn recv_impl<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(Self::recv_common(slf, timeout)?.data)
    }

    fn recv_common<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<convert::Decoded<'py>> {
        let py = slf.py();
        let this = slf.get();
        match events::blocking_recv(py, this.core(), timeout)? {
            Ok(msg) => convert::decode_message(py, msg)
                .map_err(|f| errors::message_error(py, f.describe(py))),
            Err(RecvTimeoutError::Timeout) => Err(errors::empty(py, "no message arrived in time")),
            Err(RecvTimeoutError::Closed) => Err(this.closed_error(py)),
            Err(RecvTimeoutError::MessageError(e)) => Err(errors::message_error(
                py,
                format!("the message cannot be decoded: {e}"),
            )),
        }
    }
}

/// Posts `message` on `me` with the Python transfer list `transfer`, as `post_message`
/// does (checks, encoding, detaching what moves); returns the message's size as the core
/// counts queued bytes. On error nothing is posted and nothing detached.
fn post_to(
    py: Python<'_>,
    me: &CorePort,
    message: &Bound<'_, PyAny>,
    transfer: Option<&Bound<'_, PyAny>>,
) -> PyResult<usize> {
    if transfer.is_none_or(|t| t.is_none()) {
        // Nothing to transfer: no checks to run, nothing to detach.
        return encode_and(py, message, &[], &[], |bytes, buffers| {
            let size = message_size(bytes, &buffers);
            me.post_encoded(bytes, buffers, &[])
                .map_err(|e| errors::data_clone(py, e.message()))?;
            Ok(size)
        });
    }
    let mut transfer = Transfer::parse(py, transfer)?;
    let ports = std::mem::take(&mut transfer.ports);
    {
        let core_ports: Vec<&CorePort> = ports.iter().map(|p| p.get().core()).collect();
        me.check_transfer(&core_ports)
            .map_err(|e| errors::data_clone(py, transfer.port_error(e.message())))?;
    }
    let taken = transfer.take_buffers()?;
    let result = encode_and(py, message, &ports, &taken, |bytes, buffers| {
        let core_ports: Vec<&CorePort> = ports.iter().map(|p| p.get().core()).collect();
        let size = message_size(bytes, &buffers);
        me.post_encoded(bytes, buffers, &core_ports)
            .map_err(|e| errors::data_clone(py, transfer.port_error(e.message())))?;
        Ok(size)
    });
    match result {
        Ok(size) => {
            for (obj, data) in taken {
                drop(data);
                buffer::mark_detached(&obj);
            }
            for p in &ports {
                let p = p.get();
                p.events.release(&p.source);
            }
            Ok(size)
        }
        Err(e) => {
            convert::restore_buffers(taken);
            Err(e)
        }
    }
}

/// A structured clone of ``value``, made at once in this interpreter (spec G7): what a
/// port would deliver had ``value`` been posted to it with ``transfer``, with the same
/// rules and errors as ``MessagePort.post_message``.
///
/// Ports and Buffers listed in ``transfer`` move into the clone: the originals are
/// detached, a Buffer's clone has the very same memory, and a port's clone is a new
/// ``MessagePort`` still entangled with the original's partner. Everything else is
/// copied; shared references and cycles are kept (``x = []; x.append(x)`` gives a list
/// that holds itself, and is not ``x``).
///
/// Raises what ``post_message`` raises, with nothing detached: ``DataCloneError`` for
/// what cannot be cloned and for a bad transfer list (a duplicate, a detached entry, an
/// object that cannot be transferred), ``TypeError`` for a ``transfer`` that is not a
/// sequence of them.
///
///     >>> from channel_messaging import structured_clone, Buffer
///     >>> b = Buffer(b"abc")
///     >>> c = structured_clone({"data": b}, transfer=[b])
///     >>> bytes(c["data"]), b.detached
///     (b'abc', True)
#[pyfunction]
#[pyo3(signature = (value, transfer = None))]
pub fn structured_clone<'py>(
    py: Python<'py>,
    value: &Bound<'py, PyAny>,
    transfer: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    // Through a channel of its own: the very checks, moves and rebuilding of a post and
    // a receive (and none of a post's side effects elsewhere, such as GIL handoffs).
    let (a, b) = CoreChannel::new().into_ports();
    post_to(py, &a, value, transfer)?;
    let msg = match b.try_recv_message() {
        Ok(msg) => msg,
        Err(e) => {
            return Err(errors::data_clone(
                py,
                format!("the clone could not be read back: {e}"),
            ));
        }
    };
    convert::decode_message(py, msg)
        .map(|d| d.data)
        .map_err(|f| errors::data_clone(py, f.describe(py)))
}

/// A message's size as the core counts queued bytes: encoded bytes plus buffers.
fn message_size(bytes: &[u8], buffers: &[CoreBuffer]) -> usize {
    buffers
        .iter()
        .fold(bytes.len(), |n, b| n.saturating_add(b.len()))
}

#[allow(clippy::panic)]
fn unreachable_port() -> ! {
    // A MessagePort is only ever constructed with Source::Port (from_core).
    panic!("MessagePort without a port")
}

#[pymethods]
impl MessagePort {
    /// Posts `message` to the partner, transferring the ports and Buffers in `transfer`.
    /// (Python calls fast.rs's fastcall version, whose docstring is the one users see.)
    #[pyo3(signature = (message, transfer = None))]
    fn post_message(
        &self,
        py: Python<'_>,
        message: &Bound<'_, PyAny>,
        transfer: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        // Replaced at module init by the fastcall entry point of fast.rs (same body).
        self.post_impl(py, message, transfer)
    }

    /// Enables the port message queue: handlers start receiving (spec B2). Idempotent.
    fn start(&self) {
        self.events.start(&self.source);
    }

    /// Closes the port (spec D1). Idempotent; never raises.
    fn close(&self) {
        self.core().close();
        self.events.release(&self.source);
    }

    #[getter]
    fn get_onmessage(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.events.get(py, Kind::Message)
    }

    #[setter]
    fn set_onmessage(slf: &Bound<'_, Self>, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let this = slf.get();
        if this
            .events
            .set(slf.as_any(), &this.source, Kind::Message, value)?
        {
            // Setting onmessage to a handler starts the queue (spec B2); None does not.
            this.events.start(&this.source);
        }
        Ok(())
    }

    #[getter]
    fn get_onmessageerror(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.events.get(py, Kind::MessageError)
    }

    #[setter]
    fn set_onmessageerror(slf: &Bound<'_, Self>, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let this = slf.get();
        this.events
            .set(slf.as_any(), &this.source, Kind::MessageError, value)?;
        Ok(())
    }

    #[getter]
    fn get_onclose(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.events.get(py, Kind::Close)
    }

    #[setter]
    fn set_onclose(slf: &Bound<'_, Self>, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let this = slf.get();
        this.events
            .set(slf.as_any(), &this.source, Kind::Close, value)?;
        Ok(())
    }

    /// Adds `listener` for `type` ('message', 'messageerror' or 'close'). Does not start
    /// the queue (spec B2). Adding the same listener twice has no effect.
    #[pyo3(signature = (r#type, listener))]
    fn add_event_listener(
        slf: &Bound<'_, Self>,
        r#type: &str,
        listener: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let this = slf.get();
        this.events
            .add_listener(slf.as_any(), &this.source, Kind::parse(r#type)?, listener)
    }

    /// Removes a listener added with `add_event_listener` (no effect when absent).
    #[pyo3(signature = (r#type, listener))]
    fn remove_event_listener(
        slf: &Bound<'_, Self>,
        r#type: &str,
        listener: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        slf.get()
            .events
            .remove_listener(slf.as_any(), Kind::parse(r#type)?, listener)
    }

    /// Blocks (GIL released) for the next message and returns its data.
    #[pyo3(signature = (timeout = None))]
    fn recv<'py>(slf: &Bound<'py, Self>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        // Replaced at module init by the fastcall entry point of fast.rs (same body).
        Self::recv_impl(slf, timeout)
    }

    /// Blocks for the next message and returns the whole MessageEvent (data and ports).
    #[pyo3(signature = (timeout = None))]
    fn recv_event<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let d = Self::recv_common(slf, timeout)?;
        MessageEvent::create(slf.py(), "message", d.data, d.ports, slf.as_any())
    }

    /// The next message's data if one is queued now; raises Empty otherwise.
    fn recv_nowait<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::recv_common(slf, Some(0.0)).map(|d| d.data)
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        match Self::recv_common(slf, None) {
            Ok(d) => Ok(Some(d.data)),
            Err(e) if e.is_instance(py, errors::port_closed(py, "").get_type(py).as_any()) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// An awaitable of the next message's data (on the running asyncio loop),
    /// cancel-safe: see `Receive`.
    fn recv_async(slf: &Bound<'_, Self>) -> Receive {
        Receive::new(slf.as_any(), false)
    }

    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __anext__(slf: &Bound<'_, Self>) -> Receive {
        Receive::new(slf.as_any(), true)
    }

    /// Sets flow-control limits on this port's queue (None: no limit).
    #[pyo3(signature = (max_messages = None, max_bytes = None))]
    fn set_limits(&self, max_messages: Option<usize>, max_bytes: Option<usize>) {
        self.core().set_limits(Limits {
            max_messages,
            max_bytes,
        });
    }

    /// Whether the partner's queue is below its limits (posting adds no pressure).
    fn is_ready(&self) -> bool {
        self.core().is_ready()
    }

    /// An awaitable that resolves (to None) once `is_ready()` is true: `await
    /// port.ready()` before posting keeps a fast sender within the receiver's limits.
    fn ready<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        start_async(slf.as_any(), AsyncOp::Ready)
    }

    /// Queue statistics: queued_messages, queued_bytes, closed, max_messages, max_bytes.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.core().stats();
        let d = PyDict::new(py);
        d.set_item("queued_messages", s.queued_messages)?;
        d.set_item("queued_bytes", s.queued_bytes)?;
        d.set_item("closed", s.closed)?;
        d.set_item("max_messages", s.limits.max_messages)?;
        d.set_item("max_bytes", s.limits.max_bytes)?;
        Ok(d)
    }

    /// Whether close() was called on this port.
    #[getter]
    fn closed(&self) -> bool {
        self.core().is_closed()
    }

    /// Whether this port was transferred away (it is inert).
    #[getter]
    fn detached(&self) -> bool {
        self.core().is_detached()
    }

    /// Whether the port still has a partner to post to.
    #[getter]
    fn entangled(&self) -> bool {
        self.core().is_entangled()
    }

    /// Detaches the port, as a transfer would, under a single-use number that any
    /// thread or binding of this process can adopt with `MessagePort.import_handle`.
    fn export_handle(&self, py: Python<'_>) -> PyResult<u64> {
        let h = self.core().export_handle().map_err(|e| {
            // (the core checks the port as the only one of a transfer list)
            errors::data_clone(
                py,
                e.message()
                    .replace("the port at transfer index 0", "this port"),
            )
        })?;
        self.events.release(&self.source);
        Ok(h)
    }

    /// Adopts a port exported with `export_handle` (from any binding of this process).
    #[staticmethod]
    fn import_handle(py: Python<'_>, handle: u64) -> PyResult<MessagePort> {
        CorePort::import_handle(handle)
            .map(MessagePort::from_core)
            .ok_or_else(|| {
                errors::invalid_state(py, format!("no exported port has the handle {handle}"))
            })
    }

    fn __repr__(&self) -> String {
        let p = self.core();
        let state = if p.is_detached() {
            "detached"
        } else if p.is_closed() {
            "closed"
        } else if p.is_entangled() {
            "entangled"
        } else {
            "disentangled"
        };
        format!("<MessagePort {state}>")
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.events.traverse(&visit)
    }

    fn __clear__(&self) {
        self.events.clear();
    }
}

// ---- async receive and ready() -------------------------------------------------------

/// What a pending awaitable waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncOp {
    /// Something to receive (a message or the end): a `Receive` then takes it.
    Readable,
    /// Room in the partner's queue (`ready()`).
    Ready,
}

/// One pending awaitable: polled on its loop when the core wakes it.
#[derive(Debug)]
struct AsyncTask {
    /// A weak reference to the MessagePort or BroadcastChannel.
    target: Py<PyAny>,
    fut: Py<PyAny>,
    event_loop: Py<PyAny>,
    op: AsyncOp,
}

/// The awaitables waiting on one port or channel, behind one waker: the core keeps one
/// entry per distinct waker, so a port has one entry however many awaitables were
/// polled, and an awaitable that is cancelled or times out (a `wait_for(recv_async(),
/// t)` loop on an idle port) leaves nothing behind: it is dropped when the next one
/// registers. (A waker per poll piled up in the core, each new one scanning them all,
/// until a message came.)
#[derive(Debug, Default)]
pub struct Waiters(Mutex<Vec<Arc<AsyncTask>>>);

impl Waiters {
    /// Registers `task` (once), dropping the tasks whose future is done; the waker to
    /// poll with.
    fn waker_for(self: &Arc<Self>, py: Python<'_>, task: &Arc<AsyncTask>) -> Waker {
        // Which tasks are done is asked outside the lock: `done()` is Python code (which
        // may let another thread take the GIL), and a thread that posts takes this lock
        // while it holds the GIL. Dropped tasks are released outside it too (the last
        // reference to a future may run Python code).
        let listed: Vec<Arc<AsyncTask>> = self.0.lock().map(|t| t.clone()).unwrap_or_default();
        let done: Vec<Arc<AsyncTask>> = listed.into_iter().filter(|t| future_done(py, t)).collect();
        let mut gone = Vec::new();
        if let Ok(mut tasks) = self.0.lock() {
            let (out, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut *tasks)
                .into_iter()
                .partition(|t| done.iter().any(|d| Arc::ptr_eq(d, t)));
            *tasks = keep;
            gone = out;
            if !tasks.iter().any(|t| Arc::ptr_eq(t, task)) {
                tasks.push(Arc::clone(task));
            }
        }
        drop(gone);
        drop(done);
        Waker::from(Arc::clone(self))
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        let tasks = self
            .0
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks {
            schedule(task);
        }
    }
}

fn future_done(py: Python<'_>, t: &AsyncTask) -> bool {
    t.fut
        .bind(py)
        .call_method0("done")
        .and_then(|d| d.is_truthy())
        .unwrap_or(true)
}

/// Polls `task` again on its loop.
fn schedule(task: Arc<AsyncTask>) {
    // At once when the waking thread holds the GIL (a Python thread that posted: no
    // user code runs here, only the future's and the loop's own methods), else through
    // the dispatcher thread: the core wakes from whatever thread made the port ready,
    // which may not be a Python thread and should not wait there for the GIL. (So an
    // awaitable does not wait for the dispatcher, busy with another port's handler,
    // when a Python thread posted.)
    dispatch::run_or_push(Box::new(move |py| {
        // A stale wake-up (the awaitable settled already, or its loop is closed) is
        // dropped.
        if future_done(py, &task) || crate::events::loop_closed(task.event_loop.bind(py)) {
            return;
        }
        let lp = task.event_loop.clone_ref(py);
        let Ok(runner) = Bound::new(py, RecvTask { task: Some(task) }) else {
            return;
        };
        if let Err(e) = lp.bind(py).call_method1("call_soon_threadsafe", (runner,)) {
            e.write_unraisable(py, None);
        }
    }));
}

/// The callback that polls an `AsyncTask` on its loop (internal).
#[pyclass(module = "channel_messaging._native", frozen)]
#[derive(Debug)]
pub struct RecvTask {
    task: Option<Arc<AsyncTask>>,
}

#[pymethods]
impl RecvTask {
    fn __call__(&self, py: Python<'_>) {
        if let Some(t) = &self.task {
            poll_async(py, t);
        }
    }
}

fn settle(py: Python<'_>, fut: &Bound<'_, PyAny>, result: PyResult<Bound<'_, PyAny>>) {
    let r = match result {
        Ok(v) => fut.call_method1("set_result", (v,)),
        Err(e) => fut.call_method1("set_exception", (e.value(py),)),
    };
    if let Err(e) = r {
        e.write_unraisable(py, Some(fut));
    }
}

fn decoded(py: Python<'_>, msg: channel_messaging::Message) -> PyResult<Bound<'_, PyAny>> {
    convert::decode_message(py, msg)
        .map(|d| d.data)
        .map_err(|f| errors::message_error(py, f.describe(py)))
}

fn poll_async(py: Python<'_>, task: &Arc<AsyncTask>) {
    let fut = task.fut.bind(py);
    if future_done(py, task) {
        return; // cancelled
    }
    let target = task.target.bind(py).call0().ok().filter(|p| !p.is_none());
    let Some(target) = target else {
        settle(
            py,
            fut,
            Err(errors::port_closed(py, "the port was garbage-collected")),
        );
        return;
    };
    let done = if let Ok(port) = target.cast::<MessagePort>() {
        let this = port.get();
        let waker = this.waiters.waker_for(py, task);
        let mut cx = Context::from_waker(&waker);
        match task.op {
            AsyncOp::Ready => Pin::new(&mut this.core().ready()).poll(&mut cx).is_ready(),
            AsyncOp::Readable => this.core().poll_readable(&mut cx).is_ready(),
        }
    } else if let Ok(bc) = target.cast::<BroadcastChannel>() {
        let waker = bc.get().waiters.waker_for(py, task);
        let mut cx = Context::from_waker(&waker);
        bc.get().core().poll_readable(&mut cx).is_ready()
    } else {
        false
    };
    if done {
        settle(py, fut, Ok(py.None().into_bound(py)));
    }
}

/// The awaitable of `recv_async()` and `__anext__()` (internal type).
///
/// Cancel-safe: it waits for the queue to hold something (a future that the core's
/// waker resolves, with no result) and takes the message only when the awaiting task
/// runs again, in that task. A task cancelled meanwhile (a timeout, a task group) takes
/// nothing, and the message stays queued for the next receive, as `asyncio.Queue.get()`
/// does. (A future resolved with the message itself lost it: asyncio discards the result
/// of a future whose task was cancelled before it resumed.) When another receiver took
/// the message first, it waits again.
#[pyclass(module = "channel_messaging._native", frozen)]
#[derive(Debug)]
pub struct Receive {
    /// The MessagePort or BroadcastChannel.
    target: Py<PyAny>,
    /// `__anext__`: the end is StopAsyncIteration, not PortClosedError.
    end_iteration: bool,
}

impl Receive {
    pub(crate) fn new(target: &Bound<'_, PyAny>, end_iteration: bool) -> Self {
        Receive {
            target: target.clone().unbind(),
            end_iteration,
        }
    }

    /// What is queued, taken now: `Some` result (the data, or the end or a message
    /// error as an exception), `None` when the queue is empty.
    fn take<'py>(&self, py: Python<'py>) -> Option<PyResult<Bound<'py, PyAny>>> {
        let target = self.target.bind(py);
        let (got, closed) = if let Ok(port) = target.cast::<MessagePort>() {
            let this = port.get();
            (this.core().try_recv_message(), this.closed_error(py))
        } else if let Ok(bc) = target.cast::<BroadcastChannel>() {
            (
                bc.get().core().try_recv_message(),
                errors::port_closed(py, "the BroadcastChannel is closed"),
            )
        } else {
            return Some(Err(pyo3::exceptions::PyTypeError::new_err(
                "not a MessagePort or a BroadcastChannel",
            )));
        };
        match got {
            Ok(msg) => Some(decoded(py, msg)),
            Err(TryRecvError::Empty) => None,
            Err(_) if self.end_iteration => Some(Err(PyStopAsyncIteration::new_err(()))),
            Err(_) => Some(Err(closed)),
        }
    }

    /// One step of the await: the message's data as StopIteration's value, the end or a
    /// message error raised, or a future to wait on (yielded to the task).
    fn step<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        loop {
            match self.take(py) {
                Some(Ok(data)) => {
                    return Err(pyo3::exceptions::PyStopIteration::new_err((data.unbind(),)));
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
            let fut = start_async(self.target.bind(py), AsyncOp::Readable)?;
            if !fut.call_method0("done")?.is_truthy()? {
                // as Future.__await__ does before yielding itself to the task
                fut.setattr("_asyncio_future_blocking", true)?;
                return Ok(fut);
            }
            // readable already: take it
        }
    }
}

#[pymethods]
impl Receive {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.step(py)
    }

    /// The task resuming the await (the value is the awaited future's: none).
    fn send<'py>(&self, py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let _ = value;
        self.step(py)
    }

    fn __repr__(&self) -> &'static str {
        "<channel_messaging awaitable of the next message>"
    }
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// An awaitable (an asyncio future of the running loop) for `op` on `target` (a
/// MessagePort or a BroadcastChannel).
pub fn start_async<'py>(target: &Bound<'py, PyAny>, op: AsyncOp) -> PyResult<Bound<'py, PyAny>> {
    let py = target.py();
    let lp = GET_RUNNING_LOOP
        .import(py, "asyncio", "get_running_loop")?
        .call0()?;
    let fut = lp.call_method0("create_future")?;
    let task = Arc::new(AsyncTask {
        target: PyWeakrefReference::new(target)?.into_any().unbind(),
        fut: fut.clone().unbind(),
        event_loop: lp.unbind(),
        op,
    });
    dispatch::ensure(py)?;
    poll_async(py, &task);
    Ok(fut)
}

// ---- MessageChannel ---------------------------------------------------------------------

/// Two entangled ports (spec A1, A2).
#[pyclass(module = "channel_messaging._native", frozen)]
#[derive(Debug)]
pub struct MessageChannel {
    port1: Py<MessagePort>,
    port2: Py<MessagePort>,
}

#[pymethods]
impl MessageChannel {
    #[new]
    fn new(py: Python<'_>) -> PyResult<Self> {
        let (a, b) = CoreChannel::new().into_ports();
        Ok(MessageChannel {
            port1: Py::new(py, MessagePort::from_core(a))?,
            port2: Py::new(py, MessagePort::from_core(b))?,
        })
    }

    /// The first port (always the same object, spec A3).
    #[getter]
    fn port1(&self, py: Python<'_>) -> Py<MessagePort> {
        self.port1.clone_ref(py)
    }

    /// The second port (always the same object, spec A3).
    #[getter]
    fn port2(&self, py: Python<'_>) -> Py<MessagePort> {
        self.port2.clone_ref(py)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(
            PyTuple::new(py, [self.port1.clone_ref(py), self.port2.clone_ref(py)])?
                .into_any()
                .try_iter()?
                .into_any(),
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.port1)?;
        visit.call(&self.port2)
    }
}

// ---- raw access for tests and other bindings ------------------------------------------

/// Posts already-encoded bytes (docs/wire-format.md) with a side table of buffers,
/// transferring `transfer` (internal: golden-vector tests, cross-binding fixtures).
#[pyfunction]
#[pyo3(signature = (port, data, buffers = Vec::new(), transfer = Vec::new()))]
pub fn _post_encoded(
    py: Python<'_>,
    port: &Bound<'_, MessagePort>,
    data: &[u8],
    buffers: Vec<Vec<u8>>,
    transfer: Vec<Bound<'_, MessagePort>>,
) -> PyResult<()> {
    let ports: Vec<&CorePort> = transfer.iter().map(|p| p.get().core()).collect();
    let buffers = buffers.into_iter().map(CoreBuffer::from).collect();
    port.get()
        .core()
        .post_encoded(data, buffers, &ports)
        .map_err(|e| errors::data_clone(py, e.message()))?;
    for p in &transfer {
        p.get().events.release(&p.get().source);
    }
    Ok(())
}

/// The encoding of `value` (no transfer): `(bytes, side-table buffers)` (internal).
#[pyfunction]
pub fn _encode<'py>(
    py: Python<'py>,
    value: &Bound<'py, PyAny>,
) -> PyResult<(
    Bound<'py, pyo3::types::PyBytes>,
    Vec<Bound<'py, pyo3::types::PyBytes>>,
)> {
    encode_and(py, value, &[], &[], |bytes, buffers| {
        Ok((
            pyo3::types::PyBytes::new(py, bytes),
            buffers
                .iter()
                .map(|b| pyo3::types::PyBytes::new(py, b))
                .collect(),
        ))
    })
}

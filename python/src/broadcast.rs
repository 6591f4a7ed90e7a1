//! `BroadcastChannel` (spec (i)) and `PortCollection` (spec (h)).

use std::sync::Mutex;
use std::time::Duration;

use channel_messaging::{
    BroadcastChannel as CoreBroadcast, PortCollection as CoreCollection, PostError,
    RecvTimeoutError, TryRecvError,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyWeakrefReference};
use pyo3::{PyTraverseError, PyVisit};

use crate::convert;
use crate::errors;
use crate::events::{Events, Kind, Source};
use crate::port::{MessagePort, Receive, encode_and};

/// A named, process-wide group: what one member posts, every other member with the same
/// name receives (spec I1-I6). No transfer list; no delivery to the sender.
#[pyclass(module = "channel_messaging._native", frozen, weakref)]
#[derive(Debug)]
pub struct BroadcastChannel {
    pub source: Source,
    pub events: Events,
    /// The awaitables waiting on this channel (see `port::Waiters`).
    pub waiters: std::sync::Arc<crate::port::Waiters>,
}

impl BroadcastChannel {
    pub fn core(&self) -> &CoreBroadcast {
        match &self.source {
            Source::Broadcast(b) => b,
            Source::Port(_) => unreachable_bc(),
        }
    }

    fn recv_data<'py>(slf: &Bound<'py, Self>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let bc = slf.get().core();
        // (the argument is checked first, whether or not a message is queued)
        crate::events::check_timeout(timeout)?;
        match bc.try_recv_message() {
            Ok(m) => {
                return convert::decode_message(py, m)
                    .map(|d| d.data)
                    .map_err(|f| errors::message_error(py, f.describe(py)));
            }
            Err(TryRecvError::Closed) => {
                return Err(errors::port_closed(py, "the BroadcastChannel is closed"));
            }
            Err(_) => {}
        }
        let deadline =
            timeout.map(|t| std::time::Instant::now() + Duration::from_secs_f64(t.min(1e9)));
        loop {
            let wait = match deadline {
                None => Duration::from_millis(50),
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(errors::empty(py, "no message arrived in time"));
                    }
                    left.min(Duration::from_millis(50))
                }
            };
            match py.detach(|| bc.recv_message_timeout(wait)) {
                Ok(m) => {
                    return convert::decode_message(py, m)
                        .map(|d| d.data)
                        .map_err(|f| errors::message_error(py, f.describe(py)));
                }
                Err(RecvTimeoutError::Timeout) => py.check_signals()?,
                Err(RecvTimeoutError::Closed) => {
                    return Err(errors::port_closed(py, "the BroadcastChannel is closed"));
                }
                Err(RecvTimeoutError::MessageError(e)) => {
                    return Err(errors::message_error(
                        py,
                        format!("the message cannot be decoded: {e}"),
                    ));
                }
            }
        }
    }
}

#[allow(clippy::panic)]
fn unreachable_bc() -> ! {
    // A BroadcastChannel is only ever constructed with Source::Broadcast.
    panic!("BroadcastChannel without a channel")
}

#[pymethods]
impl BroadcastChannel {
    #[new]
    fn new(name: &Bound<'_, PyAny>) -> PyResult<Self> {
        // IDL DOMString conversion: any object becomes its str() (spec I2). A name with
        // lone surrogates is refused: names are Unicode text in every face, and a lossy
        // conversion would join distinct names into one group.
        let name = name
            .str()?
            .to_cow()
            .map_err(|_| {
                PyValueError::new_err(
                    "a BroadcastChannel name cannot hold lone surrogates (it must be valid \
                     Unicode)",
                )
            })?
            .into_owned();
        Ok(BroadcastChannel {
            source: Source::Broadcast(CoreBroadcast::new(name)),
            events: Events::default(),
            waiters: Default::default(),
        })
    }

    /// The channel's name.
    #[getter]
    fn name(&self) -> String {
        self.core().name().to_owned()
    }

    /// Whether close() was called.
    #[getter]
    fn closed(&self) -> bool {
        self.core().is_closed()
    }

    /// Sends a clone of `message` to every other open channel of the same name. Raises
    /// InvalidStateError when closed (checked first, spec I3), DataCloneError when the
    /// message cannot be cloned. Returns how many channels it was queued for.
    fn post_message(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<usize> {
        let bc = self.core();
        if bc.is_closed() {
            return Err(errors::invalid_state(py, "the BroadcastChannel is closed"));
        }
        encode_and(py, message, &[], &[], |bytes, buffers| {
            bc.post_encoded(bytes, buffers).map_err(|e| match e {
                PostError::InvalidState(e) => errors::invalid_state(py, e.message()),
                PostError::DataClone(e) => errors::data_clone(py, e.message()),
            })
        })
    }

    /// Closes the channel (idempotent, spec I4).
    fn close(&self) {
        self.core().close();
        self.events.release(&self.source);
    }

    /// Enables delivery to handlers added with add_event_listener (setting onmessage
    /// does it too).
    fn start(&self) {
        self.events.start(&self.source);
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

    /// Adds a 'message' or 'messageerror' listener.
    #[pyo3(signature = (r#type, listener))]
    fn add_event_listener(
        slf: &Bound<'_, Self>,
        r#type: &str,
        listener: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let this = slf.get();
        this.events.add_listener(
            slf.as_any(),
            &this.source,
            Kind::parse_broadcast(r#type)?,
            listener,
        )
    }

    /// Removes a listener.
    #[pyo3(signature = (r#type, listener))]
    fn remove_event_listener(
        slf: &Bound<'_, Self>,
        r#type: &str,
        listener: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        slf.get()
            .events
            .remove_listener(slf.as_any(), Kind::parse_broadcast(r#type)?, listener)
    }

    /// Blocks (GIL released) for the next message's data.
    #[pyo3(signature = (timeout = None))]
    fn recv<'py>(slf: &Bound<'py, Self>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        Self::recv_data(slf, timeout)
    }

    /// The next message's data if one is queued; raises Empty otherwise.
    fn recv_nowait<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::recv_data(slf, Some(0.0))
    }

    /// An awaitable of the next message's data (on the running asyncio loop); raises
    /// PortClosedError once the channel is closed. Cancel-safe (see `Receive`).
    fn recv_async(slf: &Bound<'_, Self>) -> Receive {
        Receive::new(slf.as_any(), false)
    }

    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __anext__(slf: &Bound<'_, Self>) -> Receive {
        Receive::new(slf.as_any(), true)
    }

    fn __repr__(&self) -> String {
        let bc = self.core();
        format!(
            "<BroadcastChannel name={:?}{}>",
            bc.name(),
            if bc.is_closed() { " closed" } else { "" }
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.events.traverse(&visit)
    }

    fn __clear__(&self) {
        self.events.clear();
    }
}

/// A weak, insertion-ordered set of ports that can broadcast to all of them (spec (h),
/// non-standard). Closed, transferred and garbage-collected ports leave it by themselves.
#[pyclass(module = "channel_messaging._native", frozen)]
#[derive(Debug)]
pub struct PortCollection {
    core: CoreCollection,
    /// Weak references to the Python port objects, in insertion order.
    members: Mutex<Vec<Py<PyAny>>>,
}

impl PortCollection {
    fn live<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, MessagePort>>> {
        let mut members = self
            .members
            .lock()
            .map_err(|_| PyRuntimeError::new_err("internal lock poisoned"))?;
        let mut out = Vec::new();
        let mut keep = Vec::new();
        for w in members.drain(..) {
            let Ok(obj) = w.bind(py).call0() else {
                continue;
            };
            let Ok(port) = obj.cast_into::<MessagePort>() else {
                continue;
            };
            if self.core.contains(port.get().core()) {
                out.push(port);
                keep.push(w);
            }
        }
        *members = keep;
        Ok(out)
    }
}

#[pymethods]
impl PortCollection {
    #[new]
    fn new() -> Self {
        PortCollection {
            core: CoreCollection::new(),
            members: Mutex::new(Vec::new()),
        }
    }

    /// Adds `port` (no effect when present, closed or transferred).
    fn add(&self, port: &Bound<'_, MessagePort>) -> PyResult<()> {
        let py = port.py();
        let live = self.live(py)?;
        if live.iter().any(|p| p.is(port)) {
            return Ok(());
        }
        self.core.add(port.get().core());
        if self.core.contains(port.get().core()) {
            let w = PyWeakrefReference::new(port.as_any())?.into_any().unbind();
            self.members
                .lock()
                .map_err(|_| PyRuntimeError::new_err("internal lock poisoned"))?
                .push(w);
        }
        Ok(())
    }

    /// Removes `port` (no effect when absent).
    fn remove(&self, port: &Bound<'_, MessagePort>) -> PyResult<()> {
        self.core.remove(port.get().core());
        self.live(port.py())?;
        Ok(())
    }

    /// Removes every port.
    fn clear(&self) -> PyResult<()> {
        self.core.clear();
        self.members
            .lock()
            .map_err(|_| PyRuntimeError::new_err("internal lock poisoned"))?
            .clear();
        Ok(())
    }

    /// Calls `callback(port)` for each member, oldest first.
    fn iterate(&self, py: Python<'_>, callback: &Bound<'_, PyAny>) -> PyResult<()> {
        for port in self.live(py)? {
            callback.call1((port,))?;
        }
        Ok(())
    }

    /// Posts a clone of `message` to every member's partner (no transfer: one object
    /// cannot go to many ports). Returns the number of members.
    fn post_message(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<usize> {
        encode_and(py, message, &[], &[], |bytes, buffers| {
            self.core
                .post_encoded(bytes, buffers, &[])
                .map_err(|e| errors::data_clone(py, e.message()))
        })
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.live(py)?.len())
    }

    fn __contains__(&self, port: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(port) = port.cast::<MessagePort>() else {
            return Ok(false);
        };
        Ok(self.live(port.py())?.iter().any(|p| p.is(port)))
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyList::new(py, self.live(py)?)?
            .into_any()
            .try_iter()?
            .into_any())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "<PortCollection of {} ports>",
            self.live(py)?.len()
        ))
    }
}

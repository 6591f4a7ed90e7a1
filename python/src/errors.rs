//! The package's exception classes (defined in channel_messaging/_errors.py so that they
//! can subclass `queue.Empty` and carry docstrings), raised from Rust.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

macro_rules! error_class {
    ($fn:ident, $cell:ident, $name:literal) => {
        static $cell: PyOnceLock<Py<PyType>> = PyOnceLock::new();

        /// A new exception of this class with `msg`.
        pub fn $fn(py: Python<'_>, msg: impl Into<String>) -> PyErr {
            let msg = msg.into();
            match $cell.import(py, "channel_messaging._errors", $name) {
                Ok(ty) => PyErr::from_type(ty.clone(), msg),
                Err(e) => e,
            }
        }
    };
}

error_class!(data_clone, DATA_CLONE, "DataCloneError");
error_class!(invalid_state, INVALID_STATE, "InvalidStateError");
error_class!(empty, EMPTY, "Empty");
error_class!(port_closed, PORT_CLOSED, "PortClosedError");
error_class!(message_error, MESSAGE_ERROR, "MessageError");
error_class!(detached_error, DETACHED, "DetachedError");

/// The error for using a detached `Buffer`.
pub fn detached(py: Python<'_>) -> PyErr {
    detached_error(py, "this Buffer is detached: it was transferred")
}

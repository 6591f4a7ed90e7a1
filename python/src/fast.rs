//! Vectorcall ("fastcall") entry points for the per-message methods.
//!
//! pyo3 gives `#[pymethods]` the fastcall convention only for abi3 builds targeting
//! Python 3.10+; for this crate's `abi3-py39` it falls back to `METH_VARARGS |
//! METH_KEYWORDS`, which costs every call an argument tuple and a `tp_call` detour (about
//! 30 ns of a ~250 ns post). `METH_FASTCALL | METH_KEYWORDS` exists with the same ABI in
//! every CPython from 3.7, so these methods are installed by hand, as method descriptors
//! replacing pyo3's, at module init. They run through pyo3's own trampoline (panic trap,
//! attach bookkeeping) and call the same implementation as the pyo3 methods.

use std::ffi::{CStr, c_int};

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::impl_::trampoline::{MethodDef, fastcall_cfunction_with_keywords as fastcall};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple, PyType};
use pyo3::{Borrowed, PyTypeInfo};

use crate::port::MessagePort;

const METH_FASTCALL: c_int = 0x0080;

/// A `METH_FASTCALL | METH_KEYWORDS` function (CPython's `_PyCFunctionFastWithKeywords`).
type FastFn = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *const *mut ffi::PyObject,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

/// The positional-or-keyword arguments of a fastcall call, by name.
///
/// # Safety
/// `args` holds `nargs` positional arguments followed by one value per name in
/// `kwnames` (a tuple of str, or NULL), all borrowed for the call.
unsafe fn parse<'a, 'py, const N: usize>(
    py: Python<'py>,
    func: &str,
    names: [&str; N],
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<[Option<Borrowed<'a, 'py, PyAny>>; N]> {
    let nargs = nargs as usize;
    if nargs > N {
        return Err(PyTypeError::new_err(format!(
            "{func}() takes at most {N} positional arguments ({nargs} given)"
        )));
    }
    let mut out = [None; N];
    for (i, slot) in out.iter_mut().enumerate().take(nargs) {
        // SAFETY: per the contract, args[i] is valid for i < nargs.
        *slot = Some(unsafe { Borrowed::from_ptr(py, *args.add(i)) });
    }
    if !kwnames.is_null() {
        // SAFETY: kwnames is a tuple (contract); borrowed for the call.
        let kw = unsafe { Borrowed::from_ptr(py, kwnames) }.cast::<PyTuple>()?;
        for (j, name) in kw.iter().enumerate() {
            let name = name.cast::<PyString>()?.to_cow()?;
            let name = &*name;
            let Some(i) = names.iter().position(|n| *n == name) else {
                return Err(PyTypeError::new_err(format!(
                    "{func}() got an unexpected keyword argument '{name}'"
                )));
            };
            if out[i].is_some() {
                return Err(PyTypeError::new_err(format!(
                    "{func}() got multiple values for argument '{name}'"
                )));
            }
            // SAFETY: the keyword values follow the positional ones.
            out[i] = Some(unsafe { Borrowed::from_ptr(py, *args.add(nargs + j)) });
        }
    }
    Ok(out)
}

fn this<'a, 'py>(
    py: Python<'py>,
    slf: *mut ffi::PyObject,
) -> PyResult<Borrowed<'a, 'py, MessagePort>> {
    // SAFETY: `slf` is the borrowed `self` of a method call.
    let slf = unsafe { Borrowed::from_ptr(py, slf) };
    Ok(slf.cast::<MessagePort>()?)
}

/// `MessagePort.post_message(message, transfer=None)`.
unsafe fn post_message(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    let port = this(py, slf)?;
    // SAFETY: CPython's fastcall contract.
    let [message, transfer] = unsafe {
        parse(
            py,
            "post_message",
            ["message", "transfer"],
            args,
            nargs,
            kwnames,
        )?
    };
    let Some(message) = message else {
        return Err(PyTypeError::new_err(
            "post_message() missing required argument 'message'",
        ));
    };
    port.get().post_impl(py, &message, transfer.as_deref())?;
    Ok(py.None().into_ptr())
}

/// `MessagePort.recv(timeout=None)`.
unsafe fn recv(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    let port = this(py, slf)?;
    let timeout = if nargs == 0 && kwnames.is_null() {
        None
    } else {
        // SAFETY: CPython's fastcall contract.
        let [t] = unsafe { parse(py, "recv", ["timeout"], args, nargs, kwnames)? };
        match t {
            Some(t) if !t.is_none() => Some(t.extract::<f64>()?),
            _ => None,
        }
    };
    Ok(MessagePort::recv_impl(&port, timeout)?.into_ptr())
}

struct PostDef;
impl MethodDef<fastcall::Func> for PostDef {
    const METH: fastcall::Func = post_message;
}

struct RecvDef;
impl MethodDef<fastcall::Func> for RecvDef {
    const METH: fastcall::Func = recv;
}

/// Replaces `name` on `ty` by a fastcall method descriptor calling `meth`.
fn install(
    ty: &Bound<'_, PyType>,
    name: &'static CStr,
    doc: &'static CStr,
    meth: FastFn,
) -> PyResult<()> {
    let py = ty.py();
    // The descriptor keeps a pointer to its definition: leak one per method (once per
    // process; module init runs once).
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        // SAFETY: a fastcall function pointer stored in the union's PyCFunction field,
        // as C does; CPython calls it per METH_FASTCALL | METH_KEYWORDS.
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunction: unsafe { std::mem::transmute::<FastFn, ffi::PyCFunction>(meth) },
        },
        ml_flags: METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: doc.as_ptr(),
    }));
    // SAFETY: a valid type and a 'static method definition; the GIL is held.
    let descr = unsafe { ffi::PyDescr_NewMethod(ty.as_ptr().cast(), def) };
    // SAFETY: a new reference or NULL with an exception set.
    let descr = unsafe { Bound::from_owned_ptr_or_err(py, descr)? };
    let name = name
        .to_str()
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    ty.setattr(name, descr)
}

/// Installs the fastcall methods on `MessagePort`.
pub fn install_all(py: Python<'_>) -> PyResult<()> {
    let ty = MessagePort::type_object(py);
    install(
        &ty,
        c"post_message",
        c"post_message($self, /, message, transfer=None)\n--\n\nPosts `message` to the partner, transferring the ports and Buffers in `transfer`.\n\n`message` may hold None, bool, int (any size), float, str, bytes-like objects\n(bytes, bytearray, Buffer), memoryviews and other objects with the buffer protocol\n(NumPy arrays: as typed arrays), list, tuple, dict, set, frozenset, datetime,\nexceptions, RegExp, UNDEFINED and the ports listed in `transfer`; shared references\nand cycles are kept. Anything else raises DataCloneError, and nothing is sent.\n\nGIL handoff: when another thread is blocked in recv() with at least the handoff threshold\n(4 MiB by default, see set_handoff_threshold) queued on its port, this call releases the GIL\nuntil that thread has it, so that it reads its messages while they are in the caches.",
        fastcall::<PostDef>,
    )?;
    install(
        &ty,
        c"recv",
        c"recv($self, /, timeout=None)\n--\n\nBlocks (GIL released) for the next message and returns its data.",
        fastcall::<RecvDef>,
    )
}

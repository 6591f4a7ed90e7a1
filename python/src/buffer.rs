//! `_BufferBase`: the native half of `channel_messaging.Buffer`, a bytes-like object whose
//! memory moves between threads without a copy.
//!
//! The type is built with `PyType_FromSpec` by hand because pyo3 only offers the buffer
//! protocol for abi3 builds targeting 3.11+ (see capi.rs). Its state is a `Vec<u8>`, the
//! number of live buffer exports (memoryviews), and a detached flag. Transferring takes
//! the `Vec` (its heap block goes on to the receiver unchanged) and detaches the object:
//! length 0, and any further use of its bytes raises `DetachedError`. Blocks of freed
//! Buffers go to the core's block pool (`channel_messaging::pool`), which `Buffer(n)` and
//! received copies draw from.

use std::ffi::{c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use pyo3::exceptions::{PyMemoryError, PyOverflowError, PySystemError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyInt, PyTuple, PyType};

use crate::capi::{self, PyBuffer};
use crate::errors;
use channel_messaging::pool;

#[repr(C)]
struct RawBuffer {
    ob_base: ffi::PyObject,
    data: Vec<u8>,
    exports: ffi::Py_ssize_t,
    detached: bool,
}

static BASE_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static PUBLIC_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Creates the `_BufferBase` type (once, at module init).
pub fn base_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    BASE_TYPE
        .get_or_try_init(py, || {
            capi::new_type(
                py,
                c"channel_messaging._native._BufferBase",
                std::mem::size_of::<RawBuffer>(),
                ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_BASETYPE,
                &[
                    capi::slot(ffi::Py_tp_new, buffer_new as *const c_void),
                    capi::slot(ffi::Py_tp_dealloc, buffer_dealloc as *const c_void),
                    capi::slot(ffi::Py_sq_length, buffer_len as *const c_void),
                    capi::slot(capi::PY_BF_GETBUFFER, buffer_getbuffer as *const c_void),
                    capi::slot(
                        capi::PY_BF_RELEASEBUFFER,
                        buffer_releasebuffer as *const c_void,
                    ),
                    capi::slot(
                        ffi::Py_tp_doc,
                        c"Native storage of channel_messaging.Buffer."
                            .as_ptr()
                            .cast(),
                    ),
                ],
            )
        })
        .map(|t| t.bind(py))
}

/// The public `channel_messaging.Buffer` class (a Python subclass of `_BufferBase`).
fn public_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    PUBLIC_TYPE.import(py, "channel_messaging._buffer", "Buffer")
}

/// Whether `obj` is a `Buffer` (any subclass of `_BufferBase`).
pub fn is_buffer(obj: &Bound<'_, PyAny>) -> bool {
    match BASE_TYPE.get(obj.py()) {
        Some(base) => {
            let base = base.as_ptr() as *mut ffi::PyTypeObject;
            let ty = obj.get_type_ptr();
            // SAFETY: two valid type objects; the GIL is held.
            ty == base || unsafe { ffi::PyType_IsSubtype(ty, base) != 0 }
        }
        None => false,
    }
}

/// # Safety
/// `obj` must be a `_BufferBase` instance, and the GIL held for as long as the result is used.
unsafe fn raw<'a>(obj: &Bound<'_, PyAny>) -> &'a mut RawBuffer {
    // SAFETY: per the contract; the GIL serializes every access to the state.
    unsafe { &mut *(obj.as_ptr() as *mut RawBuffer) }
}

/// The bytes of a (checked) buffer, valid while the GIL is held and nothing mutates it.
pub fn bytes_of<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    // SAFETY: callers check `is_buffer` first; the GIL is held.
    let r = unsafe { raw(obj) };
    if r.detached {
        return Err(errors::detached(obj.py()));
    }
    Ok(&r.data)
}

/// Checks that `obj` can be transferred now; `index` names it in the error.
pub fn check_transferable(obj: &Bound<'_, PyAny>, index: usize) -> PyResult<()> {
    // SAFETY: `obj` is a buffer (checked by the caller); the GIL is held.
    let r = unsafe { raw(obj) };
    if r.detached {
        return Err(errors::data_clone(
            obj.py(),
            format!("the Buffer at transfer index {index} is detached and cannot be transferred"),
        ));
    }
    if r.exports > 0 {
        return Err(errors::data_clone(
            obj.py(),
            format!(
                "the Buffer at transfer index {index} has {} live memoryview(s); release them \
                 before transferring it",
                r.exports
            ),
        ));
    }
    Ok(())
}

/// Takes the bytes out of a transferable buffer: from now on it is detached (a post
/// that code run during this one's encoding makes cannot take it, clone it or view it
/// again), until [`restore`] gives them back after a failed post.
pub fn take(obj: &Bound<'_, PyAny>) -> Vec<u8> {
    // SAFETY: checked by `check_transferable`; the GIL is held.
    let r = unsafe { raw(obj) };
    r.detached = true;
    std::mem::take(&mut r.data)
}

/// Gives the bytes back after a failed post.
pub fn restore(obj: &Bound<'_, PyAny>, data: Vec<u8>) {
    // SAFETY: as `take`.
    let r = unsafe { raw(obj) };
    r.data = data;
    r.detached = false;
}

/// Marks a transferred buffer detached.
pub fn mark_detached(obj: &Bound<'_, PyAny>) {
    // SAFETY: as `take`.
    let r = unsafe { raw(obj) };
    r.data = Vec::new();
    r.detached = true;
}

/// A new public `Buffer` owning `data` (no copy).
///
/// Allocated directly (what `Buffer()` would do, minus parsing an empty argument tuple):
/// the public class adds no `__init__` and no state of its own.
pub fn new_buffer(py: Python<'_>, data: Vec<u8>) -> PyResult<Bound<'_, PyAny>> {
    let ty = public_type(py)?;
    // SAFETY: allocates a zeroed instance of `Buffer` (a subtype of ours); the GIL is held.
    let obj = unsafe { ffi::PyType_GenericAlloc(ty.as_ptr() as *mut ffi::PyTypeObject, 0) };
    // SAFETY: a new reference or NULL with an exception set.
    let obj = unsafe { Bound::from_owned_ptr_or_err(py, obj)? };
    let r = obj.as_ptr() as *mut RawBuffer;
    // SAFETY: the fields are uninitialized (zeroed) memory owned by `obj`.
    unsafe {
        ptr::addr_of_mut!((*r).data).write(data);
        ptr::addr_of_mut!((*r).exports).write(0);
        ptr::addr_of_mut!((*r).detached).write(false);
    }
    Ok(obj)
}

/// `(length, detached, exports)`, for the Python half of the class.
#[pyfunction]
pub fn _buffer_state(obj: &Bound<'_, PyAny>) -> PyResult<(usize, bool, isize)> {
    if !is_buffer(obj) {
        return Err(PyTypeError::new_err("expected a channel_messaging.Buffer"));
    }
    // SAFETY: checked above; the GIL is held.
    let r = unsafe { raw(obj) };
    Ok((r.data.len(), r.detached, r.exports))
}

/// The address of the buffer's first byte (0 when empty or detached), so tests and
/// users can check that a transfer did not copy.
#[pyfunction]
pub fn _buffer_address(obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    if !is_buffer(obj) {
        return Err(PyTypeError::new_err("expected a channel_messaging.Buffer"));
    }
    // SAFETY: checked above; the GIL is held.
    let r = unsafe { raw(obj) };
    Ok(if r.data.is_empty() {
        0
    } else {
        r.data.as_ptr() as usize
    })
}

/// The state of the process-wide pool of freed Buffer blocks, as a dict: ``limit``
/// (the bound, in bytes), ``bytes`` and ``blocks`` (what it holds now), ``zeroed_blocks``
/// (how many of those are already cleared), ``hits`` and ``misses`` (``Buffer(n)`` and
/// received copies served from the pool, or not, since the process started),
/// ``scrubbed`` (blocks cleared ahead of need by waiting threads, since the start), and
/// ``min_block`` / ``max_block`` (the capacities it keeps).
#[pyfunction]
pub fn buffer_pool_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let s = pool::stats();
    let d = PyDict::new(py);
    d.set_item("limit", s.limit)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("blocks", s.blocks)?;
    d.set_item("zeroed_blocks", s.zeroed_blocks)?;
    d.set_item("hits", s.hits)?;
    d.set_item("misses", s.misses)?;
    d.set_item("scrubbed", s.scrubbed)?;
    d.set_item("min_block", pool::MIN_BLOCK)?;
    d.set_item("max_block", pool::MAX_BLOCK)?;
    Ok(d)
}

/// Bounds the pool of freed Buffer blocks to ``max_bytes`` (default 16 MiB); ``0``
/// disables it. Blocks over the new bound are freed at once.
#[pyfunction]
pub fn set_buffer_pool_limit(max_bytes: i64) -> PyResult<()> {
    let limit = usize::try_from(max_bytes)
        .map_err(|_| PyValueError::new_err("the pool limit must not be negative"))?;
    pool::set_limit(limit);
    Ok(())
}

/// Frees every block the pool of freed Buffer blocks holds (its limit stays).
#[pyfunction]
pub fn clear_buffer_pool() {
    pool::clear();
}

fn initial_data(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Vec<u8>> {
    if kwargs.is_some_and(|k| !k.is_empty()) {
        return Err(PyTypeError::new_err("Buffer() takes no keyword arguments"));
    }
    match args.len() {
        0 => Ok(Vec::new()),
        1 => {
            let source = args.get_item(0)?;
            if source.is_none() {
                Ok(Vec::new())
            } else if let Ok(n) = source.extract::<i64>() {
                let n = usize::try_from(n)
                    .map_err(|_| PyValueError::new_err("Buffer size must not be negative"))?;
                pool::try_take_zeroed(n).ok_or_else(|| {
                    PyMemoryError::new_err(format!("cannot allocate a Buffer of {n} bytes"))
                })
            } else if source.is_instance_of::<PyInt>() {
                Err(PyOverflowError::new_err("Buffer size is too large"))
            } else if is_buffer(&source) {
                Ok(pool::take_copy(bytes_of(&source)?))
            } else {
                crate::convert::with_bytes(py, &source, pool::take_copy)
            }
        }
        n => Err(PyTypeError::new_err(format!(
            "Buffer() takes at most 1 argument ({n} given)"
        ))),
    }
}

unsafe extern "C" fn buffer_new(
    subtype: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls tp_new with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let result = catch_unwind(AssertUnwindSafe(|| -> PyResult<*mut ffi::PyObject> {
        // SAFETY: borrowed references from CPython, valid for this call.
        let args = unsafe { Bound::from_borrowed_ptr(py, args) }.cast_into::<PyTuple>()?;
        let kwargs = if kwargs.is_null() {
            None
        } else {
            // SAFETY: as above.
            Some(unsafe { Bound::from_borrowed_ptr(py, kwargs) }.cast_into::<PyDict>()?)
        };
        let data = initial_data(py, &args, kwargs.as_ref())?;
        // SAFETY: allocates a zeroed instance of `subtype` (a subtype of ours).
        let obj = unsafe { ffi::PyType_GenericAlloc(subtype, 0) };
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        let r = obj as *mut RawBuffer;
        // SAFETY: the fields are uninitialized (zeroed) memory owned by `obj`.
        unsafe {
            ptr::addr_of_mut!((*r).data).write(data);
            ptr::addr_of_mut!((*r).exports).write(0);
            ptr::addr_of_mut!((*r).detached).write(false);
        }
        Ok(obj)
    }));
    match result {
        Ok(Ok(obj)) => obj,
        Ok(Err(e)) => {
            e.restore(py);
            ptr::null_mut()
        }
        Err(_) => {
            PySystemError::new_err("panic while creating a Buffer").restore(py);
            ptr::null_mut()
        }
    }
}

unsafe extern "C" fn buffer_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: `obj` is a fully initialized instance being destroyed; its Vec is dropped
    // once, then the memory is freed by the type's tp_free and the heap type released.
    unsafe {
        let r = obj as *mut RawBuffer;
        // The block goes back to the pool (which frees it when it is small, huge, or
        // the pool is full).
        pool::give(ptr::addr_of_mut!((*r).data).read());
        capi::free_instance(obj);
    }
}

unsafe extern "C" fn buffer_len(obj: *mut ffi::PyObject) -> ffi::Py_ssize_t {
    // SAFETY: called by CPython with the GIL held on one of our instances.
    unsafe { (*(obj as *mut RawBuffer)).data.len() as ffi::Py_ssize_t }
}

unsafe extern "C" fn buffer_getbuffer(
    obj: *mut ffi::PyObject,
    view: *mut PyBuffer,
    flags: c_int,
) -> c_int {
    // SAFETY: called by CPython with the GIL held on one of our instances.
    unsafe {
        let r = obj as *mut RawBuffer;
        if (*r).detached {
            let py = Python::assume_attached();
            errors::detached(py).restore(py);
            if !view.is_null() {
                (*view).obj = ptr::null_mut();
            }
            return -1;
        }
        let data = &mut (*r).data;
        let rc = capi::PyBuffer_FillInfo(
            view,
            obj,
            data.as_mut_ptr() as *mut c_void,
            data.len() as ffi::Py_ssize_t,
            0,
            flags,
        );
        if rc == 0 {
            (*r).exports += 1;
        }
        rc
    }
}

unsafe extern "C" fn buffer_releasebuffer(obj: *mut ffi::PyObject, _view: *mut PyBuffer) {
    // SAFETY: called by CPython with the GIL held on one of our instances.
    unsafe {
        (*(obj as *mut RawBuffer)).exports -= 1;
    }
}

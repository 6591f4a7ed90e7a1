//! `_HalfFloats`: part of a buffer exported as half-precision floats (buffer format "e").
//!
//! A received Float16Array arrives as a memoryview of format "e", which NumPy reads as a
//! float16 array (`numpy.asarray(view)`) and which is sent on as a Float16Array again.
//! Python's memoryview holds such a buffer but will not make one (`cast("e")` is
//! refused), so the decoder wraps the bytes in this small exporter and takes a memoryview
//! of it. The exporter keeps the underlying buffer exported while it lives: like any
//! memoryview of a `Buffer`, it stops that Buffer from being transferred meanwhile.
//!
//! Built with `PyType_FromSpec` by hand, as `Buffer` is (see buffer.rs and capi.rs).

use std::ffi::{c_int, c_void};
use std::ptr;

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::capi::{self, PyBuffer};

#[repr(C)]
struct RawHalfFloats {
    ob_base: ffi::PyObject,
    /// The underlying buffer, exported for as long as this object lives.
    source: PyBuffer,
    /// Where the floats start in `source`, in bytes.
    offset: ffi::Py_ssize_t,
    /// The number of floats (the shape of the exported 1-D array).
    count: ffi::Py_ssize_t,
    /// 2: the floats are contiguous (the strides of the exported array).
    stride: ffi::Py_ssize_t,
}

static TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

const ITEM: ffi::Py_ssize_t = 2;

fn half_floats_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    TYPE.get_or_try_init(py, || {
        capi::new_type(
            py,
            c"channel_messaging._native._HalfFloats",
            std::mem::size_of::<RawHalfFloats>(),
            ffi::Py_TPFLAGS_DEFAULT,
            &[
                capi::slot(ffi::Py_tp_dealloc, dealloc as *const c_void),
                capi::slot(capi::PY_BF_GETBUFFER, getbuffer as *const c_void),
                capi::slot(
                    ffi::Py_tp_doc,
                    c"Half-precision floats over part of a buffer (format 'e')."
                        .as_ptr()
                        .cast(),
                ),
            ],
        )
    })
    .map(|t| t.bind(py))
}

/// A memoryview of format "e" over the `count` half-precision floats at `byte_offset` in
/// the buffer that `base` exports.
pub fn memoryview<'py>(
    base: &Bound<'py, PyAny>,
    byte_offset: usize,
    count: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let py = base.py();
    let ty = half_floats_type(py)?;
    let mut source = PyBuffer::zeroed();
    // SAFETY: a valid object and the GIL; on success `source` is released by `dealloc`
    // (or below, if allocating fails).
    unsafe {
        if capi::PyObject_GetBuffer(base.as_ptr(), &mut source, 0) != 0 {
            return Err(PyErr::fetch(py));
        }
        let fits = count
            .checked_mul(ITEM as usize)
            .and_then(|n| n.checked_add(byte_offset))
            .is_some_and(|end| end <= source.len as usize);
        let obj = if fits {
            ffi::PyType_GenericAlloc(ty.as_ptr() as *mut ffi::PyTypeObject, 0)
        } else {
            ptr::null_mut()
        };
        if obj.is_null() {
            capi::PyBuffer_Release(&mut source);
            return Err(if fits {
                PyErr::fetch(py)
            } else {
                PyValueError::new_err("half-precision floats past the end of their buffer")
            });
        }
        let r = obj as *mut RawHalfFloats;
        ptr::addr_of_mut!((*r).source).write(source);
        ptr::addr_of_mut!((*r).offset).write(byte_offset as ffi::Py_ssize_t);
        ptr::addr_of_mut!((*r).count).write(count as ffi::Py_ssize_t);
        ptr::addr_of_mut!((*r).stride).write(ITEM);
        let exporter = Bound::from_owned_ptr(py, obj);
        let builtins = py.import("builtins")?;
        builtins.getattr("memoryview")?.call1((exporter,))
    }
}

unsafe extern "C" fn getbuffer(
    obj: *mut ffi::PyObject,
    view: *mut PyBuffer,
    flags: c_int,
) -> c_int {
    // SAFETY: called by CPython with the GIL held on one of our instances, whose fields
    // live as long as the view does (the view holds a reference to it).
    unsafe {
        let r = obj as *mut RawHalfFloats;
        let source = &(*r).source;
        if flags & capi::PYBUF_WRITABLE != 0 && source.readonly != 0 {
            let py = Python::assume_attached();
            pyo3::exceptions::PyBufferError::new_err("the buffer is read-only").restore(py);
            (*view).obj = ptr::null_mut();
            return -1;
        }
        let format = flags & capi::PYBUF_FORMAT != 0;
        (*view).buf = if source.buf.is_null() {
            source.buf
        } else {
            (source.buf as *mut u8).offset((*r).offset) as *mut c_void
        };
        ffi::Py_INCREF(obj);
        (*view).obj = obj;
        (*view).len = (*r).count * ITEM;
        (*view).readonly = source.readonly;
        // Without a format the consumer reads plain bytes (PEP 3118).
        (*view).itemsize = if format { ITEM } else { 1 };
        (*view).format = if format {
            c"e".as_ptr() as *mut _
        } else {
            ptr::null_mut()
        };
        (*view).ndim = 1;
        (*view).shape = if flags & capi::PYBUF_ND == capi::PYBUF_ND {
            ptr::addr_of_mut!((*r).count)
        } else {
            ptr::null_mut()
        };
        (*view).strides = if flags & capi::PYBUF_STRIDES == capi::PYBUF_STRIDES {
            ptr::addr_of_mut!((*r).stride)
        } else {
            ptr::null_mut()
        };
        (*view).suboffsets = ptr::null_mut();
        (*view).internal = ptr::null_mut();
        0
    }
}

unsafe extern "C" fn dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: `obj` is an instance being destroyed: its export of the source is released
    // once (a zeroed one, from an instance made from Python, is released as a no-op), then
    // the memory is freed by the type's tp_free and the heap type released.
    unsafe {
        let r = obj as *mut RawHalfFloats;
        capi::PyBuffer_Release(ptr::addr_of_mut!((*r).source));
        capi::free_instance(obj);
    }
}

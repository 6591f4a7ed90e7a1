//! The few C-API items this module needs that pyo3's `abi3-py39` bindings hide.
//!
//! They all exist, with these exact signatures and the `Py_buffer` layout below, in every
//! CPython from 3.9 on; they only entered the *limited* API later (3.10 for
//! `PyUnicode_AsUTF8AndSize`, 3.11 for the buffer protocol). An abi3 extension resolves
//! them from the running interpreter when it is loaded, so declaring them here keeps one
//! wheel for 3.9+ while giving `Buffer` a real buffer protocol and `str` a copy-free
//! UTF-8 view.

use std::ffi::{CStr, c_char, c_int, c_ulong, c_void};
use std::ptr;

use pyo3::ffi::{self, Py_ssize_t, PyObject};
use pyo3::prelude::*;
use pyo3::types::PyType;

/// CPython's `Py_buffer` (Include/pybuffer.h, unchanged since 3.3).
#[repr(C)]
pub struct PyBuffer {
    pub buf: *mut c_void,
    pub obj: *mut PyObject,
    pub len: Py_ssize_t,
    pub itemsize: Py_ssize_t,
    pub readonly: c_int,
    pub ndim: c_int,
    pub format: *mut c_char,
    pub shape: *mut Py_ssize_t,
    pub strides: *mut Py_ssize_t,
    pub suboffsets: *mut Py_ssize_t,
    pub internal: *mut c_void,
}

impl PyBuffer {
    pub const fn zeroed() -> Self {
        PyBuffer {
            buf: std::ptr::null_mut(),
            obj: std::ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: std::ptr::null_mut(),
            shape: std::ptr::null_mut(),
            strides: std::ptr::null_mut(),
            suboffsets: std::ptr::null_mut(),
            internal: std::ptr::null_mut(),
        }
    }
}

pub const PYBUF_WRITABLE: c_int = 0x0001;
pub const PYBUF_FORMAT: c_int = 0x0004;
pub const PYBUF_ND: c_int = 0x0008;
pub const PYBUF_STRIDES: c_int = 0x0010 | PYBUF_ND;
pub const PYBUF_C_CONTIGUOUS: c_int = 0x0020 | PYBUF_STRIDES;

/// Type slot numbers (Include/typeslots.h; stable ABI numbers).
pub const PY_BF_GETBUFFER: c_int = 1;
pub const PY_BF_RELEASEBUFFER: c_int = 2;

unsafe extern "C" {
    pub fn PyObject_GetBuffer(obj: *mut PyObject, view: *mut PyBuffer, flags: c_int) -> c_int;
    pub fn PyBuffer_Release(view: *mut PyBuffer);
    pub fn PyBuffer_FillInfo(
        view: *mut PyBuffer,
        obj: *mut PyObject,
        buf: *mut c_void,
        len: Py_ssize_t,
        readonly: c_int,
        flags: c_int,
    ) -> c_int;
    pub fn PyUnicode_AsUTF8AndSize(unicode: *mut PyObject, size: *mut Py_ssize_t) -> *const c_char;
    pub fn PyGILState_Check() -> c_int;
}

/// Whether the calling thread holds the GIL (so that attaching is free and cannot block).
pub fn gil_held() -> bool {
    // SAFETY: callable from any thread at any time.
    unsafe { PyGILState_Check() == 1 }
}

/// A type slot: `(slot number, function or pointer)`.
pub fn slot(slot: c_int, pfunc: *const c_void) -> ffi::PyType_Slot {
    ffi::PyType_Slot {
        slot,
        pfunc: pfunc as *mut c_void,
    }
}

/// A heap type made with `PyType_FromSpec`, from its name, the size of its instances,
/// its flags and its slots (the ending zero slot is added here).
pub fn new_type(
    py: Python<'_>,
    name: &CStr,
    basicsize: usize,
    flags: c_ulong,
    slots: &[ffi::PyType_Slot],
) -> PyResult<Py<PyType>> {
    let mut slots = slots.to_vec();
    slots.push(slot(0, ptr::null()));
    let mut spec = ffi::PyType_Spec {
        name: name.as_ptr(),
        basicsize: basicsize as c_int,
        itemsize: 0,
        flags: flags as _,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: the spec and slots are valid for the call; CPython copies them.
    let ty = unsafe { ffi::PyType_FromSpec(&mut spec) };
    // SAFETY: a new reference or NULL with an exception set.
    let ty = unsafe { Bound::from_owned_ptr_or_err(py, ty)? };
    Ok(ty.cast_into::<PyType>()?.unbind())
}

/// The end of a `tp_dealloc` of a type from [`new_type`]: frees the instance with the
/// type's `tp_free` and releases the type (which every instance holds).
///
/// # Safety
///
/// `obj` is an instance being destroyed whose own state was already dropped; it is not
/// used afterwards.
pub unsafe fn free_instance(obj: *mut PyObject) {
    // SAFETY: per the contract, with the GIL held (tp_dealloc runs with it).
    unsafe {
        let ty = ffi::Py_TYPE(obj);
        let free = ffi::PyType_GetSlot(ty, ffi::Py_tp_free);
        if !free.is_null() {
            let free: ffi::freefunc = std::mem::transmute(free);
            free(obj as *mut c_void);
        }
        ffi::Py_DECREF(ty as *mut PyObject);
    }
}

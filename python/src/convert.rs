//! Python objects to messages and back (DESIGN.md §3), straight between Python objects and
//! the wire format: no intermediate `Value` tree on the hot paths.

use std::collections::HashMap;

use channel_messaging::wire::{BufferData, DecodeError, Event, Reader, Writer};
use channel_messaging::{Buffer as CoreBuffer, ErrorName, ViewKind};
use pyo3::Borrowed;
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString,
    PyTuple,
};

use crate::buffer;
use crate::capi::{self, PyBuffer};
use crate::errors;
use crate::halffloats;
use crate::port::MessagePort;

/// Python objects of channel_messaging/_values.py that the converters use.
pub struct Helpers {
    pub undefined: Py<PyAny>,
    regexp: Py<PyAny>,
    datetime: Py<PyAny>,
    dt_to_ms: Py<PyAny>,
    ms_to_dt: Py<PyAny>,
    freeze: Py<PyAny>,
    exc_parts: Py<PyAny>,
    make_error: Py<PyAny>,
    memoryview: Py<PyAny>,
    int_from_bytes: Py<PyAny>,
}

static HELPERS: PyOnceLock<Helpers> = PyOnceLock::new();

pub fn helpers(py: Python<'_>) -> PyResult<&Helpers> {
    HELPERS.get_or_try_init(py, || {
        let v = py.import("channel_messaging._values")?;
        let get = |name: &str| -> PyResult<Py<PyAny>> { Ok(v.getattr(name)?.unbind()) };
        let builtins = py.import("builtins")?;
        Ok(Helpers {
            undefined: get("UNDEFINED")?,
            regexp: get("RegExp")?,
            datetime: py.import("datetime")?.getattr("datetime")?.unbind(),
            dt_to_ms: get("_datetime_to_ms")?,
            ms_to_dt: get("_ms_to_datetime")?,
            freeze: get("_freeze")?,
            exc_parts: get("_exception_parts")?,
            make_error: get("_make_exception")?,
            memoryview: builtins.getattr("memoryview")?.unbind(),
            int_from_bytes: builtins.getattr("int")?.getattr("from_bytes")?.unbind(),
        })
    })
}

fn clone_err(py: Python<'_>, e: channel_messaging::DataCloneError) -> PyErr {
    errors::data_clone(py, e.message())
}

/// Runs `f` over the bytes of a bytes-like object (`bytes`, `bytearray`, `memoryview`,
/// anything with the buffer protocol).
pub fn with_bytes<R>(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    f: impl FnOnce(&[u8]) -> R,
) -> PyResult<R> {
    if let Ok(b) = obj.cast_exact::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    let mut view = PyBuffer::zeroed();
    // SAFETY: `view` is released below; the GIL is held throughout.
    unsafe {
        if capi::PyObject_GetBuffer(obj.as_ptr(), &mut view, capi::PYBUF_C_CONTIGUOUS) != 0 {
            return Err(PyErr::fetch(py));
        }
        let bytes = if view.len > 0 {
            std::slice::from_raw_parts(view.buf as *const u8, view.len as usize)
        } else {
            &[]
        };
        let r = f(bytes);
        capi::PyBuffer_Release(&mut view);
        Ok(r)
    }
}

// ---- encoding ---------------------------------------------------------------------------

/// A transfer list, split: its ports and its Buffers, each with its index in the list
/// (for error messages).
#[derive(Default)]
pub struct Transfer<'py> {
    pub ports: Vec<Bound<'py, MessagePort>>,
    pub bufs: Vec<Bound<'py, PyAny>>,
    /// The index in the list of each port.
    port_at: Vec<usize>,
    /// The index in the list of each Buffer.
    buf_at: Vec<usize>,
}

impl<'py> Transfer<'py> {
    /// Splits `transfer` (spec C5 first pass: only ports and Buffers, none twice).
    pub fn parse(py: Python<'py>, transfer: Option<&Bound<'py, PyAny>>) -> PyResult<Self> {
        let mut t = Transfer::default();
        let Some(transfer) = transfer else {
            return Ok(t);
        };
        if transfer.is_none() {
            return Ok(t);
        }
        if transfer.is_instance_of::<PyString>() || transfer.is_instance_of::<PyBytes>() {
            return Err(PyTypeError::new_err(
                "transfer must be a sequence of MessagePort and Buffer objects",
            ));
        }
        let iter = transfer.try_iter().map_err(|_| {
            PyTypeError::new_err("transfer must be a sequence of MessagePort and Buffer objects")
        })?;
        for (i, item) in iter.enumerate() {
            let item = item?;
            if let Ok(p) = item.cast::<MessagePort>() {
                t.ports.push(p.clone());
                t.port_at.push(i);
            } else if buffer::is_buffer(&item) {
                if t.bufs.iter().any(|b| b.is(&item)) {
                    return Err(errors::data_clone(
                        py,
                        format!("the Buffer at transfer index {i} is listed twice"),
                    ));
                }
                t.bufs.push(item);
                t.buf_at.push(i);
            } else {
                return Err(errors::data_clone(
                    py,
                    format!(
                        "the object at transfer index {i} ({}) is not transferable: only \
                         MessagePort and Buffer are",
                        type_name(&item)
                    ),
                ));
            }
        }
        Ok(t)
    }

    /// The core's explanation of why the ports cannot be transferred, with each "transfer
    /// index" (the core counts ports only) turned into the index in the whole list.
    pub fn port_error(&self, message: &str) -> String {
        const AT: &str = "transfer index ";
        let mut out = String::with_capacity(message.len());
        let mut rest = message;
        while let Some(k) = rest.find(AT) {
            let (before, after) = rest.split_at(k + AT.len());
            out.push_str(before);
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let index = after[..digits].parse::<usize>().ok();
            match index.and_then(|n| self.port_at.get(n)) {
                Some(i) => out.push_str(&i.to_string()),
                None => out.push_str(&after[..digits]),
            }
            rest = &after[digits..];
        }
        out.push_str(rest);
        out
    }

    /// Takes the bytes of every transferred buffer, after checking them all (so that a
    /// failure detaches nothing).
    pub fn take_buffers(&mut self) -> PyResult<Vec<(Bound<'py, PyAny>, CoreBuffer)>> {
        for (b, &i) in self.bufs.iter().zip(&self.buf_at) {
            buffer::check_transferable(b, i)?;
        }
        Ok(take_checked(std::mem::take(&mut self.bufs)))
    }
}

/// Takes the bytes of buffers already checked (`Transfer::take_buffers`).
fn take_checked(bufs: Vec<Bound<'_, PyAny>>) -> Vec<(Bound<'_, PyAny>, CoreBuffer)> {
    bufs.into_iter()
        .map(|b| {
            let data = CoreBuffer::from(buffer::take(&b));
            (b, data)
        })
        .collect()
}

/// Gives the bytes back to buffers whose post failed (the message, and with it every
/// other handle to the bytes, is gone by then, so this does not copy).
pub fn restore_buffers(taken: Vec<(Bound<'_, PyAny>, CoreBuffer)>) {
    for (obj, data) in taken {
        buffer::restore(&obj, data.into_vec());
    }
}

/// The name of `obj`'s type, with its module unless it is a builtin (`deque` is
/// `collections.deque`, and NumPy's `bool` is `numpy.bool`, not Python's).
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    let ty = obj.get_type();
    let name = ty
        .qualname()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    match ty.module().and_then(|m| m.extract::<String>()) {
        Ok(module) if module != "builtins" => format!("{module}.{name}"),
        _ => name,
    }
}

/// A CBOR head in its shortest form.
#[inline]
fn put_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= 0xff {
        out.extend_from_slice(&[m | 24, arg as u8]);
    } else if arg <= 0xffff {
        let b = (arg as u16).to_be_bytes();
        out.extend_from_slice(&[m | 25, b[0], b[1]]);
    } else if arg <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

#[inline]
fn put_text(out: &mut Vec<u8>, s: &str) {
    put_head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Encodes the most common message shape straight to CBOR, bypassing the general
/// writer: an exact `dict` whose keys are exact `str`s and whose values are exact `str`,
/// `int` (i64), `bool` or `None`. The bytes are the ones [`Writer`] writes for it
/// (docs/wire-format.md: shortest heads, insertion order). Returns `Ok(false)`, with
/// `out` in an unspecified state, for anything else (floats included, whose shortest
/// form the general writer works out): the caller then starts over on the general path.
/// Runs no Python code, so the dict cannot change while it is read.
pub fn encode_flat_dict(d: &Bound<'_, PyDict>, out: &mut Vec<u8>) -> PyResult<bool> {
    let py = d.py();
    let len = d.len();
    out.extend_from_slice(&[0xd9, 0xcb, 0x01]);
    put_head(out, 5, len as u64);
    let mut pos: ffi::Py_ssize_t = 0;
    let mut k: *mut ffi::PyObject = std::ptr::null_mut();
    let mut v: *mut ffi::PyObject = std::ptr::null_mut();
    let mut count = 0usize;
    // SAFETY: the GIL is held; the borrowed items are only read by calls that run no
    // Python code (type checks, PyUnicode_AsUTF8AndSize, PyLong_AsLongLongAndOverflow).
    while unsafe { ffi::PyDict_Next(d.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
        count += 1;
        if count > len {
            return Ok(false);
        }
        let kb = unsafe { Borrowed::from_ptr(py, k) };
        if !kb.is_exact_instance_of::<PyString>() {
            return Ok(false);
        }
        let Some(key) = utf8_of(&kb) else {
            return Ok(false);
        };
        let vb = unsafe { Borrowed::from_ptr(py, v) };
        if vb.is_exact_instance_of::<PyInt>() {
            let mut overflow = 0;
            // SAFETY: an int; the GIL is held.
            let i = unsafe { ffi::PyLong_AsLongLongAndOverflow(vb.as_ptr(), &mut overflow) };
            if overflow != 0 {
                return Ok(false);
            }
            if i == -1 && PyErr::occurred(py) {
                return Err(PyErr::fetch(py));
            }
            put_text(out, key);
            if i >= 0 {
                put_head(out, 0, i as u64);
            } else {
                put_head(out, 1, !i as u64);
            }
        } else if vb.is_exact_instance_of::<PyString>() {
            let Some(s) = utf8_of(&vb) else {
                return Ok(false);
            };
            put_text(out, key);
            put_text(out, s);
        } else if vb.is_none() {
            put_text(out, key);
            out.push(0xf6);
        } else if let Ok(b) = vb.cast_exact::<PyBool>() {
            put_text(out, key);
            out.push(if b.is_true() { 0xf5 } else { 0xf4 });
        } else {
            return Ok(false);
        }
    }
    Ok(count == len)
}

/// Encodes one message.
pub struct Encoder<'a, 'py> {
    py: Python<'py>,
    h: &'a Helpers,
    ports: &'a [Bound<'py, MessagePort>],
    tbufs: &'a [(Bound<'py, PyAny>, CoreBuffer)],
    /// Objects referenced more than once: their shared id once written.
    shared: HashMap<usize, Option<u32>>,
}

const SCAN_DEPTH: usize = 300;

fn is_container(obj: &Bound<'_, PyAny>) -> bool {
    // The common scalars first, by exact type (one pointer comparison each).
    if obj.is_exact_instance_of::<PyString>()
        || obj.is_exact_instance_of::<PyInt>()
        || obj.is_exact_instance_of::<PyFloat>()
        || obj.is_none()
        || obj.is_exact_instance_of::<PyBool>()
        || obj.is_exact_instance_of::<PyBytes>()
    {
        return false;
    }
    obj.is_instance_of::<PyDict>()
        || obj.is_instance_of::<PyList>()
        || obj.is_instance_of::<PyTuple>()
        || obj.is_instance_of::<PySet>()
        || obj.is_instance_of::<PyFrozenSet>()
        || obj.is_instance_of::<PyByteArray>()
        || obj.is_instance_of::<pyo3::exceptions::PyBaseException>()
        || buffer::is_buffer(obj)
}

/// An exact `str`, `int`, `float`, `bool` or `None`: written without running any
/// Python code, and without identity.
fn is_plain_scalar(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_exact_instance_of::<PyString>()
        || obj.is_exact_instance_of::<PyInt>()
        || obj.is_exact_instance_of::<PyFloat>()
        || obj.is_none()
        || obj.is_exact_instance_of::<PyBool>()
}

/// What one pass over a dict's items found.
struct DictScan {
    /// Every key is a str (the dict becomes an object, not a Map).
    all_str: bool,
    /// Some key or value is a container (identity tracking is needed).
    nested: bool,
}

fn scan_dict(d: &Bound<'_, PyDict>) -> DictScan {
    let py = d.py();
    let mut s = DictScan {
        all_str: true,
        nested: false,
    };
    let mut pos: ffi::Py_ssize_t = 0;
    let mut k: *mut ffi::PyObject = std::ptr::null_mut();
    let mut v: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: the GIL is held; the borrowed items are only inspected (type checks run
    // no Python code), so the dict cannot change during the loop.
    while unsafe { ffi::PyDict_Next(d.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
        let kb = unsafe { Borrowed::from_ptr(py, k) };
        if !kb.is_exact_instance_of::<PyString>() {
            if !kb.is_instance_of::<PyString>() {
                s.all_str = false;
            }
            if is_container(&kb) {
                s.nested = true;
            }
        }
        if !s.nested && is_container(&*unsafe { Borrowed::from_ptr(py, v) }) {
            s.nested = true;
        }
    }
    s
}

impl<'a, 'py> Encoder<'a, 'py> {
    pub fn new(
        py: Python<'py>,
        ports: &'a [Bound<'py, MessagePort>],
        tbufs: &'a [(Bound<'py, PyAny>, CoreBuffer)],
    ) -> PyResult<Self> {
        Ok(Encoder {
            py,
            h: helpers(py)?,
            ports,
            tbufs,
            shared: HashMap::new(),
        })
    }

    /// Encodes `obj` into `out` / `buffers`.
    pub fn encode(
        &mut self,
        obj: &Bound<'py, PyAny>,
        out: &mut Vec<u8>,
        buffers: &mut Vec<CoreBuffer>,
    ) -> PyResult<()> {
        let start = out.len();
        if let Ok(d) = obj.cast_exact::<PyDict>() {
            // The common case, a flat dict with str keys, in one pass: no identity map (no
            // item has an identity to preserve) and no scan ahead. Anything else found
            // on the way (a container, a non-str key) starts over on the general path.
            let mut w = Writer::new(out, buffers, self.ports.len() as u32);
            if self.write_flat_dict(&mut w, d)? {
                return w.finish().map_err(|e| clone_err(self.py, e));
            }
            drop(w);
            out.truncate(start);
            buffers.clear();
            if scan_dict(d).nested {
                self.find_shared(obj)?;
            }
        } else {
            let nested = if let Ok(l) = obj.cast_exact::<PyList>() {
                l.iter().any(|v| is_container(&v))
            } else {
                is_container(obj)
            };
            if nested {
                self.find_shared(obj)?;
            }
        }
        let mut w = Writer::new(out, buffers, self.ports.len() as u32);
        self.write(&mut w, obj)?;
        w.finish().map_err(|e| clone_err(self.py, e))
    }

    /// Writes `d` as an object when every key is a str and no value is a container;
    /// returns false (with `w` in an unspecified state) as soon as that turns out wrong.
    fn write_flat_dict(&mut self, w: &mut Writer<'_>, d: &Bound<'py, PyDict>) -> PyResult<bool> {
        let py = self.py;
        let ce = |e| clone_err(py, e);
        let len = d.len();
        w.begin_object(len).map_err(ce)?;
        let mut pos: ffi::Py_ssize_t = 0;
        let mut k: *mut ffi::PyObject = std::ptr::null_mut();
        let mut v: *mut ffi::PyObject = std::ptr::null_mut();
        let mut count = 0usize;
        // SAFETY: as in `write_dict`: borrowed items while nothing can run Python code
        // (plain scalars), owned references otherwise.
        while unsafe { ffi::PyDict_Next(d.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
            count += 1;
            if count > len {
                break;
            }
            let kb = unsafe { Borrowed::from_ptr(py, k) };
            if !kb.is_exact_instance_of::<PyString>() {
                return Ok(false);
            }
            let vb = unsafe { Borrowed::from_ptr(py, v) };
            if is_plain_scalar(&vb) {
                match utf8_of(&kb) {
                    Some(s) => w.key(s).map_err(ce)?,
                    None => return Ok(false),
                }
                self.write(w, &vb)?;
            } else {
                if is_container(&vb) {
                    return Ok(false);
                }
                let ko = kb.to_owned();
                let vo = vb.to_owned();
                match utf8_of(&ko) {
                    Some(s) => w.key(s).map_err(ce)?,
                    None => return Ok(false),
                }
                self.write(w, &vo)?;
            }
        }
        if count != len || d.len() != len {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "dictionary changed size during iteration",
            ));
        }
        Ok(true)
    }

    /// Finds the containers referenced more than once (shared references and cycles).
    /// Only called when a container holds another one (the identity map is not needed
    /// otherwise: scalars have no identity in the clone).
    fn find_shared(&mut self, root: &Bound<'py, PyAny>) -> PyResult<()> {
        let mut counts: HashMap<usize, u32> = HashMap::new();
        self.scan(root, &mut counts, 0)?;
        self.shared = counts
            .into_iter()
            .filter(|&(_, n)| n > 1)
            .map(|(k, _)| (k, None))
            .collect();
        Ok(())
    }

    fn scan(
        &self,
        obj: &Bound<'py, PyAny>,
        counts: &mut HashMap<usize, u32>,
        depth: usize,
    ) -> PyResult<()> {
        if depth > SCAN_DEPTH || !is_container(obj) {
            return Ok(());
        }
        let n = counts.entry(obj.as_ptr() as usize).or_insert(0);
        *n += 1;
        if *n > 1 {
            return Ok(());
        }
        if let Ok(d) = obj.cast::<PyDict>() {
            for (k, v) in d.iter() {
                self.scan(&k, counts, depth + 1)?;
                self.scan(&v, counts, depth + 1)?;
            }
        } else if obj.is_instance_of::<PyList>()
            || obj.is_instance_of::<PyTuple>()
            || obj.is_instance_of::<PySet>()
            || obj.is_instance_of::<PyFrozenSet>()
        {
            for v in obj.try_iter()? {
                self.scan(&v?, counts, depth + 1)?;
            }
        } else if obj.is_instance_of::<pyo3::exceptions::PyBaseException>() {
            let cause = obj.getattr("__cause__")?;
            self.scan(&cause, counts, depth + 1)?;
        }
        Ok(())
    }

    /// Handles identity: returns true when `obj` was written as a reference.
    fn share(&mut self, w: &mut Writer<'_>, obj: &Bound<'py, PyAny>) -> PyResult<bool> {
        if self.shared.is_empty() {
            return Ok(false);
        }
        match self.shared.get_mut(&(obj.as_ptr() as usize)) {
            None => Ok(false),
            Some(Some(id)) => {
                w.shared_ref(*id).map_err(|e| clone_err(self.py, e))?;
                Ok(true)
            }
            Some(slot) => {
                *slot = Some(w.shareable().map_err(|e| clone_err(self.py, e))?);
                Ok(false)
            }
        }
    }

    fn write(&mut self, w: &mut Writer<'_>, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let ce = |e| clone_err(py, e);
        if obj.is_exact_instance_of::<PyString>() {
            return write_str(w, obj);
        }
        if obj.is_exact_instance_of::<PyInt>() {
            return self.write_int(w, obj);
        }
        if let Ok(d) = obj.cast_exact::<PyDict>() {
            return self.write_dict(w, d);
        }
        if obj.is_exact_instance_of::<PyFloat>() {
            return w.float(obj.extract::<f64>()?).map_err(ce);
        }
        if obj.is_none() {
            return w.null().map_err(ce);
        }
        if let Ok(b) = obj.cast_exact::<PyBool>() {
            return w.bool(b.is_true()).map_err(ce);
        }
        if obj.is_exact_instance_of::<PyList>() || obj.is_exact_instance_of::<PyTuple>() {
            return self.write_seq(w, obj);
        }
        if let Ok(b) = obj.cast_exact::<PyBytes>() {
            return w.bytes(b.as_bytes()).map_err(ce);
        }
        if obj.is(self.h.undefined.bind(py)) {
            return w.undefined().map_err(ce);
        }
        if let Ok(p) = obj.cast::<MessagePort>() {
            return match self.ports.iter().position(|q| q.is(p)) {
                Some(i) => w.port(i as u32).map_err(ce),
                None => Err(errors::data_clone(
                    py,
                    "a MessagePort inside the message must also be listed in transfer (ports \
                     are transferred, never copied)",
                )),
            };
        }
        if buffer::is_buffer(obj) {
            if self.share(w, obj)? {
                return Ok(());
            }
            if let Some((_, data)) = self.tbufs.iter().find(|(b, _)| b.is(obj)) {
                return w.transferred_buffer(data.clone()).map_err(ce);
            }
            // (a detached Buffer cannot be cloned: DataCloneError, spec G2)
            let bytes = buffer::bytes_of(obj).map_err(|_| {
                errors::data_clone(
                    py,
                    "a detached Buffer cannot be cloned (it was transferred away)",
                )
            })?;
            return w.bytes(bytes).map_err(ce);
        }
        // Subclasses and the less common types (RegExp first: it is a tuple).
        if obj.is_instance(self.h.regexp.bind(py))? {
            let source: String = obj.getattr("source")?.extract()?;
            let flags: String = obj.getattr("flags")?.extract()?;
            return w.regexp(&source, &flags).map_err(ce);
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            return w.bool(b.is_true()).map_err(ce);
        }
        if obj.is_instance_of::<PyString>() {
            return write_str(w, obj);
        }
        if obj.is_instance_of::<PyInt>() {
            return self.write_int(w, obj);
        }
        if obj.is_instance_of::<PyFloat>() {
            return w.float(obj.extract::<f64>()?).map_err(ce);
        }
        if let Ok(d) = obj.cast::<PyDict>() {
            return self.write_dict(w, d);
        }
        if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
            return self.write_seq(w, obj);
        }
        if obj.is_instance_of::<PySet>() || obj.is_instance_of::<PyFrozenSet>() {
            if self.share(w, obj)? {
                return Ok(());
            }
            let items: Vec<Bound<'py, PyAny>> = obj.try_iter()?.collect::<PyResult<_>>()?;
            w.begin_set(items.len()).map_err(ce)?;
            for item in &items {
                self.write(w, item)?;
            }
            return Ok(());
        }
        if obj.is_instance_of::<PyBytes>() {
            return w.bytes(obj.cast::<PyBytes>()?.as_bytes()).map_err(ce);
        }
        if obj.is_instance_of::<PyByteArray>() {
            if self.share(w, obj)? {
                return Ok(());
            }
            return with_bytes(py, obj, |b| w.bytes(b))?.map_err(ce);
        }
        if obj.is_instance(self.h.memoryview.bind(py))? {
            return self.write_view(w, obj, "memoryview");
        }
        if obj.is_instance(self.h.datetime.bind(py))? {
            let ms: f64 = self.h.dt_to_ms.bind(py).call1((obj,))?.extract()?;
            return w.date(ms).map_err(ce);
        }
        if obj.is_instance_of::<pyo3::exceptions::PyBaseException>() {
            if self.share(w, obj)? {
                return Ok(());
            }
            type Parts<'b> = (String, Option<Bound<'b, PyAny>>, Option<Bound<'b, PyAny>>);
            let (name, message, stack): Parts<'_> =
                self.h.exc_parts.bind(py).call1((obj,))?.extract()?;
            // An Error's texts are UTF-8 in the format: one with lone surrogates cannot be
            // sent (as with a dict key), and says so rather than raising UnicodeEncodeError.
            let text = |t: &'_ Option<Bound<'_, PyAny>>, what: &str| -> PyResult<Option<String>> {
                match t {
                    None => Ok(None),
                    Some(t) => match utf8_of(t) {
                        Some(s) => Ok(Some(s.to_owned())),
                        None => Err(errors::data_clone(
                            py,
                            format!("an exception whose {what} has lone surrogates cannot be sent"),
                        )),
                    },
                }
            };
            let message = text(&message, "message")?;
            let stack = text(&stack, "traceback")?;
            let cause = obj.getattr("__cause__")?;
            let has_cause = !cause.is_none();
            w.error(
                ErrorName::from_name(&name),
                message.as_deref(),
                stack.as_deref(),
                has_cause,
            )
            .map_err(ce)?;
            if has_cause {
                self.write(w, &cause)?;
            }
            return Ok(());
        }
        // An integer of another kind (a NumPy integer scalar): what operator.index() gives.
        // SAFETY: a valid object, the GIL is held.
        if unsafe { ffi::PyIndex_Check(obj.as_ptr()) } != 0 {
            // SAFETY: as above; a new reference, or null with an error set.
            let index = unsafe { ffi::PyNumber_Index(obj.as_ptr()) };
            if !index.is_null() {
                // SAFETY: the new reference just returned.
                let index = unsafe { Bound::from_owned_ptr(py, index) };
                return self.write_int(w, &index);
            }
            let e = PyErr::fetch(py);
            // A NumPy array has __index__ too, for its integer scalars only: the others
            // refuse with a TypeError and go by their buffer. Any other error of __index__
            // (or this one, for an object without a buffer) is raised, as a getter's
            // would be (spec G5).
            if !e.is_instance_of::<PyTypeError>(py) {
                return Err(e);
            }
            return match self.h.memoryview.bind(py).call1((obj,)) {
                Ok(view) => self.write_view(w, &view, &type_name(obj)),
                Err(_) => Err(e),
            };
        }
        // Any other object that exports a buffer (PEP 3118: a NumPy array, an array.array,
        // a ctypes array) travels as its memoryview would: a typed array, copied.
        match self.h.memoryview.bind(py).call1((obj,)) {
            Ok(view) => return self.write_view(w, &view, &type_name(obj)),
            Err(e) if !e.is_instance_of::<PyTypeError>(py) => {
                return Err(errors::data_clone(
                    py,
                    format!("this {} cannot be cloned: {e}", type_name(obj)),
                ));
            }
            Err(_) => {}
        }
        Err(errors::data_clone(
            py,
            format!(
                "an object of type {} cannot be cloned (supported: None, bool, int, float, str, \
                 bytes, bytearray, memoryview, Buffer, list, tuple, dict, set, frozenset, \
                 datetime, exceptions, RegExp, UNDEFINED, transferred MessagePorts, and \
                 objects with the buffer protocol)",
                type_name(obj)
            ),
        ))
    }

    fn write_int(&mut self, w: &mut Writer<'_>, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        let mut overflow = 0;
        // SAFETY: `obj` is an int; the GIL is held.
        let v = unsafe { ffi::PyLong_AsLongLongAndOverflow(obj.as_ptr(), &mut overflow) };
        if overflow == 0 {
            if v == -1 && PyErr::occurred(self.py) {
                return Err(PyErr::fetch(self.py));
            }
            return w.int(v).map_err(|e| clone_err(self.py, e));
        }
        let negative = overflow < 0;
        // On a plain int: an int subclass's own __abs__, bit_length or to_bytes do not
        // speak for its value. (PyNumber_Index copies an int subclass as a plain int,
        // without calling its __index__.)
        let plain = if obj.is_exact_instance_of::<PyInt>() {
            obj.clone()
        } else {
            // SAFETY: `obj` is an int; the GIL is held; a new reference or null with an
            // error set.
            unsafe { Bound::from_owned_ptr_or_err(self.py, ffi::PyNumber_Index(obj.as_ptr()))? }
        };
        let mag = plain.call_method0("__abs__")?;
        let bits: usize = mag.call_method0("bit_length")?.extract()?;
        let bytes = mag.call_method1("to_bytes", (bits.div_ceil(8), "big"))?;
        let bytes = bytes.cast::<PyBytes>()?;
        w.bigint(negative, bytes.as_bytes())
            .map_err(|e| clone_err(self.py, e))
    }

    /// Writes a dict: an object when every key is a str, else a Map.
    fn write_dict(&mut self, w: &mut Writer<'_>, d: &Bound<'py, PyDict>) -> PyResult<()> {
        if self.share(w, d.as_any())? {
            return Ok(());
        }
        let py = self.py;
        let ce = |e| clone_err(py, e);
        let all_str = scan_dict(d).all_str;
        let len = d.len();
        if all_str {
            w.begin_object(len).map_err(ce)?;
        } else {
            w.begin_map(len).map_err(ce)?;
        }
        if !d.is_exact_instance_of::<PyDict>() {
            // A subclass (an OrderedDict, say) goes in its own iteration order, which its
            // items() gives (the table underneath keeps insertion order)
            let mut items = Vec::with_capacity(len);
            for item in d.call_method0("items")?.try_iter()? {
                let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item?.extract()?;
                items.push((k, v));
            }
            if items.len() != len {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "the dictionary's items() do not match its length",
                ));
            }
            for (k, v) in items {
                if all_str {
                    self.write_key(w, &k)?;
                } else {
                    self.write(w, &k)?;
                }
                self.write(w, &v)?;
            }
            return Ok(());
        }
        let mut pos: ffi::Py_ssize_t = 0;
        let mut k: *mut ffi::PyObject = std::ptr::null_mut();
        let mut v: *mut ffi::PyObject = std::ptr::null_mut();
        let mut count = 0usize;
        // SAFETY: the GIL is held; PyDict_Next yields borrowed references that stay
        // valid until the dict is mutated. Writing a scalar of an exact built-in type
        // runs no Python code, so those are used borrowed; anything else is held by an
        // owned reference while it is written (its writing may run Python code that
        // changes the dict: PyDict_Next stays memory-safe, and the count check below
        // reports the change).
        while unsafe { ffi::PyDict_Next(d.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
            count += 1;
            if count > len {
                break;
            }
            let kb = unsafe { Borrowed::from_ptr(py, k) };
            let vb = unsafe { Borrowed::from_ptr(py, v) };
            if all_str {
                self.write_key(w, &kb)?;
                if is_plain_scalar(&vb) {
                    self.write(w, &vb)?;
                } else {
                    let vo = vb.to_owned();
                    self.write(w, &vo)?;
                }
            } else {
                let ko = kb.to_owned();
                let vo = vb.to_owned();
                self.write(w, &ko)?;
                self.write(w, &vo)?;
            }
        }
        if count != len || d.len() != len {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "dictionary changed size during iteration",
            ));
        }
        Ok(())
    }

    /// A str dict key, as an object key.
    fn write_key(&mut self, w: &mut Writer<'_>, k: &Bound<'_, PyAny>) -> PyResult<()> {
        match utf8_of(k) {
            Some(s) => w.key(s).map_err(|e| clone_err(self.py, e)),
            None => Err(errors::data_clone(
                self.py,
                "a dict key with lone surrogates cannot be an object key",
            )),
        }
    }

    fn write_seq(&mut self, w: &mut Writer<'_>, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        if self.share(w, obj)? {
            return Ok(());
        }
        let py = self.py;
        if let Ok(l) = obj.cast::<PyList>() {
            w.begin_array(l.len()).map_err(|e| clone_err(py, e))?;
            // A list may change while its items are written (a getter cannot run here,
            // but __del__ can): index defensively.
            let mut i = 0;
            while let Ok(item) = l.get_item(i) {
                self.write(w, &item)?;
                i += 1;
            }
            if i == 0 && l.len() == 0 {
                return Ok(());
            }
            return Ok(());
        }
        let t = obj.cast::<PyTuple>()?;
        w.begin_array(t.len()).map_err(|e| clone_err(py, e))?;
        for item in t.iter() {
            self.write(w, &item)?;
        }
        Ok(())
    }

    /// Writes the 1-D buffer that `obj` (a memoryview, or an object of type `what` that
    /// exports a buffer) exports, as a typed array of its element format.
    fn write_view(
        &mut self,
        w: &mut Writer<'_>,
        obj: &Bound<'py, PyAny>,
        what: &str,
    ) -> PyResult<()> {
        let py = self.py;
        let mut view = PyBuffer::zeroed();
        // SAFETY: released below; the GIL is held throughout.
        unsafe {
            if capi::PyObject_GetBuffer(
                obj.as_ptr(),
                &mut view,
                capi::PYBUF_C_CONTIGUOUS | capi::PYBUF_FORMAT,
            ) != 0
            {
                let e = PyErr::fetch(py);
                return Err(errors::data_clone(
                    py,
                    format!("this {what} cannot be cloned: {e}"),
                ));
            }
            let format = if view.format.is_null() {
                "B".to_owned()
            } else {
                std::ffi::CStr::from_ptr(view.format)
                    .to_string_lossy()
                    .into_owned()
            };
            let itemsize = view.itemsize.max(1) as u64;
            let ndim = view.ndim;
            let bytes: &[u8] = if view.len > 0 {
                std::slice::from_raw_parts(view.buf as *const u8, view.len as usize)
            } else {
                &[]
            };
            let result = (|| {
                if ndim > 1 {
                    return Err(errors::data_clone(
                        py,
                        format!(
                            "this {what} cannot be cloned: it has {ndim} dimensions (make it \
                             1-D first)"
                        ),
                    ));
                }
                if ndim == 0 && what != "memoryview" {
                    // a NumPy scalar, say: a one-element typed array would surprise
                    return Err(errors::data_clone(
                        py,
                        format!(
                            "this {what} cannot be cloned: it is a scalar (convert it with \
                             int(), float() or bool() first)"
                        ),
                    ));
                }
                let kind = view_kind_of(&format, itemsize).ok_or_else(|| {
                    errors::data_clone(
                        py,
                        format!(
                            "this {what} cannot be cloned: no typed array has its element \
                             format {format:?}"
                        ),
                    )
                })?;
                w.view(kind, 0, bytes.len() as u64 / itemsize)
                    .map_err(|e| clone_err(py, e))?;
                w.bytes(bytes).map_err(|e| clone_err(py, e))
            })();
            capi::PyBuffer_Release(&mut view);
            result
        }
    }
}

fn view_kind_of(format: &str, itemsize: u64) -> Option<ViewKind> {
    let f = format.trim_start_matches(['@', '=', '<']);
    Some(match (f, itemsize) {
        ("b", 1) => ViewKind::Int8,
        ("B" | "c", 1) => ViewKind::Uint8,
        ("h", 2) => ViewKind::Int16,
        ("H", 2) => ViewKind::Uint16,
        ("i" | "l", 4) => ViewKind::Int32,
        ("I" | "L", 4) => ViewKind::Uint32,
        ("q" | "l" | "n", 8) => ViewKind::BigInt64,
        ("Q" | "L" | "N", 8) => ViewKind::BigUint64,
        ("e", 2) => ViewKind::Float16,
        ("f", 4) => ViewKind::Float32,
        ("d", 8) => ViewKind::Float64,
        _ => return None,
    })
}

/// The typed array or DataView `kind` over `length` elements at `byte_offset` in `buf` (a
/// received buffer): a memoryview of the element format, sharing `buf`'s memory (format
/// "e" for a Float16Array, which memoryview cannot cast to: see halffloats.rs).
fn typed_view<'py>(
    h: &Helpers,
    buf: &Bound<'py, PyAny>,
    kind: ViewKind,
    byte_offset: u64,
    length: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let py = buf.py();
    let start = byte_offset as usize;
    if kind == ViewKind::Float16 {
        return halffloats::memoryview(buf, start, length as usize);
    }
    let end = start + length as usize * kind.element_size();
    let slice = pyo3::types::PySlice::new(py, start as isize, end as isize, 1);
    let v = h.memoryview.bind(py).call1((buf,))?.get_item(slice)?;
    match view_format(kind) {
        "B" => Ok(v),
        fmt => v.call_method1("cast", (fmt,)),
    }
}

fn view_format(kind: ViewKind) -> &'static str {
    match kind {
        ViewKind::Int8 => "b",
        ViewKind::Uint8 | ViewKind::Uint8Clamped | ViewKind::DataView => "B",
        ViewKind::Int16 => "h",
        ViewKind::Uint16 => "H",
        ViewKind::Int32 => "i",
        ViewKind::Uint32 => "I",
        ViewKind::Float16 => "e",
        ViewKind::Float32 => "f",
        ViewKind::Float64 => "d",
        ViewKind::BigInt64 => "q",
        ViewKind::BigUint64 => "Q",
        _ => "B",
    }
}

/// The UTF-8 of a `str` without copying (None when it holds lone surrogates).
fn utf8_of<'a>(s: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a str; the UTF-8 buffer is cached in the object and lives as long
    // as it does (we borrow `s` for 'a).
    unsafe {
        let p = capi::PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size);
        if p.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        let bytes = std::slice::from_raw_parts(p as *const u8, size as usize);
        Some(std::str::from_utf8_unchecked(bytes))
    }
}

fn write_str(w: &mut Writer<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = obj.py();
    match utf8_of(obj) {
        Some(s) => w.str(s).map_err(|e| clone_err(py, e)),
        None => {
            // Lone surrogates: UTF-16 code units.
            let b = obj.call_method1("encode", ("utf-16-le", "surrogatepass"))?;
            let b = b.cast::<PyBytes>()?.as_bytes();
            let units: Vec<u16> = b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            w.utf16(&units).map_err(|e| clone_err(py, e))
        }
    }
}

// ---- decoding ---------------------------------------------------------------------------

/// Why a message could not become Python objects (the web's `messageerror`).
#[derive(Debug)]
pub enum Fail {
    Wire(DecodeError),
    Py(PyErr),
}

impl From<DecodeError> for Fail {
    fn from(e: DecodeError) -> Self {
        Fail::Wire(e)
    }
}

impl From<PyErr> for Fail {
    fn from(e: PyErr) -> Self {
        Fail::Py(e)
    }
}

impl Fail {
    pub fn describe(&self, py: Python<'_>) -> String {
        match self {
            Fail::Wire(e) => format!("the message cannot be decoded: {e}"),
            Fail::Py(e) => format!(
                "the message cannot be rebuilt as Python objects: {}",
                e.value(py)
            ),
        }
    }
}

/// A decoded message: its data and its ports (transfer-list order).
pub struct Decoded<'py> {
    pub data: Bound<'py, PyAny>,
    pub ports: Vec<Bound<'py, PyAny>>,
}

/// Decodes a received message into Python objects, adopting its ports.
pub fn decode_message<'py>(
    py: Python<'py>,
    mut msg: channel_messaging::Message,
) -> Result<Decoded<'py>, Fail> {
    let port_count = msg.port_count() as u32;
    if port_count == 0
        && msg.buffers().is_empty()
        && let Some(data) = decode_flat(py, msg.bytes())?
    {
        return Ok(Decoded {
            data,
            ports: Vec::new(),
        });
    }
    let h = helpers(py)?;
    let ports: Vec<Bound<'py, PyAny>> = if port_count == 0 {
        Vec::new()
    } else {
        msg.take_ports()
            .into_iter()
            .map(|p| Ok(Bound::new(py, MessagePort::from_core(p))?.into_any()))
            .collect::<PyResult<_>>()?
    };
    let mut dec = Decoder {
        py,
        h,
        ports: &ports,
        side: msg.buffers(),
        shared: Vec::new(),
        deferred: Vec::new(),
    };
    let data = {
        let mut r = Reader::new(msg.bytes(), msg.buffers(), port_count)?;
        let ev = r.next()?;
        let v = dec.read(&mut r, ev, None)?;
        r.finish()?;
        v
    };
    let deferred = std::mem::take(&mut dec.deferred);
    if !deferred.is_empty() {
        // Take the message's buffers, so that ours are the only handles left: `into_vec`
        // then hands over the sender's allocation without copying.
        drop(dec);
        let mut side: Vec<Option<CoreBuffer>> = msg.take_buffers().into_iter().map(Some).collect();
        drop(msg);
        let mut installed: HashMap<u32, Bound<'py, PyAny>> = HashMap::new();
        for (obj, idx) in deferred {
            match side.get_mut(idx as usize).and_then(Option::take) {
                Some(b) => buffer::restore(&obj, b.into_vec()),
                None => {
                    if let Some(first) = installed.get(&idx) {
                        let copy = channel_messaging::pool::take_copy(buffer::bytes_of(first)?);
                        buffer::restore(&obj, copy);
                    }
                }
            }
            installed.entry(idx).or_insert(obj);
        }
    }
    Ok(Decoded { data, ports })
}

/// One CBOR head at `*pos`: its major type and argument (any width); None when the
/// bytes end or the additional information is not a plain argument (28..31).
#[inline]
fn cbor_head(b: &[u8], pos: &mut usize) -> Option<(u8, u64)> {
    let ib = *b.get(*pos)?;
    let p = *pos + 1;
    let (arg, n) = match ib & 0x1f {
        ai @ 0..=23 => (u64::from(ai), 0),
        24 => (u64::from(*b.get(p)?), 1),
        25 => (
            u64::from(u16::from_be_bytes(b.get(p..p + 2)?.try_into().ok()?)),
            2,
        ),
        26 => (
            u64::from(u32::from_be_bytes(b.get(p..p + 4)?.try_into().ok()?)),
            4,
        ),
        27 => (u64::from_be_bytes(b.get(p..p + 8)?.try_into().ok()?), 8),
        _ => return None,
    };
    *pos = p + n;
    Some((ib >> 5, arg))
}

/// The `str` of a text string whose head was just read (`len` bytes at `*pos`); None
/// when the bytes end or are not UTF-8.
#[inline]
fn cbor_text<'py>(
    py: Python<'py>,
    b: &[u8],
    pos: &mut usize,
    len: u64,
    key: bool,
) -> Option<Bound<'py, PyString>> {
    let end = pos.checked_add(usize::try_from(len).ok()?)?;
    let s = cached_text(py, b.get(*pos..end)?, key)?;
    *pos = end;
    Some(s)
}

/// A half-precision float widened exactly (None for infinities and NaNs, which the
/// general reader handles with their payloads).
#[inline]
fn half_to_f64(h: u16) -> Option<f64> {
    let negative = h & 0x8000 != 0;
    let e = u64::from((h >> 10) & 0x1f);
    let m = u64::from(h & 0x3ff);
    let v = match e {
        0 => m as f64 * (1.0 / 16_777_216.0), // subnormal: m * 2^-24, exact
        31 => return None,
        _ => f64::from_bits(((e + 1023 - 15) << 52) | (m << 42)),
    };
    Some(if negative { -v } else { v })
}

/// Decodes the most common message shape without the general reader: the canonical
/// envelope around a plain object whose keys are text strings and whose values are
/// integers (i64), text strings, floats, booleans or null, with nothing after it.
/// Returns None for anything else, malformed input included (the general path then
/// decodes it or reports the error); nothing built here escapes in that case.
fn decode_flat<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(rest) = b.strip_prefix(&[0xd9, 0xcb, 0x01]) else {
        return Ok(None);
    };
    let mut pos = 0usize;
    let Some((5, n)) = cbor_head(rest, &mut pos) else {
        return Ok(None);
    };
    // Each entry takes at least two bytes.
    if n > (rest.len() - pos) as u64 / 2 {
        return Ok(None);
    }
    let d = PyDict::new(py);
    for _ in 0..n {
        let key = match cbor_head(rest, &mut pos) {
            Some((3, len)) => match cbor_text(py, rest, &mut pos, len, true) {
                Some(k) => k,
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        let start = pos;
        let v: Bound<'py, PyAny> = match cbor_head(rest, &mut pos) {
            Some((0, a)) => match i64::try_from(a) {
                Ok(i) => PyInt::new(py, i).into_any(),
                Err(_) => return Ok(None),
            },
            Some((1, a)) => match i64::try_from(a) {
                Ok(i) => PyInt::new(py, -1 - i).into_any(),
                Err(_) => return Ok(None),
            },
            Some((3, len)) => match cbor_text(py, rest, &mut pos, len, false) {
                Some(s) => s.into_any(),
                None => return Ok(None),
            },
            Some((7, a)) => match rest[start] {
                0xf4 => PyBool::new(py, false).to_owned().into_any(),
                0xf5 => PyBool::new(py, true).to_owned().into_any(),
                0xf6 => py.None().into_bound(py),
                0xf9 => match half_to_f64(a as u16) {
                    Some(f) => PyFloat::new(py, f).into_any(),
                    None => return Ok(None),
                },
                0xfa => {
                    let f = f32::from_bits(a as u32);
                    if f.is_nan() {
                        return Ok(None);
                    }
                    PyFloat::new(py, f64::from(f)).into_any()
                }
                0xfb => PyFloat::new(py, f64::from_bits(a)).into_any(),
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        dict_set(&d, &key, &v)?;
    }
    Ok((pos == rest.len()).then(|| d.into_any()))
}

/// `a == b` for short strings without a `memcmp` call (fixed-size loads).
#[inline]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w8 = |s: &[u8], i: usize| -> u64 {
        let mut x = [0u8; 8];
        x.copy_from_slice(&s[i..i + 8]);
        u64::from_le_bytes(x)
    };
    let w4 = |s: &[u8], i: usize| -> u32 {
        let mut x = [0u8; 4];
        x.copy_from_slice(&s[i..i + 4]);
        u32::from_le_bytes(x)
    };
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if w8(a, i) != w8(b, i) {
                return false;
            }
            i += 8;
        }
        w8(a, n - 8) == w8(b, n - 8)
    } else if n >= 4 {
        w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

/// Object keys (and short string values such as tags and names) repeat from message to
/// message: a small cache of strings saves creating (and, for keys, hashing) a new `str`
/// each time. Strings are immutable, so handing out the same object is invisible.
const STR_CACHE: usize = 256;

/// Strings of at most this many bytes are cached.
const STR_CACHE_MAX: usize = 24;

/// A cached string: its text and its (interned) object.
type CachedStr = (Box<str>, Py<PyString>);

/// State that is only touched while the GIL is held (this module does not support
/// free-threaded builds: abi3), so the GIL serializes every access.
struct GilCell<T>(std::cell::UnsafeCell<T>);

// SAFETY: every access goes through `GilCell::with`, which requires a `Python` token
// (the GIL held) and runs no Python code while the borrow is live.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    /// Runs `f` on the value. `f` must not run Python code (which could release the GIL
    /// and let another thread in) nor re-enter `with`.
    fn with<R>(&self, _py: Python<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: see the Sync impl.
        f(unsafe { &mut *self.0.get() })
    }
}

static STRINGS: GilCell<Vec<Option<CachedStr>>> = GilCell(std::cell::UnsafeCell::new(Vec::new()));

/// The `str` for `k`: from the cache when short. Keys are interned (lookups with literal
/// keys then match by identity); values are not (interned strings may be immortal).
fn cached_str<'py>(py: Python<'py>, k: &str, key: bool) -> Bound<'py, PyString> {
    if k.len() > STR_CACHE_MAX {
        return PyString::new(py, k);
    }
    let slot = str_slot(k.as_bytes());
    let hit = STRINGS.with(py, |c| match c.get(slot) {
        Some(Some((s, obj))) if short_eq(s.as_bytes(), k.as_bytes()) => Some(obj.bind(py).clone()),
        _ => None,
    });
    if let Some(s) = hit {
        return s;
    }
    // Creating the string happens outside the cell borrow, and the replaced entry is
    // dropped outside it too (dropping a str runs no Python code, but stay strict).
    let obj = if key {
        PyString::intern(py, k)
    } else {
        PyString::new(py, k)
    };
    let old = STRINGS.with(py, |c| {
        if c.is_empty() {
            c.resize_with(STR_CACHE, || None);
        }
        c[slot].replace((k.into(), obj.clone().unbind()))
    });
    drop(old);
    obj
}

/// As [`cached_str`] for UTF-8 bytes that are not validated yet: a cache hit needs no
/// validation (the cache only holds valid text). None when the bytes are not UTF-8.
#[inline]
fn cached_text<'py>(py: Python<'py>, b: &[u8], key: bool) -> Option<Bound<'py, PyString>> {
    if b.len() <= STR_CACHE_MAX {
        let slot = str_slot(b);
        let hit = STRINGS.with(py, |c| match c.get(slot) {
            Some(Some((s, obj))) if short_eq(s.as_bytes(), b) => Some(obj.bind(py).clone()),
            _ => None,
        });
        if hit.is_some() {
            return hit;
        }
    }
    Some(cached_str(py, std::str::from_utf8(b).ok()?, key))
}

/// The cache slot of a short string: a multiplicative hash of its first and last (up
/// to) eight bytes and its length (fixed-size loads: no memcpy call).
#[inline]
fn str_slot(b: &[u8]) -> usize {
    let n = b.len();
    let (head, tail) = if n >= 8 {
        let mut h = [0u8; 8];
        let mut t = [0u8; 8];
        h.copy_from_slice(&b[..8]);
        t.copy_from_slice(&b[n - 8..]);
        (u64::from_le_bytes(h), u64::from_le_bytes(t))
    } else if n >= 4 {
        let mut h = [0u8; 4];
        let mut t = [0u8; 4];
        h.copy_from_slice(&b[..4]);
        t.copy_from_slice(&b[n - 4..]);
        (
            u64::from(u32::from_le_bytes(h)),
            u64::from(u32::from_le_bytes(t)),
        )
    } else if n > 0 {
        (
            u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16,
            0,
        )
    } else {
        (0, 0)
    };
    let h = (head ^ tail.rotate_left(29) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 56) as usize % STR_CACHE
}

/// Adds the entry `k => v` of a Map to `d`, the dict it becomes. A key that Python
/// cannot hash as it came (a list, a set, a buffer) is made hashable first (`_freeze`:
/// a tuple, a frozenset, bytes). A key equal in Python to an earlier one (1 and `true`,
/// two arrays with the same items: distinct keys in JavaScript) fails the message,
/// rather than one entry silently replacing the other.
fn map_insert(
    h: &Helpers,
    d: &Bound<'_, PyDict>,
    k: Bound<'_, PyAny>,
    v: Bound<'_, PyAny>,
) -> Result<(), Fail> {
    let before = d.len();
    if d.set_item(&k, &v).is_err() {
        d.set_item(h.freeze.bind(d.py()).call1((k,))?, v)?;
    }
    if d.len() == before {
        return Err(Fail::Py(errors::message_error(
            d.py(),
            "two keys of a Map are one key in Python (such as 1 and true, or two arrays \
             with the same items), and a dict cannot hold both",
        )));
    }
    Ok(())
}

/// Adds the element `v` of a Set to `s`, as [`map_insert`] adds a Map's key.
fn set_insert(h: &Helpers, s: &Bound<'_, PySet>, v: Bound<'_, PyAny>) -> Result<(), Fail> {
    let before = s.len();
    if s.add(&v).is_err() {
        s.add(h.freeze.bind(s.py()).call1((v,))?)?;
    }
    if s.len() == before {
        return Err(Fail::Py(errors::message_error(
            s.py(),
            "two elements of a Set are one element in Python (such as 1 and true, or two \
             arrays with the same items), and a set cannot hold both",
        )));
    }
    Ok(())
}

/// `d[k] = v` for a new dict under construction.
fn dict_set(d: &Bound<'_, PyDict>, k: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: three valid objects, the GIL is held; PyDict_SetItem does not steal.
    if unsafe { ffi::PyDict_SetItem(d.as_ptr(), k.as_ptr(), v.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(d.py()))
    }
}

struct Decoder<'a, 'py> {
    py: Python<'py>,
    h: &'a Helpers,
    ports: &'a [Bound<'py, PyAny>],
    side: &'a [CoreBuffer],
    shared: Vec<Option<Bound<'py, PyAny>>>,
    /// Side-table buffers whose bytes are moved in once the message is dropped.
    deferred: Vec<(Bound<'py, PyAny>, u32)>,
}

impl<'py> Decoder<'_, 'py> {
    fn register(&mut self, share: Option<u32>, obj: &Bound<'py, PyAny>) {
        if let Some(id) = share {
            let id = id as usize;
            if self.shared.len() <= id {
                self.shared.resize(id + 1, None);
            }
            self.shared[id] = Some(obj.clone());
        }
    }

    fn read_next(&mut self, r: &mut Reader<'_>) -> Result<Bound<'py, PyAny>, Fail> {
        let ev = r.next()?;
        self.read(r, ev, None)
    }

    fn read(
        &mut self,
        r: &mut Reader<'_>,
        ev: Event<'_>,
        share: Option<u32>,
    ) -> Result<Bound<'py, PyAny>, Fail> {
        let py = self.py;
        let obj: Bound<'py, PyAny> = match ev {
            Event::ObjectStart(n) => {
                let d = PyDict::new(py);
                self.register(share, d.as_any());
                for _ in 0..n {
                    let key = match r.next()? {
                        Event::Key(k) => cached_str(py, k, true),
                        _ => {
                            return Err(Fail::Py(errors::message_error(py, "object key expected")));
                        }
                    };
                    let v = self.read_next(r)?;
                    dict_set(&d, &key, &v)?;
                }
                return Ok(d.into_any());
            }
            Event::Str(s) => cached_str(py, s, false).into_any(),
            Event::Int(i) => PyInt::new(py, i).into_any(),
            Event::Float(f) => PyFloat::new(py, f).into_any(),
            Event::Null => py.None().into_bound(py),
            Event::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
            Event::Undefined | Event::Hole => self.h.undefined.bind(py).clone(),
            Event::ArrayStart(n) => {
                let l = PyList::empty(py);
                self.register(share, l.as_any());
                for _ in 0..n {
                    let v = self.read_next(r)?;
                    l.append(v)?;
                }
                return Ok(l.into_any());
            }
            Event::MapStart(n) => {
                let d = PyDict::new(py);
                self.register(share, d.as_any());
                for _ in 0..n {
                    let k = self.read_next(r)?;
                    let v = self.read_next(r)?;
                    map_insert(self.h, &d, k, v)?;
                }
                return Ok(d.into_any());
            }
            Event::SetStart(n) => {
                let s = PySet::empty(py)?;
                for _ in 0..n {
                    let v = self.read_next(r)?;
                    set_insert(self.h, &s, v)?;
                }
                s.into_any()
            }
            Event::BigInt {
                negative,
                magnitude,
            } => {
                let m = self
                    .h
                    .int_from_bytes
                    .bind(py)
                    .call1((PyBytes::new(py, &magnitude), "big"))?;
                if negative { m.neg()? } else { m }
            }
            Event::Utf16(units) => {
                let bytes: Vec<u8> = units.iter().flat_map(u16::to_le_bytes).collect();
                PyBytes::new(py, &bytes).call_method1("decode", ("utf-16-le", "surrogatepass"))?
            }
            Event::Buffer(data) => match data {
                BufferData::Inline(b) => {
                    buffer::new_buffer(py, channel_messaging::pool::take_copy(b))?
                }
                BufferData::Side { index, .. } => {
                    let obj = buffer::new_buffer(py, Vec::new())?;
                    self.deferred.push((obj.clone(), index));
                    obj
                }
            },
            Event::Date(ms) => self.h.ms_to_dt.bind(py).call1((ms,))?,
            Event::RegExp { source, flags } => self.h.regexp.bind(py).call1((source, flags))?,
            Event::Error {
                name,
                message,
                stack,
                has_cause,
            } => {
                let e = self
                    .h
                    .make_error
                    .bind(py)
                    .call1((name.as_str(), message, stack))?;
                self.register(share, &e);
                if has_cause {
                    let cause = self.read_next(r)?;
                    set_cause(&e, cause)?;
                }
                return Ok(e);
            }
            Event::View {
                kind,
                byte_offset,
                length,
            } => {
                let buf = self.read_next(r)?;
                self.install_now(&buf)?;
                typed_view(self.h, &buf, kind, byte_offset, length)?
            }
            Event::Boxed => self.read_next(r)?,
            Event::Shareable(id) => {
                let ev = r.next()?;
                return self.read(r, ev, Some(id));
            }
            Event::SharedRef(id) => match self.shared.get(id as usize).and_then(|s| s.clone()) {
                Some(obj) => obj,
                None => {
                    return Err(Fail::Py(errors::message_error(
                        py,
                        "a reference cycle through a value Python builds only after its \
                         contents (a set, a memoryview) cannot be rebuilt",
                    )));
                }
            },
            Event::Port(i) => self.ports[i as usize].clone(),
            Event::Key(_) => {
                return Err(Fail::Py(errors::message_error(
                    py,
                    "object key out of place",
                )));
            }
        };
        self.register(share, &obj);
        Ok(obj)
    }

    /// A view needs its buffer's bytes now: copy them in if they were deferred.
    fn install_now(&mut self, buf: &Bound<'py, PyAny>) -> PyResult<()> {
        if let Some(pos) = self.deferred.iter().position(|(b, _)| b.is(buf)) {
            let (obj, idx) = self.deferred.remove(pos);
            let bytes = self
                .side
                .get(idx as usize)
                .map(|b| b.to_vec())
                .unwrap_or_default();
            buffer::restore(&obj, bytes);
        }
        Ok(())
    }
}

/// An Error's cause: always the attribute `cause` (JavaScript's name), and also
/// `__cause__` when it is an exception (Python allows nothing else there).
fn set_cause(exc: &Bound<'_, PyAny>, cause: Bound<'_, PyAny>) -> PyResult<()> {
    if cause.is_instance_of::<pyo3::exceptions::PyBaseException>() {
        exc.setattr("__cause__", &cause)?;
    }
    exc.setattr("cause", cause)
}

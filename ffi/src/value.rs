//! The C value API: build and read every kind of message value, and byte buffers.

use std::ffi::{c_char, c_void};

use channel_messaging::{BigInt, Buffer, ErrorName, ErrorValue, Value, View, ViewKind};

use crate::error::*;

/// A message value (a tree). Values are either **owned** (returned by a `cm_value_new_*`
/// function, `cm_value_clone`, `cm_value_decode` or `cm_message_take_value`; release them
/// with `cm_value_free`, or hand them to a function documented as taking ownership) or
/// **borrowed** (a `const cm_value *` returned by an accessor; valid as long as its
/// owner, never freed).
///
/// A value is not thread-safe: do not use one from two threads at once.
#[repr(transparent)]
#[derive(Debug)]
pub struct cm_value(pub(crate) Value);

/// The bytes of an ArrayBuffer: immutable, reference-counted, shared without copying.
/// Every `cm_buffer *` is owned by the caller and released with `cm_buffer_free`; its
/// bytes stay valid (and at the same address) until then.
#[derive(Debug)]
pub struct cm_buffer(pub(crate) Buffer);

/// The kind of a value (`cm_value_kind`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum cm_kind {
    /// `undefined`
    CM_KIND_UNDEFINED = 0,
    /// `null`
    CM_KIND_NULL = 1,
    /// a boolean
    CM_KIND_BOOL = 2,
    /// an integer (int64)
    CM_KIND_INT = 3,
    /// a double
    CM_KIND_FLOAT = 4,
    /// a BigInt (sign and big-endian magnitude)
    CM_KIND_BIGINT = 5,
    /// a valid UTF-8 string
    CM_KIND_STRING = 6,
    /// a string with lone UTF-16 surrogates, as UTF-16 code units
    CM_KIND_UTF16 = 7,
    /// a boxed primitive (`new Number(1)`); its primitive is `cm_value_inner`
    CM_KIND_BOXED = 8,
    /// an ArrayBuffer
    CM_KIND_BUFFER = 9,
    /// a typed array or DataView over a buffer
    CM_KIND_VIEW = 10,
    /// an array
    CM_KIND_ARRAY = 11,
    /// a missing element of a sparse array (only inside an array)
    CM_KIND_HOLE = 12,
    /// a plain object with string keys, in insertion order
    CM_KIND_OBJECT = 13,
    /// a Map with keys of any kind, in insertion order
    CM_KIND_MAP = 14,
    /// a Set, in insertion order
    CM_KIND_SET = 15,
    /// a Date (milliseconds since the Unix epoch, NaN for an invalid date)
    CM_KIND_DATE = 16,
    /// a RegExp (source and flags)
    CM_KIND_REGEXP = 17,
    /// an Error (name, message, stack, cause)
    CM_KIND_ERROR = 18,
    /// a value that `CM_KIND_REF` values refer to (identity, cycles); see `cm_value_inner`
    CM_KIND_SHARED = 19,
    /// another reference to shared value number `cm_value_get_ref`
    CM_KIND_REF = 20,
    /// the message's port number `cm_value_get_port` (see `cm_message_take_port`)
    CM_KIND_PORT = 21,
}

/// The element type of a typed array (`CM_KIND_VIEW`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum cm_view_kind {
    /// Int8Array
    CM_VIEW_INT8 = 0,
    /// Uint8Array
    CM_VIEW_UINT8 = 1,
    /// Uint8ClampedArray
    CM_VIEW_UINT8_CLAMPED = 2,
    /// Int16Array
    CM_VIEW_INT16 = 3,
    /// Uint16Array
    CM_VIEW_UINT16 = 4,
    /// Int32Array
    CM_VIEW_INT32 = 5,
    /// Uint32Array
    CM_VIEW_UINT32 = 6,
    /// Float16Array
    CM_VIEW_FLOAT16 = 7,
    /// Float32Array
    CM_VIEW_FLOAT32 = 8,
    /// Float64Array
    CM_VIEW_FLOAT64 = 9,
    /// BigInt64Array
    CM_VIEW_BIGINT64 = 10,
    /// BigUint64Array
    CM_VIEW_BIGUINT64 = 11,
    /// DataView (its length counts bytes)
    CM_VIEW_DATAVIEW = 12,
}

/// The name of an Error value; any other name travels as `CM_ERROR_ERROR`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum cm_error_name {
    /// Error
    CM_ERROR_ERROR = 0,
    /// EvalError
    CM_ERROR_EVAL = 1,
    /// RangeError
    CM_ERROR_RANGE = 2,
    /// ReferenceError
    CM_ERROR_REFERENCE = 3,
    /// SyntaxError
    CM_ERROR_SYNTAX = 4,
    /// TypeError
    CM_ERROR_TYPE = 5,
    /// URIError
    CM_ERROR_URI = 6,
}

const VIEW_KINDS: [ViewKind; 13] = [
    ViewKind::Int8,
    ViewKind::Uint8,
    ViewKind::Uint8Clamped,
    ViewKind::Int16,
    ViewKind::Uint16,
    ViewKind::Int32,
    ViewKind::Uint32,
    ViewKind::Float16,
    ViewKind::Float32,
    ViewKind::Float64,
    ViewKind::BigInt64,
    ViewKind::BigUint64,
    ViewKind::DataView,
];

const ERROR_NAMES: [ErrorName; 7] = [
    ErrorName::Error,
    ErrorName::EvalError,
    ErrorName::RangeError,
    ErrorName::ReferenceError,
    ErrorName::SyntaxError,
    ErrorName::TypeError,
    ErrorName::UriError,
];

pub(crate) fn view_kind_from(k: i32) -> Res<ViewKind> {
    usize::try_from(k)
        .ok()
        .and_then(|i| VIEW_KINDS.get(i).copied())
        .map_or_else(
            || fail(CM_ERR_INVALID_ARGUMENT, format!("unknown view kind {k}")),
            Ok,
        )
}

pub(crate) fn view_kind_to(k: ViewKind) -> i32 {
    VIEW_KINDS
        .iter()
        .position(|&v| v == k)
        .map_or(-1, |i| i as i32)
}

pub(crate) fn error_name_from(k: i32) -> Res<ErrorName> {
    usize::try_from(k)
        .ok()
        .and_then(|i| ERROR_NAMES.get(i).copied())
        .map_or_else(
            || fail(CM_ERR_INVALID_ARGUMENT, format!("unknown error name {k}")),
            Ok,
        )
}

pub(crate) fn error_name_to(n: ErrorName) -> i32 {
    ERROR_NAMES
        .iter()
        .position(|&v| v == n)
        .map_or(0, |i| i as i32)
}

fn kind_of(v: &Value) -> cm_kind {
    use cm_kind::*;
    match v {
        Value::Undefined => CM_KIND_UNDEFINED,
        Value::Null => CM_KIND_NULL,
        Value::Bool(_) => CM_KIND_BOOL,
        Value::Int(_) => CM_KIND_INT,
        Value::Float(_) => CM_KIND_FLOAT,
        Value::BigInt(_) => CM_KIND_BIGINT,
        Value::String(_) => CM_KIND_STRING,
        Value::Utf16(_) => CM_KIND_UTF16,
        Value::Boxed(_) => CM_KIND_BOXED,
        Value::Buffer(_) => CM_KIND_BUFFER,
        Value::View(_) => CM_KIND_VIEW,
        Value::Array(_) => CM_KIND_ARRAY,
        Value::Hole => CM_KIND_HOLE,
        Value::Object(_) => CM_KIND_OBJECT,
        Value::Map(_) => CM_KIND_MAP,
        Value::Set(_) => CM_KIND_SET,
        Value::Date(_) => CM_KIND_DATE,
        Value::RegExp { .. } => CM_KIND_REGEXP,
        Value::Error(_) => CM_KIND_ERROR,
        Value::Shared(_) => CM_KIND_SHARED,
        Value::Ref(_) => CM_KIND_REF,
        Value::Port(_) => CM_KIND_PORT,
    }
}

// ---- pointer helpers ------------------------------------------------------------------

/// `len` bytes at `ptr` (NULL allowed when `len` is 0).
///
/// # Safety
///
/// `ptr` must point to `len` readable bytes that outlive the returned slice.
#[inline]
pub(crate) unsafe fn slice<'a, T>(ptr: *const T, len: usize, what: &'static str) -> Res<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return fail(
            CM_ERR_NULL_POINTER,
            format!("{what} is NULL but its length is not 0"),
        );
    }
    // SAFETY: non-NULL, and the caller guarantees `len` readable elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A UTF-8 string of `len` bytes at `ptr`.
///
/// # Safety
///
/// As [`slice`].
#[inline]
pub(crate) unsafe fn utf8<'a>(ptr: *const c_char, len: usize, what: &'static str) -> Res<&'a str> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { slice(ptr.cast::<u8>(), len, what)? };
    // Keys and short strings are usually ASCII: check those inline.
    if bytes.len() <= 32 && bytes.iter().all(u8::is_ascii) {
        // SAFETY: every byte is ASCII, so the bytes are valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    utf8_slow(bytes, what)
}

#[cold]
#[inline(never)]
fn utf8_slow<'a>(bytes: &'a [u8], what: &'static str) -> Res<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        Failure::new(
            CM_ERR_INVALID_ARGUMENT,
            format!("{what} is not valid UTF-8: {e}"),
        )
    })
}

/// The buffers of a side-table list (shared handles, no copy).
///
/// # Safety
///
/// `list` must point to `len` pointers to live `cm_buffer`s.
pub(crate) unsafe fn buffer_list(list: *const *const cm_buffer, len: usize) -> Res<Vec<Buffer>> {
    // SAFETY: forwarded contract.
    let ptrs = unsafe { slice(list, len, "buffers")? };
    ptrs.iter()
        .enumerate()
        .map(|(i, &p)| {
            if p.is_null() {
                fail(CM_ERR_NULL_POINTER, format!("buffers[{i}] is NULL"))
            } else {
                // SAFETY: non-NULL; the caller guarantees it is a live cm_buffer.
                Ok(unsafe { (*p).0.clone() })
            }
        })
        .collect()
}

/// The value behind a borrowed pointer.
///
/// # Safety
///
/// `v` must be NULL or point to a live `cm_value`.
#[inline]
pub(crate) unsafe fn value_ref<'a>(v: *const cm_value) -> Res<&'a Value> {
    not_null(v, "value is NULL")?;
    // SAFETY: non-NULL; the caller guarantees it is a live cm_value.
    Ok(unsafe { &(*v).0 })
}

/// The value behind a mutable pointer.
///
/// # Safety
///
/// `v` must be NULL or point to a live, owned `cm_value` not used elsewhere meanwhile.
#[inline]
unsafe fn value_mut<'a>(v: *mut cm_value) -> Res<&'a mut Value> {
    not_null(v, "value is NULL")?;
    // SAFETY: non-NULL; the caller guarantees exclusive access to a live cm_value.
    Ok(unsafe { &mut (*v).0 })
}

/// An owned value handed over by C, until it is placed: dropped without recursion
/// ([`Value::drop_deep`]) when a call fails, since C code can build a tree of any depth.
pub(crate) struct Taken(Option<Value>);

impl Taken {
    /// The value, to be placed (in a container, a new value).
    pub(crate) fn into_inner(mut self) -> Value {
        self.0.take().unwrap_or(Value::Undefined)
    }

    /// The value, to look at.
    pub(crate) fn get(&self) -> &Value {
        self.0.as_ref().unwrap_or(&Value::Undefined)
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        if let Some(v) = self.0.take() {
            v.drop_deep();
        }
    }
}

/// Takes an owned value handed over by C (always consumed).
///
/// # Safety
///
/// `v` must be NULL or an owned `cm_value *` that the caller gives up.
#[inline]
unsafe fn take(v: *mut cm_value) -> Res<Taken> {
    not_null(v, "value is NULL")?;
    // SAFETY: an owned cm_value comes from Box::into_raw in this crate; the caller
    // hands its ownership over.
    Ok(Taken(Some(unsafe { Box::from_raw(v) }.0)))
}

/// Takes an optional owned value (NULL = none).
///
/// # Safety
///
/// As [`take`].
unsafe fn take_opt(v: *mut cm_value) -> Option<Taken> {
    if v.is_null() {
        None
    } else {
        // SAFETY: forwarded contract.
        unsafe { take(v) }.ok()
    }
}

pub(crate) fn boxed(v: Value) -> *mut cm_value {
    Box::into_raw(Box::new(cm_value(v)))
}

fn new_value(f: impl FnOnce() -> Res<Value>) -> *mut cm_value {
    guard_ptr(|| f().map(boxed))
}

fn wrong(v: &Value, want: &'static str) -> Failure {
    Failure::new(
        CM_ERR_WRONG_KIND,
        format!("expected {want}, the value is a {}", v.kind_name()),
    )
}

// ---- building -------------------------------------------------------------------------

/// A new `undefined`. Owned by the caller (`cm_value_free`).
#[unsafe(no_mangle)]
pub extern "C" fn cm_value_new_undefined() -> *mut cm_value {
    new_value(|| Ok(Value::Undefined))
}

/// A new `null`. Owned by the caller.
#[unsafe(no_mangle)]
pub extern "C" fn cm_value_new_null() -> *mut cm_value {
    new_value(|| Ok(Value::Null))
}

/// A new boolean. Owned by the caller.
#[unsafe(no_mangle)]
pub extern "C" fn cm_value_new_bool(b: bool) -> *mut cm_value {
    new_value(|| Ok(Value::Bool(b)))
}

/// A new integer. Owned by the caller.
#[unsafe(no_mangle)]
pub extern "C" fn cm_value_new_int(i: i64) -> *mut cm_value {
    new_value(|| Ok(Value::Int(i)))
}

/// A new double (kept bit for bit: -0, NaN payloads, infinities). Owned by the caller.
#[unsafe(no_mangle)]
pub extern "C" fn cm_value_new_float(f: f64) -> *mut cm_value {
    new_value(|| Ok(Value::Float(f)))
}

/// A new BigInt: its sign and its big-endian magnitude (`len` bytes at `magnitude`,
/// borrowed and copied; leading zeros are dropped). Owned by the caller; NULL on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_new_bigint(
    negative: bool,
    magnitude: *const u8,
    len: usize,
) -> *mut cm_value {
    new_value(|| {
        // SAFETY: the caller passes `len` readable bytes.
        let m = unsafe { slice(magnitude, len, "magnitude")? };
        let first = m.iter().position(|&b| b != 0).unwrap_or(m.len());
        let magnitude = m[first..].to_vec();
        Ok(Value::BigInt(BigInt {
            negative: negative && !magnitude.is_empty(),
            magnitude,
        }))
    })
}

/// A new string from `len` bytes of UTF-8 at `s` (borrowed and copied; need not be
/// NUL-terminated and may contain NUL). Owned by the caller; NULL when not valid UTF-8.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_new_string(s: *const c_char, len: usize) -> *mut cm_value {
    new_value(|| {
        // SAFETY: the caller passes `len` readable bytes.
        Ok(Value::String(unsafe { utf8(s, len, "s")? }.to_owned()))
    })
}

/// A new string from `len` UTF-16 code units at `units` (borrowed and copied), which
/// may hold lone surrogates (valid UTF-16 becomes an ordinary string). Owned by the
/// caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_new_utf16(units: *const u16, len: usize) -> *mut cm_value {
    new_value(|| {
        // SAFETY: the caller passes `len` readable code units.
        let u = unsafe { slice(units, len, "units")? };
        Ok(match String::from_utf16(u) {
            Ok(s) => Value::String(s),
            Err(_) => Value::Utf16(u.to_vec()),
        })
    })
}

/// A new boxed primitive holding `inner` (a bool, number, bigint or string), which this
/// call takes ownership of (always, even on failure). Owned by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_new_boxed(inner: *mut cm_value) -> *mut cm_value {
    new_value(|| {
        // SAFETY: the caller hands over an owned value.
        let v = unsafe { take(inner)? };
        match v.get() {
            Value::Bool(_)
            | Value::Int(_)
            | Value::Float(_)
            | Value::BigInt(_)
            | Value::String(_)
            | Value::Utf16(_) => Ok(Value::Boxed(Box::new(v.into_inner()))),
            other => Err(wrong(other, "a boolean, number, bigint or string to box")),
        }
    })
}

/// A new ArrayBuffer holding a copy of `len` bytes at `bytes` (borrowed). Owned by the
/// caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_new_buffer(bytes: *const u8, len: usize) -> *mut cm_value {
    new_value(|| {
        // SAFETY: the caller passes `len` readable bytes.
        Ok(Value::Buffer(Buffer::copy_from_slice(unsafe {
            slice(bytes, len, "bytes")?
        })))
    })
}

/// A new ArrayBuffer over `buffer`'s bytes, without copying (the value shares them;
/// `buffer` is borrowed and the caller still frees it). Posting it shares the bytes with
/// the receiver: zero-copy transfer of a `cm_buffer` made with `cm_buffer_new_owned`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_new_buffer_from(buffer: *const cm_buffer) -> *mut cm_value {
    new_value(|| {
        not_null(buffer, "buffer is NULL")?;
        // SAFETY: non-NULL; the caller guarantees a live cm_buffer.
        Ok(Value::Buffer(unsafe { (*buffer).0.clone() }))
    })
}

/// A new typed array (or DataView) of `length` elements (bytes for a DataView) starting
/// `byte_offset` bytes into `buffer`. `kind` is a `cm_view_kind`. `buffer` must be a
/// `CM_KIND_BUFFER` value, or a `CM_KIND_SHARED` one wrapping a buffer, or a
/// `CM_KIND_REF` to one; this call takes ownership of it (always). The bounds are
/// checked when the value is posted or encoded. Owned by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_new_view(
    kind: i32,
    byte_offset: u64,
    length: u64,
    buffer: *mut cm_value,
) -> *mut cm_value {
    new_value(|| {
        // SAFETY: the caller hands over an owned value.
        let b = unsafe { take(buffer)? };
        let kind = view_kind_from(kind)?;
        Ok(Value::View(View {
            kind,
            buffer: Box::new(b.into_inner()),
            byte_offset,
            length,
        }))
    })
}

/// A new empty array (append with `cm_value_push`). Owned by the caller.
#[unsafe(no_mangle)]
pub extern "C" fn cm_value_new_array() -> *mut cm_value {
    new_value(|| Ok(Value::Array(Vec::new())))
}

/// A new hole (a missing element; valid only as an element of an array). Owned by the
/// caller.
#[unsafe(no_mangle)]
pub extern "C" fn cm_value_new_hole() -> *mut cm_value {
    new_value(|| Ok(Value::Hole))
}

/// A new empty plain object (add entries with `cm_value_set`). Owned by the caller.
#[unsafe(no_mangle)]
pub extern "C" fn cm_value_new_object() -> *mut cm_value {
    new_value(|| Ok(Value::Object(Vec::new())))
}

/// A new empty Map (add entries with `cm_value_map_set`). Owned by the caller.
#[unsafe(no_mangle)]
pub extern "C" fn cm_value_new_map() -> *mut cm_value {
    new_value(|| Ok(Value::Map(Vec::new())))
}

/// A new empty Set (add elements with `cm_value_push`). Owned by the caller.
#[unsafe(no_mangle)]
pub extern "C" fn cm_value_new_set() -> *mut cm_value {
    new_value(|| Ok(Value::Set(Vec::new())))
}

/// A new Date: `ms` milliseconds since the Unix epoch (NaN: an invalid date). Owned by
/// the caller.
#[unsafe(no_mangle)]
pub extern "C" fn cm_value_new_date(ms: f64) -> *mut cm_value {
    new_value(|| Ok(Value::Date(ms)))
}

/// A new RegExp from its source and flags (UTF-8, borrowed and copied). Owned by the
/// caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_new_regexp(
    source: *const c_char,
    source_len: usize,
    flags: *const c_char,
    flags_len: usize,
) -> *mut cm_value {
    new_value(|| {
        // SAFETY: the caller passes readable UTF-8 of the given lengths.
        let (s, f) = unsafe {
            (
                utf8(source, source_len, "source")?,
                utf8(flags, flags_len, "flags")?,
            )
        };
        Ok(Value::RegExp {
            source: s.to_owned(),
            flags: f.to_owned(),
        })
    })
}

/// A new Error. `name` is a `cm_error_name`. `message` and `stack` (UTF-8, borrowed and
/// copied) are absent when NULL. `cause` (NULL: none) is taken over (always). Owned by
/// the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_new_error(
    name: i32,
    message: *const c_char,
    message_len: usize,
    stack: *const c_char,
    stack_len: usize,
    cause: *mut cm_value,
) -> *mut cm_value {
    new_value(|| {
        // SAFETY: the caller hands over an owned value (or NULL).
        let cause = unsafe { take_opt(cause) };
        let name = error_name_from(name)?;
        let opt = |p: *const c_char, len: usize, what| -> Res<Option<String>> {
            if p.is_null() {
                Ok(None)
            } else {
                // SAFETY: the caller passes readable UTF-8 of this length.
                Ok(Some(unsafe { utf8(p, len, what)? }.to_owned()))
            }
        };
        Ok(Value::Error(Box::new(ErrorValue {
            name,
            message: opt(message, message_len, "message")?,
            stack: opt(stack, stack_len, "stack")?,
            cause: cause.map(Taken::into_inner),
        })))
    })
}

/// A new shared value wrapping `inner` (taken over, always): other places of the same
/// message refer to it with `cm_value_new_ref(id)`, where ids count 0, 1, ... in the
/// order shared values are met depth-first (a container before its contents). Owned by
/// the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_new_shared(inner: *mut cm_value) -> *mut cm_value {
    // SAFETY: the caller hands over an owned value.
    new_value(|| {
        Ok(Value::Shared(Box::new(
            unsafe { take(inner)? }.into_inner(),
        )))
    })
}

/// A new reference to shared value number `id` (see `cm_value_new_shared`). Owned by the
/// caller.
#[unsafe(no_mangle)]
pub extern "C" fn cm_value_new_ref(id: u32) -> *mut cm_value {
    new_value(|| Ok(Value::Ref(id)))
}

/// A new port value: the `index`-th port of the transfer list it is posted with. Owned
/// by the caller.
#[unsafe(no_mangle)]
pub extern "C" fn cm_value_new_port(index: u32) -> *mut cm_value {
    new_value(|| Ok(Value::Port(index)))
}

/// Appends `item` (taken over, always, even on failure) to an array or a set.
/// `CM_ERR_WRONG_KIND` when `container` is neither.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_push(container: *mut cm_value, item: *mut cm_value) -> cm_status {
    guard(|| {
        // SAFETY: the caller hands over an owned value.
        let item = unsafe { take(item)? };
        // SAFETY: the caller passes an owned value it does not use meanwhile.
        match unsafe { value_mut(container)? } {
            Value::Array(items) | Value::Set(items) => items.push(item.into_inner()),
            other => return Err(wrong(other, "an array or a set")),
        }
        Ok(CM_OK)
    })
}

/// Sets `key` (UTF-8, `key_len` bytes, borrowed and copied) to `item` (taken over,
/// always) in a plain object: replaces the value of an existing key, appends otherwise.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_set(
    object: *mut cm_value,
    key: *const c_char,
    key_len: usize,
    item: *mut cm_value,
) -> cm_status {
    guard(|| {
        // SAFETY: the caller hands over an owned value.
        let item = unsafe { take(item)? };
        // SAFETY: the caller passes `key_len` readable bytes.
        let key = unsafe { utf8(key, key_len, "key")? };
        // SAFETY: the caller passes an owned value it does not use meanwhile.
        match unsafe { value_mut(object)? } {
            Value::Object(entries) => match entries.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => std::mem::replace(v, item.into_inner()).drop_deep(),
                None => entries.push((key.to_owned(), item.into_inner())),
            },
            other => return Err(wrong(other, "an object")),
        }
        Ok(CM_OK)
    })
}

/// Appends the entry `key` → `item` to a Map (both taken over, always).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_map_set(
    map: *mut cm_value,
    key: *mut cm_value,
    item: *mut cm_value,
) -> cm_status {
    guard(|| {
        // SAFETY: the caller hands over two owned values (either may be NULL).
        let (k, v) = unsafe { (take_opt(key), take_opt(item)) };
        let (Some(k), Some(v)) = (k, v) else {
            return fail(CM_ERR_NULL_POINTER, "key or item is NULL");
        };
        // SAFETY: the caller passes an owned value it does not use meanwhile.
        match unsafe { value_mut(map)? } {
            Value::Map(entries) => entries.push((k.into_inner(), v.into_inner())),
            other => return Err(wrong(other, "a Map")),
        }
        Ok(CM_OK)
    })
}

/// A deep copy of `value` (borrowed), of any depth; buffers are shared, not copied.
/// Owned by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_clone(value: *const cm_value) -> *mut cm_value {
    // SAFETY: the caller passes a live value.
    new_value(|| Ok(unsafe { value_ref(value)? }.clone()))
}

/// Releases an owned value (and everything in it, however deeply nested). NULL is
/// ignored. Never pass a borrowed `const cm_value *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_free(value: *mut cm_value) {
    let _ = guard(|| {
        if !value.is_null() {
            // SAFETY: an owned cm_value comes from Box::into_raw in this crate. (Without
            // recursion: C code can build a tree of any depth.)
            unsafe { Box::from_raw(value) }.0.drop_deep();
        }
        Ok(CM_OK)
    });
}

// ---- reading --------------------------------------------------------------------------

/// `*kind` = the kind of `value` (a `cm_kind`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_kind(value: *const cm_value, kind: *mut cm_kind) -> cm_status {
    guard(|| {
        not_null(kind, "kind is NULL")?;
        // SAFETY: the caller passes a live value and a writable out-pointer.
        unsafe { put(kind, kind_of(value_ref(value)?)) };
        Ok(CM_OK)
    })
}

/// Reads one scalar out of `value` into `out`.
///
/// # Safety
///
/// `value` must be NULL or a live value; `out` NULL or writable.
unsafe fn get_scalar<T>(
    value: *const cm_value,
    out: *mut T,
    want: &'static str,
    f: impl FnOnce(&Value) -> Option<T>,
) -> cm_status {
    guard(|| {
        not_null(out, "out is NULL")?;
        // SAFETY: the caller passes a live value.
        let v = unsafe { value_ref(value)? };
        let Some(r) = f(v) else {
            return Err(wrong(v, want));
        };
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { put(out, r) };
        Ok(CM_OK)
    })
}

/// `*out` = the boolean (`CM_KIND_BOOL`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_bool(value: *const cm_value, out: *mut bool) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe {
        get_scalar(value, out, "a boolean", |v| match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        })
    }
}

/// `*out` = the integer (`CM_KIND_INT`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_int(value: *const cm_value, out: *mut i64) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe {
        get_scalar(value, out, "an integer", |v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        })
    }
}

/// `*out` = the double (`CM_KIND_FLOAT`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_float(value: *const cm_value, out: *mut f64) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe {
        get_scalar(value, out, "a float", |v| match v {
            Value::Float(f) => Some(*f),
            _ => None,
        })
    }
}

/// `*out` = the number as a double (`CM_KIND_INT` or `CM_KIND_FLOAT`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_number(value: *const cm_value, out: *mut f64) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe {
        get_scalar(value, out, "a number", |v| match v {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        })
    }
}

/// `*out` = the time value in milliseconds since the epoch (`CM_KIND_DATE`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_date(value: *const cm_value, out: *mut f64) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe {
        get_scalar(value, out, "a Date", |v| match v {
            Value::Date(ms) => Some(*ms),
            _ => None,
        })
    }
}

/// `*out` = the shared value number a reference refers to (`CM_KIND_REF`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_ref(value: *const cm_value, out: *mut u32) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe {
        get_scalar(value, out, "a reference", |v| match v {
            Value::Ref(id) => Some(*id),
            _ => None,
        })
    }
}

/// `*out` = the port index (`CM_KIND_PORT`): the message's port number `*out`
/// (`cm_message_take_port`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_port(value: *const cm_value, out: *mut u32) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe {
        get_scalar(value, out, "a port", |v| match v {
            Value::Port(i) => Some(*i),
            _ => None,
        })
    }
}

/// `*ptr`, `*len` = the bytes of a string (`CM_KIND_STRING`): UTF-8, NOT NUL-terminated
/// (may contain NUL). Borrowed: valid as long as `value`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_string(
    value: *const cm_value,
    ptr: *mut *const c_char,
    len: *mut usize,
) -> cm_status {
    guard(|| {
        not_null(ptr, "ptr is NULL")?;
        not_null(len, "len is NULL")?;
        // SAFETY: the caller passes a live value.
        let s = match unsafe { value_ref(value)? } {
            Value::String(s) => s,
            other => return Err(wrong(other, "a string")),
        };
        // SAFETY: both out-pointers checked non-NULL and writable by contract.
        unsafe {
            put(ptr, s.as_ptr().cast());
            put(len, s.len());
        }
        Ok(CM_OK)
    })
}

/// `*units`, `*len` = the UTF-16 code units of a `CM_KIND_UTF16` string. Borrowed:
/// valid as long as `value`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_utf16(
    value: *const cm_value,
    units: *mut *const u16,
    len: *mut usize,
) -> cm_status {
    guard(|| {
        not_null(units, "units is NULL")?;
        not_null(len, "len is NULL")?;
        // SAFETY: the caller passes a live value.
        let u = match unsafe { value_ref(value)? } {
            Value::Utf16(u) => u,
            other => return Err(wrong(other, "a UTF-16 string")),
        };
        // SAFETY: both out-pointers checked non-NULL and writable by contract.
        unsafe {
            put(units, u.as_ptr());
            put(len, u.len());
        }
        Ok(CM_OK)
    })
}

/// The sign and big-endian magnitude (no leading zero bytes; empty for 0) of a BigInt.
/// `*magnitude` is borrowed: valid as long as `value`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_bigint(
    value: *const cm_value,
    negative: *mut bool,
    magnitude: *mut *const u8,
    len: *mut usize,
) -> cm_status {
    guard(|| {
        not_null(negative, "negative is NULL")?;
        not_null(magnitude, "magnitude is NULL")?;
        not_null(len, "len is NULL")?;
        // SAFETY: the caller passes a live value.
        let b = match unsafe { value_ref(value)? } {
            Value::BigInt(b) => b,
            other => return Err(wrong(other, "a bigint")),
        };
        // SAFETY: out-pointers checked non-NULL and writable by contract.
        unsafe {
            put(negative, b.negative);
            put(magnitude, b.magnitude.as_ptr());
            put(len, b.magnitude.len());
        }
        Ok(CM_OK)
    })
}

/// The bytes of an ArrayBuffer (`CM_KIND_BUFFER`). Borrowed: valid as long as `value`
/// (use `cm_value_get_buffer_handle` to keep them longer without copying).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_buffer(
    value: *const cm_value,
    ptr: *mut *const u8,
    len: *mut usize,
) -> cm_status {
    guard(|| {
        not_null(ptr, "ptr is NULL")?;
        not_null(len, "len is NULL")?;
        // SAFETY: the caller passes a live value.
        let b = match unsafe { value_ref(value)? } {
            Value::Buffer(b) => b,
            other => return Err(wrong(other, "an ArrayBuffer")),
        };
        // SAFETY: out-pointers checked non-NULL and writable by contract.
        unsafe {
            put(ptr, b.as_ptr());
            put(len, b.len());
        }
        Ok(CM_OK)
    })
}

/// `*out` = a new `cm_buffer` sharing the bytes of an ArrayBuffer value (no copy): the
/// receiver's way to take a transferred buffer and keep it after the message is freed.
/// Owned by the caller (`cm_buffer_free`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_buffer_handle(
    value: *const cm_value,
    out: *mut *mut cm_buffer,
) -> cm_status {
    guard(|| {
        not_null(out, "out is NULL")?;
        // SAFETY: the caller passes a live value.
        let b = match unsafe { value_ref(value)? } {
            Value::Buffer(b) => b.clone(),
            other => return Err(wrong(other, "an ArrayBuffer")),
        };
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(out, Box::into_raw(Box::new(cm_buffer(b)))) };
        Ok(CM_OK)
    })
}

/// The parts of a typed array / DataView (`CM_KIND_VIEW`): `*kind` (a `cm_view_kind`),
/// `*byte_offset`, `*length` (elements; bytes for a DataView) and `*buffer` (its buffer
/// value: a buffer, a shared buffer or a reference; borrowed, valid as long as `value`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_view(
    value: *const cm_value,
    kind: *mut i32,
    byte_offset: *mut u64,
    length: *mut u64,
    buffer: *mut *const cm_value,
) -> cm_status {
    guard(|| {
        not_null(kind, "kind is NULL")?;
        not_null(byte_offset, "byte_offset is NULL")?;
        not_null(length, "length is NULL")?;
        not_null(buffer, "buffer is NULL")?;
        // SAFETY: the caller passes a live value.
        let v = match unsafe { value_ref(value)? } {
            Value::View(v) => v,
            other => return Err(wrong(other, "a typed array or DataView")),
        };
        // SAFETY: out-pointers checked non-NULL and writable by contract; cm_value is a
        // transparent wrapper of Value.
        unsafe {
            put(kind, view_kind_to(v.kind));
            put(byte_offset, v.byte_offset);
            put(length, v.length);
            put(buffer, (&raw const *v.buffer).cast::<cm_value>());
        }
        Ok(CM_OK)
    })
}

/// The source and flags of a RegExp (UTF-8, not NUL-terminated; borrowed, valid as long
/// as `value`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_regexp(
    value: *const cm_value,
    source: *mut *const c_char,
    source_len: *mut usize,
    flags: *mut *const c_char,
    flags_len: *mut usize,
) -> cm_status {
    guard(|| {
        not_null(source, "source is NULL")?;
        not_null(source_len, "source_len is NULL")?;
        not_null(flags, "flags is NULL")?;
        not_null(flags_len, "flags_len is NULL")?;
        // SAFETY: the caller passes a live value.
        let (s, f) = match unsafe { value_ref(value)? } {
            Value::RegExp { source, flags } => (source, flags),
            other => return Err(wrong(other, "a RegExp")),
        };
        // SAFETY: out-pointers checked non-NULL and writable by contract.
        unsafe {
            put(source, s.as_ptr().cast());
            put(source_len, s.len());
            put(flags, f.as_ptr().cast());
            put(flags_len, f.len());
        }
        Ok(CM_OK)
    })
}

/// The parts of an Error: `*name` (a `cm_error_name`); `*message` / `*stack` (UTF-8,
/// not NUL-terminated, NULL when absent) with their lengths; `*cause` (NULL when
/// absent). Everything is borrowed: valid as long as `value`. Any out-pointer except
/// `name` may be NULL to skip that part.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get_error(
    value: *const cm_value,
    name: *mut i32,
    message: *mut *const c_char,
    message_len: *mut usize,
    stack: *mut *const c_char,
    stack_len: *mut usize,
    cause: *mut *const cm_value,
) -> cm_status {
    guard(|| {
        not_null(name, "name is NULL")?;
        // SAFETY: the caller passes a live value.
        let e = match unsafe { value_ref(value)? } {
            Value::Error(e) => e,
            other => return Err(wrong(other, "an Error")),
        };
        let text = |s: &Option<String>| match s {
            Some(s) => (s.as_ptr().cast::<c_char>(), s.len()),
            None => (std::ptr::null(), 0),
        };
        let (m, ml) = text(&e.message);
        let (s, sl) = text(&e.stack);
        // SAFETY: every out-pointer written is non-NULL (checked here) and writable by
        // contract; cm_value is a transparent wrapper of Value.
        unsafe {
            put(name, error_name_to(e.name));
            if !message.is_null() {
                put(message, m);
            }
            if !message_len.is_null() {
                put(message_len, ml);
            }
            if !stack.is_null() {
                put(stack, s);
            }
            if !stack_len.is_null() {
                put(stack_len, sl);
            }
            if !cause.is_null() {
                put(
                    cause,
                    e.cause
                        .as_ref()
                        .map_or(std::ptr::null(), |c| (&raw const *c).cast::<cm_value>()),
                );
            }
        }
        Ok(CM_OK)
    })
}

/// `*inner` = the value inside a boxed primitive (`CM_KIND_BOXED`) or a shared value
/// (`CM_KIND_SHARED`). Borrowed: valid as long as `value`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_inner(
    value: *const cm_value,
    inner: *mut *const cm_value,
) -> cm_status {
    guard(|| {
        not_null(inner, "inner is NULL")?;
        // SAFETY: the caller passes a live value.
        let i = match unsafe { value_ref(value)? } {
            Value::Boxed(b) | Value::Shared(b) => &**b,
            other => return Err(wrong(other, "a boxed primitive or a shared value")),
        };
        // SAFETY: checked non-NULL, writable by contract; transparent wrapper.
        unsafe { put(inner, (&raw const *i).cast::<cm_value>()) };
        Ok(CM_OK)
    })
}

/// `*len` = the number of elements of an array or set, or entries of an object or map.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_len(value: *const cm_value, len: *mut usize) -> cm_status {
    guard(|| {
        not_null(len, "len is NULL")?;
        // SAFETY: the caller passes a live value.
        let n = match unsafe { value_ref(value)? } {
            Value::Array(v) | Value::Set(v) => v.len(),
            Value::Object(e) => e.len(),
            Value::Map(e) => e.len(),
            other => return Err(wrong(other, "an array, object, map or set")),
        };
        // SAFETY: checked non-NULL, writable by contract.
        unsafe { put(len, n) };
        Ok(CM_OK)
    })
}

/// `*item` = element `index` of an array or set (borrowed: valid as long as `value`).
/// `CM_ERR_OUT_OF_RANGE` past the end.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_at(
    value: *const cm_value,
    index: usize,
    item: *mut *const cm_value,
) -> cm_status {
    guard(|| {
        not_null(item, "item is NULL")?;
        // SAFETY: the caller passes a live value.
        let items = match unsafe { value_ref(value)? } {
            Value::Array(v) | Value::Set(v) => v,
            other => return Err(wrong(other, "an array or a set")),
        };
        let Some(it) = items.get(index) else {
            return fail(
                CM_ERR_OUT_OF_RANGE,
                format!("index {index} out of range (length {})", items.len()),
            );
        };
        // SAFETY: checked non-NULL, writable by contract; transparent wrapper.
        unsafe { put(item, (&raw const *it).cast::<cm_value>()) };
        Ok(CM_OK)
    })
}

/// Entry `index` of a plain object: `*key` (UTF-8, not NUL-terminated) and `*key_len`,
/// and `*item`. All borrowed: valid as long as `value`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_entry(
    value: *const cm_value,
    index: usize,
    key: *mut *const c_char,
    key_len: *mut usize,
    item: *mut *const cm_value,
) -> cm_status {
    guard(|| {
        not_null(key, "key is NULL")?;
        not_null(key_len, "key_len is NULL")?;
        not_null(item, "item is NULL")?;
        // SAFETY: the caller passes a live value.
        let entries = match unsafe { value_ref(value)? } {
            Value::Object(e) => e,
            other => return Err(wrong(other, "an object")),
        };
        let Some((k, v)) = entries.get(index) else {
            return fail(
                CM_ERR_OUT_OF_RANGE,
                format!("index {index} out of range (length {})", entries.len()),
            );
        };
        // SAFETY: out-pointers checked non-NULL, writable by contract; transparent wrapper.
        unsafe {
            put(key, k.as_ptr().cast());
            put(key_len, k.len());
            put(item, (&raw const *v).cast::<cm_value>());
        }
        Ok(CM_OK)
    })
}

/// `*item` = the value of `key` (UTF-8, `key_len` bytes) in a plain object (borrowed:
/// valid as long as `value`). `CM_ERR_NOT_FOUND` when the object has no such key.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_get(
    value: *const cm_value,
    key: *const c_char,
    key_len: usize,
    item: *mut *const cm_value,
) -> cm_status {
    guard(|| {
        not_null(item, "item is NULL")?;
        // SAFETY: the caller passes `key_len` readable bytes.
        let key_bytes = unsafe { slice(key.cast::<u8>(), key_len, "key")? };
        // SAFETY: the caller passes a live value.
        let entries = match unsafe { value_ref(value)? } {
            Value::Object(e) => e,
            other => return Err(wrong(other, "an object")),
        };
        let Some((_, v)) = entries.iter().find(|(k, _)| k.as_bytes() == key_bytes) else {
            return fail(CM_ERR_NOT_FOUND, "no such key in the object");
        };
        // SAFETY: checked non-NULL, writable by contract; transparent wrapper.
        unsafe { put(item, (&raw const *v).cast::<cm_value>()) };
        Ok(CM_OK)
    })
}

/// Entry `index` of a Map: `*key` and `*item`, both borrowed (valid as long as `value`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_map_entry(
    value: *const cm_value,
    index: usize,
    key: *mut *const cm_value,
    item: *mut *const cm_value,
) -> cm_status {
    guard(|| {
        not_null(key, "key is NULL")?;
        not_null(item, "item is NULL")?;
        // SAFETY: the caller passes a live value.
        let entries = match unsafe { value_ref(value)? } {
            Value::Map(e) => e,
            other => return Err(wrong(other, "a Map")),
        };
        let Some((k, v)) = entries.get(index) else {
            return fail(
                CM_ERR_OUT_OF_RANGE,
                format!("index {index} out of range (length {})", entries.len()),
            );
        };
        // SAFETY: out-pointers checked non-NULL, writable by contract; transparent wrapper.
        unsafe {
            put(key, (&raw const *k).cast::<cm_value>());
            put(item, (&raw const *v).cast::<cm_value>());
        }
        Ok(CM_OK)
    })
}

// ---- raw CBOR -------------------------------------------------------------------------

/// Encodes `value` (borrowed) as self-contained CBOR (docs/wire-format.md: every buffer
/// inline, port values as bare indices). `*out` = a new `cm_buffer` holding the bytes,
/// owned by the caller (`cm_buffer_free`). `CM_ERR_DATA_CLONE` when the tree is not a
/// valid message value (a hole outside an array, a dangling reference, ...).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_to_cbor(
    value: *const cm_value,
    out: *mut *mut cm_buffer,
) -> cm_status {
    guard(|| {
        not_null(out, "out is NULL")?;
        // SAFETY: the caller passes a live value.
        let bytes = unsafe { value_ref(value)? }.to_bytes()?;
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(out, Box::into_raw(Box::new(cm_buffer(Buffer::from(bytes))))) };
        Ok(CM_OK)
    })
}

/// Decodes a message's bytes (`len` bytes at `bytes`, borrowed) with its side table
/// (`buffers_len` borrowed `cm_buffer` pointers; shared, not copied) and its port count
/// (valid port values are `0..port_count`). `*out` = a new value owned by the caller.
/// `CM_ERR_MESSAGE` (with the reason) when the bytes are not a valid message.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_value_decode(
    bytes: *const u8,
    len: usize,
    buffers: *const *const cm_buffer,
    buffers_len: usize,
    port_count: u32,
    out: *mut *mut cm_value,
) -> cm_status {
    guard(|| {
        not_null(out, "out is NULL")?;
        // SAFETY: the caller passes `len` readable bytes.
        let data = unsafe { slice(bytes, len, "bytes")? };
        // SAFETY: the caller passes `buffers_len` live cm_buffer pointers.
        let side = unsafe { buffer_list(buffers, buffers_len)? };
        let v = channel_messaging::wire::decode_value(data, &side, port_count)?;
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(out, boxed(v)) };
        Ok(CM_OK)
    })
}

// ---- buffers --------------------------------------------------------------------------

/// The release function of a foreign buffer: called once with `user_data`, the pointer
/// and the length given to `cm_buffer_new_owned`.
pub type cm_buffer_free_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, ptr: *mut u8, len: usize)>;

struct Foreign {
    ptr: *mut u8,
    len: usize,
    free: cm_buffer_free_fn,
    user_data: *mut c_void,
}

// SAFETY: `cm_buffer_new_owned`'s contract: the memory is handed over, immutable from
// then on, and the free function may run on any thread.
unsafe impl Send for Foreign {}

impl AsRef<[u8]> for Foreign {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` points to `len` bytes that stay valid and unchanged until
        // `free` runs in Drop (cm_buffer_new_owned's contract).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: called exactly once, with the values registered for it.
            unsafe { free(self.user_data, self.ptr, self.len) }
        }
    }
}

/// A new buffer with a copy of `len` bytes at `bytes` (borrowed). Owned by the caller;
/// NULL on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_buffer_new(bytes: *const u8, len: usize) -> *mut cm_buffer {
    guard_ptr(|| {
        // SAFETY: the caller passes `len` readable bytes.
        let b = Buffer::copy_from_slice(unsafe { slice(bytes, len, "bytes")? });
        Ok(Box::into_raw(Box::new(cm_buffer(b))))
    })
}

/// A new buffer of `len` bytes, each set to `fill`, in memory the library allocates;
/// `*data` = where they are, for the caller to write (`data` may be NULL). Write them
/// before the buffer is first handed to the library (posted, written into a message or
/// value, cloned); from then on they are read-only. Moving it into a message with
/// `cm_writer_buffer_move` is the cheapest way to send bytes: the receiver gets this very
/// memory, with no copy and no allocation besides the bytes themselves. Buffers of 16 KiB
/// to 16 MiB come from a process-wide pool of freed blocks (the memory of buffers
/// received with `cm_port_recv_with` or freed with `cm_buffer_free` returns to it), so a
/// stream of such buffers reuses warm memory instead of page-faulting in fresh memory.
/// With `fill` 0, a block that a thread blocked in a receive cleared ahead of time (while
/// its queue was empty) is taken when there is one, and needs no clearing here.
/// Owned by the caller (`cm_buffer_free`, or consumed by `cm_writer_buffer_move`); NULL
/// on failure, with `cm_last_error_message()` saying why: a `len` beyond `PTRDIFF_MAX`,
/// or memory that cannot be had (`CM_ERR_OUT_OF_MEMORY`; the process goes on).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_buffer_alloc(
    len: usize,
    fill: u8,
    data: *mut *mut u8,
) -> *mut cm_buffer {
    guard_ptr(|| {
        if isize::try_from(len).is_err() {
            return fail(CM_ERR_INVALID_ARGUMENT, "len is too large");
        }
        let Some(mut bytes) = channel_messaging::pool::try_take_filled(len, fill) else {
            return fail(
                CM_ERR_OUT_OF_MEMORY,
                format!("cannot allocate a buffer of {len} bytes"),
            );
        };
        let ptr = bytes.as_mut_ptr();
        let buffer = Buffer::from(bytes);
        debug_assert_eq!(buffer.as_ptr(), ptr.cast_const());
        if !data.is_null() {
            // SAFETY: `data` is non-NULL and, per the contract, writable.
            unsafe { put(data, ptr) };
        }
        Ok(Box::into_raw(Box::new(cm_buffer(buffer))))
    })
}

/// A new buffer over memory the caller hands over, without copying: `len` bytes at
/// `ptr`. From now on the library owns that memory (the caller must not write or free
/// it); when the last reference to the bytes goes (the buffer, and any message or value
/// sharing it, possibly on another thread, possibly after the receiver is done), the
/// library calls `free_fn(user_data, ptr, len)` once, on whichever thread drops it.
/// `free_fn` may be NULL (static memory). Owned by the caller (`cm_buffer_free`).
/// If this function fails, `free_fn` has been called.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_buffer_new_owned(
    ptr: *mut u8,
    len: usize,
    free_fn: cm_buffer_free_fn,
    user_data: *mut c_void,
) -> *mut cm_buffer {
    let foreign = Foreign {
        ptr,
        len,
        free: free_fn,
        user_data,
    };
    guard_ptr(move || {
        if ptr.is_null() && len != 0 {
            drop(foreign);
            return fail(CM_ERR_NULL_POINTER, "ptr is NULL but len is not 0");
        }
        Ok(Box::into_raw(Box::new(cm_buffer(Buffer::from_owner(
            foreign,
        )))))
    })
}

/// `*ptr`, `*len` = the buffer's bytes (read-only; borrowed: valid until `cm_buffer_free`
/// of this `cm_buffer`, whatever happens to messages sharing them).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_buffer_data(
    buffer: *const cm_buffer,
    ptr: *mut *const u8,
    len: *mut usize,
) -> cm_status {
    guard(|| {
        not_null(buffer, "buffer is NULL")?;
        not_null(ptr, "ptr is NULL")?;
        not_null(len, "len is NULL")?;
        // SAFETY: all three checked non-NULL; the caller passes a live buffer and
        // writable out-pointers.
        unsafe {
            let b = &(*buffer).0;
            put(ptr, b.as_ptr());
            put(len, b.len());
        }
        Ok(CM_OK)
    })
}

/// Releases the caller's reference to a buffer. NULL is ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_buffer_free(buffer: *mut cm_buffer) {
    let _ = guard(|| {
        if !buffer.is_null() {
            // SAFETY: an owned cm_buffer comes from Box::into_raw in this crate.
            let b = unsafe { Box::from_raw(buffer) };
            channel_messaging::pool::give_buffer(b.0);
        }
        Ok(CM_OK)
    });
}

//! Status codes, the thread-local last error, and the guard every entry point runs in.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a `cm_*` function reports. The numbers are part of the ABI and never change.
///
/// `CM_OK` is success. `CM_EMPTY`, `CM_TIMEOUT` and `CM_CLOSED` are the ordinary
/// outcomes of a receive that got no message; every other value is an error, explained by
/// `cm_last_error_message()`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum cm_status {
    /// Success.
    CM_OK = 0,
    /// A non-blocking receive found no message queued.
    CM_EMPTY = 1,
    /// A receive with a timeout found no message in time.
    CM_TIMEOUT = 2,
    /// The port (or broadcast channel) has ended: its partner closed and every earlier
    /// message was received. Every later receive returns this again.
    CM_CLOSED = 3,
    /// The handle is 0, was never issued, was closed, or was transferred away.
    CM_ERR_INVALID_HANDLE = 10,
    /// A required pointer argument was NULL.
    CM_ERR_NULL_POINTER = 11,
    /// An argument is out of its domain (invalid UTF-8, an unknown enum value, ...).
    CM_ERR_INVALID_ARGUMENT = 12,
    /// The web's DataCloneError: the message cannot be cloned or the transfer list is
    /// invalid. Nothing was sent or detached.
    CM_ERR_DATA_CLONE = 13,
    /// The web's InvalidStateError (posting on a closed broadcast channel).
    CM_ERR_INVALID_STATE = 14,
    /// The web's messageerror: the received message could not be decoded. It was
    /// consumed (and the ports it carried were closed); the next receive goes on.
    CM_ERR_MESSAGE = 15,
    /// A value accessor was called on a value of another kind.
    CM_ERR_WRONG_KIND = 16,
    /// An index is out of range.
    CM_ERR_OUT_OF_RANGE = 17,
    /// A key was not found in an object.
    CM_ERR_NOT_FOUND = 18,
    /// An operating-system call failed (creating the pollable file descriptor).
    CM_ERR_IO = 19,
    /// Memory could not be allocated (a buffer of the size asked for).
    CM_ERR_OUT_OF_MEMORY = 20,
    /// The library hit an internal bug (a Rust panic, caught at the boundary).
    CM_ERR_PANIC = 99,
}

pub(crate) use cm_status::*;

/// Every status, in number order (for `status_of`; keep in step with the enum: the test
/// below names each one).
const ALL_STATUSES: [cm_status; 16] = [
    CM_OK,
    CM_EMPTY,
    CM_TIMEOUT,
    CM_CLOSED,
    CM_ERR_INVALID_HANDLE,
    CM_ERR_NULL_POINTER,
    CM_ERR_INVALID_ARGUMENT,
    CM_ERR_DATA_CLONE,
    CM_ERR_INVALID_STATE,
    CM_ERR_MESSAGE,
    CM_ERR_WRONG_KIND,
    CM_ERR_OUT_OF_RANGE,
    CM_ERR_NOT_FOUND,
    CM_ERR_IO,
    CM_ERR_OUT_OF_MEMORY,
    CM_ERR_PANIC,
];

/// The status numbered `raw`, if one is.
pub(crate) fn status_of(raw: i32) -> Option<cm_status> {
    ALL_STATUSES.iter().copied().find(|&s| s as i32 == raw)
}

/// Calls a C callback declared to return a `cm_status` (`cm_read_fn`, `cm_write_fn`) as
/// one returning a plain `int32_t`, which is what C may return (see `callback_status`).
///
/// # Safety
///
/// `f` must be the caller's callback, valid to call with `arg` and `user_data`.
pub(crate) unsafe fn call_callback<T>(
    f: unsafe extern "C" fn(*mut T, *mut std::ffi::c_void) -> cm_status,
    arg: *mut T,
    user_data: *mut std::ffi::c_void,
) -> i32 {
    // SAFETY: `cm_status` is `repr(i32)`: both signatures have one ABI, and an `i32`
    // holds any number the C function returns.
    let f = unsafe {
        std::mem::transmute::<
            unsafe extern "C" fn(*mut T, *mut std::ffi::c_void) -> cm_status,
            unsafe extern "C" fn(*mut T, *mut std::ffi::c_void) -> i32,
        >(f)
    };
    // SAFETY: the caller's contract.
    unsafe { f(arg, user_data) }
}

/// What a C callback (`cm_read_fn`, `cm_write_fn`) returned, taken as a plain number: C
/// may return any `int32_t`, and a number that is no `cm_status` would be undefined
/// behaviour as the Rust enum. Such a number is `CM_ERR_INVALID_ARGUMENT`.
pub(crate) fn callback_status(raw: i32, callback: &str) -> Res<cm_status> {
    match status_of(raw) {
        Some(s) => Ok(s),
        None => fail(
            CM_ERR_INVALID_ARGUMENT,
            format!("the {callback} callback returned {raw}, which is no cm_status"),
        ),
    }
}

/// A failure: its status and its explanation.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: cm_status,
    pub(crate) message: Cow<'static, str>,
}

impl Failure {
    pub(crate) fn new(status: cm_status, message: impl Into<Cow<'static, str>>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }
}

pub(crate) type Res<T = ()> = Result<T, Failure>;

pub(crate) fn fail<T>(status: cm_status, message: impl Into<Cow<'static, str>>) -> Res<T> {
    Err(Failure::new(status, message))
}

impl From<channel_messaging::DataCloneError> for Failure {
    fn from(e: channel_messaging::DataCloneError) -> Self {
        Failure::new(CM_ERR_DATA_CLONE, e.to_string())
    }
}

impl From<channel_messaging::PostError> for Failure {
    fn from(e: channel_messaging::PostError) -> Self {
        match e {
            channel_messaging::PostError::InvalidState(e) => {
                Failure::new(CM_ERR_INVALID_STATE, e.to_string())
            }
            channel_messaging::PostError::DataClone(e) => e.into(),
        }
    }
}

impl From<channel_messaging::DecodeError> for Failure {
    fn from(e: channel_messaging::DecodeError) -> Self {
        Failure::new(CM_ERR_MESSAGE, format!("messageerror: {e}"))
    }
}

struct LastError {
    status: cm_status,
    message: Cow<'static, str>,
    c: Option<CString>,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = const {
        RefCell::new(LastError { status: CM_OK, message: Cow::Borrowed(""), c: None })
    };
}

pub(crate) fn set_last_error(status: cm_status, message: Cow<'static, str>) {
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            e.status = status;
            e.message = message;
            e.c = None;
        }
    });
}

/// Runs an entry point: catches panics, records the explanation of a failure.
#[inline]
pub(crate) fn guard(f: impl FnOnce() -> Res<cm_status>) -> cm_status {
    // The failure is turned into its status inside the unwinding boundary, so that only a
    // `cm_status` crosses it: a `Result` written there as `Ok(status)` (a 4-byte store)
    // and read back whole made every call wait on a failed store-to-load forwarding.
    let status = catch_unwind(AssertUnwindSafe(|| match f() {
        Ok(status) => status,
        Err(failure) => {
            set_last_error(failure.status, failure.message);
            failure.status
        }
    }));
    match status {
        Ok(status) => status,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            set_last_error(
                CM_ERR_PANIC,
                Cow::Owned(format!("internal error (panic): {what}")),
            );
            CM_ERR_PANIC
        }
    }
}

/// Runs an entry point that returns a pointer (NULL on failure).
#[inline]
pub(crate) fn guard_ptr<T>(f: impl FnOnce() -> Res<*mut T>) -> *mut T {
    let mut out = std::ptr::null_mut();
    let status = guard(|| {
        out = f()?;
        Ok(CM_OK)
    });
    if status != CM_OK {
        out = std::ptr::null_mut();
    }
    out
}

/// Fails with `CM_ERR_NULL_POINTER` when `p` is NULL.
#[inline]
pub(crate) fn not_null<T>(p: *const T, what: &'static str) -> Res {
    if p.is_null() {
        fail(CM_ERR_NULL_POINTER, what)
    } else {
        Ok(())
    }
}

/// Writes `v` through the out-pointer `out`, which the caller checked is not NULL.
///
/// # Safety
///
/// `out` must be valid for writes of one `T` (the C caller's contract).
#[inline]
pub(crate) unsafe fn put<T>(out: *mut T, v: T) {
    // SAFETY: the caller guarantees that `out` is non-NULL and valid for writes.
    unsafe { out.write(v) }
}

/// A description of the most recent failure on the calling thread, as a NUL-terminated
/// UTF-8 string; `""` when no call on this thread has failed yet.
///
/// Ownership: the string belongs to the library and stays valid until the next `cm_*`
/// call on the same thread; copy it to keep it. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn cm_last_error_message() -> *const c_char {
    let result = catch_unwind(|| {
        LAST_ERROR
            .try_with(|e| {
                let Ok(mut e) = e.try_borrow_mut() else {
                    return std::ptr::null();
                };
                if e.c.is_none() {
                    let text = e.message.replace('\0', "\\0");
                    e.c = CString::new(text).ok();
                }
                e.c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
            })
            .unwrap_or(std::ptr::null())
    });
    match result {
        Ok(p) if !p.is_null() => p,
        _ => c"".as_ptr(),
    }
}

/// The status of the most recent failure on the calling thread: the one
/// `cm_last_error_message()` describes (`CM_EMPTY`, `CM_TIMEOUT` and `CM_CLOSED`
/// included); `CM_OK` when no call on this thread has failed yet.
///
/// For the functions that report failure with a NULL pointer (`cm_value_new_string`,
/// `cm_value_clone`, ...) rather than a status: read it right after the NULL, before
/// any other `cm_*` call on the thread.
#[unsafe(no_mangle)]
pub extern "C" fn cm_last_error_status() -> cm_status {
    LAST_ERROR
        .try_with(|e| e.try_borrow().map_or(CM_OK, |e| e.status))
        .unwrap_or(CM_OK)
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn every_status_number_maps_back_and_nothing_else_does() {
        for s in ALL_STATUSES {
            assert_eq!(status_of(s as i32), Some(s));
        }
        for raw in [-1, 4, 9, 21, 98, 100, i32::MIN, i32::MAX] {
            assert_eq!(status_of(raw), None, "{raw}");
        }
        assert_eq!(status_of(20), Some(CM_ERR_OUT_OF_MEMORY));
        assert_eq!(status_of(99), Some(CM_ERR_PANIC));
        assert!(callback_status(1000, "read").is_err());
    }
}

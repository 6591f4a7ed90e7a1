//! The hot entry points, written directly against N-API.
//!
//! napi-rs class methods check the receiver's class on every call (a type-tag lookup
//! on the object), which costs about 200 ns: more than a whole post in the core. The
//! functions here take the endpoint as an `External` instead (one pointer read) and
//! are installed once per environment by `fastApi()`:
//!
//! - `post(endpoint, bytes: Uint8Array, length)` -> `undefined` or an error message;
//! - `recv(endpoint, scratch: Uint8Array)` -> the message length, or -1 / -2 / -3 as
//!   [`NativePort::recv`](crate::NativePort::recv).
//!
//! Every argument is checked; a wrong one throws a TypeError. No panic crosses: each
//! entry point runs under `catch_unwind`.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::{FromNapiValue, JsObjectValue, Object, Unknown};
use napi::sys;
use napi::{Env, Status};
use napi_derive::napi;

use crate::{ENDPOINT_MAGIC, Endpoint};

/// Wraps `core` in a JS `External` (one strong reference, dropped by the finalizer).
pub(crate) fn endpoint_external<'env>(
    env: &'env Env,
    core: &Arc<Endpoint>,
) -> napi::Result<Unknown<'env>> {
    let raw = Arc::into_raw(Arc::clone(core)) as *mut c_void;
    let mut value = ptr::null_mut();
    // SAFETY: `raw` stays valid until `finalize_endpoint` takes it back.
    let status = unsafe {
        sys::napi_create_external(
            env.raw(),
            raw,
            Some(finalize_endpoint),
            ptr::null_mut(),
            &mut value,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: the external was not created, so `raw` is still ours.
        drop(unsafe { Arc::from_raw(raw as *const Endpoint) });
        return Err(napi::Error::new(
            Status::GenericFailure,
            "cannot create an endpoint handle",
        ));
    }
    // SAFETY: `value` is a live value of this environment.
    unsafe { Unknown::from_napi_value(env.raw(), value) }
}

unsafe extern "C" fn finalize_endpoint(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    if !data.is_null() {
        // SAFETY: `data` came from `Arc::into_raw` in `endpoint_external`, once.
        drop(unsafe { Arc::from_raw(data as *const Endpoint) });
    }
}

/// The fast entry points of this environment: `{ post, recv }`.
#[napi]
pub fn fast_api(env: &Env) -> napi::Result<Object<'_>> {
    let mut obj = Object::new(env)?;
    for (name, cb) in [
        (
            "post",
            fast_post
                as unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value,
        ),
        ("recv", fast_recv),
    ] {
        let mut f = ptr::null_mut();
        // SAFETY: a plain function with no data pointer.
        let status = unsafe {
            sys::napi_create_function(
                env.raw(),
                name.as_ptr().cast(),
                name.len() as isize,
                Some(cb),
                ptr::null_mut(),
                &mut f,
            )
        };
        if status != sys::Status::napi_ok {
            return Err(napi::Error::new(
                Status::GenericFailure,
                "cannot create a function",
            ));
        }
        // SAFETY: `f` is a live function value of this environment.
        obj.set_named_property(name, unsafe { Unknown::from_napi_value(env.raw(), f)? })?;
    }
    Ok(obj)
}

/// Reads up to `N` arguments.
unsafe fn args<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Option<[sys::napi_value; N]> {
    let mut argv = [ptr::null_mut(); N];
    let mut argc = N;
    // SAFETY: `argv` has room for `argc` values.
    let status = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    (status == sys::Status::napi_ok && argc >= N).then_some(argv)
}

/// The endpoint behind an `External` made by `endpoint_external`.
unsafe fn endpoint<'a>(env: sys::napi_env, value: sys::napi_value) -> Option<&'a Endpoint> {
    let mut t = 0;
    // SAFETY: plain queries on a live value.
    unsafe {
        if sys::napi_typeof(env, value, &mut t) != sys::Status::napi_ok
            || t != sys::ValueType::napi_external
        {
            return None;
        }
        let mut data = ptr::null_mut();
        if sys::napi_get_value_external(env, value, &mut data) != sys::Status::napi_ok
            || data.is_null()
        {
            return None;
        }
        // Externals of this addon all point at an `Endpoint`; the magic catches a
        // stray external of another kind before anything else is read.
        let e = &*(data as *const Endpoint);
        (e.magic == ENDPOINT_MAGIC).then_some(e)
    }
}

/// The bytes of a `Uint8Array` argument.
unsafe fn bytes<'a>(env: sys::napi_env, value: sys::napi_value) -> Option<&'a mut [u8]> {
    let (mut kind, mut len, mut data) = (0, 0, ptr::null_mut());
    // SAFETY: a plain query; the slice lives as long as the typed array, which the
    // caller holds for the duration of the call.
    unsafe {
        if sys::napi_get_typedarray_info(
            env,
            value,
            &mut kind,
            &mut len,
            &mut data,
            ptr::null_mut(),
            ptr::null_mut(),
        ) != sys::Status::napi_ok
            || kind != sys::TypedarrayType::uint8_array
        {
            return None;
        }
        Some(if len == 0 {
            &mut []
        } else {
            std::slice::from_raw_parts_mut(data.cast(), len)
        })
    }
}

unsafe fn throw_type_error(env: sys::napi_env, message: &str) -> sys::napi_value {
    let msg = std::ffi::CString::new(message).unwrap_or_default();
    // SAFETY: a NUL-terminated message.
    unsafe { sys::napi_throw_type_error(env, ptr::null(), msg.as_ptr()) };
    ptr::null_mut()
}

unsafe fn int32(env: sys::napi_env, v: i32) -> sys::napi_value {
    let mut out = ptr::null_mut();
    // SAFETY: a plain value creation.
    unsafe { sys::napi_create_int32(env, v, &mut out) };
    out
}

unsafe extern "C" fn fast_post(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let run = AssertUnwindSafe(|| unsafe {
        let Some([ep, buf, len]) = args::<3>(env, info) else {
            return throw_type_error(env, "post(endpoint, bytes, length) takes three arguments");
        };
        let (Some(ep), Some(buf)) = (endpoint(env, ep), bytes(env, buf)) else {
            return throw_type_error(env, "post: not an endpoint and a Uint8Array");
        };
        let mut n = 0u32;
        if sys::napi_get_value_uint32(env, len, &mut n) != sys::Status::napi_ok
            || n as usize > buf.len()
        {
            return throw_type_error(env, "post: the length is not within the Uint8Array");
        }
        match ep.post_bytes(&buf[..n as usize]) {
            None => ptr::null_mut(),
            Some(message) => {
                let mut out = ptr::null_mut();
                sys::napi_create_string_utf8(
                    env,
                    message.as_ptr().cast(),
                    message.len() as isize,
                    &mut out,
                );
                out
            }
        }
    });
    catch_unwind(run).unwrap_or_else(|_| unsafe { throw_type_error(env, "post: internal error") })
}

unsafe extern "C" fn fast_recv(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let run = AssertUnwindSafe(|| unsafe {
        let Some([ep, buf]) = args::<2>(env, info) else {
            return throw_type_error(env, "recv(endpoint, scratch) takes two arguments");
        };
        let (Some(ep), Some(buf)) = (endpoint(env, ep), bytes(env, buf)) else {
            return throw_type_error(env, "recv: not an endpoint and a Uint8Array");
        };
        int32(env, ep.recv_into(buf))
    });
    catch_unwind(run).unwrap_or_else(|_| unsafe { throw_type_error(env, "recv: internal error") })
}

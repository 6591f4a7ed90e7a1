//! The hot entry points, written directly against N-API.
//!
//! napi-rs class methods check the receiver's class on every call (a type-tag lookup
//! on the object), which costs about 200 ns: more than a whole post in the core. The
//! functions here take the endpoint as an `External` instead (one pointer read) and
//! are installed once per environment by `fastApi()`:
//!
//! - `post(endpoint, bytes: Uint8Array, length)` -> `undefined` or an error message;
//! - `postOwn(endpoint, length)`: the same with the bytes of the buffer registered by
//!   `setPostBuffer(bytes: Uint8Array)`;
//! - `recv(endpoint)` -> the message length, copied into the buffer registered by
//!   `setScratch(scratch: Uint8Array)`, or -1 / -2 / -3 as
//!   [`NativePort::recv`](crate::NativePort::recv);
//! - `recvSpin(endpoint, budgetNs)` -> as `recv`, but while nothing is queued it polls
//!   the queue for up to `budgetNs` nanoseconds (at most [`MAX_SPIN_NS`]) before answering
//!   -1: the bounded busy-wait that index.js uses on hot ports (see `drainStep` there).
//!   It polls without popping (an empty pop re-arms the core's ready hook, which every
//!   post would then fire) and pops an empty queue only once, when it gives up. A
//!   negative budget only looks: -1 without popping when nothing is queued;
//! - `postCollection(endpoint, length)` -> the number of ports reached: a
//!   `PortCollection` broadcast of the registered post buffer's first `length` bytes
//!   (the endpoint is the collection's handle);
//! - `take(endpoint)` -> after a `recv` that returned -3: `[length, portCount, ...buffers]`
//!   (or `undefined` when nothing is parked). The parked message's side-table buffers
//!   come out as `ArrayBuffer`s over blocks (node/src/blocks.rs: a transferred buffer
//!   arrives without a copy) and its bytes are copied into the scratch when they fit
//!   (`length`, else -1). When `length` is -1 or `portCount` is not 0, the rest of the
//!   message (bytes and ports) stays parked for `takePending`.
//!
//! Registering the two buffers once (per environment: the state hangs off the functions'
//! data pointer) saves a typed-array lookup per call, which V8 makes surprisingly costly.
//! Each registered array is held by a reference until it is replaced, so its memory
//! (off-heap once its info was read) stays valid.
//!
//! Every argument is checked; a wrong one throws a TypeError. No panic crosses: each
//! entry point runs under `catch_unwind`.

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;

use napi::bindgen_prelude::{FromNapiValue, JsObjectValue, Object, Unknown};
use napi::sys;
use napi::{Env, Status};
use napi_derive::napi;

use crate::{ENDPOINT_MAGIC, Endpoint, blocks, lock};

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

/// A registered buffer: its memory and the reference that keeps it alive.
struct Registered {
    data: *mut u8,
    len: usize,
    keep: sys::napi_ref,
}

impl Registered {
    const NONE: Registered = Registered {
        data: ptr::null_mut(),
        len: 0,
        keep: ptr::null_mut(),
    };

    fn bytes(&mut self) -> &mut [u8] {
        if self.data.is_null() {
            &mut []
        } else {
            // SAFETY: `data` points at `len` bytes of a live off-heap backing store, held
            // by `keep`; only the JS thread that owns the environment calls in here.
            unsafe { std::slice::from_raw_parts_mut(self.data, self.len) }
        }
    }

    /// Replaces the registered buffer with the `Uint8Array` `value`.
    unsafe fn set(&mut self, env: sys::napi_env, value: sys::napi_value) -> bool {
        // SAFETY: plain N-API calls on live values of this environment.
        unsafe {
            let Some(bytes) = bytes(env, value) else {
                return false;
            };
            let mut keep = ptr::null_mut();
            if sys::napi_create_reference(env, value, 1, &mut keep) != sys::Status::napi_ok {
                return false;
            }
            if !self.keep.is_null() {
                sys::napi_delete_reference(env, self.keep);
            }
            *self = Registered {
                data: bytes.as_mut_ptr(),
                len: bytes.len(),
                keep,
            };
        }
        true
    }
}

/// The registered buffers of one environment.
struct Buffers {
    scratch: Registered,
    post: Registered,
}

/// The per-environment state of the fast entry points, shared by the functions of one
/// `fastApi()` object: each holds a strong count, released by its finalizer.
struct FastEnv(UnsafeCell<Buffers>);

unsafe extern "C" fn finalize_fast_env(env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    if data.is_null() {
        return;
    }
    // SAFETY: `data` came from `Rc::into_raw` in `fast_api`, once per function; all of
    // an environment's finalizers run on its own thread.
    let state = unsafe { Rc::from_raw(data as *const FastEnv) };
    if let Ok(state) = Rc::try_unwrap(state) {
        let buffers = state.0.into_inner();
        for keep in [buffers.scratch.keep, buffers.post.keep] {
            if !keep.is_null() {
                // SAFETY: a reference created in this environment. At teardown the call
                // may fail; the environment then frees its references itself.
                unsafe { sys::napi_delete_reference(env, keep) };
            }
        }
    }
}

type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

/// The fast entry points of this environment: `{ post, postOwn, postCollection, recv,
/// recvSpin, take, setScratch, setPostBuffer }`.
#[napi]
pub fn fast_api(env: &Env) -> napi::Result<Object<'_>> {
    let mut obj = Object::new(env)?;
    let state = Rc::new(FastEnv(UnsafeCell::new(Buffers {
        scratch: Registered::NONE,
        post: Registered::NONE,
    })));
    let entries: [(&str, Callback); 8] = [
        ("post", fast_post),
        ("postOwn", fast_post_own),
        ("postCollection", fast_post_collection),
        ("recv", fast_recv),
        ("take", fast_take),
        ("recvSpin", fast_recv_spin),
        ("setScratch", fast_set_scratch),
        ("setPostBuffer", fast_set_post_buffer),
    ];
    for (name, cb) in entries {
        let mut f = ptr::null_mut();
        let data = Rc::into_raw(Rc::clone(&state)) as *mut c_void;
        // SAFETY: each function holds one strong count on the state (its data pointer),
        // given back by its finalizer.
        let ok = unsafe {
            sys::napi_create_function(
                env.raw(),
                name.as_ptr().cast(),
                name.len() as isize,
                Some(cb),
                data,
                &mut f,
            ) == sys::Status::napi_ok
                && sys::napi_add_finalizer(
                    env.raw(),
                    f,
                    data,
                    Some(finalize_fast_env),
                    ptr::null_mut(),
                    ptr::null_mut(),
                ) == sys::Status::napi_ok
        };
        if !ok {
            // SAFETY: the count was not handed over (a function made without its
            // finalizer is unreachable garbage, and never called).
            drop(unsafe { Rc::from_raw(data as *const FastEnv) });
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
    // SAFETY: forwarded.
    unsafe { args_data::<N>(env, info) }.map(|(argv, _)| argv)
}

/// Reads up to `N` arguments and the function's data pointer (the [`FastEnv`]).
unsafe fn args_data<'a, const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Option<([sys::napi_value; N], &'a mut Buffers)> {
    let mut argv = [ptr::null_mut(); N];
    let mut argc = N;
    let mut data = ptr::null_mut();
    // SAFETY: `argv` has room for `argc` values.
    let status = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            &mut data,
        )
    };
    if status != sys::Status::napi_ok || argc < N || data.is_null() {
        return None;
    }
    // SAFETY: every function made by `fast_api` carries a strong count on its
    // environment's `FastEnv`; calls come from the one JS thread, one at a time, and none
    // of them calls back into JS while it holds the buffers.
    Some((argv, unsafe { &mut *(*(data as *const FastEnv)).0.get() }))
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

/// Posts the first `len` bytes of `buf` on `ep`: undefined on success, the error text
/// as a string when the post was refused, a TypeError when `len` is out of range.
///
/// # Safety
///
/// `env` and `len` come from the current N-API callback.
unsafe fn post_prefix(
    env: sys::napi_env,
    ep: &Endpoint,
    buf: &[u8],
    len: sys::napi_value,
    bad_length: &str,
) -> sys::napi_value {
    let mut n = 0u32;
    // SAFETY: `env` and `len` are the live arguments of the calling N-API callback.
    if unsafe { sys::napi_get_value_uint32(env, len, &mut n) } != sys::Status::napi_ok
        || n as usize > buf.len()
    {
        // SAFETY: as above.
        return unsafe { throw_type_error(env, bad_length) };
    }
    match ep.post_bytes(&buf[..n as usize]) {
        None => ptr::null_mut(),
        Some(message) => {
            let mut out = ptr::null_mut();
            // SAFETY: `message` is a valid UTF-8 string of the given length.
            unsafe {
                sys::napi_create_string_utf8(
                    env,
                    message.as_ptr().cast(),
                    message.len() as isize,
                    &mut out,
                )
            };
            out
        }
    }
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
        post_prefix(
            env,
            ep,
            buf,
            len,
            "post: the length is not within the Uint8Array",
        )
    });
    catch_unwind(run).unwrap_or_else(|_| unsafe { throw_type_error(env, "post: internal error") })
}

unsafe extern "C" fn fast_post_own(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let run = AssertUnwindSafe(|| unsafe {
        let Some(([ep, len], state)) = args_data::<2>(env, info) else {
            return throw_type_error(env, "postOwn(endpoint, length) takes two arguments");
        };
        let Some(ep) = endpoint(env, ep) else {
            return throw_type_error(env, "postOwn: not an endpoint");
        };
        let buf = state.post.bytes();
        post_prefix(
            env,
            ep,
            buf,
            len,
            "postOwn: the length is not within the post buffer",
        )
    });
    catch_unwind(run)
        .unwrap_or_else(|_| unsafe { throw_type_error(env, "postOwn: internal error") })
}

unsafe extern "C" fn fast_post_collection(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let run = AssertUnwindSafe(|| unsafe {
        let Some(([ep, len], state)) = args_data::<2>(env, info) else {
            return throw_type_error(env, "postCollection(endpoint, length) takes two arguments");
        };
        let Some(crate::EndpointKind::Collection(c)) = endpoint(env, ep).map(|e| &e.kind) else {
            return throw_type_error(env, "postCollection: not a collection");
        };
        let buf = state.post.bytes();
        let mut n = 0u32;
        if sys::napi_get_value_uint32(env, len, &mut n) != sys::Status::napi_ok
            || n as usize > buf.len()
        {
            return throw_type_error(
                env,
                "postCollection: the length is not within the post buffer",
            );
        }
        let reached = c
            .post_encoded(&buf[..n as usize], Vec::new(), &[])
            .unwrap_or(0);
        int32(env, reached.min(i32::MAX as usize) as i32)
    });
    catch_unwind(run)
        .unwrap_or_else(|_| unsafe { throw_type_error(env, "postCollection: internal error") })
}

unsafe extern "C" fn fast_recv(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let run = AssertUnwindSafe(|| unsafe {
        let Some(([ep], state)) = args_data::<1>(env, info) else {
            return throw_type_error(env, "recv(endpoint) takes one argument");
        };
        let Some(ep) = endpoint(env, ep) else {
            return throw_type_error(env, "recv: not an endpoint");
        };
        int32(env, ep.recv_into(state.scratch.bytes()))
    });
    catch_unwind(run).unwrap_or_else(|_| unsafe { throw_type_error(env, "recv: internal error") })
}

unsafe extern "C" fn fast_set_scratch(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let run = AssertUnwindSafe(|| unsafe {
        let ok = match args_data::<1>(env, info) {
            Some(([buf], state)) => state.scratch.set(env, buf),
            None => false,
        };
        if ok {
            ptr::null_mut()
        } else {
            throw_type_error(env, "setScratch(scratch) takes a Uint8Array")
        }
    });
    catch_unwind(run)
        .unwrap_or_else(|_| unsafe { throw_type_error(env, "setScratch: internal error") })
}

unsafe extern "C" fn fast_set_post_buffer(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let run = AssertUnwindSafe(|| unsafe {
        let ok = match args_data::<1>(env, info) {
            Some(([buf], state)) => state.post.set(env, buf),
            None => false,
        };
        if ok {
            ptr::null_mut()
        } else {
            throw_type_error(env, "setPostBuffer(bytes) takes a Uint8Array")
        }
    });
    catch_unwind(run)
        .unwrap_or_else(|_| unsafe { throw_type_error(env, "setPostBuffer: internal error") })
}

unsafe extern "C" fn fast_take(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let run = AssertUnwindSafe(|| unsafe {
        let Some(([ep], state)) = args_data::<1>(env, info) else {
            return throw_type_error(env, "take(endpoint) takes one argument");
        };
        let Some(ep) = endpoint(env, ep) else {
            return throw_type_error(env, "take: not an endpoint");
        };
        let (length, ports, buffers) = {
            let mut pending = lock(&ep.pending);
            let Some(msg) = pending.as_mut() else {
                return ptr::null_mut();
            };
            let buffers = msg.take_buffers();
            let scratch = state.scratch.bytes();
            let bytes = msg.bytes();
            let length = if bytes.len() <= scratch.len() && bytes.len() <= i32::MAX as usize {
                scratch[..bytes.len()].copy_from_slice(bytes);
                bytes.len() as i32
            } else {
                -1
            };
            let ports = msg.port_count();
            if length >= 0 && ports == 0 {
                *pending = None;
            }
            (length, ports, buffers)
        };
        let mut out = ptr::null_mut();
        if sys::napi_create_array_with_length(env, buffers.len() + 2, &mut out)
            != sys::Status::napi_ok
        {
            return throw_type_error(env, "take: cannot create an array");
        }
        sys::napi_set_element(env, out, 0, int32(env, length));
        sys::napi_set_element(env, out, 1, int32(env, ports.min(i32::MAX as usize) as i32));
        for (i, b) in buffers.into_iter().enumerate() {
            let Some(ab) = blocks::lend(env, blocks::received(b)) else {
                let msg = c"Array buffer allocation failed";
                sys::napi_throw_range_error(env, ptr::null(), msg.as_ptr());
                return ptr::null_mut();
            };
            sys::napi_set_element(env, out, i as u32 + 2, ab);
        }
        out
    });
    catch_unwind(run).unwrap_or_else(|_| unsafe { throw_type_error(env, "take: internal error") })
}

/// The longest `recvSpin` budget accepted (longer requests are cut to it).
pub(crate) const MAX_SPIN_NS: f64 = 200_000.0;

unsafe extern "C" fn fast_recv_spin(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let run = AssertUnwindSafe(|| unsafe {
        let Some(([ep, budget], state)) = args_data::<2>(env, info) else {
            return throw_type_error(env, "recvSpin(endpoint, budgetNs) takes two arguments");
        };
        let Some(ep) = endpoint(env, ep) else {
            return throw_type_error(env, "recvSpin: not an endpoint");
        };
        let mut ns = 0f64;
        if sys::napi_get_value_double(env, budget, &mut ns) != sys::Status::napi_ok || ns.is_nan() {
            return throw_type_error(env, "recvSpin: the budget is not a number");
        }
        let scratch = state.scratch.bytes();
        if ns < 0.0 {
            // a look without popping an empty queue (the hook stays as it is)
            return int32(
                env,
                if ep.has_news() {
                    ep.recv_into(scratch)
                } else {
                    crate::RECV_EMPTY
                },
            );
        }
        let budget = std::time::Duration::from_nanos(ns.min(MAX_SPIN_NS) as u64);
        let start = std::time::Instant::now();
        loop {
            // Poll without popping: a pop of an empty queue re-arms the core's ready
            // hook, after which every post would fire it (a kernel wake-up on the
            // sender's side and a spurious drain here later), although this loop picks
            // the message up by itself. Only a queue that has something (or ended) is
            // popped; the pop that gives up (below) re-arms, race-free.
            if ep.has_news() {
                let n = ep.recv_into(scratch);
                if n != crate::RECV_EMPTY {
                    return int32(env, n);
                }
            }
            // a few polls between clock reads (a poll of an empty queue is a few loads)
            for _ in 0..16 {
                std::hint::spin_loop();
            }
            if start.elapsed() >= budget {
                return int32(env, ep.recv_into(scratch));
            }
        }
    });
    catch_unwind(run)
        .unwrap_or_else(|_| unsafe { throw_type_error(env, "recvSpin: internal error") })
}

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
//!   [`NativePort::recv`](crate::NativePort::recv); `next(endpoint)`: the same, except
//!   that it does not pop (-1) when the queue is seen empty;
//! - `postCollection(endpoint, length)` -> the number of ports reached: a
//!   `PortCollection` broadcast of the registered post buffer's first `length` bytes
//!   (the endpoint is the collection's handle);
//! - `take(endpoint)` -> after a `recv` that returned -3: `[length, portCount, ...buffers]`
//!   (or `undefined` when nothing is parked). The parked message's side-table buffers
//!   come out as `ArrayBuffer`s over blocks (node/src/blocks.rs: a transferred buffer
//!   arrives without a copy) and its bytes are copied into the scratch when they fit
//!   (`length`, else -1). When `length` is -1 or `portCount` is not 0, the rest of the
//!   message (bytes and ports) stays parked for `takePending`. A message that is one
//!   transferred buffer and nothing else (its bytes are the encoding registered by
//!   `setBlockMessage`) comes out as that `ArrayBuffer` itself, with nothing left parked;
//! - `setGate(endpoint, open)`: whether JS receives from the endpoint (a started port
//!   that is not closed, ended or transferred); the delivery loop pops only while open;
//! - `schedule(endpoint, deliver)`: queues the endpoint for the delivery loop (below),
//!   which calls `deliver(n)` once per message. A no-op while it is queued already.
//! - `watchReady(endpoint, deliver)` / `unwatchReady(endpoint)`: from now on (until
//!   unwatched), whatever makes the started endpoint readable, on any thread, queues it
//!   for the delivery loop with `deliver`, as `schedule` would (below, "Wake-ups");
//! - `postBlock(endpoint, ab)` -> `true` / `false` / an error message: the fast path of
//!   `port.postMessage(ab, [ab])` for a block (node/src/blocks.rs), posting the encoding
//!   registered once by `setBlockMessage(bytes)`; `false` (nothing done) sends index.js
//!   down the general path;
//! - `alloc(size, zeroed)` / `release(ab)`: `allocBuffer` / `releaseBuffer`'s native
//!   halves (raw N-API, without napi-rs argument marshalling);
//! - `uncaught(error)`: reports `error` as an uncaught exception from inside a delivery
//!   callback (below).
//!
//! ## Delivery
//!
//! 'message' events are delivered the way Node's own MessagePort delivers them: from a
//! libuv callback of this addon (one `uv_async_t` per environment, no JavaScript on the
//! stack), through `napi_make_callback`. Each such call is a full callback scope: when
//! it returns, every microtask and `process.nextTick` callback the handler queued has run
//! (a microtask checkpoint and the tick queue, cheap when both are empty), which is what
//! `events.once` loops need. (A thread-safe function's callback cannot do this: it
//! already runs inside a callback scope, and a nested scope does not drain the queues.)
//! Within one call, `deliver` may go on to the messages already queued (`next`), running
//! the same queues itself between them (index.js, `RUN_TICKS`).
//!
//! ## Wake-ups
//!
//! A watched endpoint's core ready hook runs on the posting thread. It pushes the
//! endpoint onto its environment's [`Inbox`] (once: `Endpoint::inboxed`) and, when the
//! inbox was empty, signals the loop's `uv_async_t`; the loop takes the inbox before its
//! list. No JavaScript runs in between, so a message is delivered in the receiving loop's
//! next poll phase, before the `setImmediate` callbacks queued with the post, as with
//! Node's own ports. (A ThreadsafeFunction would call into JavaScript first, which then
//! had to schedule the delivery: a second loop turn, and an order against immediates
//! that depended on which handle libuv happened to run first.) `deliver` is held
//! weakly, keyed by the endpoint: the port object owns it, and a port collected without
//! being closed leaves an entry that the next sweep (`Deliverer::sweep_at`) removes.
//!
//! Per scheduled endpoint the loop repeats: stop unless the gate is open; pop the next
//! message into the scratch (`recv`'s result `n`: a length, or -1 / -2 / -3); call
//! `deliver(n)`, whose result says what next: [`DELIVER_STOP`] (idle: the endpoint leaves
//! the loop), [`DELIVER_NEXT`], [`DELIVER_YIELD`] (the bounded batch is done: the next
//! loop iteration continues, so timers and I/O run in between), with, in the bits from
//! [`DELIVER_SPIN_SHIFT`] up, how long the loop may poll the queue once it finds it empty
//! (the JS side polling a hot port, see index.js). The gate is checked before every pop
//! (and index.js checks it before each `next`), so a port that its own handler (or a
//! microtask) stopped, closed or transferred loses nothing.
//!
//! An exception that escapes a callback (index.js reports handler errors from a
//! `process.nextTick`, as Node's EventTarget does) is reported as an uncaught exception
//! (`napi_fatal_exception`); the loop then lets the rest of the tick queue run (calls
//! `deliver(-4)`, which does nothing) and continues on the next loop iteration. An
//! exception from a tick that index.js runs between two messages must not escape that
//! way: the tick's async context is still on Node's async-id stack, and the callback
//! scope's exit would abort the process on it. index.js catches it and reports it through
//! `uncaught` instead, whose handling clears that stack, then ends the callback.
//!
//! Registering the two buffers once (per environment: the state hangs off the functions'
//! data pointer) saves a typed-array lookup per call, which V8 makes surprisingly costly.
//! Each registered array is held by a reference until it is replaced, so its memory
//! (off-heap once its info was read) stays valid.
//!
//! Every argument is checked; a wrong one throws a TypeError. No panic crosses: each
//! entry point runs under `catch_unwind`.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

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

/// The registered buffers of one environment, and its delivery loop (created by the
/// first `schedule`).
struct Buffers {
    scratch: Registered,
    post: Registered,
    deliverer: *mut Deliverer,
    /// The encoding of a message that is one transferred `ArrayBuffer` (side-table entry
    /// 0), registered once by `setBlockMessage`; empty until then (`postBlock` declines).
    block_message: Vec<u8>,
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
/// next, take, setScratch, setPostBuffer, setGate, schedule, setBlockMessage, postBlock,
/// alloc, release }`.
#[napi]
pub fn fast_api(env: &Env) -> napi::Result<Object<'_>> {
    let mut obj = Object::new(env)?;
    let state = Rc::new(FastEnv(UnsafeCell::new(Buffers {
        scratch: Registered::NONE,
        post: Registered::NONE,
        deliverer: ptr::null_mut(),
        block_message: Vec::new(),
    })));
    let entries: [(&str, Callback); 17] = [
        ("post", fast_post),
        ("postOwn", fast_post_own),
        ("postCollection", fast_post_collection),
        ("recv", fast_recv),
        ("next", fast_next),
        ("take", fast_take),
        ("setScratch", fast_set_scratch),
        ("setPostBuffer", fast_set_post_buffer),
        ("setGate", fast_set_gate),
        ("schedule", fast_schedule),
        ("setBlockMessage", fast_set_block_message),
        ("postBlock", fast_post_block),
        ("alloc", fast_alloc),
        ("release", fast_release),
        ("uncaught", fast_uncaught),
        ("watchReady", fast_watch_ready),
        ("unwatchReady", fast_unwatch_ready),
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

/// Reads up to `N` arguments and the function's data pointer (its [`FastEnv`], never
/// null here).
unsafe fn args_raw<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Option<([sys::napi_value; N], *mut c_void)> {
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
    Some((argv, data))
}

/// Reads up to `N` arguments and the function's buffers (in its [`FastEnv`]).
unsafe fn args_data<'a, const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Option<([sys::napi_value; N], &'a mut Buffers)> {
    // SAFETY: forwarded.
    let (argv, data) = unsafe { args_raw::<N>(env, info) }?;
    // SAFETY: every function made by `fast_api` carries a strong count on its
    // environment's `FastEnv`; calls come from the one JS thread, one at a time, and none
    // of them calls back into JS while it holds the buffers.
    Some((argv, unsafe { &mut *(*(data as *const FastEnv)).0.get() }))
}

/// The `(endpoint, deliver)` arguments of `schedule` and `watchReady`, with the data
/// pointer; `Err` holds the TypeError thrown (`name` is the entry point's).
unsafe fn endpoint_and_deliver<'a>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    name: &str,
) -> Result<(&'a Endpoint, sys::napi_value, *mut c_void), sys::napi_value> {
    // SAFETY: plain queries on live values.
    unsafe {
        let Some(([ep, deliver], data)) = args_raw::<2>(env, info) else {
            return Err(throw_type_error(
                env,
                &format!("{name}(endpoint, deliver) takes two arguments"),
            ));
        };
        let Some(ep) = endpoint(env, ep) else {
            return Err(throw_type_error(env, &format!("{name}: not an endpoint")));
        };
        let mut t = 0;
        if sys::napi_typeof(env, deliver, &mut t) != sys::Status::napi_ok
            || t != sys::ValueType::napi_function
        {
            return Err(throw_type_error(
                env,
                &format!("{name}: deliver is not a function"),
            ));
        }
        Ok((ep, deliver, data))
    }
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

/// Runs the body of entry point `name` (`env` is that callback's environment): a panic
/// becomes a `TypeError` ("`name`: internal error") instead of unwinding into V8.
fn guarded(
    env: sys::napi_env,
    name: &str,
    body: impl FnOnce() -> sys::napi_value,
) -> sys::napi_value {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        // SAFETY: `env` is the running callback's environment (every caller's contract).
        unsafe { throw_type_error(env, &format!("{name}: internal error")) }
    })
}

/// A JS string holding `text` (NULL when it cannot be made).
///
/// # Safety
///
/// `env` is the current callback's environment.
unsafe fn js_string(env: sys::napi_env, text: &str) -> sys::napi_value {
    let mut out = ptr::null_mut();
    // SAFETY: `text` is valid UTF-8 of the given length.
    unsafe {
        sys::napi_create_string_utf8(env, text.as_ptr().cast(), text.len() as isize, &mut out)
    };
    out
}

unsafe fn throw_type_error(env: sys::napi_env, message: &str) -> sys::napi_value {
    let msg = std::ffi::CString::new(message).unwrap_or_default();
    // SAFETY: a NUL-terminated message.
    unsafe { sys::napi_throw_type_error(env, ptr::null(), msg.as_ptr()) };
    ptr::null_mut()
}

unsafe fn throw_range_error(env: sys::napi_env, message: &std::ffi::CStr) -> sys::napi_value {
    // SAFETY: a NUL-terminated message.
    unsafe { sys::napi_throw_range_error(env, ptr::null(), message.as_ptr()) };
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
        // SAFETY: `env` is the calling callback's environment.
        Some(message) => unsafe { js_string(env, &message) },
    }
}

unsafe extern "C" fn fast_post(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, "post", || unsafe {
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
    })
}

unsafe extern "C" fn fast_post_own(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, "postOwn", || unsafe {
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
    })
}

unsafe extern "C" fn fast_post_collection(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, "postCollection", || unsafe {
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
    })
}

unsafe extern "C" fn fast_recv(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: forwarded from N-API.
    unsafe { receive(env, info, "recv", false) }
}

/// `next(endpoint)`: as `recv`, but -1 without popping when the queue is seen empty (a
/// pop that finds it empty re-arms the endpoint's wake-up, which the delivery loop's own
/// pop then does once). For the JS side delivering several messages in one callback.
unsafe extern "C" fn fast_next(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: forwarded from N-API.
    unsafe { receive(env, info, "next", true) }
}

/// `recv` and `next`: pops the endpoint's next message into the scratch (with `peek`,
/// only when the queue is seen non-empty).
unsafe fn receive(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    name: &'static str,
    peek: bool,
) -> sys::napi_value {
    guarded(env, name, || unsafe {
        let Some(([ep], state)) = args_data::<1>(env, info) else {
            return throw_type_error(env, &format!("{name}(endpoint) takes one argument"));
        };
        let Some(ep) = endpoint(env, ep) else {
            return throw_type_error(env, &format!("{name}: not an endpoint"));
        };
        if peek && !ep.has_news() {
            return int32(env, crate::RECV_EMPTY);
        }
        int32(env, ep.recv_into(state.scratch.bytes()))
    })
}

unsafe extern "C" fn fast_set_scratch(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: forwarded from N-API.
    unsafe { register(env, info, "setScratch", "scratch", |b| &mut b.scratch) }
}

unsafe extern "C" fn fast_set_post_buffer(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: forwarded from N-API.
    unsafe { register(env, info, "setPostBuffer", "bytes", |b| &mut b.post) }
}

/// `setScratch` and `setPostBuffer`: registers the Uint8Array argument as the buffer
/// `which` picks.
unsafe fn register(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    name: &'static str,
    arg: &'static str,
    which: fn(&mut Buffers) -> &mut Registered,
) -> sys::napi_value {
    guarded(env, name, || unsafe {
        let ok = match args_data::<1>(env, info) {
            Some(([buf], state)) => which(state).set(env, buf),
            None => false,
        };
        if ok {
            ptr::null_mut()
        } else {
            throw_type_error(env, &format!("{name}({arg}) takes a Uint8Array"))
        }
    })
}

unsafe extern "C" fn fast_take(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, "take", || unsafe {
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
            if msg.port_count() == 0
                && msg.buffers().len() == 1
                && !state.block_message.is_empty()
                && msg.bytes() == state.block_message.as_slice()
            {
                // one transferred buffer, nothing else (what postBlock posts): the
                // buffer is the message
                let b = pending.take().and_then(|mut m| m.take_buffers().pop());
                return match b.and_then(|b| blocks::lend(env, blocks::received(b))) {
                    Some(ab) => ab,
                    None => throw_range_error(env, c"Array buffer allocation failed"),
                };
            }
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
            let Some(ab) = blocks::materialize(env, b) else {
                return throw_range_error(env, c"Array buffer allocation failed");
            };
            sys::napi_set_element(env, out, i as u32 + 2, ab);
        }
        out
    })
}

unsafe fn boolean(env: sys::napi_env, v: bool) -> sys::napi_value {
    let mut out = ptr::null_mut();
    // SAFETY: a plain value lookup.
    unsafe { sys::napi_get_boolean(env, v, &mut out) };
    out
}

/// `setBlockMessage(bytes: Uint8Array)`: registers (copies) the encoding that
/// `postBlock` posts: index.js encodes `postMessage(ab, [ab])` once with its own encoder.
unsafe extern "C" fn fast_set_block_message(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, "setBlockMessage", || unsafe {
        let Some(([bytes_arg], state)) = args_data::<1>(env, info) else {
            return throw_type_error(env, "setBlockMessage(bytes) takes one argument");
        };
        let Some(b) = bytes(env, bytes_arg) else {
            return throw_type_error(env, "setBlockMessage: not a Uint8Array");
        };
        state.block_message = b.to_vec();
        ptr::null_mut()
    })
}

/// `postBlock(endpoint, ab)`: the fast path of `port.postMessage(ab, [ab])` when `ab` is
/// a block (node/src/blocks.rs). index.js calls it only once the transfer list has been
/// read and checked (it is exactly `[ab]`, an `ArrayBuffer`), so what is left of the
/// general path (`postWithTransfer` + `postFull`) is: take the block, detach `ab`, post
/// the registered encoding with the block as side-table entry 0. Returns `true` when
/// posted; `false` when it did nothing (`ab` is not a live block, no encoding is
/// registered, the endpoint is not a port): the caller then takes the general path;
/// or the core's error text (a string) when the post was refused, as `postFull` does
/// (the buffer, already detached, is then lost with the message, as there).
unsafe extern "C" fn fast_post_block(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, "postBlock", || unsafe {
        let Some(([ep, ab], state)) = args_data::<2>(env, info) else {
            return throw_type_error(env, "postBlock(endpoint, ab) takes two arguments");
        };
        let Some(ep) = endpoint(env, ep) else {
            return throw_type_error(env, "postBlock: not an endpoint");
        };
        let crate::EndpointKind::Port(port) = &ep.kind else {
            return boolean(env, false);
        };
        if state.block_message.is_empty() {
            return boolean(env, false);
        }
        let Some(v) = blocks::take_detached(env, ab) else {
            return boolean(env, false);
        };
        let buffers = vec![channel_messaging::Buffer::from(v)];
        match port.post_encoded(&state.block_message, buffers, &[]) {
            Ok(()) => boolean(env, true),
            Err(e) => js_string(env, e.message()),
        }
    })
}

/// `alloc(size, zeroed)` (raw N-API, without napi-rs argument marshalling): an
/// `ArrayBuffer` over a block of `size` bytes, or `undefined` when the memory cannot be
/// had or `size` is not an integer in range (index.js checks first).
unsafe extern "C" fn fast_alloc(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, "alloc", || unsafe {
        let Some([size, zeroed]) = args::<2>(env, info) else {
            return throw_type_error(env, "alloc(size, zeroed) takes two arguments");
        };
        let (mut n, mut z) = (0f64, false);
        if sys::napi_get_value_double(env, size, &mut n) != sys::Status::napi_ok
            || sys::napi_get_value_bool(env, zeroed, &mut z) != sys::Status::napi_ok
        {
            return throw_type_error(env, "alloc: not a number and a boolean");
        }
        if !((0.0..=crate::MAX_BUFFER).contains(&n) && n.fract() == 0.0) {
            return ptr::null_mut();
        }
        let Some(v) = blocks::vec_of(n as usize, z) else {
            return ptr::null_mut();
        };
        // SAFETY: `env` is this callback's environment.
        blocks::lend(env, v).unwrap_or(ptr::null_mut())
    })
}

/// `release(ab)` (raw N-API, without napi-rs argument marshalling): when `ab` is a block,
/// detaches it and recycles its memory (`true`); anything else is left as it is
/// (`false`).
unsafe extern "C" fn fast_release(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, "release", || unsafe {
        let Some([ab]) = args::<1>(env, info) else {
            return throw_type_error(env, "release(ab) takes one argument");
        };
        match blocks::take_detached(env, ab) {
            Some(v) => {
                blocks::recycle(v);
                boolean(env, true)
            }
            None => boolean(env, false),
        }
    })
}

/// The longest polling budget the delivery loop accepts from `deliver` (longer ones are
/// cut to it).
const MAX_SPIN_NS: u64 = 200_000;

// ------------------------------------------------------------------ delivery loop

// libuv, as exported by the node binary (resolved at load time, as the napi_* symbols).
unsafe extern "C" {
    fn uv_handle_size(kind: i32) -> usize;
    fn uv_async_init(
        event_loop: *mut c_void,
        handle: *mut c_void,
        cb: unsafe extern "C" fn(*mut c_void),
    ) -> i32;
    fn uv_async_send(handle: *mut c_void) -> i32;
    fn uv_close(handle: *mut c_void, cb: Option<unsafe extern "C" fn(*mut c_void)>);
    fn uv_ref(handle: *mut c_void);
    fn uv_unref(handle: *mut c_void);
}

/// `UV_ASYNC` in libuv's `uv_handle_type`.
const UV_ASYNC: i32 = 1;

/// `deliver`'s results (see the module docs): the low two bits; the bits from
/// [`DELIVER_SPIN_SHIFT`] up are the polling budget in ns.
const DELIVER_STOP: i32 = 0;
const DELIVER_NEXT: i32 = 1;
#[allow(dead_code)] // (documented; any action other than these yields)
const DELIVER_YIELD: i32 = 2;
const DELIVER_SPIN_SHIFT: i32 = 3;
/// `deliver`'s argument after an exception: run nothing (the call only lets the tick
/// queue and the microtasks left behind by the exception run).
const DELIVER_FLUSH: i32 = -4;
/// `deliver`'s argument when polling timed out and the queue is still empty.
const RECV_SPUN: i32 = -5;

/// An endpoint in the delivery list, with its `deliver` function.
struct Entry {
    ep: Arc<Endpoint>,
    deliver: sys::napi_ref,
    /// The last message came from polling: look at the queue before popping it.
    peek: bool,
    /// The polling budget `deliver` last asked for (ns; 0 = do not poll).
    spin_ns: u64,
}

/// How long a run of deliveries may hold the thread before the loop stops polling (the
/// next empty queue sends the port back to the event loop).
const HOT_SLICE: std::time::Duration = std::time::Duration::from_millis(1);

/// The delivery loop of one environment. Owned by its `uv_async_t` (whose `data` field,
/// the handle's first word, points here) and freed when the handle closes, at
/// environment teardown (an async cleanup hook).
struct Deliverer {
    env: sys::napi_env,
    /// The `uv_async_t` (libuv's size, 8-aligned).
    handle: Box<[u64]>,
    fast: Rc<FastEnv>,
    pending: Vec<Entry>,
    /// A `uv_async_send` is outstanding.
    notified: bool,
    /// The handle is referenced (while the list is not empty, as an immediate would be).
    referenced: bool,
    context: sys::napi_async_context,
    /// Holds the async resource alive for the context's lifetime (async_hooks).
    _resource: sys::napi_ref,
    cleanup: sys::napi_async_cleanup_hook_handle,
    closing: bool,
    /// Where the ready hooks of watched endpoints queue them, from any thread.
    inbox: Arc<Inbox>,
    /// The `deliver` function of each watched endpoint (`watchReady`), held weakly (the
    /// port object holds it), keyed by the endpoint's address (the `Weak` keeps that
    /// address from being reused while the entry exists).
    watched: HashMap<usize, (Weak<Endpoint>, sys::napi_ref)>,
    /// `watched`'s size at which `watchReady` next drops the entries of endpoints that
    /// are gone (ports collected without being closed).
    sweep_at: usize,
}

/// The smallest `Deliverer::sweep_at`.
const SWEEP_MIN: usize = 64;

/// Ready wake-ups, from any thread, for one environment's delivery loop: a watched
/// endpoint's ready hook (`watchReady`) queues the endpoint here and signals the loop's
/// handle, which delivers on the loop's next poll phase, the way Node's own ports are
/// woken (no JavaScript in between, and so before the `setImmediate` callbacks queued
/// with the post).
struct Inbox(Mutex<InboxState>);

struct InboxState {
    /// The loop's `uv_async_t`; null once the loop is closing (set under the lock before
    /// the handle is closed, so a late hook never signals a freed handle).
    handle: *mut c_void,
    ready: Vec<Arc<Endpoint>>,
}

// SAFETY: the handle is only used under the lock, for `uv_async_send` (callable from any
// thread), and cleared under it before the handle is closed.
unsafe impl Send for InboxState {}

impl Inbox {
    /// Queues `ep` (once) and signals the loop when the inbox was empty.
    fn ready(&self, ep: Arc<Endpoint>) {
        let mut s = lock(&self.0);
        if s.handle.is_null() || ep.inboxed.swap(true, Ordering::AcqRel) {
            return;
        }
        s.ready.push(ep);
        if s.ready.len() == 1 {
            // SAFETY: a live handle (not yet closing: checked under the lock).
            unsafe { uv_async_send(s.handle) };
        }
    }

    /// The endpoints queued so far (the loop takes them).
    fn take(&self) -> Vec<Arc<Endpoint>> {
        std::mem::take(&mut lock(&self.0).ready)
    }

    /// Sets the loop's handle (null: closing), returning what was still queued.
    fn set_handle(&self, handle: *mut c_void) -> Vec<Arc<Endpoint>> {
        let mut s = lock(&self.0);
        s.handle = handle;
        if handle.is_null() {
            std::mem::take(&mut s.ready)
        } else {
            Vec::new()
        }
    }
}

impl Deliverer {
    fn handle(&mut self) -> *mut c_void {
        self.handle.as_mut_ptr().cast()
    }

    /// Makes sure the loop runs on the next event-loop iteration, keeping it alive.
    unsafe fn notify(&mut self) {
        if self.closing {
            return;
        }
        let h = self.handle();
        // SAFETY: a live, initialized handle of this thread's loop.
        unsafe {
            if !self.notified {
                self.notified = true;
                uv_async_send(h);
            }
            if !self.referenced {
                self.referenced = true;
                uv_ref(h);
            }
        }
    }

    /// Creates this environment's loop.
    unsafe fn create(env: sys::napi_env, fast: Rc<FastEnv>) -> Option<*mut Deliverer> {
        // SAFETY: plain N-API and libuv calls on the JS thread that owns `env`.
        unsafe {
            let mut event_loop = ptr::null_mut();
            if sys::napi_get_uv_event_loop(env, &mut event_loop) != sys::Status::napi_ok
                || event_loop.is_null()
            {
                return None;
            }
            let mut resource = ptr::null_mut();
            let mut name = ptr::null_mut();
            let label = "channel-messaging:deliver";
            let mut context = ptr::null_mut();
            let mut resource_ref = ptr::null_mut();
            if sys::napi_create_object(env, &mut resource) != sys::Status::napi_ok
                || sys::napi_create_string_utf8(
                    env,
                    label.as_ptr().cast(),
                    label.len() as isize,
                    &mut name,
                ) != sys::Status::napi_ok
                || sys::napi_create_reference(env, resource, 1, &mut resource_ref)
                    != sys::Status::napi_ok
                || sys::napi_async_init(env, resource, name, &mut context) != sys::Status::napi_ok
            {
                return None;
            }
            let words = uv_handle_size(UV_ASYNC).div_ceil(8).max(1);
            let d = Box::into_raw(Box::new(Deliverer {
                env,
                handle: vec![0u64; words].into_boxed_slice(),
                fast,
                pending: Vec::new(),
                notified: false,
                referenced: true,
                context,
                _resource: resource_ref,
                cleanup: ptr::null_mut(),
                closing: false,
                inbox: Arc::new(Inbox(Mutex::new(InboxState {
                    handle: ptr::null_mut(),
                    ready: Vec::new(),
                }))),
                watched: HashMap::new(),
                sweep_at: SWEEP_MIN,
            }));
            let h = (*d).handle();
            if uv_async_init(event_loop.cast(), h, on_deliver) != 0 {
                drop(Box::from_raw(d));
                return None;
            }
            *(h as *mut *mut Deliverer) = d;
            (*d).inbox.set_handle(h);
            (*d).referenced = false;
            uv_unref(h);
            let mut cleanup = ptr::null_mut();
            if sys::napi_add_async_cleanup_hook(env, Some(close_deliverer), d.cast(), &mut cleanup)
                != sys::Status::napi_ok
            {
                // never closed otherwise: close now (the callback frees it)
                (*d).closing = true;
                (*d).inbox.set_handle(ptr::null_mut());
                uv_close(h, Some(deliverer_closed));
                return None;
            }
            (*d).cleanup = cleanup;
            Some(d)
        }
    }
}

/// Environment teardown: closes the handle (the close callback frees the loop).
unsafe extern "C" fn close_deliverer(
    _handle: sys::napi_async_cleanup_hook_handle,
    arg: *mut c_void,
) {
    let d = arg as *mut Deliverer;
    // SAFETY: `arg` is the live loop registered with this hook; JS thread.
    unsafe {
        (*d).closing = true;
        for e in (*d).pending.drain(..) {
            e.ep.scheduled.store(false, Ordering::Relaxed);
        }
        let ready = (*d).inbox.set_handle(ptr::null_mut());
        for ep in ready {
            ep.inboxed.store(false, Ordering::Release);
        }
        // (the references in `watched` go with the environment)
        let h = (*d).handle();
        uv_close(h, Some(deliverer_closed));
    }
}

unsafe extern "C" fn deliverer_closed(h: *mut c_void) {
    // SAFETY: the handle's first word points at its loop, which nothing else frees.
    unsafe {
        let d = Box::from_raw(*(h as *mut *mut Deliverer));
        (*d.fast.0.get()).deliverer = ptr::null_mut();
        let cleanup = d.cleanup;
        // (the async context and references go with the environment)
        drop(d);
        if !cleanup.is_null() {
            sys::napi_remove_async_cleanup_hook(cleanup);
        }
    }
}

/// How a call into JS went.
enum Called {
    Returned(i32),
    /// An exception escaped; it was reported as an uncaught exception.
    Threw,
    /// JS cannot run (the environment is going away).
    Dead,
}

/// Calls `deliver(n)` (`deliver(n, true)` when `polled`: the message came from polling)
/// in a callback scope of its own.
unsafe fn call_deliver(
    d: *mut Deliverer,
    deliver: sys::napi_ref,
    recv: sys::napi_value,
    n: i32,
    polled: bool,
) -> Called {
    // SAFETY: JS thread, inside a handle scope opened by the caller.
    unsafe {
        let env = (*d).env;
        let mut f = ptr::null_mut();
        if sys::napi_get_reference_value(env, deliver, &mut f) != sys::Status::napi_ok
            || f.is_null()
        {
            return Called::Dead;
        }
        let mut args = [int32(env, n), ptr::null_mut()];
        let argc = if polled {
            sys::napi_get_boolean(env, true, &mut args[1]);
            2
        } else {
            1
        };
        let mut out = ptr::null_mut();
        let status =
            sys::napi_make_callback(env, (*d).context, recv, f, argc, args.as_ptr(), &mut out);
        if status == sys::Status::napi_ok {
            let mut code = DELIVER_STOP;
            sys::napi_get_value_int32(env, out, &mut code);
            return Called::Returned(code);
        }
        let mut pending = false;
        sys::napi_is_exception_pending(env, &mut pending);
        if !pending {
            return Called::Dead;
        }
        let mut error = ptr::null_mut();
        sys::napi_get_and_clear_last_exception(env, &mut error);
        if sys::napi_fatal_exception(env, error) != sys::Status::napi_ok {
            return Called::Dead;
        }
        Called::Threw
    }
}

/// What became of an entry after its turn.
enum Turn {
    /// Idle, stopped or gone: it leaves the list.
    Done,
    /// Continues on the next loop iteration.
    Again,
    /// JS cannot run any more.
    Dead,
}

/// Pops the next message of `e` into the scratch (`recv`'s result), or -1 without popping
/// when `peek` finds the queue empty.
unsafe fn pop(d: *mut Deliverer, e: &Entry, peek: bool) -> i32 {
    if peek && !e.ep.has_news() {
        return crate::RECV_EMPTY;
    }
    // SAFETY: JS thread, and no JS runs while the scratch is borrowed.
    unsafe {
        let fast: &FastEnv = &(*d).fast;
        e.ep.recv_into((*fast.0.get()).scratch.bytes())
    }
}

/// Polls `e`'s queue for up to `budget` (hot-port polling, see index.js): the next
/// message's `recv` result and whether it came from polling, or ([`RECV_SPUN`], false)
/// when nothing came. Polls without popping (an empty pop re-arms the core's ready hook,
/// after which every post would fire it although this loop picks the message up); the
/// pop that gives up re-arms it, race-free.
unsafe fn spin(d: *mut Deliverer, e: &Entry, budget: std::time::Duration) -> (i32, bool) {
    let start = std::time::Instant::now();
    loop {
        if e.ep.has_news() {
            // SAFETY: forwarded.
            let n = unsafe { pop(d, e, false) };
            if n != crate::RECV_EMPTY {
                return (n, true);
            }
        }
        for _ in 0..16 {
            std::hint::spin_loop();
        }
        if start.elapsed() >= budget {
            // SAFETY: forwarded.
            let n = unsafe { pop(d, e, false) };
            return if n == crate::RECV_EMPTY {
                (RECV_SPUN, false)
            } else {
                (n, true)
            };
        }
    }
}

unsafe fn run_entry(d: *mut Deliverer, e: &mut Entry, recv: sys::napi_value) -> Turn {
    // SAFETY: JS thread; no borrow of the loop or of the buffers is held across a call
    // into JS (which may schedule endpoints or register another scratch).
    unsafe {
        // the start of this run of deliveries (HOT_SLICE)
        let turn_start = std::time::Instant::now();
        loop {
            if !e.ep.gate.load(Ordering::Relaxed) {
                return Turn::Done;
            }
            let mut n = pop(d, e, e.peek);
            let mut polled = false;
            if n == crate::RECV_EMPTY && e.spin_ns > 0 {
                if turn_start.elapsed() >= HOT_SLICE {
                    // held the thread long enough: no polling (a look pops now, re-arming)
                    if e.peek {
                        n = pop(d, e, false);
                    }
                } else {
                    let budget = std::time::Duration::from_nanos(e.spin_ns.min(MAX_SPIN_NS));
                    (n, polled) = spin(d, e, budget);
                }
            } else if n == crate::RECV_EMPTY && e.peek {
                n = pop(d, e, false);
            }
            e.peek = false;
            e.ep.rescan.store(false, Ordering::Relaxed);
            match call_deliver(d, e.deliver, recv, n, polled) {
                Called::Returned(code) => {
                    e.spin_ns = (code >> DELIVER_SPIN_SHIFT).max(0) as u64;
                    // after a message that polling caught, the queue is likely empty: look
                    // before popping (request/response traffic)
                    e.peek = polled && e.spin_ns > 0;
                    match code & 3 {
                        DELIVER_NEXT => {}
                        DELIVER_STOP => {
                            e.peek = false;
                            // a schedule() from inside the call (say, a listener added
                            // back by a microtask) must not be lost
                            return if e.ep.rescan.load(Ordering::Relaxed) {
                                Turn::Again
                            } else {
                                Turn::Done
                            };
                        }
                        // DELIVER_YIELD (or anything else)
                        _ => return Turn::Again,
                    }
                }
                Called::Threw => {
                    // let what the exception left in the tick queue run before anything
                    // else is delivered (bounded: each round runs at least one tick)
                    for _ in 0..1000 {
                        match call_deliver(d, e.deliver, recv, DELIVER_FLUSH, false) {
                            Called::Returned(_) => break,
                            Called::Threw => {}
                            Called::Dead => return Turn::Dead,
                        }
                    }
                    e.peek = false;
                    return Turn::Again;
                }
                Called::Dead => return Turn::Dead,
            }
        }
    }
}

unsafe extern "C" fn on_deliver(h: *mut c_void) {
    let run = AssertUnwindSafe(|| unsafe {
        let d = *(h as *mut *mut Deliverer);
        (*d).notified = false;
        if (*d).closing {
            return;
        }
        let env = (*d).env;
        let mut scope = ptr::null_mut();
        if sys::napi_open_handle_scope(env, &mut scope) == sys::Status::napi_ok {
            take_inbox(d);
            sys::napi_close_handle_scope(env, scope);
        }
        let work = std::mem::take(&mut (*d).pending);
        let mut dead = false;
        for mut e in work {
            if dead || (*d).closing {
                e.ep.scheduled.store(false, Ordering::Relaxed);
                sys::napi_delete_reference(env, e.deliver);
                continue;
            }
            let mut scope = ptr::null_mut();
            if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
                dead = true;
                e.ep.scheduled.store(false, Ordering::Relaxed);
                continue;
            }
            let mut recv = ptr::null_mut();
            sys::napi_get_global(env, &mut recv);
            let turn = run_entry(d, &mut e, recv);
            sys::napi_close_handle_scope(env, scope);
            match turn {
                Turn::Again if !(*d).closing => (*d).pending.push(e),
                Turn::Dead => {
                    dead = true;
                    e.ep.scheduled.store(false, Ordering::Relaxed);
                }
                _ => {
                    e.ep.scheduled.store(false, Ordering::Relaxed);
                    sys::napi_delete_reference(env, e.deliver);
                }
            }
        }
        if (*d).closing {
            return;
        }
        if !(*d).pending.is_empty() {
            (*d).notify();
        } else if (*d).referenced {
            (*d).referenced = false;
            uv_unref((*d).handle());
        }
    });
    // nothing can be reported from here; a panic must not unwind into libuv
    let _ = catch_unwind(run);
}

/// `uncaught(error)`: reports `error` as an uncaught exception now (`napi_fatal_exception`:
/// 'uncaughtException' listeners, else the process ends), from inside a delivery
/// callback. index.js calls it when a `process.nextTick` callback that it ran between two
/// messages threw: the callback scope must not see that exception, because the throwing
/// tick left its async context on Node's async-id stack (which Node's handling of an
/// uncaught exception clears; the scope's own exit would instead abort the process).
unsafe extern "C" fn fast_uncaught(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, "uncaught", || unsafe {
        let Some([error]) = args::<1>(env, info) else {
            return throw_type_error(env, "uncaught(error) takes one argument");
        };
        sys::napi_fatal_exception(env, error);
        ptr::null_mut()
    })
}

unsafe extern "C" fn fast_set_gate(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, "setGate", || unsafe {
        let Some([ep, open]) = args::<2>(env, info) else {
            return throw_type_error(env, "setGate(endpoint, open) takes two arguments");
        };
        let Some(ep) = endpoint(env, ep) else {
            return throw_type_error(env, "setGate: not an endpoint");
        };
        let mut on = false;
        if sys::napi_get_value_bool(env, open, &mut on) != sys::Status::napi_ok {
            return throw_type_error(env, "setGate: open is not a boolean");
        }
        ep.gate.store(on, Ordering::Relaxed);
        ptr::null_mut()
    })
}

unsafe extern "C" fn fast_schedule(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, "schedule", || unsafe {
        let (ep, deliver, data) = match endpoint_and_deliver(env, info, "schedule") {
            Ok(args) => args,
            Err(thrown) => return thrown,
        };
        if ep.scheduled.load(Ordering::Relaxed) {
            ep.rescan.store(true, Ordering::Relaxed);
            return ptr::null_mut();
        }
        let Some(d) = deliverer(env, data) else {
            return throw_type_error(env, "schedule: cannot start the delivery loop");
        };
        if !enlist(d, shared(ep), deliver) {
            return throw_type_error(env, "schedule: cannot hold the function");
        }
        (*d).notify();
        ptr::null_mut()
    })
}

/// This environment's delivery loop (`data`: the entry points' state), created on first
/// use; `None` when it cannot be started.
///
/// # Safety
///
/// JS thread of `env`; `data` is the `FastEnv` of the calling entry point.
unsafe fn deliverer(env: sys::napi_env, data: *mut c_void) -> Option<*mut Deliverer> {
    // SAFETY: the caller's contract; the loop holds the state alive until its handle
    // closes (one more strong count).
    unsafe {
        let state = data as *const FastEnv;
        let buffers = &mut *(*state).0.get();
        if buffers.deliverer.is_null() {
            Rc::increment_strong_count(state);
            buffers.deliverer = Deliverer::create(env, Rc::from_raw(state))?;
        }
        Some(buffers.deliverer)
    }
}

/// Another strong count on the endpoint of an External (which holds one).
fn shared(ep: &Endpoint) -> Arc<Endpoint> {
    let raw = ep as *const Endpoint;
    // SAFETY: `ep` lives in an `Arc` (every External of this addon holds one).
    unsafe {
        Arc::increment_strong_count(raw);
        Arc::from_raw(raw)
    }
}

/// Puts `ep` on the loop's list with `deliver`, unless it is listed already or the loop
/// is closing (true either way); false when the function cannot be held. The caller
/// makes sure the loop runs (`notify`, or being the loop).
///
/// # Safety
///
/// JS thread, `d` live, `deliver` a function value of the current scope.
unsafe fn enlist(d: *mut Deliverer, ep: Arc<Endpoint>, deliver: sys::napi_value) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        if (*d).closing {
            return true;
        }
        if ep.scheduled.load(Ordering::Relaxed) {
            ep.rescan.store(true, Ordering::Relaxed);
            return true;
        }
        let mut held = ptr::null_mut();
        if sys::napi_create_reference((*d).env, deliver, 1, &mut held) != sys::Status::napi_ok {
            return false;
        }
        ep.scheduled.store(true, Ordering::Relaxed);
        (*d).pending.push(Entry {
            ep,
            deliver: held,
            peek: false,
            spin_ns: 0,
        });
        true
    }
}

/// Moves the endpoints that the ready hooks queued in the inbox onto the list, each
/// with the `deliver` function it is watched with (one no longer watched, or whose
/// function was collected, is dropped).
///
/// # Safety
///
/// JS thread, inside a handle scope, `d` live.
unsafe fn take_inbox(d: *mut Deliverer) {
    // SAFETY: the caller's contract.
    unsafe {
        let ready = (*d).inbox.take();
        let env = (*d).env;
        for ep in ready {
            ep.inboxed.store(false, Ordering::Release);
            let key = Arc::as_ptr(&ep) as usize;
            let Some(&(_, held)) = (*d).watched.get(&key) else {
                continue;
            };
            let mut f = ptr::null_mut();
            if sys::napi_get_reference_value(env, held, &mut f) != sys::Status::napi_ok
                || f.is_null()
            {
                // the port object is gone: so is its watch
                (*d).watched.remove(&key);
                sys::napi_delete_reference(env, held);
                continue;
            }
            enlist(d, ep, f);
        }
    }
}

/// `watchReady(endpoint, deliver)`: from now on a message (or the end) arriving in the
/// started endpoint's queue, posted on any thread, puts it on this thread's delivery
/// loop with `deliver` (as `schedule` would), straight from the core's ready hook: no
/// JavaScript runs until the delivery, which happens in the loop's next poll phase.
/// Replaces an earlier watch. `deliver` is held weakly: the port object holds it.
unsafe extern "C" fn fast_watch_ready(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, "watchReady", || unsafe {
        let (ep, deliver, data) = match endpoint_and_deliver(env, info, "watchReady") {
            Ok(args) => args,
            Err(thrown) => return thrown,
        };
        let Some(d) = deliverer(env, data) else {
            return throw_type_error(env, "watchReady: cannot start the delivery loop");
        };
        if (*d).closing {
            return ptr::null_mut();
        }
        let mut held = ptr::null_mut();
        if sys::napi_create_reference(env, deliver, 0, &mut held) != sys::Status::napi_ok {
            return throw_type_error(env, "watchReady: cannot hold the function");
        }
        if (*d).watched.len() >= (*d).sweep_at {
            // amortized: at most one sweep per doubling of the map
            (*d).watched.retain(|_, (weak, held)| {
                let live = weak.strong_count() > 0;
                if !live {
                    sys::napi_delete_reference(env, *held);
                }
                live
            });
            (*d).sweep_at = ((*d).watched.len() * 2).max(SWEEP_MIN);
        }
        let ep = shared(ep);
        let weak = Arc::downgrade(&ep);
        if let Some((_, old)) = (*d)
            .watched
            .insert(Arc::as_ptr(&ep) as usize, (weak.clone(), held))
        {
            sys::napi_delete_reference(env, old);
        }
        let inbox = Arc::clone(&(*d).inbox);
        // (no lock of this addon is held here: the hook may run at once, on this thread)
        ep.set_ready_hook(Some(Arc::new(move || {
            if let Some(ep) = weak.upgrade() {
                inbox.ready(ep);
            }
        })));
        ptr::null_mut()
    })
}

/// `unwatchReady(endpoint)`: ends `watchReady` (the port ended, was transferred or
/// closed). Idempotent.
unsafe extern "C" fn fast_unwatch_ready(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, "unwatchReady", || unsafe {
        let Some(([ep], data)) = args_raw::<1>(env, info) else {
            return throw_type_error(env, "unwatchReady(endpoint) takes one argument");
        };
        let Some(ep) = endpoint(env, ep) else {
            return throw_type_error(env, "unwatchReady: not an endpoint");
        };
        ep.set_ready_hook(None);
        let d = (*(*(data as *const FastEnv)).0.get()).deliverer;
        if !d.is_null()
            && let Some((_, held)) = (*d).watched.remove(&(ep as *const Endpoint as usize))
        {
            sys::napi_delete_reference(env, held);
        }
        ptr::null_mut()
    })
}

//! The native addon behind the `channel-messaging` npm package.
//!
//! This layer is deliberately thin: every rule of the Channel Messaging model lives in
//! the core crate; the JavaScript layer (`index.js`) walks JS values and encodes them in
//! the wire format (docs/wire-format.md) itself, because walking V8 objects through
//! N-API costs one native call per property. What crosses this boundary is therefore
//! bytes, side-table buffers and port handles:
//!
//! - posting: [`NativePort::post`] (bytes only, the hot path) and
//!   [`NativePort::post_full`] (side-table buffers, transferred `ArrayBuffer`s, ports);
//! - receiving: [`NativePort::recv`] copies the next message's bytes into the caller's
//!   scratch `Uint8Array` and returns its length; messages that carry buffers or ports
//!   (or do not fit) are parked: `fastApi().take` hands out their buffers as
//!   `ArrayBuffer`s over Rust-owned memory, [`NativePort::take_pending`] the rest;
//! - zero-copy buffers (`fastApi().alloc`, module `blocks`): `ArrayBuffer`s over memory
//!   Rust owns move through a transfer without a copy, and are recycled through the
//!   core's block pool once released or garbage-collected;
//! - wake-ups: the core's ready hook queues the endpoint for its thread's delivery loop
//!   (`fastApi().watchReady`, module `fast`); a ThreadsafeFunction carries the other
//!   wake-ups (the partner closed, space in its queue), and its ref/unref backs
//!   `port.ref()` / `port.unref()`.
//!
//! No function here panics on bad input: failures come back as values (an error message
//! string, `None`, or a negative code) that index.js turns into Node's errors.

// The classes here are JS-facing handles (their state is printed from JS, never from Rust).
#![allow(missing_debug_implementations)]
// napi-derive registers nothing in `cfg(test)` builds, so the exported items look unused there.
#![cfg_attr(test, allow(dead_code))]

use std::cell::RefCell;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use channel_messaging::{
    BroadcastChannel, Buffer, Limits, Message, MessageChannel, MessagePort, PortCollection,
    PostError, TryRecvError,
};
use napi::bindgen_prelude::JsValue;
use napi::bindgen_prelude::{
    ArrayBuffer, BigInt, ClassInstance, FromNapiValue, TypeName, Uint8Array, Uint8ArraySlice,
    Unknown, ValueType,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status, sys};
use napi_derive::napi;

mod blocks;
mod fast;
mod shared;

/// The library's version.
#[napi]
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The JS wake-up callback, callable from any thread. Its argument says why:
/// [`WAKE_READY`], [`WAKE_CLOSE`] or [`WAKE_SPACE`].
type Wake = ThreadsafeFunction<u32, Unknown<'static>, u32, Status, false>;

// (0, the started port has something to read, goes straight to the delivery loop now:
// fastApi().watchReady)
/// The partner went away (the core's close hook; fires for unstarted ports too).
const WAKE_CLOSE: u32 = 1;
/// The partner's queue may have room again (a `ready()` waiter was woken).
const WAKE_SPACE: u32 = 2;

/// What the fast entry points (`fastApi`) operate on: a port or a broadcast channel
/// and the message parked by the last `recv` that returned -3.
pub struct Endpoint {
    magic: u64,
    kind: EndpointKind,
    pending: Mutex<Option<Message>>,
    /// Whether the JS side receives from this endpoint (`fastApi().setGate`): the native
    /// delivery loop (fast.rs) pops a message only while this is set. Touched only by the
    /// owning JS thread (atomic so that the endpoint stays `Sync`).
    gate: AtomicBool,
    /// Whether the endpoint is in its environment's delivery list (fast.rs). JS thread only.
    scheduled: AtomicBool,
    /// Set by a `schedule` that found the endpoint listed already (fast.rs).
    rescan: AtomicBool,
    /// Whether the endpoint waits in its delivery loop's inbox (fast.rs). Any thread.
    inboxed: AtomicBool,
}

enum EndpointKind {
    Port(MessagePort),
    Broadcast(BroadcastChannel),
    /// A `PortCollection`: posted to (`postCollection`), never received from.
    Collection(Arc<PortCollection>),
}

const ENDPOINT_MAGIC: u64 = 0x636d_5f65_6e64_7074;

impl Endpoint {
    fn new(kind: EndpointKind) -> Arc<Self> {
        Arc::new(Endpoint {
            magic: ENDPOINT_MAGIC,
            kind,
            pending: Mutex::new(None),
            gate: AtomicBool::new(false),
            scheduled: AtomicBool::new(false),
            rescan: AtomicBool::new(false),
            inboxed: AtomicBool::new(false),
        })
    }

    /// Sets (or removes) the core's ready hook of the port or channel (fast.rs).
    fn set_ready_hook(&self, hook: Option<channel_messaging::ReadyHook>) {
        match &self.kind {
            EndpointKind::Port(p) => p.set_ready_hook(hook),
            EndpointKind::Broadcast(b) => b.set_ready_hook(hook),
            EndpointKind::Collection(_) => {}
        }
    }

    fn try_recv(&self) -> Result<Message, TryRecvError> {
        match &self.kind {
            EndpointKind::Port(p) => p.try_recv_message(),
            EndpointKind::Broadcast(b) => b.try_recv_message(),
            EndpointKind::Collection(_) => Err(TryRecvError::Closed),
        }
    }

    fn recv_into(&self, scratch: &mut [u8]) -> i32 {
        match self.try_recv() {
            Ok(msg) => {
                let bytes = msg.bytes();
                if msg.buffers().is_empty() && msg.port_count() == 0 && bytes.len() <= scratch.len()
                {
                    scratch[..bytes.len()].copy_from_slice(bytes);
                    bytes.len() as i32
                } else {
                    *lock(&self.pending) = Some(msg);
                    RECV_PENDING
                }
            }
            Err(TryRecvError::Empty) => RECV_EMPTY,
            Err(_) => RECV_ENDED,
        }
    }

    /// Whether a receive would not find the queue empty (a message is queued, or the
    /// port closed or ended), checked without popping: an empty pop re-arms the ready
    /// hook. Broadcast channels always answer true (they are popped as before).
    fn has_news(&self) -> bool {
        match &self.kind {
            EndpointKind::Port(p) => {
                let s = p.stats();
                s.queued_messages != 0 || s.closed
            }
            EndpointKind::Broadcast(_) | EndpointKind::Collection(_) => true,
        }
    }

    fn take_pending(&self) -> Option<PendingMessage> {
        lock(&self.pending).take().map(into_pending)
    }

    fn post_bytes(&self, bytes: &[u8]) -> Option<String> {
        match &self.kind {
            EndpointKind::Port(p) => p
                .post_encoded(bytes, Vec::new(), &[])
                .err()
                .map(|e| e.message().to_owned()),
            EndpointKind::Broadcast(b) => broadcast_result(b.post_encoded(bytes, Vec::new())),
            EndpointKind::Collection(c) => c
                .post_encoded(bytes, Vec::new(), &[])
                .err()
                .map(|e| e.to_string()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn broadcast_result(r: Result<usize, PostError>) -> Option<String> {
    match r {
        Ok(_) => None,
        Err(PostError::InvalidState(e)) => Some(format!("InvalidStateError: {e}")),
        Err(e) => Some(e.to_string()),
    }
}

/// `recv` results other than a length.
const RECV_EMPTY: i32 = -1;
const RECV_ENDED: i32 = -2;
const RECV_PENDING: i32 = -3;

/// The wake-up state shared by ports and broadcast channels.
#[derive(Default)]
struct Waker {
    tsfn: Option<Arc<Wake>>,
    /// The `std::task::Waker` behind `ready()`, one per threadsafe function (the core
    /// keeps one entry per distinct waker, so it is reused).
    space: Option<std::task::Waker>,
    referenced: bool,
}

/// Calls the JS wake-up with `kind`. NonBlocking never waits; a closing function
/// (environment teardown) just reports a status, which there is nobody to tell.
fn call_wake(tsfn: &Wake, kind: u32) {
    let _ = tsfn.call(kind, ThreadsafeFunctionCallMode::NonBlocking);
}

/// Wakes a pending `ready()`. Holds the threadsafe function weakly: once the port let go
/// of it (transferred or ended), a late wake-up is a no-op and keeps nothing alive.
struct SpaceWake(std::sync::Weak<Wake>);

impl std::task::Wake for SpaceWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(tsfn) = self.0.upgrade() {
            call_wake(&tsfn, WAKE_SPACE);
        }
    }
}

impl Waker {
    /// Installs `f` as the wake-up callback.
    fn install(&mut self, env: &Env, f: Wake) {
        self.tsfn = Some(Arc::new(f));
        self.space = None;
        // A new threadsafe function starts referenced: apply the current state.
        self.referenced = true;
        let _ = self.set_ref(env, false);
    }

    /// A hook calling the installed wake-up with `kind`; `None` before `install`.
    fn hook(&self, kind: u32) -> Option<channel_messaging::ReadyHook> {
        let tsfn = Arc::clone(self.tsfn.as_ref()?);
        Some(Arc::new(move || call_wake(&tsfn, kind)))
    }

    /// The waker that turns a core space wake-up into a [`WAKE_SPACE`] call.
    fn space_waker(&mut self) -> Option<std::task::Waker> {
        if self.space.is_none() {
            let weak = Arc::downgrade(self.tsfn.as_ref()?);
            self.space = Some(std::task::Waker::from(Arc::new(SpaceWake(weak))));
        }
        self.space.clone()
    }

    fn set_ref(&mut self, env: &Env, on: bool) -> bool {
        let Some(tsfn) = &self.tsfn else {
            return false;
        };
        if tsfn.aborted() {
            return false;
        }
        if on != self.referenced {
            // SAFETY: called on the JS thread that owns `env`, with a live (not aborted)
            // threadsafe function created in that environment.
            let status = unsafe {
                if on {
                    napi::sys::napi_ref_threadsafe_function(env.raw(), tsfn.raw())
                } else {
                    napi::sys::napi_unref_threadsafe_function(env.raw(), tsfn.raw())
                }
            };
            if status == napi::sys::Status::napi_ok {
                self.referenced = on;
            }
        }
        self.referenced
    }

    fn release(&mut self) {
        self.tsfn = None;
        self.space = None;
        self.referenced = false;
    }
}

/// Copies side-table buffers out of JS memory (V8 owns those backing stores; the core's
/// `Buffer` cannot adopt them, so this is the one copy a send makes), into pooled memory.
/// A SharedArrayBuffer's entry is not copied: it shares the memory.
fn copy_buffers(side: Vec<SideEntry<'_>>) -> Vec<Buffer> {
    side.into_iter().map(SideEntry::into_buffer).collect()
}

/// A side-table entry from index.js: a `Uint8Array` (its bytes are copied, or moved when
/// its buffer is transferred), or a `SharedArrayBuffer`, shared (module `shared`).
pub enum SideEntry<'a> {
    /// The bytes of a `Uint8Array`.
    Bytes(Uint8ArraySlice<'a>),
    /// A buffer sharing a `SharedArrayBuffer`'s memory.
    Shared(Buffer),
}

impl SideEntry<'_> {
    /// The entry as the message's buffer: the bytes copied, or the shared memory.
    fn into_buffer(self) -> Buffer {
        match self {
            SideEntry::Bytes(bytes) => blocks::copy_of(bytes.as_ref()),
            SideEntry::Shared(b) => b,
        }
    }
}

impl TypeName for SideEntry<'_> {
    fn type_name() -> &'static str {
        "Uint8Array | SharedArrayBuffer"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl FromNapiValue for SideEntry<'_> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let mut typed = false;
        // SAFETY: `env` and `value` come from the calling N-API callback.
        unsafe { sys::napi_is_typedarray(env, value, &mut typed) };
        if typed {
            // SAFETY: as above.
            return unsafe { Uint8ArraySlice::from_napi_value(env, value) }.map(SideEntry::Bytes);
        }
        // SAFETY: as above.
        match unsafe { shared::share(env, value) } {
            Some(b) => Ok(SideEntry::Shared(b)),
            None => Err(napi::Error::new(
                Status::InvalidArg,
                "a side-table entry is a Uint8Array or a SharedArrayBuffer",
            )),
        }
    }
}

/// The largest `allocBuffer` size (V8's own ArrayBuffer limit on 64-bit hosts is larger;
/// this keeps sizes exact in a double and in `usize`).
pub(crate) const MAX_BUFFER: f64 = 9_007_199_254_740_991.0;

/// Whether `ab` is an `ArrayBuffer` over a block (transfers without a copy).
#[napi]
pub fn is_block(ab: ArrayBuffer<'_>) -> bool {
    blocks::is_block(ab.as_ptr(), ab.len())
}

/// What `bufferPoolStats()` reports (see node/index.d.ts).
#[napi(object, object_from_js = false)]
pub struct BufferPoolStats {
    /// Zero-copy buffers lent to JavaScript and not yet given back.
    pub live: u32,
    /// Free memory kept for reuse by `allocBuffer` and received buffers, in bytes.
    pub pooled_bytes: f64,
    /// Buffers of a pooled size allocated fresh because the pool had none (since start).
    pub fresh: f64,
    /// How zero-copy buffers are made: "v8" (V8's API) or "napi" (N-API).
    pub backend: String,
    /// SharedArrayBuffer memories that queued messages hold (each counted once, however
    /// many messages carry it), until the last of them is received or dropped.
    pub shared: u32,
}

/// The state of the zero-copy buffer pool (node/src/blocks.rs).
#[napi]
pub fn buffer_pool_stats(env: Env) -> BufferPoolStats {
    let s = blocks::stats(env.raw());
    BufferPoolStats {
        live: u32::try_from(s.live).unwrap_or(u32::MAX),
        pooled_bytes: s.pooled_bytes as f64,
        fresh: s.fresh as f64,
        backend: s.backend.to_owned(),
        shared: u32::try_from(shared::live()).unwrap_or(u32::MAX),
    }
}

/// A message with buffers or ports (or too large for the scratch), handed to JS whole.
#[napi(object, object_from_js = false)]
pub struct PendingMessage {
    /// The encoded bytes.
    pub bytes: Uint8Array,
    /// The side-table buffers, each a `Uint8Array` over its own `ArrayBuffer`.
    pub buffers: Vec<Uint8Array>,
    /// The transferred ports, in transfer-list order.
    pub ports: Vec<NativePort>,
}

fn into_pending(mut msg: Message) -> PendingMessage {
    let ports = msg.take_ports().into_iter().map(NativePort::wrap).collect();
    // Taking the buffers makes this message's handle the last one (when it was not a
    // broadcast), so `into_vec` hands the memory over without a copy.
    let buffers = msg
        .take_buffers()
        .into_iter()
        .map(|b| Uint8Array::new(b.into_vec()))
        .collect();
    PendingMessage {
        bytes: Uint8Array::new(msg.bytes().to_vec()),
        buffers,
        ports,
    }
}

// ------------------------------------------------------------------------ ports

/// One end of a channel (the native half of the JS `MessagePort`).
#[napi]
pub struct NativePort {
    core: Arc<Endpoint>,
    port: MessagePort,
    waker: RefCell<Waker>,
}

impl NativePort {
    fn wrap(port: MessagePort) -> Self {
        NativePort {
            core: Endpoint::new(EndpointKind::Port(port.clone())),
            port,
            waker: RefCell::default(),
        }
    }
}

/// A new channel: its two ports.
#[napi]
pub fn create_channel() -> Vec<NativePort> {
    let (a, b) = MessageChannel::new().into_ports();
    vec![NativePort::wrap(a), NativePort::wrap(b)]
}

/// Adopts a port detached by `exportHandle` (on any thread). `None` for a handle that
/// was never issued, already adopted, or is not a 64-bit unsigned number.
#[napi]
pub fn import_handle(handle: BigInt) -> Option<NativePort> {
    let (negative, value, lossless) = handle.get_u64();
    if negative || !lossless {
        return None;
    }
    MessagePort::import_handle(value).map(NativePort::wrap)
}

#[napi]
impl NativePort {
    /// Posts an encoded message with no side table and no transfer. Returns the
    /// DataCloneError message on failure (never for this form, kept for symmetry).
    #[napi]
    pub fn post(&self, bytes: &[u8]) -> Option<String> {
        self.core.post_bytes(bytes)
    }

    /// The handle the fast entry points (`fastApi()`) take.
    #[napi]
    pub fn endpoint<'env>(&self, env: &'env Env) -> napi::Result<Unknown<'env>> {
        fast::endpoint_external(env, &self.core)
    }

    /// The checks before serialization (spec C3 step 1, C5 duplicates).
    #[napi]
    pub fn check_transfer(&self, ports: Vec<ClassInstance<'_, NativePort>>) -> Option<String> {
        let list: Vec<&MessagePort> = ports.iter().map(|p| &p.port).collect();
        self.port
            .check_transfer(&list)
            .err()
            .map(|e| e.message().to_owned())
    }

    /// Posts an encoded message with its side table (`side`, every buffer in index
    /// order), transferring `ports`; `detach` are the transferred `ArrayBuffer`s.
    ///
    /// A transferred `ArrayBuffer` over a block (`allocBuffer`, or one this package
    /// delivered) moves into the message without a copy: its memory is taken back and the
    /// `ArrayBuffer` detached before the post, which the checks made first guarantee to
    /// succeed. Every other side-table buffer is copied; the other transferred
    /// `ArrayBuffer`s are detached by index.js once the post succeeded
    /// (`detachTransferred`: through Node's own transfer, which keeps the ones Node marks
    /// untransferable or cannot detach).
    #[napi]
    pub fn post_full(
        &self,
        bytes: &[u8],
        side: Vec<SideEntry<'_>>,
        detach: Vec<ArrayBuffer<'_>>,
        ports: Vec<ClassInstance<'_, NativePort>>,
    ) -> Option<String> {
        let list: Vec<&MessagePort> = ports.iter().map(|p| &p.port).collect();
        // The core refuses a post only for these (its transfer-list checks); when one
        // applies, nothing is taken and the core reports it.
        let will_post = self.port.check_transfer(&list).is_ok()
            && list.iter().all(|p| !p.is_detached() && !p.is_closed());
        let mut taken: Vec<(usize, usize, Option<Vec<u8>>)> = Vec::new();
        // (an ArrayBuffer that is not a block is left to index.js, which detaches it
        // after the post, the way Node does: detachTransferred; its bytes are copied)
        for ab in detach {
            let (data, len) = (ab.as_ptr(), ab.len());
            if let Some((v, id)) = will_post.then(|| blocks::take(data, len)).flatten() {
                // The memory is ours now: JS loses sight of it before anything else
                // runs on this thread.
                let value = ab.value();
                // SAFETY: a live ArrayBuffer of this call's environment.
                let status = unsafe { napi::sys::napi_detach_arraybuffer(value.env, value.value) };
                if status != napi::sys::Status::napi_ok {
                    // (never for a block, which is external) JS still holds it: give
                    // it back; buffers detached so far are lost with the message.
                    blocks::untake(v, id);
                    for (_, _, v) in taken {
                        if let Some(v) = v {
                            blocks::recycle(v);
                        }
                    }
                    return Some("an ArrayBuffer could not be detached".to_owned());
                }
                taken.push((data as usize, len, Some(v)));
            }
        }
        let buffers: Vec<Buffer> = side
            .into_iter()
            .map(|s| {
                if let SideEntry::Bytes(bytes) = &s {
                    let (data, len) = (bytes.as_ptr() as usize, bytes.len());
                    if let Some(v) = taken
                        .iter_mut()
                        .find(|t| t.0 == data && t.1 == len && t.2.is_some())
                        .and_then(|t| t.2.take())
                    {
                        return Buffer::from(v);
                    }
                }
                s.into_buffer()
            })
            .collect();
        // Taken buffers the message does not refer to: their memory is free again.
        for (_, _, v) in taken.iter_mut() {
            if let Some(v) = v.take() {
                blocks::recycle(v);
            }
        }
        if let Err(e) = self.port.post_encoded(bytes, buffers, &list) {
            return Some(e.message().to_owned());
        }
        for p in &ports {
            p.waker.borrow_mut().release();
            lock(&p.core.pending).take();
        }
        None
    }

    /// Receives the next message into `scratch`: its length, or -1 (nothing queued),
    /// -2 (the port ended), -3 (a message waits in `take_pending`).
    #[napi]
    pub fn recv(&self, mut scratch: Uint8ArraySlice<'_>) -> i32 {
        // SAFETY: the scratch is only touched by this synchronous call on the JS thread.
        self.core.recv_into(unsafe { scratch.as_mut() })
    }

    /// The message parked by the last `recv` that returned -3.
    #[napi]
    pub fn take_pending(&self) -> Option<PendingMessage> {
        self.core.take_pending()
    }

    /// Enables the port message queue (spec B2).
    #[napi]
    pub fn start(&self) {
        self.port.start();
    }

    /// Sets the wake-up callback, called when the partner goes away (`watch_close`) or
    /// its queue has room again (`poll_ready`); its reference (`set_ref`) keeps the event
    /// loop alive. Starts unreferenced. (A started port's messages wake the delivery loop
    /// directly: `fastApi().watchReady`.)
    #[napi]
    pub fn set_wake(&self, env: Env, wake: Wake) {
        self.waker.borrow_mut().install(&env, wake);
    }

    /// Removes the wake-up callback (the port ended or was transferred away).
    #[napi]
    pub fn clear_wake(&self) {
        self.port.set_ready_hook(None);
        self.port.set_close_hook(None);
        self.waker.borrow_mut().release();
    }

    /// Asks for a wake-up with `WAKE_CLOSE` once the partner goes away, whether or not
    /// the port is started (Node fires 'close' on such ports). If it is already gone the
    /// call comes at once (still through the event loop). False without a wake-up.
    #[napi]
    pub fn watch_close(&self) -> bool {
        let Some(hook) = self.waker.borrow().hook(WAKE_CLOSE) else {
            return false;
        };
        self.port.set_close_hook(Some(hook));
        true
    }

    /// Whether the partner's queue is below its limits; when not, a `WAKE_SPACE`
    /// wake-up comes once it may be (then ask again). Without a wake-up installed this
    /// only answers.
    #[napi]
    pub fn poll_ready(&self) -> bool {
        let Some(waker) = self.waker.borrow_mut().space_waker() else {
            return self.port.is_ready();
        };
        let mut cx = std::task::Context::from_waker(&waker);
        let mut ready = self.port.ready();
        std::future::Future::poll(std::pin::Pin::new(&mut ready), &mut cx).is_ready()
    }

    /// References or unreferences the wake-up (keeps the event loop alive or not);
    /// returns the resulting state.
    #[napi]
    pub fn set_ref(&self, env: Env, on: bool) -> bool {
        self.waker.borrow_mut().set_ref(&env, on)
    }

    /// Closes the port (idempotent).
    #[napi]
    pub fn close(&self) {
        self.port.close();
    }

    /// Drops every message still queued (closing the ports they carry), up to the end.
    #[napi]
    pub fn discard_queued(&self) {
        lock(&self.core.pending).take();
        while self.port.try_recv_message().is_ok() {}
    }

    /// Whether `close` was called.
    #[napi]
    pub fn is_closed(&self) -> bool {
        self.port.is_closed()
    }

    /// Whether the port was transferred away.
    #[napi]
    pub fn is_detached(&self) -> bool {
        self.port.is_detached()
    }

    /// Whether the port still has a partner.
    #[napi]
    pub fn is_entangled(&self) -> bool {
        self.port.is_entangled()
    }

    /// Detaches the port and parks it under a single-use number; `None` when it is
    /// closed or already transferred.
    #[napi]
    pub fn export_handle(&self) -> Option<BigInt> {
        let handle = self.port.export_handle().ok()?;
        self.waker.borrow_mut().release();
        Some(BigInt::from(handle))
    }

    /// Sets flow-control limits (negative = none).
    #[napi]
    pub fn set_limits(&self, max_messages: f64, max_bytes: f64) {
        let limit = |v: f64| (v >= 0.0).then_some(v as usize);
        self.port.set_limits(Limits {
            max_messages: limit(max_messages),
            max_bytes: limit(max_bytes),
        });
    }

    /// Whether the partner's queue is below its limits.
    #[napi]
    pub fn is_ready(&self) -> bool {
        self.port.is_ready()
    }

    /// `[queuedMessages, queuedBytes, closed (0/1), maxMessages, maxBytes]` (-1 = none).
    #[napi]
    pub fn stats(&self) -> Vec<f64> {
        let s = self.port.stats();
        let opt = |v: Option<usize>| v.map_or(-1.0, |v| v as f64);
        vec![
            s.queued_messages as f64,
            s.queued_bytes as f64,
            f64::from(u8::from(s.closed)),
            opt(s.limits.max_messages),
            opt(s.limits.max_bytes),
        ]
    }
}

// ------------------------------------------------------------------- broadcast

/// The native half of the JS `BroadcastChannel`.
#[napi]
pub struct NativeBroadcast {
    core: Arc<Endpoint>,
    channel: BroadcastChannel,
    waker: RefCell<Waker>,
}

#[napi]
impl NativeBroadcast {
    /// Joins the process-wide group `name`.
    #[napi(constructor)]
    pub fn new(name: String) -> Self {
        let channel = BroadcastChannel::new(name);
        NativeBroadcast {
            core: Endpoint::new(EndpointKind::Broadcast(channel.clone())),
            channel,
            waker: RefCell::default(),
        }
    }

    /// The handle the fast entry points (`fastApi()`) take.
    #[napi]
    pub fn endpoint<'env>(&self, env: &'env Env) -> napi::Result<Unknown<'env>> {
        fast::endpoint_external(env, &self.core)
    }

    /// Posts to every other channel of the group; the error message on failure.
    #[napi]
    pub fn post(&self, bytes: &[u8], side: Vec<SideEntry<'_>>) -> Option<String> {
        broadcast_result(self.channel.post_encoded(bytes, copy_buffers(side)))
    }

    /// As [`NativePort::recv`].
    #[napi]
    pub fn recv(&self, mut scratch: Uint8ArraySlice<'_>) -> i32 {
        // SAFETY: the scratch is only touched by this synchronous call on the JS thread.
        self.core.recv_into(unsafe { scratch.as_mut() })
    }

    /// As [`NativePort::take_pending`].
    #[napi]
    pub fn take_pending(&self) -> Option<PendingMessage> {
        self.core.take_pending()
    }

    /// Enables delivery through the wake-up callback.
    #[napi]
    pub fn start(&self) {
        self.channel.start();
    }

    /// As [`NativePort::set_wake`]: here only its reference matters (`set_ref`).
    #[napi]
    pub fn set_wake(&self, env: Env, wake: Wake) {
        self.waker.borrow_mut().install(&env, wake);
    }

    /// As [`NativePort::set_ref`].
    #[napi]
    pub fn set_ref(&self, env: Env, on: bool) -> bool {
        self.waker.borrow_mut().set_ref(&env, on)
    }

    /// Leaves the group (idempotent); drops the wake-up.
    #[napi]
    pub fn close(&self) {
        self.channel.close();
        self.channel.set_ready_hook(None);
        self.waker.borrow_mut().release();
    }

    /// Whether the channel is closed.
    #[napi]
    pub fn is_closed(&self) -> bool {
        self.channel.is_closed()
    }
}

// ------------------------------------------------------------------ collection

/// The native half of the JS `PortCollection`: a weak set that broadcasts.
#[napi]
pub struct NativeCollection {
    collection: Arc<PortCollection>,
    core: Arc<Endpoint>,
}

impl Default for NativeCollection {
    fn default() -> Self {
        let collection = Arc::new(PortCollection::default());
        NativeCollection {
            core: Endpoint::new(EndpointKind::Collection(Arc::clone(&collection))),
            collection,
        }
    }
}

#[napi]
impl NativeCollection {
    /// An empty collection.
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    /// The handle `postCollection` (`fastApi()`) takes.
    #[napi]
    pub fn endpoint<'env>(&self, env: &'env Env) -> napi::Result<Unknown<'env>> {
        fast::endpoint_external(env, &self.core)
    }

    /// Adds a port (ignored when already present).
    #[napi]
    pub fn add(&self, port: &NativePort) {
        self.collection.add(&port.port);
    }

    /// Removes a port.
    #[napi]
    pub fn remove(&self, port: &NativePort) {
        self.collection.remove(&port.port);
    }

    /// Whether the port is a live member.
    #[napi]
    pub fn contains(&self, port: &NativePort) -> bool {
        self.collection.contains(&port.port)
    }

    /// Removes every port.
    #[napi]
    pub fn clear(&self) {
        self.collection.clear();
    }

    /// Posts to every live member, encoding once; returns how many.
    #[napi]
    pub fn post(&self, bytes: &[u8], side: Vec<SideEntry<'_>>) -> u32 {
        self.collection
            .post_encoded(bytes, copy_buffers(side), &[])
            .map_or(0, |n| n as u32)
    }
}

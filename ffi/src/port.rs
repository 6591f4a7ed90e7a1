//! Channels and ports: create, post, receive, start, close, notify, poll fd, limits.

use std::cell::RefCell;
use std::ffi::c_void;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use channel_messaging::{Limits, Message, MessageChannel, MessagePort, TryRecvError, WeakPort};

use crate::error::*;
use crate::handles::{self, Object, wrong_kind};
use crate::message::cm_message;
use crate::value::{cm_buffer, cm_value};

/// A port handle: a 64-bit generational id; 0 is never a valid handle.
///
/// A handle is a plain number: copy it, hand it to another thread, store it anywhere.
/// It stays valid until `cm_port_close` or until the port is transferred (listed in a
/// transfer list, or `cm_port_export`); from then on every function given it returns
/// `CM_ERR_INVALID_HANDLE`.
pub type cm_port = u64;

/// The notify callback of `cm_port_set_notify`: `user_data` as registered, and the port
/// that has something to read.
pub type cm_notify_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, port: cm_port)>;

/// Releases the `user_data` of a callback once the library no longer needs it.
pub type cm_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Queue statistics of a port (`cm_port_stats`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cm_stats {
    /// Messages queued at this port and not received yet.
    pub queued_messages: usize,
    /// Their size: encoded bytes plus buffers.
    pub queued_bytes: usize,
    /// The port will not receive new messages (its partner closed).
    pub closed: bool,
    /// The flow-control limit in messages set with `cm_port_set_limits` (0: none).
    pub max_messages: usize,
    /// The flow-control limit in bytes (0: none).
    pub max_bytes: usize,
}

/// A C notify callback with its user data; `free` runs when it is dropped.
struct Notify {
    f: unsafe extern "C" fn(*mut c_void, cm_port),
    user_data: *mut c_void,
    free: cm_free_fn,
}

// SAFETY: the C caller promises (cm_port_set_notify's contract) that the callback and
// its user data may be used from any thread.
unsafe impl Send for Notify {}
// SAFETY: as above; the library never touches `user_data` itself.
unsafe impl Sync for Notify {}

impl Drop for Notify {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: the C caller registered `free` to be called once with this
            // user data when the callback is no longer needed; this is that time.
            unsafe { free(self.user_data) }
        }
    }
}

/// A Linux eventfd, readable while the port has something to read.
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    fn new() -> Res<Self> {
        // SAFETY: eventfd takes no pointers; it returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return fail(
                CM_ERR_IO,
                format!("eventfd failed: {}", std::io::Error::last_os_error()),
            );
        }
        // SAFETY: `fd` is a descriptor that eventfd just opened and nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to a descriptor this object owns.
        let _ = unsafe {
            libc::write(
                self.0.as_raw_fd(),
                (&raw const one).cast::<c_void>(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    fn reset(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64 from a descriptor this object
        // owns (non-blocking: returns -1/EAGAIN when already reset).
        let _ = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&raw mut count).cast::<c_void>(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

/// The push-style wake-up targets of one port: a notify callback and/or an eventfd,
/// both fed by the core's ready hook.
pub(crate) struct Wake {
    handle: cm_port,
    state: Mutex<WakeState>,
    fd: OnceLock<EventFd>,
}

/// What [`Wake`] keeps under its lock.
struct WakeState {
    notify: Option<Arc<Notify>>,
    /// The handle is gone (closed, transferred or exported): a `cm_port_set_notify` or
    /// `cm_port_fd` that looked the port up before must not leave anything installed.
    retired: bool,
}

impl Wake {
    fn new(handle: cm_port) -> Self {
        Wake {
            handle,
            state: Mutex::new(WakeState {
                notify: None,
                retired: false,
            }),
            fd: OnceLock::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, WakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fire(&self) {
        if let Some(fd) = self.fd.get() {
            fd.signal();
        }
        let notify = self.state().notify.clone();
        if let Some(n) = notify {
            // SAFETY: the C caller registered this function for this user data and
            // promised it may run on any thread (cm_port_set_notify's contract).
            unsafe { (n.f)(n.user_data, self.handle) }
        }
    }

    /// Replaces the notify callback; returns the old one, for the caller to drop once it
    /// holds no lock (dropping it runs the C free function). Fails, dropping `notify`,
    /// when the handle is already gone.
    fn replace_notify(&self, notify: Option<Arc<Notify>>) -> Res<Option<Arc<Notify>>> {
        let mut s = self.state();
        if s.retired {
            drop(s);
            drop(notify);
            return gone(self.handle);
        }
        Ok(std::mem::replace(&mut s.notify, notify))
    }

    fn is_retired(&self) -> bool {
        self.state().retired
    }

    /// The handle is gone: no callback from now on, and nothing may be installed again.
    /// Returns the callback, for the caller to drop once it holds no lock.
    fn retire(&self) -> Option<Arc<Notify>> {
        let mut s = self.state();
        s.retired = true;
        s.notify.take()
    }

    /// After a receive found nothing: makes the fd unreadable, unless something arrived
    /// meanwhile (whose hook signal the reset may just have swallowed).
    fn after_empty(&self, port: &MessagePort) {
        if let Some(fd) = self.fd.get() {
            fd.reset();
            let s = port.stats();
            if s.queued_messages > 0 || s.closed {
                fd.signal();
            }
        }
    }
}

/// The failure of a call whose handle was closed or transferred while it ran.
fn gone<T>(handle: cm_port) -> Res<T> {
    fail(
        CM_ERR_INVALID_HANDLE,
        format!("invalid handle {handle:#x}: closed or transferred away during this call"),
    )
}

/// What the handle table holds for a port.
pub(crate) struct PortEntry {
    pub(crate) port: MessagePort,
    wake: Option<Arc<Wake>>,
}

impl PortEntry {
    pub(crate) fn has_wake(&self) -> bool {
        self.wake.is_some()
    }

    /// The handle was removed from the table (closed, transferred, exported): the notify
    /// callback is released (its free function runs, unless a call to it is running on
    /// another thread: then when that returns) and the ready hook removed. Runs with no
    /// lock held: the free function is user code.
    fn retire(&self) {
        if let Some(wake) = &self.wake {
            // Marked retired before the hook is removed: a `cm_port_set_notify` or
            // `cm_port_fd` installing the hook concurrently either installs it before
            // this removes it, or sees the mark when it checks after installing
            // (`install_hook`) and removes it itself.
            let notify = wake.retire();
            self.port.set_ready_hook(None);
            drop(notify);
        }
    }
}

/// Retires a port entry that `handles::remove` took out of the table.
fn retire(object: Object) {
    if let Object::Port(e) = object {
        e.retire();
    }
}

pub(crate) fn new_port_handle(port: MessagePort) -> Res<cm_port> {
    handles::insert(Object::Port(PortEntry { port, wake: None }))
}

/// Ports this thread looked up recently, by handle: a hit costs one load of the slot's
/// stamp and a weak-reference upgrade, where the table takes a lock and a clone. Weak, so
/// that a cached port never outlives its last real handle (closing by drop, spec F6).
/// Direct-mapped; an entry is trusted only while the slot's stamp says the handle is
/// still valid ([`handles::stamp`]).
const CACHE_WAYS: usize = 8;

thread_local! {
    static PORT_CACHE: RefCell<[(cm_port, Option<WeakPort>); CACHE_WAYS]> =
        const { RefCell::new([const { (0, None) }; CACHE_WAYS]) };
}

fn cache_way(handle: cm_port) -> usize {
    (handle as usize ^ (handle >> 32) as usize) % CACHE_WAYS
}

/// The cached port of `handle`, when the cache has it and the handle is still valid
/// (with no wake-up installed, when `no_wake`).
#[inline]
fn cached_port(handle: cm_port, no_wake: bool) -> Option<MessagePort> {
    let stamp = handles::stamp(handle);
    let expected = handles::stamp_expected(handle);
    let valid = if no_wake {
        stamp == expected
    } else {
        stamp | 1 == expected | 1
    };
    if !valid || expected == 0 {
        return None;
    }
    PORT_CACHE
        .try_with(|c| {
            let c = c.try_borrow().ok()?;
            match &c[cache_way(handle)] {
                (h, Some(weak)) if *h == handle => weak.upgrade(),
                _ => None,
            }
        })
        .ok()
        .flatten()
}

fn cache_port(handle: cm_port, port: &MessagePort) {
    let _ = PORT_CACHE.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c[cache_way(handle)] = (handle, Some(port.downgrade()));
        }
    });
}

/// A clone of the port behind `handle`.
#[inline]
pub(crate) fn get_port(handle: cm_port) -> Res<MessagePort> {
    if let Some(p) = cached_port(handle, false) {
        return Ok(p);
    }
    let p = handles::with(handle, |o| match o {
        Object::Port(e) => Ok(e.port.clone()),
        _ => wrong_kind(handle, "port"),
    })?;
    cache_port(handle, &p);
    Ok(p)
}

#[inline]
fn get_port_and_wake(handle: cm_port) -> Res<(MessagePort, Option<Arc<Wake>>)> {
    if let Some(p) = cached_port(handle, true) {
        return Ok((p, None));
    }
    let (p, wake) = handles::with(handle, |o| match o {
        Object::Port(e) => Ok((e.port.clone(), e.wake.clone())),
        _ => wrong_kind(handle, "port"),
    })?;
    cache_port(handle, &p);
    Ok((p, wake))
}

/// The ports behind a transfer list of handles.
///
/// # Safety
///
/// `transfer` must point to `len` readable handles (or be NULL with `len == 0`).
pub(crate) unsafe fn transfer_ports(transfer: *const cm_port, len: usize) -> Res<Vec<MessagePort>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    not_null(
        transfer,
        "the transfer list is NULL but its length is not 0",
    )?;
    // SAFETY: the caller guarantees `transfer` points to `len` handles.
    let handles = unsafe { std::slice::from_raw_parts(transfer, len) };
    handles
        .iter()
        .enumerate()
        .map(|(i, &h)| {
            get_port(h).map_err(|f| {
                Failure::new(f.status, format!("transfer list index {i}: {}", f.message))
            })
        })
        .collect()
}

/// After a successful post: the transferred handles become invalid.
pub(crate) fn release_transferred(transfer: &[MessagePort], handles_ptr: *const cm_port) {
    if transfer.is_empty() {
        return;
    }
    // SAFETY: `transfer_ports` read the same `len` handles from this pointer just before.
    let handles = unsafe { std::slice::from_raw_parts(handles_ptr, transfer.len()) };
    for &h in handles {
        if let Ok(object) = handles::remove(h, |_| Ok(())) {
            retire(object);
        }
    }
}

/// Creates a channel: two entangled ports. `*port1` and `*port2` receive their handles;
/// the caller owns both and releases each with `cm_port_close`.
///
/// Returns `CM_ERR_NULL_POINTER` when an out-pointer is NULL (nothing is created then).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_channel_new(port1: *mut cm_port, port2: *mut cm_port) -> cm_status {
    guard(|| {
        not_null(port1, "port1 is NULL")?;
        not_null(port2, "port2 is NULL")?;
        let (a, b) = MessageChannel::new().into_ports();
        let ha = new_port_handle(a)?;
        let hb = match new_port_handle(b) {
            Ok(h) => h,
            Err(e) => {
                let _ = handles::remove(ha, |_| Ok(()));
                return Err(e);
            }
        };
        // SAFETY: both out-pointers were checked non-NULL; the caller promises they
        // are writable.
        unsafe {
            put(port1, ha);
            put(port2, hb);
        }
        Ok(CM_OK)
    })
}

/// Posts `value` to the port's partner (the web's `postMessage(value, transfer)`),
/// transferring the `transfer_len` ports listed in `transfer`.
///
/// `value` is borrowed (the caller still owns it and may reuse or free it at once: it is
/// encoded before this returns). A `CM_KIND_PORT` value `i` inside it stands for
/// `transfer[i]`. Buffers inside it are shared, not copied, when 1 KiB or larger.
/// `transfer` is borrowed; on success every handle in it becomes invalid (the ports
/// moved to the receiver, with every message queued or in flight for them).
///
/// Posting on a port whose partner closed does nothing (and succeeds), as on the web.
///
/// Errors: `CM_ERR_INVALID_HANDLE` (the port or a transfer-list entry),
/// `CM_ERR_NULL_POINTER`, `CM_ERR_DATA_CLONE` (the port itself or a port twice in the
/// transfer list, a port value outside the transfer list, an invalid value tree):
/// nothing is sent or detached then.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_port_post(
    port: cm_port,
    value: *const cm_value,
    transfer: *const cm_port,
    transfer_len: usize,
) -> cm_status {
    guard(|| {
        not_null(value, "value is NULL")?;
        let p = get_port(port)?;
        // SAFETY: the caller passes `transfer_len` handles at `transfer`.
        let ports = unsafe { transfer_ports(transfer, transfer_len)? };
        let refs: Vec<&MessagePort> = ports.iter().collect();
        // SAFETY: `value` is non-NULL and points to a live cm_value (caller's contract).
        let v = unsafe { &(*value).0 };
        p.post_message(v, &refs)?;
        release_transferred(&ports, transfer);
        Ok(CM_OK)
    })
}

/// Posts a message that is already encoded (docs/wire-format.md: raw CBOR with the
/// format header), for callers that have their own CBOR encoder.
///
/// `bytes` (`len` bytes) is borrowed and copied. `buffers` lists `buffers_len`
/// `cm_buffer` pointers: the side table the bytes refer to by index; each is borrowed
/// (its bytes are shared with the message, not copied; the caller still frees its
/// `cm_buffer`s). `transfer` as for `cm_port_post`.
///
/// The bytes are not validated here: a receiver that cannot decode them gets
/// `CM_ERR_MESSAGE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_port_post_encoded(
    port: cm_port,
    bytes: *const u8,
    len: usize,
    buffers: *const *const cm_buffer,
    buffers_len: usize,
    transfer: *const cm_port,
    transfer_len: usize,
) -> cm_status {
    guard(|| {
        let p = get_port(port)?;
        // SAFETY: the caller passes `len` readable bytes at `bytes`.
        let data = unsafe { crate::value::slice(bytes, len, "bytes")? };
        // SAFETY: the caller passes `buffers_len` live cm_buffer pointers at `buffers`.
        let side = unsafe { crate::value::buffer_list(buffers, buffers_len)? };
        // SAFETY: the caller passes `transfer_len` handles at `transfer`.
        let ports = unsafe { transfer_ports(transfer, transfer_len)? };
        let refs: Vec<&MessagePort> = ports.iter().collect();
        p.post_encoded(data, side, &refs)?;
        release_transferred(&ports, transfer);
        Ok(CM_OK)
    })
}

/// Takes the next message of `port` (encoded), waiting as `timeout_ms` says:
/// 0 = do not wait, negative = wait forever, positive = at most that many milliseconds.
fn take_message(port: &MessagePort, wake: Option<&Wake>, timeout_ms: i64) -> Res<Message> {
    let r = if timeout_ms == 0 {
        port.try_recv_message()
    } else if timeout_ms < 0 {
        port.recv_message().map_err(|_| TryRecvError::Closed)
    } else {
        let d = Duration::from_millis(timeout_ms as u64);
        port.recv_message_timeout(d).map_err(|e| match e {
            channel_messaging::RecvTimeoutError::Timeout => TryRecvError::Empty,
            _ => TryRecvError::Closed,
        })
    };
    match r {
        Ok(m) => Ok(m),
        Err(TryRecvError::Empty) => {
            if let Some(w) = wake {
                w.after_empty(port);
            }
            if timeout_ms == 0 {
                fail(CM_EMPTY, "no message is queued")
            } else {
                fail(CM_TIMEOUT, "timed out waiting for a message")
            }
        }
        Err(_) => fail(CM_CLOSED, "the port is closed"),
    }
}

/// Receives the next message and decodes it.
///
/// `timeout_ms`: 0 = do not wait (`CM_EMPTY` when nothing is queued), negative = block
/// until a message or the close, positive = wait at most that many milliseconds
/// (`CM_TIMEOUT`). Receiving reads the queue whether or not the port was started (like
/// Node's `receiveMessageOnPort`).
///
/// On `CM_OK`, `*out` is a new message owned by the caller: read it with
/// `cm_message_value` / `cm_message_take_value` / `cm_message_take_port`, release it
/// with `cm_message_free`. Otherwise `*out` is set to NULL.
///
/// Returns `CM_CLOSED` once the partner closed (or was dropped) and every message it
/// sent before was received: the close is in-band. `CM_ERR_MESSAGE` when the message
/// could not be decoded (the web's messageerror): it was consumed, the ports it carried
/// were closed, and the next call goes on with the next message.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_port_recv(
    port: cm_port,
    timeout_ms: i64,
    out: *mut *mut cm_message,
) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { recv_impl(port, timeout_ms, out, true) }
}

/// As `cm_port_recv`, without decoding: the message's raw CBOR and side table are read
/// with `cm_message_bytes` and `cm_message_buffer`, its ports taken with
/// `cm_message_take_port`. `cm_message_value` decodes on demand (and may then return
/// `CM_ERR_MESSAGE`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_port_recv_raw(
    port: cm_port,
    timeout_ms: i64,
    out: *mut *mut cm_message,
) -> cm_status {
    // SAFETY: forwarded contract.
    unsafe { recv_impl(port, timeout_ms, out, false) }
}

/// Receives the next message of the port behind `handle`, still encoded.
pub(crate) fn receive(handle: cm_port, timeout_ms: i64) -> Res<Message> {
    let (p, wake) = get_port_and_wake(handle)?;
    take_message(&p, wake.as_deref(), timeout_ms)
}

unsafe fn recv_impl(
    port: cm_port,
    timeout_ms: i64,
    out: *mut *mut cm_message,
    decode: bool,
) -> cm_status {
    guard(|| {
        not_null(out, "out is NULL")?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { put(out, std::ptr::null_mut()) };
        let (p, wake) = get_port_and_wake(port)?;
        let m = take_message(&p, wake.as_deref(), timeout_ms)?;
        let msg = cm_message::from_core(m, decode)?;
        // SAFETY: as above.
        unsafe { put(out, Box::into_raw(Box::new(msg))) };
        Ok(CM_OK)
    })
}

/// Starts the port's message queue (the web's `start()`, spec B2): from now on the
/// notify callback and the pollable fd report arrivals. Messages queued before are kept.
/// Idempotent. (`cm_port_recv` works whether or not the port was started.)
#[unsafe(no_mangle)]
pub extern "C" fn cm_port_start(port: cm_port) -> cm_status {
    guard(|| {
        get_port(port)?.start();
        Ok(CM_OK)
    })
}

/// Closes the port (the web's `close()`) and releases its handle: the handle is invalid
/// afterwards (a second close returns `CM_ERR_INVALID_HANDLE`). The partner receives
/// everything posted before, then `CM_CLOSED`. A receive blocked on this port in another
/// thread returns `CM_CLOSED`. The notify callback's free function runs, and the
/// pollable fd is closed.
#[unsafe(no_mangle)]
pub extern "C" fn cm_port_close(port: cm_port) -> cm_status {
    guard(|| {
        let object = handles::remove(port, |o| match o {
            Object::Port(_) => Ok(()),
            _ => wrong_kind(port, "port"),
        })?;
        if let Object::Port(e) = object {
            // The hook goes first: closing queues this port's own close marker, which
            // must not fire the callback with the handle just released.
            e.retire();
            e.port.close();
        }
        Ok(CM_OK)
    })
}

/// The wake-up targets of a port, created on first use.
fn wake_of(port: cm_port) -> Res<(MessagePort, Arc<Wake>)> {
    handles::with(port, |o| match o {
        Object::Port(e) => {
            let wake = e
                .wake
                .get_or_insert_with(|| Arc::new(Wake::new(port)))
                .clone();
            Ok((e.port.clone(), wake))
        }
        _ => wrong_kind(port, "port"),
    })
}

/// Installs the core ready hook feeding `wake` (and starts the port, when `start`).
///
/// This runs without the handle's slot lock, because installing and starting may fire
/// the hook at once, which runs the C callback, which may call back into the library for
/// this handle. So a `cm_port_close` (or a transfer) can remove the handle meanwhile:
/// if it has (`Wake::retire`), the hook is removed again and the call fails as for a
/// closed handle; see `PortEntry::retire` for why no hook survives either order.
fn install_hook(p: &MessagePort, wake: &Arc<Wake>, start: bool) -> Res {
    let w = Arc::clone(wake);
    p.set_ready_hook(Some(Arc::new(move || w.fire())));
    if start {
        p.start();
    }
    if wake.is_retired() {
        // (the retiring close or transfer took the callback out already)
        p.set_ready_hook(None);
        return gone(wake.handle);
    }
    Ok(())
}

/// Registers `callback` to be told when the port has something to read (a message or
/// the close), and starts the port (as setting `onmessage` does on the web). Passing a
/// NULL `callback` removes the current one.
///
/// Threads: the callback runs on ANY thread, typically the thread that posted the
/// message (or the caller of this function when messages are already queued). It must
/// be quick and must not block: wake your own loop, which then calls `cm_port_recv` with
/// timeout 0 until `CM_EMPTY` or `CM_CLOSED`. Wake-ups are coalesced: after the
/// callback fires, it does not fire again until a receive on this port found the queue
/// empty (or ended).
///
/// Ownership: `user_data` is passed back untouched. `free_user_data` (may be NULL) is
/// called exactly once with `user_data` when the callback is no longer used: when it is
/// replaced or removed, when the port is closed or transferred. It may run on any
/// thread, and never while a call of `callback` with this `user_data` is running (it
/// waits for the call to return: a call running on another thread when the port is
/// closed delays it until then). If this function fails, `free_user_data` is called
/// before it returns (with that same exception).
///
/// Errors: `CM_ERR_INVALID_HANDLE`, also when another thread (or the callback, or a free
/// function this call runs) closes or transfers the port while this call runs: nothing
/// stays registered then, and the callback is not called with the released handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_port_set_notify(
    port: cm_port,
    callback: cm_notify_fn,
    user_data: *mut c_void,
    free_user_data: cm_free_fn,
) -> cm_status {
    let notify = callback.map(|f| {
        Arc::new(Notify {
            f,
            user_data,
            free: free_user_data,
        })
    });
    if notify.is_none()
        && let Some(free) = free_user_data
    {
        // SAFETY: the caller asked for `free` to run once when the callback is not used.
        unsafe { free(user_data) };
    }
    guard(move || {
        let (p, wake) = wake_of(port)?;
        let installing = notify.is_some();
        let old = wake.replace_notify(notify)?;
        // Outside every lock: the old free function is user code.
        drop(old);
        install_hook(&p, &wake, installing)?;
        Ok(CM_OK)
    })
}

/// A file descriptor that is readable while the port has something to read (a message
/// or the close), for poll/epoll/select/libuv loops; it also starts the port.
///
/// Use: wait for `POLLIN`, then call `cm_port_recv` with timeout 0 until it returns
/// `CM_EMPTY` (which makes the fd unreadable again until the next arrival) or
/// `CM_CLOSED`. Never read or write the fd yourself.
///
/// Ownership: the fd belongs to the port handle: do not close it; it is closed by
/// `cm_port_close` or when the port is transferred. Repeated calls return the same fd.
/// Linux only (an eventfd).
///
/// Errors: `CM_ERR_INVALID_HANDLE`, also when another thread (or the notify callback,
/// which this call may run) closes or transfers the port while this call runs: `*fd` is
/// not written then. `CM_ERR_IO` when the eventfd cannot be created.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_port_fd(port: cm_port, fd: *mut i32) -> cm_status {
    guard(|| {
        not_null(fd, "fd is NULL")?;
        let (p, wake) = wake_of(port)?;
        if wake.is_retired() {
            return gone(port);
        }
        let raw = match wake.fd.get() {
            Some(e) => e.0.as_raw_fd(),
            None => {
                let e = EventFd::new()?;
                let raw = e.0.as_raw_fd();
                if wake.fd.set(e).is_err() {
                    // Another thread created it first.
                    wake.fd.get().map_or(-1, |e| e.0.as_raw_fd())
                } else {
                    raw
                }
            }
        };
        install_hook(&p, &wake, true)?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { put(fd, raw) };
        Ok(CM_OK)
    })
}

/// Sets flow-control limits on this port's queue (0 = no limit; both 0 = off, the
/// default). Limits never drop or refuse a message: they make the partner's
/// `cm_port_is_ready` report false while this queue is at or above a limit. Limits move
/// with the port when it is transferred.
#[unsafe(no_mangle)]
pub extern "C" fn cm_port_set_limits(
    port: cm_port,
    max_messages: usize,
    max_bytes: usize,
) -> cm_status {
    guard(|| {
        let some = |n: usize| (n != 0).then_some(n);
        let limits = Limits {
            max_messages: some(max_messages),
            max_bytes: some(max_bytes),
        };
        get_port(port)?.set_limits(limits);
        Ok(CM_OK)
    })
}

/// `*ready` = whether the partner's queue is below its limits, so that posting now adds
/// no pressure (true when it has no limits, and when there is no partner any more).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_port_is_ready(port: cm_port, ready: *mut bool) -> cm_status {
    guard(|| {
        not_null(ready, "ready is NULL")?;
        let r = get_port(port)?.is_ready();
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { put(ready, r) };
        Ok(CM_OK)
    })
}

/// `*entangled` = whether the port still has a partner to post to.
///
/// False from the moment the partner is closed (or dropped, or lost in a message that is
/// never delivered), even while messages it posted before and its close are still
/// queued here: closing disentangles both ports at once (spec A8, D1), posts from this
/// side go nowhere from then on, and what was queued is still received (spec D4), then
/// `CM_CLOSED`. `cm_port_stats`'s `closed` turns true at the same moment. A partner that
/// was transferred is still a partner (its new owner receives what this side posts).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_port_is_entangled(port: cm_port, entangled: *mut bool) -> cm_status {
    guard(|| {
        not_null(entangled, "entangled is NULL")?;
        let r = get_port(port)?.is_entangled();
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { put(entangled, r) };
        Ok(CM_OK)
    })
}

/// Fills `*stats` (caller-owned) with the port's queue statistics.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_port_stats(port: cm_port, stats: *mut cm_stats) -> cm_status {
    guard(|| {
        not_null(stats, "stats is NULL")?;
        let s = get_port(port)?.stats();
        let out = cm_stats {
            queued_messages: s.queued_messages,
            queued_bytes: s.queued_bytes,
            closed: s.closed,
            max_messages: s.limits.max_messages.unwrap_or(0),
            max_bytes: s.limits.max_bytes.unwrap_or(0),
        };
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { put(stats, out) };
        Ok(CM_OK)
    })
}

/// Moves the port out of the C API as a single-use number (`*token`) that any thread
/// of this process can adopt: `cm_port_import` in C, or the Python/Node bindings' own
/// import. The handle becomes invalid (as after a transfer); messages queued or arriving
/// meanwhile wait for the new owner.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_port_export(port: cm_port, token: *mut u64) -> cm_status {
    guard(|| {
        not_null(token, "token is NULL")?;
        let p = get_port(port)?;
        let t = p.export_handle()?;
        if let Ok(object) = handles::remove(port, |_| Ok(())) {
            retire(object);
        }
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { put(token, t) };
        Ok(CM_OK)
    })
}

/// Adopts a port exported (by `cm_port_export` or another binding) under `token`;
/// `*port` receives a new handle owned by the caller. A token works once:
/// `CM_ERR_INVALID_HANDLE` for a token never issued or already imported.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_port_import(token: u64, port: *mut cm_port) -> cm_status {
    guard(|| {
        not_null(port, "port is NULL")?;
        let Some(p) = MessagePort::import_handle(token) else {
            return fail(
                CM_ERR_INVALID_HANDLE,
                format!(
                    "no exported port under token {token:#x} (never issued, or already imported)"
                ),
            );
        };
        let h = new_port_handle(p)?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { put(port, h) };
        Ok(CM_OK)
    })
}

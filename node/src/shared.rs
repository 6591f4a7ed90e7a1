//! SharedArrayBuffers travel shared, not copied (spec G2), as in Node's own messaging.
//!
//! The sender's side-table entry for a `SharedArrayBuffer` is a [`Buffer`] over the
//! buffer's memory that holds a handle on V8's backing store (a `std::shared_ptr`, see
//! `cm_v8_shared_store` in v8_blocks.cc). The wire format marks the entry as shared
//! memory (tag 0xCB18, docs/wire-format.md). A receiver in any isolate finds the store
//! again by the buffer's address ([`receive`]) and makes a `SharedArrayBuffer` over that
//! same store: both sides see each other's writes, `Atomics` work across them, and a
//! growable buffer stays growable.
//!
//! This needs V8's API (blocks.rs decides whether this node allows it); without it a
//! `SharedArrayBuffer` is a DataCloneError, as before. The core never reads the bytes of
//! such a buffer (other threads may write them at any time): it only moves the handle,
//! and the other faces' decoders refuse tag 0xCB18 before looking at the buffer.

pub(crate) use imp::{live, receive, share};

#[cfg(cm_v8)]
mod imp {
    use std::collections::HashMap;
    use std::ffi::c_void;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};

    use channel_messaging::Buffer;
    use napi::sys;

    unsafe extern "C" {
        fn cm_v8_shared_store(
            value: sys::napi_value,
            data: *mut *mut c_void,
            len: *mut usize,
        ) -> *mut c_void;
        fn cm_v8_store_release(handle: *mut c_void);
        fn cm_v8_shared_array_buffer(handle: *mut c_void) -> sys::napi_value;
    }

    /// One handle on a SharedArrayBuffer's backing store, and where its memory was.
    struct Store {
        handle: *mut c_void,
        data: *mut u8,
        len: usize,
    }

    // SAFETY: the handle is a heap `std::shared_ptr<v8::BackingStore>`, whose count is
    // atomic; it is only copied (cm_v8_shared_array_buffer) and deleted, from any thread.
    unsafe impl Send for Store {}
    // SAFETY: as above; `&Store` gives no access to the memory itself.
    unsafe impl Sync for Store {}

    impl Store {
        fn new(handle: *mut c_void, data: *mut u8, len: usize) -> Arc<Store> {
            HANDLES.fetch_add(1, Ordering::AcqRel);
            Arc::new(Store { handle, data, len })
        }
    }

    impl Drop for Store {
        fn drop(&mut self) {
            if !self.data.is_null() {
                let mut stores = stores();
                let me = self as *const Store;
                if stores
                    .get(&(self.data as usize))
                    .is_some_and(|w| w.as_ptr() == me)
                {
                    stores.remove(&(self.data as usize));
                }
            }
            HANDLES.fetch_sub(1, Ordering::AcqRel);
            // SAFETY: the handle came from cm_v8_shared_store and is released once, here.
            unsafe {
                cm_v8_store_release(self.handle);
            }
        }
    }

    /// The owner of a shared side-table [`Buffer`].
    struct Owner(Arc<Store>);

    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            let s = &self.0;
            if s.data.is_null() {
                return &[];
            }
            // SAFETY: the store keeps `data[..len]` alive (a shared buffer never shrinks).
            // Nothing in this addon or the core reads these bytes: they only give the
            // buffer its address (also when empty: a growable buffer's memory is reserved
            // from the start) and length.
            unsafe { std::slice::from_raw_parts(s.data, s.len) }
        }
    }

    /// The stores of shared buffers still referred to by some message, by address.
    static STORES: LazyLock<Mutex<HashMap<usize, Weak<Store>>>> = LazyLock::new(Mutex::default);
    /// How many [`Store`]s exist: one per shared memory that queued messages carry
    /// (receives skip the lock while there is none).
    static HANDLES: AtomicUsize = AtomicUsize::new(0);

    fn stores() -> MutexGuard<'static, HashMap<usize, Weak<Store>>> {
        STORES.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many SharedArrayBuffers' memories queued messages hold, each counted once however
    /// many messages carry it (`bufferPoolStats().shared`).
    pub(crate) fn live() -> usize {
        HANDLES.load(Ordering::Acquire)
    }

    /// A side-table buffer sharing the memory of `value`, when it is a SharedArrayBuffer
    /// and this process uses V8's API (blocks.rs); `None` otherwise.
    ///
    /// # Safety
    ///
    /// `env` and `value` come from the current N-API callback.
    pub(crate) unsafe fn share(env: sys::napi_env, value: sys::napi_value) -> Option<Buffer> {
        if !crate::blocks::v8_enabled(env) {
            return None;
        }
        let mut data = std::ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: `value` is a live value of the current callback.
        let handle = unsafe { cm_v8_shared_store(value, &mut data, &mut len) };
        if handle.is_null() {
            return None;
        }
        if data.is_null() {
            // no memory (an empty buffer): nothing for a receiver to find
            return Some(Buffer::from_owner(Owner(Store::new(
                handle,
                data.cast(),
                len,
            ))));
        }
        let mut stores = stores();
        // Messages still in flight with this memory hold a store for it already: share
        // that one, so that the address finds a store as long as any of them is queued
        // (one store per message would leave the address to whichever came last, and
        // its drop would hide the memory from receivers of the others).
        if let Some(store) = stores.get(&(data as usize)).and_then(Weak::upgrade) {
            drop(stores);
            // SAFETY: the handle just made, released once (the store holds its own).
            unsafe { cm_v8_store_release(handle) };
            return Some(Buffer::from_owner(Owner(store)));
        }
        let store = Store::new(handle, data.cast(), len);
        stores.insert(data as usize, Arc::downgrade(&store));
        drop(stores);
        Some(Buffer::from_owner(Owner(store)))
    }

    /// For a received side-table buffer: a SharedArrayBuffer over the same memory when the
    /// buffer is a shared one ([`share`]), else `None` (an ordinary buffer; a shared buffer
    /// without memory, an empty one, arrives as an empty `ArrayBuffer`, which the decoder
    /// turns into an empty `SharedArrayBuffer`).
    ///
    /// # Safety
    ///
    /// Called from a N-API callback (there is a current isolate and a handle scope).
    pub(crate) unsafe fn receive(b: &Buffer) -> Option<sys::napi_value> {
        if HANDLES.load(Ordering::Acquire) == 0 {
            return None;
        }
        // (memory at a shared buffer's address is that buffer's while its store lives)
        let store = stores().get(&(b.as_ptr() as usize))?.upgrade()?;
        // SAFETY: the store's handle is live (`store` holds it); the caller's contract gives
        // the isolate and the handle scope.
        let sab = unsafe { cm_v8_shared_array_buffer(store.handle) };
        (!sab.is_null()).then_some(sab)
    }
}

/// Without node's headers the addon keeps to N-API: nothing is shared, and posting a
/// SharedArrayBuffer is a DataCloneError (index.js checks `bufferPoolStats().backend`).
#[cfg(not(cm_v8))]
mod imp {
    use channel_messaging::Buffer;
    use napi::sys;

    pub(crate) fn live() -> usize {
        0
    }

    pub(crate) unsafe fn share(_env: sys::napi_env, _value: sys::napi_value) -> Option<Buffer> {
        None
    }

    pub(crate) unsafe fn receive(_b: &Buffer) -> Option<sys::napi_value> {
        None
    }
}

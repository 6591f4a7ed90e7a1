//! The C ABI of channel-messaging (see include/channel_messaging.h, generated from this
//! crate by cbindgen).
//!
//! Conventions, for every `cm_*` function:
//!
//! - Ports, port collections and broadcast channels are 64-bit generational integer
//!   handles ([`handles`]); 0 is never valid, and a stale, closed, transferred or
//!   never-issued handle gives `CM_ERR_INVALID_HANDLE`, never undefined behaviour.
//! - Functions return a [`cm_status`] whose numbers never change; the thread-local
//!   [`cm_last_error_message`] explains the last failure ([`cm_last_error_status`] is
//!   its status, for the functions that fail with a NULL pointer).
//! - No panic crosses the boundary (`CM_ERR_PANIC`); NULL pointers are refused
//!   (`CM_ERR_NULL_POINTER`).
//! - Each function's documentation says who owns every pointer it takes or returns.
//!
//! The semantics (transfer, close, ordering, flow control) are the core crate's; this
//! crate converts values and adapts wake-ups, nothing more.
//!
//! # Safety
//!
//! Every `unsafe extern "C"` function has the same contract, stated once here instead of
//! in a `# Safety` section each (those would fill the generated header): each pointer
//! argument is NULL or valid for what its documentation says (reads of the given length,
//! a writable out-pointer, a live object of the named type owned as documented). NULL is
//! always checked; the rest is the C caller's promise.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

mod error;
mod group;
mod handles;
mod message;
mod port;
mod reader;
mod value;
mod writer;

pub use error::{cm_last_error_message, cm_last_error_status, cm_status};
pub use group::*;
pub use message::*;
pub use port::*;
pub use reader::*;
pub use value::*;
pub use writer::*;

/// The version of the C ABI: bumped whenever a function's signature or meaning changes
/// incompatibly. Compare [`cm_abi_version`] with it at run time.
pub const CM_ABI_VERSION: u32 = 1;

/// The library's version as a NUL-terminated string, for example `"0.1.0"` (the same as
/// `CM_VERSION` at build time). The pointer is static: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn cm_version() -> *const std::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The ABI version of the loaded library (`CM_ABI_VERSION` of the header it was built
/// with). A program built against this header should check
/// `cm_abi_version() == CM_ABI_VERSION` before anything else.
#[unsafe(no_mangle)]
pub extern "C" fn cm_abi_version() -> u32 {
    CM_ABI_VERSION
}

/// The library's version as one number: `major * 10000 + minor * 100 + patch` (the same
/// as `CM_VERSION_NUMBER` at build time).
#[unsafe(no_mangle)]
pub extern "C" fn cm_version_number() -> u32 {
    const fn parse(s: &str) -> u32 {
        let b = s.as_bytes();
        let mut i = 0;
        let mut n = 0;
        while i < b.len() {
            n = n * 10 + (b[i] - b'0') as u32;
            i += 1;
        }
        n
    }
    const N: u32 = parse(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
        + parse(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + parse(env!("CARGO_PKG_VERSION_PATCH"));
    N
}

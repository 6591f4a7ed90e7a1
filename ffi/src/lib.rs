//! The C ABI of channel-messaging (see include/channel_messaging.h).

/// The library's version as a NUL-terminated string, for example `"0.1.0"`.
/// The pointer is static: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn cm_version() -> *const std::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

//! The native addon behind the `channel-messaging` npm package.

use napi_derive::napi;

/// The library's version.
#[napi]
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

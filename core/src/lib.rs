//! The web's Channel Messaging API for native threads.
//!
//! (Crate docs with a runnable example land with the port layer.)

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod buffer;
mod error;
mod value;
pub mod wire;

pub use buffer::Buffer;
pub use error::DataCloneError;
pub use value::{BigInt, ErrorName, ErrorValue, Value, View, ViewKind};

// --- wire layer exports (owned by the wire-format work; add re-exports here) ---
// --- end wire layer exports ---

// --- port layer (owned by the port work) ---
// --- end port layer ---

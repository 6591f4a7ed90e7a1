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

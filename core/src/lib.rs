//! The web's Channel Messaging API for native threads: `MessageChannel`, `MessagePort`,
//! transfer, `close()`, `BroadcastChannel` and a broadcasting `PortCollection`, with the
//! semantics of the HTML standard.
//!
//! A [`MessageChannel`] gives two entangled [`MessagePort`]s. What one posts, the other
//! receives, in order. Messages are structured-clone data ([`Value`], or any serde type),
//! encoded once when posted ([`wire`], docs/wire-format.md). Ports travel inside messages:
//! a transferred port takes its queue with it, including messages still on their way, and
//! the handle it was sent from becomes inert. `close()` is in-band: the partner gets every
//! earlier message, then sees the close.
//!
//! ```
//! use std::thread;
//! use channel_messaging::{MessageChannel, RecvError, Value};
//!
//! let (main_port, worker_port) = MessageChannel::new().into_ports();
//! let worker = thread::spawn(move || {
//!     // Answer every request until the other side closes.
//!     loop {
//!         match worker_port.recv() {
//!             Ok(event) => {
//!                 let n = event.data.as_i64().unwrap();
//!                 worker_port.post_message(&Value::Int(n * n), &[]).unwrap();
//!             }
//!             Err(RecvError::Closed) => break,
//!             Err(e) => panic!("{e}"),
//!         }
//!     }
//! });
//!
//! for n in 1..=3 {
//!     main_port.post_message(&Value::Int(n), &[]).unwrap();
//!     assert_eq!(main_port.recv().unwrap().data, Value::Int(n * n));
//! }
//! main_port.close();
//! worker.join().unwrap();
//! ```
//!
//! Where the spec leaves a choice, this crate follows DESIGN.md §7: the partner observes a
//! close (also when a port is dropped without `close()`); messages already queued at a
//! port that closes are still received; a transferred-away handle is inert at once;
//! transfer-list checks are all-or-nothing; ports inside an undecodable message are
//! closed; flow control is opt-in ([`MessagePort::set_limits`]).

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
pub use wire::{DecodeError, DecodeErrorKind};
// --- end wire layer exports ---

// --- port layer (owned by the port work) ---
#[cfg(not(loom))]
mod broadcast;
#[cfg(not(loom))]
mod collection;
#[cfg(not(loom))]
pub mod pool;
mod port;
mod sync;

#[cfg(not(loom))]
pub use broadcast::BroadcastChannel;
#[cfg(not(loom))]
pub use collection::PortCollection;
#[cfg(not(loom))]
pub use port::WeakPort;
pub use port::error::{InvalidStateError, PostError, RecvError, RecvTimeoutError, TryRecvError};
pub use port::{
    Limits, Message, MessageChannel, MessageEvent, MessagePort, PortStats, Ready, ReadyHook, Recv,
};
// --- end port layer ---

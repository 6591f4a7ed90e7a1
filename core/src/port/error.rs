//! Errors of the port layer.

use std::fmt;

use crate::DataCloneError;
use crate::wire::DecodeError;

/// Why a blocking [`recv`](crate::MessagePort::recv) returned without a message.
#[derive(Debug, Clone, PartialEq)]
pub enum RecvError {
    /// The port will never receive again: its partner closed (or was dropped) and every
    /// message sent before that has been received; or this port was closed, or
    /// transferred away. Returned again by every later call.
    Closed,
    /// The next message could not be decoded (the web's `messageerror`). That message is
    /// consumed and the ports it carried are closed; the next call goes on with the
    /// message after it.
    MessageError(DecodeError),
}

/// Why [`try_recv`](crate::MessagePort::try_recv) returned without a message.
#[derive(Debug, Clone, PartialEq)]
pub enum TryRecvError {
    /// No message is queued now.
    Empty,
    /// As [`RecvError::Closed`].
    Closed,
    /// As [`RecvError::MessageError`].
    MessageError(DecodeError),
}

/// Why [`recv_timeout`](crate::MessagePort::recv_timeout) returned without a message.
#[derive(Debug, Clone, PartialEq)]
pub enum RecvTimeoutError {
    /// No message arrived before the timeout.
    Timeout,
    /// As [`RecvError::Closed`].
    Closed,
    /// As [`RecvError::MessageError`].
    MessageError(DecodeError),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str("the port is closed"),
            RecvError::MessageError(e) => write!(f, "messageerror: {e}"),
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no message is queued"),
            TryRecvError::Closed => f.write_str("the port is closed"),
            TryRecvError::MessageError(e) => write!(f, "messageerror: {e}"),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting for a message"),
            RecvTimeoutError::Closed => f.write_str("the port is closed"),
            RecvTimeoutError::MessageError(e) => write!(f, "messageerror: {e}"),
        }
    }
}

impl std::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecvError::MessageError(e) => Some(e),
            RecvError::Closed => None,
        }
    }
}
impl std::error::Error for TryRecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TryRecvError::MessageError(e) => Some(e),
            _ => None,
        }
    }
}
impl std::error::Error for RecvTimeoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecvTimeoutError::MessageError(e) => Some(e),
            _ => None,
        }
    }
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Closed => TryRecvError::Closed,
            RecvError::MessageError(d) => TryRecvError::MessageError(d),
        }
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Closed => RecvTimeoutError::Closed,
            RecvError::MessageError(d) => RecvTimeoutError::MessageError(d),
        }
    }
}

/// The web's `InvalidStateError`: the object is in a state that does not allow the call,
/// such as posting on a closed [`BroadcastChannel`](crate::BroadcastChannel) (spec I3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidStateError {
    message: &'static str,
}

impl InvalidStateError {
    #[cfg_attr(loom, allow(dead_code))] // used by PortCollection and BroadcastChannel
    pub(crate) const fn new(message: &'static str) -> Self {
        InvalidStateError { message }
    }

    /// The explanation.
    pub fn message(&self) -> &str {
        self.message
    }
}

impl fmt::Display for InvalidStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InvalidStateError: {}", self.message)
    }
}

impl std::error::Error for InvalidStateError {}

/// Why [`BroadcastChannel::post_message`](crate::BroadcastChannel::post_message) failed.
#[derive(Debug, Clone, PartialEq)]
pub enum PostError {
    /// The channel is closed (checked before the message is looked at, spec I3).
    InvalidState(InvalidStateError),
    /// The message cannot be cloned.
    DataClone(DataCloneError),
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::InvalidState(e) => e.fmt(f),
            PostError::DataClone(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PostError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PostError::InvalidState(e) => Some(e),
            PostError::DataClone(e) => Some(e),
        }
    }
}

impl From<DataCloneError> for PostError {
    fn from(e: DataCloneError) -> Self {
        PostError::DataClone(e)
    }
}

impl From<InvalidStateError> for PostError {
    fn from(e: InvalidStateError) -> Self {
        PostError::InvalidState(e)
    }
}

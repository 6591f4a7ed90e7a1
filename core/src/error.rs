//! Errors shared by the message layer and the port layer.

use std::borrow::Cow;
use std::fmt;

/// A value could not be cloned or transferred (the web's `DataCloneError`).
///
/// Raised synchronously by `post_message` and by the encoders, before anything has
/// been detached or sent: a failed post leaves every port and buffer as it was.
/// The message names what failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCloneError {
    message: Cow<'static, str>,
}

impl DataCloneError {
    /// A `DataCloneError` with this explanation.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        DataCloneError {
            message: message.into(),
        }
    }

    /// The explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for DataCloneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataCloneError: {}", self.message)
    }
}

impl std::error::Error for DataCloneError {}

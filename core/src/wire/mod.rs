//! The wire format of messages (docs/wire-format.md).

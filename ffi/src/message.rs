//! Received messages: the decoded value, the raw CBOR and side table, the ports.

use std::cell::OnceCell;

use channel_messaging::{Buffer, Message, MessagePort, Value, wire};

use crate::error::*;
use crate::port::{cm_port, new_port_handle};
use crate::value::{boxed, cm_buffer, cm_value};

/// A received message: its value, its raw encoding and side table, and the ports it
/// carried. Returned by the receive functions; owned by the caller, released with
/// `cm_message_free` (which closes the ports that were not taken). Not thread-safe: do
/// not use one message from two threads at once.
pub struct cm_message {
    raw: Raw,
    port_count: u32,
    value: Option<Value>,
    value_taken: bool,
    ports: Vec<Option<MessagePort>>,
    /// Bytes that `cm_message_read` computed (BigInt magnitudes) and lent to the caller
    /// as event pointers: kept until the message is freed.
    kept: Vec<Vec<u8>>,
}

impl std::fmt::Debug for cm_message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("cm_message")
            .field("port_count", &self.port_count)
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

enum Raw {
    /// The message as it travelled.
    Core(Message),
    /// Only the decoded value is known (a broadcast received with a timeout): the bytes
    /// are encoded again on demand.
    Reencode(OnceCell<(Vec<u8>, Vec<Buffer>)>),
}

impl cm_message {
    /// Wraps a received message, decoding it now when `decode` is true (a messageerror
    /// then drops the message, closing its ports, as the core does).
    pub(crate) fn from_core(mut m: Message, decode: bool) -> Res<Self> {
        let port_count = u32::try_from(m.port_count()).unwrap_or(u32::MAX);
        let value = if decode {
            Some(wire::decode_value(m.bytes(), m.buffers(), port_count)?)
        } else {
            None
        };
        let ports = m.take_ports().into_iter().map(Some).collect();
        Ok(cm_message {
            raw: Raw::Core(m),
            port_count,
            value,
            value_taken: false,
            ports,
            kept: Vec::new(),
        })
    }

    /// A message known only by its decoded value and ports.
    pub(crate) fn from_event(ev: channel_messaging::MessageEvent) -> Self {
        cm_message {
            raw: Raw::Reencode(OnceCell::new()),
            port_count: u32::try_from(ev.ports.len()).unwrap_or(u32::MAX),
            value: Some(ev.data),
            value_taken: false,
            ports: ev.ports.into_iter().map(Some).collect(),
            kept: Vec::new(),
        }
    }

    fn encoded(&self) -> Res<(&[u8], &[Buffer])> {
        match &self.raw {
            Raw::Core(m) => Ok((m.bytes(), m.buffers())),
            Raw::Reencode(cell) => {
                if cell.get().is_none() {
                    let Some(v) = &self.value else {
                        return fail(
                            CM_ERR_INVALID_STATE,
                            "the value was taken and the message bytes were not kept",
                        );
                    };
                    let (mut bytes, mut buffers) = (Vec::new(), Vec::new());
                    wire::encode_value(v, self.port_count, &mut bytes, &mut buffers)?;
                    let _ = cell.set((bytes, buffers));
                }
                let (b, s) = cell
                    .get()
                    .map_or((&[][..], &[][..]), |(b, s)| (&b[..], &s[..]));
                Ok((b, s))
            }
        }
    }

    /// The encoded bytes, side table and port count (for a streaming reader).
    /// Keeps `bytes` alive as long as the message (see `kept`).
    pub(crate) fn keep(&mut self, bytes: Vec<Vec<u8>>) {
        self.kept.extend(bytes);
    }

    pub(crate) fn parts(&self) -> Res<(&[u8], &[Buffer], u32)> {
        let (b, s) = self.encoded()?;
        Ok((b, s, self.port_count))
    }

    fn decoded(&mut self) -> Res<&Value> {
        if self.value_taken {
            return fail(
                CM_ERR_INVALID_STATE,
                "the value was already taken with cm_message_take_value",
            );
        }
        if self.value.is_none() {
            let (bytes, buffers) = self.encoded()?;
            let v = wire::decode_value(bytes, buffers, self.port_count)?;
            self.value = Some(v);
        }
        match &self.value {
            Some(v) => Ok(v),
            None => fail(CM_ERR_INVALID_STATE, "no value"),
        }
    }
}

/// Checks and dereferences a message pointer.
///
/// # Safety
///
/// `m` must be NULL or a live message not used elsewhere meanwhile.
unsafe fn msg_mut<'a>(m: *mut cm_message) -> Res<&'a mut cm_message> {
    not_null(m, "message is NULL")?;
    // SAFETY: non-NULL; the caller guarantees a live, exclusively used message.
    Ok(unsafe { &mut *m })
}

/// `*value` = the message's value, decoded now if it was received with
/// `cm_port_recv_raw`. Borrowed: valid until `cm_message_free` (or
/// `cm_message_take_value`). `CM_ERR_MESSAGE` when the bytes cannot be decoded.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_message_value(
    message: *mut cm_message,
    value: *mut *const cm_value,
) -> cm_status {
    guard(|| {
        not_null(value, "value is NULL")?;
        // SAFETY: the caller passes a live message.
        let m = unsafe { msg_mut(message)? };
        let v = m.decoded()?;
        // SAFETY: checked non-NULL; writable by contract. cm_value wraps Value
        // transparently.
        unsafe { put(value, (&raw const *v).cast::<cm_value>()) };
        Ok(CM_OK)
    })
}

/// `*value` = the message's value, moved out (no copy): a new value owned by the caller
/// (`cm_value_free`). Later `cm_message_value` calls fail with `CM_ERR_INVALID_STATE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_message_take_value(
    message: *mut cm_message,
    value: *mut *mut cm_value,
) -> cm_status {
    guard(|| {
        not_null(value, "value is NULL")?;
        // SAFETY: the caller passes a live message.
        let m = unsafe { msg_mut(message)? };
        m.decoded()?;
        // Keep the bytes available before the value goes.
        if matches!(m.raw, Raw::Reencode(_)) {
            m.encoded()?;
        }
        let Some(v) = m.value.take() else {
            return fail(CM_ERR_INVALID_STATE, "no value");
        };
        m.value_taken = true;
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(value, boxed(v)) };
        Ok(CM_OK)
    })
}

/// `*count` = how many ports the message carries (its transfer list's length).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_message_port_count(
    message: *const cm_message,
    count: *mut usize,
) -> cm_status {
    guard(|| {
        not_null(message, "message is NULL")?;
        not_null(count, "count is NULL")?;
        // SAFETY: both checked non-NULL; the caller passes a live message and a writable
        // out-pointer.
        unsafe { put(count, (*message).ports.len()) };
        Ok(CM_OK)
    })
}

/// Adopts the message's port number `index` (a `CM_KIND_PORT` value `index` in the data
/// refers to it): `*port` = a new handle owned by the caller (`cm_port_close`). The port
/// starts with its queue not started and receives every message queued or in flight for
/// it. Each port can be taken once (`CM_ERR_INVALID_STATE` the second time); ports not
/// taken are closed by `cm_message_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_message_take_port(
    message: *mut cm_message,
    index: usize,
    port: *mut cm_port,
) -> cm_status {
    guard(|| {
        not_null(port, "port is NULL")?;
        // SAFETY: the caller passes a live message.
        let m = unsafe { msg_mut(message)? };
        let n = m.ports.len();
        let Some(slot) = m.ports.get_mut(index) else {
            return fail(
                CM_ERR_OUT_OF_RANGE,
                format!("port index {index} out of range (the message has {n})"),
            );
        };
        let Some(p) = slot.take() else {
            return fail(
                CM_ERR_INVALID_STATE,
                format!("port {index} was already taken"),
            );
        };
        let h = new_port_handle(p)?;
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(port, h) };
        Ok(CM_OK)
    })
}

/// The message's raw encoding (docs/wire-format.md: CBOR with the format header):
/// `*bytes`, `*len`, borrowed, valid until `cm_message_free`. Buffers the bytes refer to
/// by side-table index are `cm_message_buffer(message, i)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_message_bytes(
    message: *const cm_message,
    bytes: *mut *const u8,
    len: *mut usize,
) -> cm_status {
    guard(|| {
        not_null(message, "message is NULL")?;
        not_null(bytes, "bytes is NULL")?;
        not_null(len, "len is NULL")?;
        // SAFETY: checked non-NULL; the caller passes a live message.
        let (b, _) = unsafe { (*message).encoded()? };
        // SAFETY: checked non-NULL; writable by contract.
        unsafe {
            put(bytes, b.as_ptr());
            put(len, b.len());
        }
        Ok(CM_OK)
    })
}

/// `*count` = the number of buffers in the message's side table.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_message_buffer_count(
    message: *const cm_message,
    count: *mut usize,
) -> cm_status {
    guard(|| {
        not_null(message, "message is NULL")?;
        not_null(count, "count is NULL")?;
        // SAFETY: checked non-NULL; the caller passes a live message.
        let (_, s) = unsafe { (*message).encoded()? };
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(count, s.len()) };
        Ok(CM_OK)
    })
}

/// `*buffer` = side-table buffer `index` of the message, shared (no copy): a new
/// `cm_buffer` owned by the caller (`cm_buffer_free`), valid after the message is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_message_buffer(
    message: *const cm_message,
    index: usize,
    buffer: *mut *mut cm_buffer,
) -> cm_status {
    guard(|| {
        not_null(message, "message is NULL")?;
        not_null(buffer, "buffer is NULL")?;
        // SAFETY: checked non-NULL; the caller passes a live message.
        let (_, s) = unsafe { (*message).encoded()? };
        let Some(b) = s.get(index) else {
            return fail(
                CM_ERR_OUT_OF_RANGE,
                format!(
                    "buffer index {index} out of range (the message has {})",
                    s.len()
                ),
            );
        };
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(buffer, Box::into_raw(Box::new(cm_buffer(b.clone())))) };
        Ok(CM_OK)
    })
}

/// Releases a message; ports it carried that were not taken are closed (their partners
/// see the close). NULL is ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cm_message_free(message: *mut cm_message) {
    let _ = guard(|| {
        if !message.is_null() {
            // SAFETY: messages come from Box::into_raw in this crate; the caller gives
            // this one up.
            drop(unsafe { Box::from_raw(message) });
        }
        Ok(CM_OK)
    });
}

//! [`Buffer`]: the bytes of an `ArrayBuffer`, movable between threads without copying.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// The contents of an `ArrayBuffer`: immutable, reference-counted bytes.
///
/// A `Buffer` is how byte payloads travel in a message. Cloning one, or posting a
/// [`Value`](crate::Value) that holds one, shares the bytes instead of copying them;
/// because a `Buffer` is immutable, sharing is indistinguishable from the copy that
/// structured clone asks for. A receiver that wants to write gets a `Vec<u8>` with
/// [`Buffer::into_vec`], which copies only when the bytes are still shared.
///
/// Moving your only handle into a message is a *transfer*: the bytes reach the
/// receiver without being copied and [`Buffer::into_vec`] there is free.
///
/// # Examples
///
/// ```
/// use channel_messaging::Buffer;
///
/// let buf = Buffer::from(vec![1u8, 2, 3]);
/// let shared = buf.clone(); // no copy
/// assert_eq!(&shared[..], &[1, 2, 3]);
/// drop(shared);
/// assert_eq!(buf.into_vec(), vec![1, 2, 3]); // unique again: no copy
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Buffer(Bytes);

impl Buffer {
    /// An empty buffer (what a detached `ArrayBuffer` reads as).
    pub const fn new() -> Self {
        Buffer(Bytes::new())
    }

    /// Copies `bytes` into a new buffer.
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        Buffer(Bytes::copy_from_slice(bytes))
    }

    /// Wraps memory owned by someone else (a foreign allocation, a memory map, ...)
    /// without copying it. `owner` is dropped when the last handle to the bytes goes.
    pub fn from_owner<T>(owner: T) -> Self
    where
        T: AsRef<[u8]> + Send + 'static,
    {
        Buffer(Bytes::from_owner(owner))
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Whether this handle is the only one, so that [`Buffer::into_vec`] will not copy.
    pub fn is_unique(&self) -> bool {
        self.0.is_unique()
    }

    /// The bytes as a `Vec<u8>`: without a copy when this is the only handle and the
    /// buffer was made from a `Vec`, with one copy otherwise.
    pub fn into_vec(self) -> Vec<u8> {
        match self.0.try_into_mut() {
            Ok(unique) => unique.into(),
            Err(shared) => shared.to_vec(),
        }
    }

    /// The underlying [`bytes::Bytes`].
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Buffer {
    fn from(v: Vec<u8>) -> Self {
        Buffer(Bytes::from(v))
    }
}

impl From<Box<[u8]>> for Buffer {
    fn from(v: Box<[u8]>) -> Self {
        Buffer(Bytes::from(v))
    }
}

impl From<&'static [u8]> for Buffer {
    fn from(v: &'static [u8]) -> Self {
        Buffer(Bytes::from_static(v))
    }
}

impl From<Bytes> for Buffer {
    fn from(v: Bytes) -> Self {
        Buffer(v)
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 32;
        write!(f, "Buffer({} bytes: ", self.len())?;
        for b in self.0.iter().take(SHOWN) {
            write!(f, "{b:02x}")?;
        }
        if self.len() > SHOWN {
            f.write_str("..")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_vec_round_trips_without_copy() {
        let v = vec![7u8; 1 << 16];
        let ptr = v.as_ptr();
        let b = Buffer::from(v);
        let back = b.into_vec();
        assert_eq!(
            back.as_ptr(),
            ptr,
            "a unique buffer must give its allocation back"
        );
    }

    #[test]
    fn shared_buffer_copies_on_into_vec() {
        let b = Buffer::from(vec![1u8, 2, 3]);
        let c = b.clone();
        let v = b.into_vec();
        assert_eq!(v, vec![1, 2, 3]);
        assert_eq!(&c[..], &[1, 2, 3]);
    }

    #[test]
    fn from_owner_keeps_owner_alive() {
        struct Owner(Vec<u8>);
        impl AsRef<[u8]> for Owner {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
        let b = Buffer::from_owner(Owner(vec![9, 8]));
        let c = b.clone();
        drop(b);
        assert_eq!(&c[..], &[9, 8]);
    }
}

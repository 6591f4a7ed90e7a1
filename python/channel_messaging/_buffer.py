"""Buffer: bytes that move between threads without a copy."""

from typing import Any

from . import _native
from ._errors import DetachedError

__all__ = ["Buffer"]


class Buffer(_native._BufferBase):
    """A mutable, bytes-like block of memory (the web's ArrayBuffer) that a post can
    transfer without copying.

    ``Buffer(n)`` is ``n`` zero bytes (``MemoryError`` when that much memory cannot be
    had, ``OverflowError`` for a size beyond any address); ``Buffer(data)`` copies any
    bytes-like object.
    It supports the buffer protocol (``memoryview(buf)``, ``bytes(buf)``, writing through
    a memoryview) and ``len()``.

    Listed in a post's ``transfer``, its memory goes to the receiver as is (the receiving
    Buffer has the same address) and this object is *detached*: its length is 0 and using
    its bytes raises :class:`DetachedError`. A Buffer with a live memoryview cannot be
    transferred (release the view first, e.g. ``with memoryview(buf) as m: ...``).
    Received ArrayBuffers arrive as Buffers.

    Memory: when a Buffer of 16 KiB to 16 MiB is freed (typically by the thread that
    received it), its block goes to a bounded, process-wide pool instead of back to the
    allocator, and the next ``Buffer(n)`` (or received copy) of a similar size reuses
    it: resident memory instead of freshly faulted pages. A reused block is always
    cleared (``Buffer(n)``) or overwritten (a copy) first, so a Buffer never shows
    another one's bytes. The pool holds at most 16 MiB by default; see
    :func:`buffer_pool_stats`, :func:`set_buffer_pool_limit` (``0`` turns it off) and
    :func:`clear_buffer_pool`.
    """

    __slots__ = ()

    @property
    def detached(self) -> bool:
        """Whether the Buffer was transferred away."""
        return _native._buffer_state(self)[1]

    @property
    def address(self) -> int:
        """The address of the first byte (0 when empty): equal on both sides of a
        transfer, since nothing is copied."""
        return _native._buffer_address(self)

    def tobytes(self) -> bytes:
        """A copy of the contents as ``bytes``."""
        return bytes(self)

    def __bytes__(self) -> bytes:
        if self.detached:
            raise DetachedError("this Buffer is detached: it was transferred")
        with memoryview(self) as m:
            return m.tobytes()

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, (Buffer, bytes, bytearray, memoryview)):
            if self.detached or (isinstance(other, Buffer) and other.detached):
                return self is other
            return bytes(self) == bytes(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self.detached:
            return "Buffer(<detached>)"
        n = len(self)
        if n <= 32:
            return f"Buffer({bytes(self)!r})"
        return f"<Buffer of {n} bytes>"

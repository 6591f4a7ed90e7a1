"""channel_messaging: the web's Channel Messaging API for Python threads and asyncio.

A :class:`MessageChannel` has two entangled :class:`MessagePort` objects; what one posts,
the other receives, in order, as a structured clone. Ports and :class:`Buffer` objects
listed in ``transfer`` move to the receiver (Buffers without a copy). Every rule comes
from one Rust core shared with the C and Node faces.

    >>> from channel_messaging import MessageChannel
    >>> ch = MessageChannel()
    >>> ch.port1.post_message({"seq": 1, "name": "tick"})
    >>> ch.port2.recv()
    {'seq': 1, 'name': 'tick'}
"""

from ._native import (
    BroadcastChannel,
    MessageChannel,
    MessageEvent,
    MessagePort,
    PortCollection,
    __version__,
    buffer_pool_stats,
    clear_buffer_pool,
    handoff_stats,
    set_buffer_pool_limit,
    set_handoff_threshold,
    structured_clone,
)
from ._buffer import Buffer
from ._errors import (
    DataCloneError,
    DetachedError,
    Empty,
    InvalidStateError,
    MessageError,
    PortClosedError,
)
from ._values import UNDEFINED, RegExp, UndefinedType

__all__ = [
    "BroadcastChannel",
    "Buffer",
    "DataCloneError",
    "DetachedError",
    "Empty",
    "InvalidStateError",
    "MessageChannel",
    "MessageError",
    "MessageEvent",
    "MessagePort",
    "PortClosedError",
    "PortCollection",
    "RegExp",
    "UNDEFINED",
    "UndefinedType",
    "__version__",
    "buffer_pool_stats",
    "clear_buffer_pool",
    "handoff_stats",
    "set_buffer_pool_limit",
    "set_handoff_threshold",
    "structured_clone",
]

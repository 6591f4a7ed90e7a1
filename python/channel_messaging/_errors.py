"""The exceptions of channel_messaging. Each subclasses a built-in, so existing
``except`` clauses keep working."""

import queue

__all__ = [
    "DataCloneError",
    "InvalidStateError",
    "Empty",
    "PortClosedError",
    "MessageError",
    "DetachedError",
]


class DataCloneError(ValueError):
    """A value cannot be cloned or transferred (the web's DataCloneError).

    Raised by ``post_message`` before anything is detached or sent: the message names
    the object or the transfer-list entry at fault. A failed post leaves every port and
    Buffer as it was."""


class InvalidStateError(RuntimeError):
    """The object's state does not allow the call, e.g. posting on a closed
    BroadcastChannel (spec I3)."""


class Empty(queue.Empty):
    """No message arrived: ``recv_nowait()`` found the queue empty, or ``recv(timeout)``
    timed out. A subclass of ``queue.Empty``."""


class PortClosedError(EOFError):
    """The port will never receive again: its partner closed (or was dropped) and every
    message sent before that was received; or the port itself was closed or transferred
    away. Raised by ``recv``, ``recv_nowait``, ``recv_event`` and ``recv_async``;
    iteration ends instead. A subclass of ``EOFError``, like ``Connection.recv``."""


class MessageError(ValueError):
    """A received message could not be turned into Python objects (the web's
    ``messageerror``). The message is consumed; the next receive goes on."""


class DetachedError(InvalidStateError, BufferError):
    """The Buffer was transferred: it has length 0 and its bytes cannot be used."""

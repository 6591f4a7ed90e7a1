"""Python values for the parts of structured clone that have no built-in type, and the
helpers the native converter calls."""

import datetime as _dt
import math as _math
import traceback as _tb
from typing import Any, NamedTuple, Optional, Tuple

from ._buffer import Buffer as _Buffer

__all__ = ["UNDEFINED", "UndefinedType", "RegExp"]


class UndefinedType:
    """The type of :data:`UNDEFINED`, JavaScript's ``undefined`` (distinct from ``None``,
    which is ``null``). Array holes also arrive as ``UNDEFINED``."""

    _instance: "Optional[UndefinedType]" = None

    def __new__(cls) -> "UndefinedType":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNDEFINED"


UNDEFINED = UndefinedType()


class RegExp(NamedTuple):
    """A JavaScript regular expression: its ``source`` and ``flags``, kept as text (they
    follow JavaScript's syntax, not the ``re`` module's)."""

    source: str
    flags: str = ""


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_ERROR_NAMES = {
    TypeError: "TypeError",
    SyntaxError: "SyntaxError",
    ReferenceError: "ReferenceError",
}
_PY_ERRORS = {
    "TypeError": TypeError,
    "SyntaxError": SyntaxError,
    "ReferenceError": ReferenceError,
    "RangeError": ValueError,
}


def _datetime_to_ms(value: _dt.datetime) -> float:
    """A datetime as a Date time value; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    delta = value - _EPOCH
    whole = float(delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000)
    ms = whole + (delta.microseconds % 1000) / 1000
    if ms >= whole + 1:
        # Far from 1970 a double cannot hold the microseconds, and the sum can round up to
        # the next millisecond: past datetime.max, which no receiver could rebuild. Stay in
        # this millisecond.
        ms = _math.nextafter(whole + 1, whole)
    return ms


def _ms_to_datetime(ms: float) -> _dt.datetime:
    """A Date time value as an aware UTC datetime; ValueError for an invalid Date or one
    outside datetime's range (the message then fails with MessageError)."""
    if ms != ms:
        raise ValueError("an invalid Date (NaN) has no datetime")
    try:
        return _EPOCH + _dt.timedelta(milliseconds=ms)
    except OverflowError:
        raise ValueError(f"the Date {ms} ms is outside datetime's range") from None


def _freeze(value: Any, _open: Optional[set] = None) -> Any:
    """A hashable equivalent of a decoded dict/set key: lists become tuples, sets
    frozensets (recursively), buffers and views bytes. A dict, or a list that contains
    itself (a cycle), has no hashable equivalent: ValueError (the message then fails with
    MessageError). ``_open``: the ids of the lists and sets being frozen on the way down."""
    if isinstance(value, dict):
        raise ValueError(
            "an object or Map cannot be a set element or a Map key in Python (a dict is unhashable)"
        )
    if isinstance(value, (list, set)):
        if _open is None:
            _open = set()
        key = id(value)
        if key in _open:
            raise ValueError(
                "a reference cycle through a set element or a Map key cannot be rebuilt "
                "(its lists become tuples, and a tuple cannot contain itself)"
            )
        _open.add(key)
        try:
            items = [_freeze(v, _open) for v in value]
        finally:
            _open.discard(key)
        return tuple(items) if isinstance(value, list) else frozenset(items)
    if isinstance(value, (_Buffer, memoryview)):
        return bytes(value)  # a received ArrayBuffer or view: bytes, as a bytes key was
    return value


def _exception_parts(exc: BaseException) -> Tuple[str, Optional[str], Optional[str]]:
    """(name, message, stack) of an exception: TypeError, SyntaxError and ReferenceError
    keep their names, every other exception travels as "Error"; message is str(exc);
    stack is the formatted traceback when there is one."""
    name = "Error"
    for cls, js in _ERROR_NAMES.items():
        if isinstance(exc, cls):
            name = js
            break
    message = str(exc)
    stack = None
    if exc.__traceback__ is not None:
        stack = "".join(_tb.format_exception(type(exc), exc, exc.__traceback__, chain=False))
    return name, message, stack


def _make_exception(name: str, message: Optional[str], stack: Optional[str]) -> BaseException:
    """The exception for a received Error: TypeError, SyntaxError, ReferenceError as
    themselves, RangeError as ValueError, anything else as Exception. ``stack`` is kept
    as the attribute ``stack`` (None when the sender had none), ``name`` as ``js_name``,
    the cause as ``cause`` (and as ``__cause__`` when it is an exception)."""
    cls: type = _PY_ERRORS.get(name, Exception)
    exc: BaseException = cls(message) if message is not None else cls()
    setattr(exc, "stack", stack)
    setattr(exc, "js_name", name)
    setattr(exc, "cause", None)
    return exc

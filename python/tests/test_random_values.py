"""Seeded random values, nested and shared, sent through a channel: each arrives equal to
what was sent (in the mapping of DESIGN.md §3: tuples come back as lists, frozensets as
sets, bytes-likes as bytes-likes, datetimes to the millisecond a double holds), and shared
containers and cycles keep their identity."""

import datetime
import math
import random

import pytest

from channel_messaging import UNDEFINED, Buffer, MessageChannel, RegExp

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
KEYS = ["a", "b", "é", "", "0", 1, -1, 1.5, (1, 2), b"k", None, True, frozenset([1])]


def value(r: random.Random, depth: int = 0):
    kind = r.randrange(16 if depth < 3 else 8)
    if kind == 0:
        return r.choice([None, True, False, UNDEFINED])
    if kind == 1:
        return r.choice([0, -1, 2**31, 2**63 - 1, -(2**63), 2**64, -(2**100), r.randrange(-10**6, 10**6)])
    if kind == 2:
        return r.choice([0.0, -0.0, 1.5, math.inf, -math.inf, math.nan, 1e-310, 1.7976931348623157e308, r.random()])
    if kind == 3:
        return r.choice(["", "a", "é", "\U0001f600", "x\x00y", "lone \ud800", "\udfff"])
    if kind == 4:
        return r.choice([b"", b"abc", bytes(range(256)), bytearray(b"xy")])
    if kind == 5:
        return r.choice([
            EPOCH,
            EPOCH + datetime.timedelta(microseconds=r.randrange(10**15)),
            EPOCH - datetime.timedelta(microseconds=r.randrange(10**15)),
            datetime.datetime.max.replace(tzinfo=datetime.timezone.utc),
            datetime.datetime.min.replace(tzinfo=datetime.timezone.utc),
        ])
    if kind == 6:
        return RegExp(r.choice(["a+", "^$", "(?<n>x)"]), r.choice(["", "g", "gimsuy"]))
    if kind == 7:
        return r.choice([ValueError("v"), TypeError("t"), KeyError("k"), Exception()])
    if kind in (8, 9):
        return [value(r, depth + 1) for _ in range(r.randrange(4))]
    if kind == 10:
        return tuple(value(r, depth + 1) for _ in range(r.randrange(4)))
    if kind in (11, 12):
        return {r.choice(KEYS): value(r, depth + 1) for _ in range(r.randrange(4))}
    if kind == 13:
        return {r.choice([1, "a", b"x", (1,), None, 2.5]) for _ in range(r.randrange(4))}
    if kind == 14:
        return frozenset(r.choice([1, "a", (2,)]) for _ in range(r.randrange(3)))
    view = memoryview(bytearray(r.randrange(256) for _ in range(8 * r.randrange(1, 5))))
    return view.cast(r.choice(["B", "h", "i", "q", "d", "f"]))


def shape(v):
    """What must survive the trip, as comparable data."""
    if isinstance(v, float):
        return ("nan",) if math.isnan(v) else ("float", v, math.copysign(1.0, v))
    if isinstance(v, (bytes, bytearray, Buffer)):
        return ("bytes", bytes(v))
    if isinstance(v, memoryview):
        return ("view", v.format, v.tobytes())
    if isinstance(v, (list, tuple)):
        return ("list", [shape(x) for x in v])
    if isinstance(v, dict):
        return ("dict", sorted((repr(shape(k)), shape(x)) for k, x in v.items()))
    if isinstance(v, (set, frozenset)):
        return ("set", sorted(repr(shape(x)) for x in v))
    if isinstance(v, BaseException):
        return ("error", str(v))
    if isinstance(v, datetime.datetime):
        return ("date", (v - EPOCH) // datetime.timedelta(milliseconds=1))
    if isinstance(v, RegExp):
        return ("regexp", v.source, v.flags)
    return ("value", type(v).__name__, v)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_values_arrive_equal(seed):
    r = random.Random(seed)
    ch = MessageChannel()
    for _ in range(2000):
        v = value(r)
        ch.port1.post_message(v)
        assert shape(ch.port2.recv(timeout=1)) == shape(v), repr(v)


@pytest.mark.parametrize("seed", [4, 5])
def test_random_shared_containers_and_cycles_keep_their_identity(seed):
    r = random.Random(seed)
    ch = MessageChannel()
    checked = 0
    while checked < 500:
        v = value(r)
        if not isinstance(v, (list, dict, set)):
            continue
        outer = [v, {"again": v}]
        if isinstance(v, list):
            v.append(outer)  # a cycle through the outer list
        ch.port1.post_message(outer)
        got = ch.port2.recv(timeout=1)
        assert got[0] is got[1]["again"], repr(v)
        if isinstance(v, list):
            assert got[0][-1] is got
        checked += 1

"""The fast paths for flat dicts of scalars (the most common message shape) agree with
the general encoder and decoder, bit for bit, and leave every other input, malformed
bytes included, to the general path."""

import math
import struct

import pytest

from channel_messaging import UNDEFINED, MessageChannel, MessageError, _native

SCALARS = [
    None, True, False, 0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
    -1, -24, -25, -256, -257, -(2**32), -(2**63), 2**63, 2**64 - 1, 2**64, -(2**63) - 1,
    -(2**64), -(2**64) - 1, 0.0, -0.0, 1.5, -2.5, 65504.0, 5.960464477539063e-08,
    6.103515625e-05, 1e-40, 0.1, 3.4028234663852886e38, 1e300, math.inf, -math.inf,
    math.nan, "", "a", "tick", "héllo", "😀", "x" * 24, "y" * 25, "z" * 300,
    "lone \ud800", "a\x00b",
]


def roundtrip(value):
    ch = MessageChannel()
    ch.port1.post_message(value)
    return ch.port2.recv(timeout=1)


def same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


@pytest.mark.parametrize("value", SCALARS, ids=repr)
def test_flat_dict_values_match_the_general_path(value):
    flat = roundtrip({"k": value, "seq": 7})
    general = roundtrip([value])[0]  # a list goes through the general reader
    assert same(flat["k"], value) or (isinstance(value, float) and math.isnan(value))
    assert same(flat["k"], general)
    assert list(flat) == ["k", "seq"] and flat["seq"] == 7


@pytest.mark.parametrize("value", SCALARS, ids=repr)
def test_flat_dict_encodes_like_the_general_writer(value):
    # The same dict with a nested container in it takes the general writer: the bytes
    # of the flat part must be the same.
    flat, _ = _native._encode({"k": value})
    general, _ = _native._encode([{"k": value}])
    assert general[:3] == flat[:3] and general[3] == 0x81 and general[4:] == flat[3:]


def test_keys_are_shared_and_usable():
    a = roundtrip({"seq": 1, "name": "tick"})
    b = roundtrip({"seq": 2, "name": "tick"})
    assert a == {"seq": 1, "name": "tick"} and b == {"seq": 2, "name": "tick"}
    assert [k for k in a] == ["seq", "name"]


def test_many_distinct_keys_and_long_keys():
    d = {f"key{i}": i for i in range(40)}
    d["k" * 100] = "v" * 100
    d["ключ"] = "значение"
    assert roundtrip(d) == d
    assert roundtrip({}) == {}


def raw(hex_bytes):
    ch = MessageChannel()
    _native._post_encoded(ch.port1, bytes.fromhex(hex_bytes), [], [])
    return ch.port2.recv(timeout=1)


def test_any_head_width_is_accepted():
    # {"seq": 7, "n": "t"} with 1-, 2-, 4- and 8-byte heads for counts, lengths, ints.
    assert raw("d9cb01 b802 7803736571 1b0000000000000007 616e 7900 0174") == {
        "seq": 7, "n": "t"}
    assert raw("d9cb01 a1 6161 3a00000009") == {"a": -10}
    assert raw("d9cb01 a1 6161 fa3fc00000") == {"a": 1.5}
    assert raw("d9cb01 a1 6161 fb3ff8000000000000") == {"a": 1.5}


def test_big_integers_and_special_floats_decode():
    assert raw("d9cb01 a1 6161 1bffffffffffffffff") == {"a": 2**64 - 1}
    assert raw("d9cb01 a1 6161 3bffffffffffffffff") == {"a": -(2**64)}
    assert raw("d9cb01 a1 6161 f97c00") == {"a": math.inf}
    assert math.isnan(raw("d9cb01 a1 6161 f97e01")["a"])
    assert math.isnan(raw("d9cb01 a1 6161 fa7fc00001")["a"])
    assert raw("d9cb01 a1 6161 f7") == {"a": UNDEFINED}
    assert raw("d9cb01 a1 6161 a0") == {"a": {}}


def test_duplicate_keys_keep_the_last_value():
    assert raw("d9cb01 a2 6161 01 6161 02") == {"a": 2}


@pytest.mark.parametrize("hex_bytes", [
    "d9cb01 a1 6161 01 00",  # trailing bytes
    "d9cb01 a2 6161 01",  # truncated
    "d9cb01 a1 6161",  # value missing
    "d9cb01 a1 61ff 01",  # key not UTF-8
    "d9cb01 a1 6161 61ff",  # value not UTF-8
    "d9cb01 a1 6161 f800",  # two-byte simple value
    "d9cb01 a1 6161 1c",  # reserved additional information
    "d9cb01 a1 6161 7f",  # indefinite length
    "d9cb01 bb7fffffffffffffff 6161 01",  # a count the bytes cannot back
    "d9cb02 a1 6161 01",  # another version
])
def test_malformed_flat_messages_are_message_errors(hex_bytes):
    with pytest.raises(MessageError):
        raw(hex_bytes)

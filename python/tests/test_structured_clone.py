"""structured_clone (spec G7): a structured clone made at once, with the transfer rules of
post_message (spec (c)) and its errors."""

import datetime
import threading

import pytest

import channel_messaging as cm
from channel_messaging import (
    UNDEFINED,
    BroadcastChannel,
    Buffer,
    DataCloneError,
    MessageChannel,
    RegExp,
    structured_clone,
)


def test_g7_values_are_copied_not_shared():
    value = {
        "seq": 1,
        "name": "tick",
        "nested": [1, 2.5, None, UNDEFINED, True, "é", 2**80, -(2**70)],
        "when": datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc),
        "pattern": RegExp("a+", "gi"),
        "set": {1, "two"},
        "bytes": bytearray(b"xyz"),
    }
    clone = structured_clone(value)
    assert clone == value
    assert clone is not value
    assert clone["nested"] is not value["nested"]


def test_g4_g7_cycles_and_shared_references_are_kept():
    x = []
    x.append(x)
    shared = {"k": 1}
    value = {"self": x, "a": shared, "b": shared}
    clone = structured_clone(value)
    assert clone["self"] is not x
    assert clone["self"][0] is clone["self"]
    assert clone["a"] is clone["b"] and clone["a"] is not shared


def test_g7_a_buffer_not_transferred_is_copied():
    b = Buffer(b"abc" * 10_000)
    clone = structured_clone(b)
    assert bytes(clone) == bytes(b)
    assert clone.address != b.address
    assert not b.detached


def test_g7_a_transferred_buffer_moves_without_a_copy():
    b = Buffer(b"abc" * 10_000)
    address = b.address
    clone = structured_clone({"data": b}, transfer=[b])
    assert b.detached and len(b) == 0
    assert clone["data"].address == address
    assert bytes(clone["data"]) == b"abc" * 10_000


def test_g7_transfer_given_as_any_iterable():
    b = Buffer(b"x" * 100)
    clone = structured_clone([b], transfer=(t for t in [b]))
    assert b.detached and bytes(clone[0]) == b"x" * 100


def test_g7_a_transferred_port_stays_entangled_with_its_partner():
    ch = MessageChannel()
    clone = structured_clone({"port": ch.port1}, transfer=[ch.port1])
    moved = clone["port"]
    assert moved is not ch.port1
    assert ch.port1.detached
    moved.post_message("through the clone")
    assert ch.port2.recv(timeout=5) == "through the clone"
    ch.port2.post_message("back")
    assert moved.recv(timeout=5) == "back"
    moved.close()
    ch.port2.close()


def test_g7_f3_a_port_transferred_but_not_in_the_value_is_dropped_and_its_partner_hears_close():
    ch = MessageChannel()
    closed = threading.Event()
    ch.port2.onclose = lambda e: closed.set()
    ch.port2.start()  # onclose alone does not start the queue (spec B2)
    assert structured_clone("nothing else", transfer=[ch.port1]) == "nothing else"
    assert ch.port1.detached
    assert closed.wait(5)


@pytest.mark.parametrize(
    "value",
    [lambda: None, object(), iter([]), BroadcastChannel("structured-clone-test")],
    ids=["function", "object", "iterator", "broadcast-channel"],
)
def test_g3_g7_uncloneable_values_raise_data_clone_error(value):
    with pytest.raises(DataCloneError):
        structured_clone({"x": value})
    if isinstance(value, BroadcastChannel):
        value.close()


def test_c3_g7_a_port_in_the_value_but_not_transferred_is_refused():
    ch = MessageChannel()
    with pytest.raises(DataCloneError):
        structured_clone(ch.port1)
    assert not ch.port1.detached
    ch.port1.close()


def test_c5_g7_bad_transfer_lists_detach_nothing():
    b = Buffer(b"abc")
    with pytest.raises(DataCloneError):
        structured_clone(b, transfer=[b, b])  # a duplicate
    assert not b.detached
    ch = MessageChannel()
    with pytest.raises(DataCloneError):
        structured_clone([ch.port1, b], transfer=[ch.port1, ch.port1])
    assert not ch.port1.detached and not b.detached
    # an uncloneable value: the transfer list is left as it was
    with pytest.raises(DataCloneError):
        structured_clone([b, lambda: None], transfer=[b])
    assert not b.detached
    ch.port1.close()


def test_c5_g7_detached_entries_are_refused():
    b = Buffer(b"abc")
    structured_clone(b, transfer=[b])
    with pytest.raises(DataCloneError):
        structured_clone(b, transfer=[b])
    with pytest.raises(DataCloneError):
        structured_clone([], transfer=[b])


@pytest.mark.parametrize("transfer", [[1], 5, "ab", [None]], ids=["int-item", "int", "str", "none-item"])
def test_g7_a_bad_transfer_argument_fails_as_post_message_does(transfer):
    ch = MessageChannel()
    with pytest.raises(Exception) as posted:
        ch.port1.post_message(1, transfer)
    with pytest.raises(type(posted.value)) as cloned:
        structured_clone(1, transfer)
    assert str(cloned.value) == str(posted.value)
    ch.port1.close()


def test_g7_leaves_no_trace_in_the_handoff_or_the_ports():
    before = cm.handoff_stats()["handoffs"]
    for _ in range(100):
        structured_clone(Buffer(1 << 20))
    assert cm.handoff_stats()["handoffs"] == before

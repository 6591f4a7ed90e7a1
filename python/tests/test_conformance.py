"""Spec conformance as Python sees it, named by spec.md ids."""

import asyncio
import gc
import threading
import weakref

import pytest

from channel_messaging import (
    BroadcastChannel,
    Buffer,
    DataCloneError,
    Empty,
    InvalidStateError,
    MessageChannel,
    MessageEvent,
    MessagePort,
    PortClosedError,
    PortCollection,
)

from conftest import wait_for

# ---- (a) channel creation ------------------------------------------------------------


def test_a1_channel_has_two_ports():
    ch = MessageChannel()
    assert isinstance(ch.port1, MessagePort) and isinstance(ch.port2, MessagePort)
    assert ch.port1 is not ch.port2


def test_a3_port_getters_return_same_objects_even_after_transfer_and_close():
    ch, carrier = MessageChannel(), MessageChannel()
    p1 = ch.port1
    carrier.port1.post_message(None, [ch.port2])
    ch.port1.close()
    assert ch.port1 is p1 and ch.port2 is ch.port2


def test_a4_message_port_has_no_constructor():
    with pytest.raises(TypeError):
        MessagePort()


def test_a5_ports_are_entangled_pairwise():
    a, b = MessageChannel(), MessageChannel()
    a.port1.post_message("to a")
    b.port1.post_message("to b")
    assert a.port2.recv(timeout=1) == "to a"
    assert b.port2.recv(timeout=1) == "to b"
    with pytest.raises(Empty):
        a.port2.recv_nowait()


# ---- (b) port message queue ----------------------------------------------------------


def test_b1_b8_messages_before_start_are_kept_and_delivered_in_order(channel):
    got = []
    for i in range(5):
        channel.port1.post_message(i)
    channel.port2.add_event_listener("message", lambda e: got.append(e.data))
    assert not wait_for(lambda: got, timeout=0.2)  # not started: nothing dispatched
    channel.port2.start()
    assert wait_for(lambda: len(got) == 5)
    assert got == [0, 1, 2, 3, 4]


def test_b2_setting_onmessage_starts_the_queue(channel):
    got = []
    channel.port1.post_message("x")
    channel.port2.onmessage = lambda e: got.append(e.data)
    assert wait_for(lambda: got == ["x"])


def test_b2_onmessage_none_does_not_start(channel):
    got = []
    channel.port2.onmessage = None
    channel.port2.add_event_listener("message", lambda e: got.append(e.data))
    channel.port1.post_message("x")
    assert not wait_for(lambda: got, timeout=0.2)
    channel.port2.start()
    assert wait_for(lambda: got == ["x"])


def test_b2_onmessageerror_and_onclose_do_not_start(channel):
    got = []
    channel.port2.onmessageerror = lambda e: None
    channel.port2.onclose = lambda e: None
    channel.port2.add_event_listener("message", lambda e: got.append(e.data))
    channel.port1.post_message(1)
    assert not wait_for(lambda: got, timeout=0.2)


def test_b3_removing_handlers_keeps_the_queue_enabled(channel):
    got = []
    channel.port2.onmessage = lambda e: got.append(e.data)
    channel.port1.post_message(1)
    assert wait_for(lambda: got == [1])
    channel.port2.onmessage = None
    channel.port1.post_message(2)  # consumed with nobody listening (spec B3)
    assert wait_for(lambda: channel.port2.stats()["queued_messages"] == 0)
    with pytest.raises(Empty):
        channel.port2.recv_nowait()


def test_b5_delivery_is_asynchronous(channel):
    got = []
    channel.port2.onmessage = lambda e: got.append(e.data)
    channel.port1.post_message(1)
    assert got == []
    assert wait_for(lambda: got == [1])


def test_b6_fifo_per_port(channel):
    for i in range(1000):
        channel.port1.post_message(i)
    assert [channel.port2.recv(timeout=1) for _ in range(1000)] == list(range(1000))


def test_b9_received_port_starts_disabled(channel):
    inner = MessageChannel()
    inner.port2.start()
    inner.port1.post_message("pending")
    channel.port1.post_message(None, [inner.port2])
    (moved,) = channel.port2.recv_event(timeout=1).ports
    got = []
    moved.add_event_listener("message", lambda e: got.append(e.data))
    assert not wait_for(lambda: got, timeout=0.2)
    moved.start()
    assert wait_for(lambda: got == ["pending"])


# ---- (c) post_message ----------------------------------------------------------------


def test_c3_source_port_in_transfer_is_data_clone_error_even_when_closed(channel):
    channel.port1.close()
    with pytest.raises(DataCloneError):
        channel.port1.post_message(1, [channel.port1])


def test_c4_post_on_closed_port_is_silent(channel):
    channel.port1.close()
    channel.port1.post_message("lost")
    with pytest.raises(PortClosedError):
        channel.port2.recv(timeout=1)


def test_c4_transfer_side_effects_happen_even_when_nothing_is_delivered(channel):
    channel.port2.close()
    buf = Buffer(b"abc")
    other = MessageChannel()
    channel.port1.post_message(buf, [buf, other.port1])
    assert buf.detached and len(buf) == 0
    assert other.port1.detached
    with pytest.raises(PortClosedError):
        other.port2.recv(timeout=2)  # the shipped port was lost: its partner sees close


def test_c5_port_listed_twice_is_data_clone_error_and_detaches_nothing(channel):
    other = MessageChannel()
    buf = Buffer(b"x")
    with pytest.raises(DataCloneError, match="twice"):
        channel.port1.post_message(None, [buf, other.port1, other.port1])
    assert not other.port1.detached and not buf.detached


def test_c5_buffer_listed_twice_is_data_clone_error(channel):
    buf = Buffer(b"x")
    with pytest.raises(DataCloneError, match="twice"):
        channel.port1.post_message(None, [buf, buf])
    assert not buf.detached


def test_c5_non_transferable_item_is_data_clone_error(channel):
    with pytest.raises(DataCloneError, match="not transferable"):
        channel.port1.post_message(None, [b"bytes are copied, not transferred"])


def test_c5_failed_post_leaves_valid_items_usable(channel):
    other = MessageChannel()
    closed = MessageChannel()
    closed.port1.close()
    buf = Buffer(b"keep")
    with pytest.raises(DataCloneError, match="closed"):
        channel.port1.post_message(buf, [buf, other.port1, closed.port1])
    assert bytes(buf) == b"keep" and not buf.detached
    other.port1.post_message("still works")
    assert other.port2.recv(timeout=1) == "still works"


def test_c7_event_target_is_the_receiving_port(channel):
    ev = []
    channel.port2.onmessage = ev.append
    channel.port1.post_message(1)
    assert wait_for(lambda: ev)
    assert isinstance(ev[0], MessageEvent)
    assert ev[0].type == "message" and ev[0].target is channel.port2 and ev[0].ports == ()


def test_c8_port_in_data_is_the_same_object_as_in_ports(channel):
    other = MessageChannel()
    channel.port1.post_message({"p": other.port1, "again": [other.port1]}, [other.port1])
    ev = channel.port2.recv_event(timeout=1)
    assert ev.data["p"] is ev.ports[0] is ev.data["again"][0]
    assert isinstance(ev.ports, tuple)  # frozen


def test_c9_transferred_away_port_is_inert(channel):
    other = MessageChannel()
    channel.port1.post_message(None, [other.port1])
    assert other.port1.detached
    other.port1.post_message("dropped")  # no error, no delivery
    with pytest.raises(DataCloneError, match="already transferred"):
        channel.port1.post_message(None, [other.port1])
    moved = channel.port2.recv_event(timeout=1).ports[0]
    moved.post_message("from new owner")
    assert other.port2.recv(timeout=1) == "from new owner"
    with pytest.raises(Empty):
        other.port2.recv_nowait()


def test_c10_messages_in_transit_reach_new_owner():
    hop1, hop2 = MessageChannel(), MessageChannel()
    target = MessageChannel()
    target.port1.post_message(0)
    hop1.port1.post_message(None, [target.port2])
    target.port1.post_message(1)  # while in transit
    moved = hop1.port2.recv_event(timeout=1).ports[0]
    hop2.port1.post_message(None, [moved])
    target.port1.post_message(2)
    final = hop2.port2.recv_event(timeout=1).ports[0]
    assert [final.recv(timeout=1) for _ in range(3)] == [0, 1, 2]


def test_c11_doomed_transfer_of_target_is_silent(channel):
    channel.port1.post_message("lost", [channel.port2])
    assert channel.port2.detached


def test_c14_unreferenced_transferred_port_still_arrives(channel):
    other = MessageChannel()
    channel.port1.post_message("no reference", [other.port1])
    ev = channel.port2.recv_event(timeout=1)
    assert ev.data == "no reference" and len(ev.ports) == 1


def test_c15_port_in_data_but_not_in_transfer_is_data_clone_error(channel):
    other = MessageChannel()
    with pytest.raises(DataCloneError, match="transfer"):
        channel.port1.post_message({"p": other.port1})
    assert not other.port1.detached


# ---- (d) close -----------------------------------------------------------------------


def test_d1_close_is_idempotent(channel):
    channel.port1.close()
    channel.port1.close()
    assert channel.port1.closed


def test_d2_closed_port_cannot_be_transferred_but_partner_can(channel):
    carrier = MessageChannel()
    channel.port1.close()
    with pytest.raises(DataCloneError, match="closed"):
        carrier.port1.post_message(None, [channel.port1])
    carrier.port1.post_message(None, [channel.port2])


def test_d4_messages_posted_before_close_are_delivered(channel):
    channel.port1.post_message(1)
    channel.port1.post_message(2)
    channel.port1.close()
    assert list(channel.port2) == [1, 2]  # iteration ends at the close


def test_d5_close_event_fires_at_partner_never_at_closer(channel):
    at_closer, at_partner = [], []
    channel.port1.onclose = at_closer.append
    channel.port1.start()
    channel.port2.onclose = at_partner.append
    channel.port2.start()
    channel.port1.close()
    assert wait_for(lambda: at_partner)
    assert at_partner[0].type == "close" and at_partner[0].target is channel.port2
    assert not wait_for(lambda: at_closer, timeout=0.2)


def test_d5_dropping_a_port_fires_close_at_partner():
    ch = MessageChannel()
    survivor = ch.port2
    got = []
    survivor.onclose = got.append
    survivor.start()
    del ch
    gc.collect()
    assert wait_for(lambda: got)


def test_d7_transfer_is_not_a_close(channel):
    got = []
    channel.port2.onclose = got.append
    channel.port2.start()
    carrier = MessageChannel()
    carrier.port1.post_message(None, [channel.port1])
    moved = carrier.port2.recv_event(timeout=1).ports[0]
    assert not wait_for(lambda: got, timeout=0.2)
    moved.close()
    assert wait_for(lambda: got)


# ---- (e) messageerror ----------------------------------------------------------------


def test_e1_undecodable_message_fires_messageerror_and_delivery_goes_on(channel):
    from channel_messaging import _native

    errors, messages = [], []
    channel.port2.onmessageerror = errors.append
    channel.port2.onmessage = lambda e: messages.append(e.data)
    _native._post_encoded(channel.port1, b"\xff\x00garbage")
    channel.port1.post_message("after")
    assert wait_for(lambda: messages == ["after"])
    assert len(errors) == 1
    assert errors[0].type == "messageerror" and errors[0].data is None and errors[0].ports == ()


def test_e1_pull_receive_raises_message_error_and_goes_on(channel):
    from channel_messaging import MessageError, _native

    _native._post_encoded(channel.port1, b"\xd9\xcb\x01\x1f")
    channel.port1.post_message("next")
    with pytest.raises(MessageError):
        channel.port2.recv(timeout=1)
    assert channel.port2.recv(timeout=1) == "next"


def test_e5_exception_in_handler_is_reported_and_delivery_goes_on(channel, unraisable):
    got = []

    def handler(e):
        got.append(e.data)
        raise RuntimeError("boom")

    channel.port2.onmessage = handler
    channel.port1.post_message(1)
    channel.port1.post_message(2)
    assert wait_for(lambda: got == [1, 2])
    assert wait_for(lambda: len(unraisable) == 2)
    assert isinstance(unraisable[0].exc_value, RuntimeError)


def test_e6_ports_in_undecodable_message_are_closed(channel):
    from channel_messaging import _native

    other = MessageChannel()
    _native._post_encoded(channel.port1, b"\xd9\xcb\x01\x1f", transfer=[other.port1])
    from channel_messaging import MessageError

    with pytest.raises(MessageError):
        channel.port2.recv(timeout=1)
    gc.collect()
    with pytest.raises(PortClosedError):
        other.port2.recv(timeout=2)


# ---- (h) PortCollection --------------------------------------------------------------


def test_h4_collection_is_ordered_and_ignores_duplicates():
    chans = [MessageChannel() for _ in range(3)]
    coll = PortCollection()
    for c in chans:
        coll.add(c.port1)
    coll.add(chans[0].port1)
    seen = []
    coll.iterate(seen.append)
    assert seen == [c.port1 for c in chans]
    coll.remove(chans[1].port1)
    coll.remove(chans[1].port1)
    assert list(coll) == [chans[0].port1, chans[2].port1]
    coll.clear()
    assert len(coll) == 0


def test_h5_closed_and_collected_ports_leave():
    keep, closing = MessageChannel(), MessageChannel()
    coll = PortCollection()
    coll.add(keep.port1)
    coll.add(closing.port1)
    dropped = MessageChannel()
    coll.add(dropped.port1)
    closing.port1.close()
    del dropped
    gc.collect()
    assert list(coll) == [keep.port1]


def test_h7_post_message_reaches_every_member_without_transfer():
    chans = [MessageChannel() for _ in range(4)]
    coll = PortCollection()
    for c in chans:
        coll.add(c.port1)
    assert coll.post_message({"all": True}) == 4
    assert [c.port2.recv(timeout=1) for c in chans] == [{"all": True}] * 4
    other = MessageChannel()
    with pytest.raises(DataCloneError):
        coll.post_message(other.port1)


# ---- (i) BroadcastChannel ------------------------------------------------------------


def test_i2_name_is_converted_to_str():
    a = BroadcastChannel(123)
    assert a.name == "123"
    a.close()
    with pytest.raises(TypeError):
        BroadcastChannel()


def test_i3_closed_channel_raises_invalid_state_before_cloning():
    a = BroadcastChannel("i3")
    a.close()
    with pytest.raises(InvalidStateError):
        a.post_message(object())  # not cloneable, but the closed check comes first
    assert issubclass(InvalidStateError, RuntimeError)


def test_i3_every_other_member_receives_not_the_sender():
    a, b, c = BroadcastChannel("i3b"), BroadcastChannel("i3b"), BroadcastChannel("i3b")
    try:
        assert a.post_message({"n": 1}) == 2
        assert b.recv(timeout=1) == {"n": 1} and c.recv(timeout=1) == {"n": 1}
        with pytest.raises(Empty):
            a.recv_nowait()
        with pytest.raises(DataCloneError):
            a.post_message(lambda: None)
    finally:
        for x in (a, b, c):
            x.close()


def test_i4_close_is_idempotent_and_drops_queued_messages():
    a, b = BroadcastChannel("i4"), BroadcastChannel("i4")
    a.post_message(1)
    b.close()
    b.close()
    with pytest.raises(PortClosedError):
        b.recv_nowait()
    a.close()


def test_i6_onmessage_handlers_on_broadcast_channel():
    a, b = BroadcastChannel("i6"), BroadcastChannel("i6")
    got = []
    b.onmessage = lambda e: got.append((e.type, e.data, e.target))
    a.post_message("hello")
    assert wait_for(lambda: got == [("message", "hello", b)])
    a.close()
    b.close()


def test_e_a_listener_removed_by_an_earlier_one_is_not_called_for_that_event(channel):
    # the DOM's dispatch: a listener removed during the dispatch is skipped
    got = []

    def second(e):
        got.append(("second", e.data))

    def first(e):
        got.append(("first", e.data))
        channel.port2.remove_event_listener("message", second)

    channel.port2.add_event_listener("message", first)
    channel.port2.add_event_listener("message", second)
    channel.port2.start()
    channel.port1.post_message(1)
    assert wait_for(lambda: got)
    channel.port1.post_message(2)
    assert wait_for(lambda: len(got) >= 2)
    assert got == [("first", 1), ("first", 2)]

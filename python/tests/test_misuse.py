"""Every misuse raises its documented exception."""

import queue

import pytest

from channel_messaging import (
    BroadcastChannel,
    Buffer,
    DataCloneError,
    Empty,
    InvalidStateError,
    MessageChannel,
    MessagePort,
    PortClosedError,
)


def test_exception_hierarchy():
    assert issubclass(DataCloneError, ValueError)
    assert issubclass(Empty, queue.Empty)
    assert issubclass(PortClosedError, EOFError)
    assert issubclass(InvalidStateError, RuntimeError)


def test_recv_nowait_on_empty_port_raises_empty(channel):
    with pytest.raises(Empty):
        channel.port2.recv_nowait()
    with pytest.raises(queue.Empty):
        channel.port2.recv(timeout=0.01)


def test_negative_timeout_is_value_error(channel):
    with pytest.raises(ValueError):
        channel.port2.recv(timeout=-1)


def test_recv_on_closed_or_transferred_port_raises_port_closed(channel):
    channel.port2.close()
    with pytest.raises(PortClosedError, match="closed"):
        channel.port2.recv()
    carrier = MessageChannel()
    carrier.port1.post_message(None, [channel.port1])
    with pytest.raises(PortClosedError, match="transferred"):
        channel.port1.recv_nowait()


def test_transfer_must_be_a_sequence(channel):
    with pytest.raises(TypeError):
        channel.port1.post_message(1, 5)
    with pytest.raises(TypeError):
        channel.port1.post_message(1, "ab")


def test_post_message_needs_a_message(channel):
    with pytest.raises(TypeError):
        channel.port1.post_message()


def test_handlers_must_be_callable(channel):
    with pytest.raises(TypeError):
        channel.port1.onmessage = 5
    with pytest.raises(TypeError):
        channel.port1.add_event_listener("message", 5)
    with pytest.raises(ValueError):
        channel.port1.add_event_listener("nope", print)


def test_detached_buffer_cannot_be_transferred_again(channel):
    b = Buffer(b"x")
    channel.port1.post_message(None, [b])
    with pytest.raises(DataCloneError, match="detached"):
        channel.port1.post_message(None, [b])


def test_buffer_arguments():
    with pytest.raises(ValueError):
        Buffer(-1)
    with pytest.raises(TypeError):
        Buffer(1.5)
    assert bytes(Buffer(3)) == b"\0\0\0" and bytes(Buffer(b"ab")) == b"ab"


def test_import_handle_of_unknown_number_is_invalid_state(channel):
    with pytest.raises(InvalidStateError):
        MessagePort.import_handle(12345)
    h = channel.port2.export_handle()
    channel.port1.post_message("through a handle")
    assert MessagePort.import_handle(h).recv(timeout=1) == "through a handle"
    with pytest.raises(InvalidStateError):
        MessagePort.import_handle(h)


def test_closed_broadcast_channel_post_is_invalid_state():
    b = BroadcastChannel("misuse")
    b.close()
    with pytest.raises(InvalidStateError):
        b.post_message(1)


def test_flow_control_limits_and_stats(channel):
    channel.port2.set_limits(max_messages=2)
    assert channel.port1.is_ready()
    channel.port1.post_message(1)
    channel.port1.post_message(2)
    assert not channel.port1.is_ready()
    s = channel.port2.stats()
    assert s["queued_messages"] == 2 and s["max_messages"] == 2 and not s["closed"]
    channel.port2.recv_nowait()
    assert channel.port1.is_ready()

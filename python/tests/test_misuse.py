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
    # whether or not a message is queued (which stays queued)
    channel.port1.post_message("queued")
    with pytest.raises(ValueError):
        channel.port2.recv(timeout=-1)
    with pytest.raises(ValueError):
        channel.port2.recv(timeout=float("nan"))
    assert channel.port2.recv_nowait() == "queued"
    a, b = BroadcastChannel("test-negative-timeout"), BroadcastChannel("test-negative-timeout")
    a.post_message("queued")
    with pytest.raises(ValueError):
        b.recv(timeout=-1)
    assert b.recv(timeout=1) == "queued"
    a.close()
    b.close()


def test_a_broadcast_channel_has_no_close_event():
    bc = BroadcastChannel("test-no-close-event")
    with pytest.raises(ValueError, match="BroadcastChannel"):
        bc.add_event_listener("close", print)
    bc.add_event_listener("messageerror", print)
    bc.close()


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


def test_g2_a_detached_buffer_in_the_message_is_a_data_clone_error(channel):
    # cloned (not in the transfer list): a DataCloneError, as the docstring and spec G2
    # say, not the DetachedError of reading its bytes
    b = Buffer(b"x")
    channel.port1.post_message(None, [b])
    with pytest.raises(DataCloneError, match="detached"):
        channel.port1.post_message({"buffer": b})
    assert channel.port2.recv(timeout=1) is None
    with pytest.raises(Empty):
        channel.port2.recv_nowait()


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


def test_post_message_and_recv_accept_keywords_and_reject_bad_arguments():
    # post_message and recv have hand-installed fastcall entry points: same signature.
    from channel_messaging import Buffer, Empty, MessageChannel

    ch = MessageChannel()
    buf = Buffer(b"abc")
    ch.port1.post_message(message={"k": buf}, transfer=[buf])
    assert buf.detached
    got = ch.port2.recv(timeout=1)
    assert bytes(got["k"]) == b"abc"
    ch.port1.post_message("x", None)
    assert ch.port2.recv(None) == "x"
    with pytest.raises(TypeError, match="missing required argument 'message'"):
        ch.port1.post_message()
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        ch.port1.post_message(1, bogus=2)
    with pytest.raises(TypeError, match="multiple values for argument 'message'"):
        ch.port1.post_message(1, message=2)
    with pytest.raises(TypeError, match="at most 2 positional"):
        ch.port1.post_message(1, None, 3)
    with pytest.raises(TypeError):
        ch.port2.recv(timeout="soon")
    with pytest.raises(Empty):
        ch.port2.recv(timeout=0.01)
    with pytest.raises(TypeError):
        type(ch.port1).post_message(object(), 1)  # wrong self


def test_flat_dict_fast_path_falls_back_for_nested_and_non_str_keys():
    from channel_messaging import MessageChannel

    ch = MessageChannel()
    inner = [1, 2]
    msgs = [
        {"a": 1, "b": "x", "c": None, "d": 1.5, "e": True},
        {"a": inner, "b": inner},  # shared reference: found by the general path
        {1: "int key", "s": "str key"},  # a Map
        {"big": 1 << 70, "s": "\ud800"},  # bigint, lone surrogate value
    ]
    for m in msgs:
        ch.port1.post_message(m)
    assert ch.port2.recv(timeout=1) == msgs[0]
    shared = ch.port2.recv(timeout=1)
    assert shared == {"a": [1, 2], "b": [1, 2]} and shared["a"] is shared["b"]
    assert ch.port2.recv(timeout=1) == msgs[2]
    assert ch.port2.recv(timeout=1) == msgs[3]
    with pytest.raises(Exception, match="lone surrogates"):
        ch.port1.post_message({"\udc00": 1})
    # an exception's message is UTF-8 text in the format too: a typed error, nothing sent
    with pytest.raises(DataCloneError, match="message has lone surrogates"):
        ch.port1.post_message({"err": ValueError("bad \ud800")})
    try:
        raise KeyError("k")
    except KeyError as e:
        ch.port1.post_message(e)  # (a traceback that is valid text still travels)
    assert isinstance(ch.port2.recv(timeout=1), Exception)
    with pytest.raises(Empty):
        ch.port2.recv(timeout=0.01)


def test_a_buffer_that_cannot_be_had_is_a_memory_error_and_a_huge_size_an_overflow_error():
    # not the end of the process (the allocation is fallible), and not a TypeError
    with pytest.raises(MemoryError, match="cannot allocate a Buffer of"):
        Buffer(1 << 46)
    with pytest.raises(OverflowError, match="too large"):
        Buffer(2**64)
    assert bytes(Buffer(3)) == b"\x00\x00\x00"


def test_a_listener_eq_that_looks_at_the_port_or_lets_other_threads_run_does_not_deadlock():
    # add_event_listener / remove_event_listener compare listeners with ==, which is user
    # code: it runs outside the port's handler lock (it reads the port; it sleeps while
    # the dispatcher delivers to the same port)
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import threading, time
        from channel_messaging import MessageChannel
        ch = MessageChannel()
        port = ch.port2
        class Looking:
            def __call__(self, ev): pass
            def __eq__(self, other):
                port.onmessage
                return self is other
            __hash__ = object.__hash__
        class Sleeping(Looking):
            def __eq__(self, other):
                time.sleep(0.05)
                return self is other
            __hash__ = object.__hash__
        first = Looking()
        port.add_event_listener("message", first)
        port.add_event_listener("message", Looking())
        port.remove_event_listener("message", first)
        port.onmessage = lambda e: None
        port.add_event_listener("message", Sleeping())
        def feed():
            for i in range(50):
                ch.port1.post_message(i)
                time.sleep(0.005)
        threading.Thread(target=feed, daemon=True).start()
        time.sleep(0.02)
        port.add_event_listener("message", Sleeping())
        print("no deadlock", flush=True)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "no deadlock"


def test_c5_a_buffer_being_transferred_cannot_be_taken_again_by_code_run_during_the_post():
    # code that runs while a post encodes its message (an __index__) sees the Buffers
    # that post transfers as detached: another post cannot take, clone or view them, so
    # the memory goes to one receiver only; when the post fails they are intact again
    ch, other = MessageChannel(), MessageChannel()
    b = Buffer(b"x" * 100)
    seen = []

    class Nested:
        def __index__(self):
            for attempt in (lambda: other.port1.post_message(b, [b]),
                            lambda: other.port1.post_message(b),
                            lambda: memoryview(b)):
                try:
                    attempt()
                    seen.append("allowed")
                except (DataCloneError, BufferError) as e:
                    seen.append(type(e).__name__)
            return 1

    ch.port1.post_message([Nested(), b], [b])
    assert seen == ["DataCloneError", "DataCloneError", "DetachedError"]
    got = ch.port2.recv(timeout=1)
    assert got[0] == 1 and bytes(got[1]) == b"x" * 100 and b.detached
    with pytest.raises(Empty):
        other.port2.recv_nowait()
    # a post that fails gives them back, whole
    c = Buffer(b"y" * 10)
    with pytest.raises(DataCloneError):
        ch.port1.post_message([Nested(), c, object()], [c])
    assert not c.detached and bytes(c) == b"y" * 10
    with pytest.raises(Empty):
        ch.port2.recv_nowait()


def test_g5_an_exception_raised_by_an_index_method_during_the_post_propagates(channel):
    # user code run by the serialization (an __index__) raises: the post raises that
    # exception (as a getter's would), and nothing is sent
    class Broken:
        def __index__(self):
            raise KeyError("from __index__")

    with pytest.raises(KeyError, match="from __index__"):
        channel.port1.post_message([1, Broken()])
    with pytest.raises(Empty):
        channel.port2.recv_nowait()

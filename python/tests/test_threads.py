"""Threads: ping-pong, ports moving between threads with messages in flight, zero-copy
Buffers, an 8-thread stress test, GIL release and Ctrl-C."""

import _thread
import ctypes
import gc
import threading
import time
import weakref

import pytest

from channel_messaging import Buffer, DetachedError, MessageChannel, PortClosedError

from conftest import wait_for


def test_thread_ping_pong():
    ch = MessageChannel()

    def echo():
        for msg in ch.port2:  # ends when port1 closes
            ch.port2.post_message({"seq": msg["seq"] + 1, "name": msg["name"]})

    t = threading.Thread(target=echo)
    t.start()
    for i in range(2000):
        ch.port1.post_message({"seq": i, "name": "tick"})
        assert ch.port1.recv(timeout=5) == {"seq": i + 1, "name": "tick"}
    ch.port1.close()
    t.join(5)
    assert not t.is_alive()


def test_port_moves_between_threads_with_messages_in_flight():
    work = MessageChannel()
    hand = MessageChannel()
    n = 3000
    received = []

    def producer():
        for i in range(n):
            work.port1.post_message(i)
        work.port1.close()

    def consumer():
        port = hand.port2.recv_event(timeout=5).ports[0]
        for msg in port:
            received.append(msg)

    c = threading.Thread(target=consumer)
    c.start()
    p = threading.Thread(target=producer)
    p.start()
    time.sleep(0.001)
    hand.port1.post_message("here", [work.port2])  # moves while messages arrive
    p.join(10)
    c.join(10)
    assert received == list(range(n))


def test_buffer_transfer_does_not_copy_and_detaches():
    ch = MessageChannel()
    buf = Buffer(1 << 20)
    with memoryview(buf) as m:
        m[:4] = b"abcd"
    address = buf.address
    assert address == ctypes.addressof(ctypes.c_char.from_buffer(buf))
    got = []
    t = threading.Thread(target=lambda: got.append(ch.port2.recv(timeout=5)))
    t.start()
    ch.port1.post_message({"payload": buf}, [buf])
    t.join(5)
    received = got[0]["payload"]
    assert isinstance(received, Buffer)
    assert received.address == address  # the same memory: no copy
    assert ctypes.addressof(ctypes.c_char.from_buffer(received)) == address
    assert bytes(memoryview(received)[:4]) == b"abcd" and len(received) == 1 << 20
    assert buf.detached and len(buf) == 0
    with pytest.raises(DetachedError):
        memoryview(buf)
    with pytest.raises(DetachedError):
        bytes(buf)
    assert issubclass(DetachedError, BufferError)


def test_buffer_with_live_memoryview_cannot_be_transferred():
    from channel_messaging import DataCloneError

    ch = MessageChannel()
    buf = Buffer(10)
    view = memoryview(buf)
    with pytest.raises(DataCloneError, match="memoryview"):
        ch.port1.post_message(buf, [buf])
    view.release()
    ch.port1.post_message(buf, [buf])
    assert buf.detached


def test_stress_8_threads_nothing_lost_or_reordered():
    senders, per = 8, 2000
    ch = [MessageChannel() for _ in range(senders)]
    sink = MessageChannel()
    results = {}

    def worker(k):
        # each worker relays its own channel's messages into a shared sink port
        port = ch[k].port2
        out = sink.port1
        for msg in port:
            out.post_message((k, msg))

    def feeder(k):
        for i in range(per):
            ch[k].port1.post_message(i)
        ch[k].port1.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(senders)]
    threads += [threading.Thread(target=feeder, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    for _ in range(senders * per):
        k, i = sink.port2.recv(timeout=10)
        results.setdefault(k, []).append(i)
    for t in threads:
        t.join(10)
    assert all(results[k] == list(range(per)) for k in range(senders))


def test_blocking_recv_releases_the_gil():
    ch = MessageChannel()
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    from channel_messaging import Empty

    with pytest.raises(Empty):
        ch.port2.recv(timeout=0.3)
    before = counter[0]
    with pytest.raises(Empty):
        ch.port2.recv(timeout=0.3)
    stop.set()
    t.join()
    assert counter[0] > before + 1000


def test_ctrl_c_interrupts_a_blocked_recv():
    ch = MessageChannel()
    timer = threading.Timer(0.2, _thread.interrupt_main)
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ch.port2.recv()
    assert time.monotonic() - start < 3


def test_dropped_port_closes_and_handler_cycle_is_collected(unraisable):
    ch = MessageChannel()
    port = ch.port2
    port.onmessage = lambda e: port.post_message(e.data)  # references its own port
    ref = weakref.ref(port)
    other = ch.port1
    other.post_message("ping")
    assert other.recv(timeout=5) == "ping"
    port.close()
    del port, ch
    assert wait_for(lambda: (gc.collect(), ref() is None)[1])
    with pytest.raises(PortClosedError):
        other.recv(timeout=5)


def test_listening_port_stays_alive_until_closed():
    ch = MessageChannel()
    got = []
    ch.port2.onmessage = lambda e: got.append(e.data)
    sender = ch.port1
    del ch
    gc.collect()
    sender.post_message("still listening")
    assert wait_for(lambda: got == ["still listening"])
    sender.close()


def test_handlers_without_loop_run_on_the_dispatcher_thread(channel):
    where = []
    channel.port2.onmessage = lambda e: where.append(threading.current_thread().name)
    channel.port1.post_message(1)
    assert wait_for(lambda: where)
    assert where == ["channel_messaging-dispatcher"]


def test_f7_exit_while_the_dispatcher_runs_handlers_is_clean():
    # The interpreter exits with handlers running on the dispatcher thread and messages
    # still queued: the dispatcher is stopped and joined at exit (queued jobs dropped),
    # not ended mid-call by finalization (which crashed the process).
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import time
        from channel_messaging import MessageChannel
        channels = []
        for i in range(20):
            ch = MessageChannel()
            channels.append(ch)
            ch.port2.onmessage = lambda e: time.sleep(0.001)
            for j in range(50):
                ch.port1.post_message(j)
        time.sleep(0.01)
        print("exiting", flush=True)
        """
    )
    for _ in range(4):
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
        assert run.stdout.strip() == "exiting"


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_handlers_and_awaitables_work_in_a_child_after_fork():
    # the parent's dispatcher thread does not exist in a forked child: a new one takes
    # over there (os.register_at_fork)
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import asyncio, os, time, warnings
        from channel_messaging import MessageChannel
        warnings.simplefilter("ignore", DeprecationWarning)  # (fork with threads, 3.12+)
        def through_a_handler(data):
            # what a handler (run by the dispatcher thread) receives
            ch = MessageChannel()
            got = []
            ch.port2.onmessage = lambda e: got.append(e.data)
            ch.port1.post_message(data)
            deadline = time.monotonic() + 5
            while not got and time.monotonic() < deadline:
                time.sleep(0.005)
            return got
        got = through_a_handler("parent")
        pid = os.fork()
        if pid == 0:
            child = through_a_handler("child")
            async def main():
                c2 = MessageChannel()
                fut = c2.port2.recv_async()
                c2.port1.post_message("async")
                return await asyncio.wait_for(fut, 5)
            ok = child == ["child"] and asyncio.run(main()) == "async"
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status), "parent", got)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "child 0 parent ['parent']"


def test_installing_handlers_from_a_thread_without_a_loop_while_another_posts_does_not_deadlock():
    # The installer asks whether the port's loop is closed (Python code, during which
    # the GIL may move) while a poster holding the GIL wakes the port: that question is
    # asked outside the port's lock, or the two threads wait for each other for good.
    # In a child process, with a watchdog: a deadlock fails the test instead of hanging.
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import asyncio, faulthandler, threading, time, os
        from channel_messaging import MessageChannel
        ch = MessageChannel()
        p1, p2 = ch.port1, ch.port2
        def handler(e):
            pass
        ready = threading.Event()
        def loop_thread():
            async def main():
                p2.onmessage = handler  # p2's handlers run on this loop
                ready.set()
                await asyncio.sleep(3600)
            asyncio.run(main())
        threading.Thread(target=loop_thread, daemon=True).start()
        ready.wait()
        stop = time.monotonic() + 1.5
        counts = [0, 0]
        def installer():
            while time.monotonic() < stop:
                p2.onmessage = handler
                counts[0] += 1
        def poster():
            while time.monotonic() < stop:
                p1.post_message(1)
                counts[1] += 1
                if counts[1] % 64 == 0:
                    time.sleep(0)
        faulthandler.dump_traceback_later(20, exit=True)
        threads = [threading.Thread(target=f) for f in (installer, poster)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        faulthandler.cancel_dump_traceback_later()
        print("done", counts[0] > 0 and counts[1] > 0, flush=True)
        os._exit(0)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, (run.returncode, run.stderr[-3000:])
    assert run.stdout.strip() == "done True"

"""asyncio: ping-pong, handlers on the installing loop, recv_async, async for."""

import asyncio
import threading
import time

import pytest

from channel_messaging import BroadcastChannel, MessageChannel, PortClosedError


@pytest.mark.asyncio
async def test_asyncio_ping_pong_with_a_thread():
    ch = MessageChannel()

    def echo():
        for msg in ch.port2:
            ch.port2.post_message(msg * 2)

    t = threading.Thread(target=echo)
    t.start()
    for i in range(500):
        ch.port1.post_message(i)
        assert await ch.port1.recv_async() == i * 2
    ch.port1.close()
    await asyncio.get_running_loop().run_in_executor(None, t.join)


@pytest.mark.asyncio
async def test_asyncio_ping_pong_between_tasks():
    ch = MessageChannel()

    async def echo():
        async for msg in ch.port2:
            ch.port2.post_message(msg + 1)

    task = asyncio.ensure_future(echo())
    for i in range(300):
        ch.port1.post_message(i)
        assert await asyncio.wait_for(ch.port1.recv_async(), 5) == i + 1
    ch.port1.close()
    await asyncio.wait_for(task, 5)


@pytest.mark.asyncio
async def test_handlers_run_on_the_installing_loop():
    ch = MessageChannel()
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    seen = []

    def handler(e):
        seen.append((threading.current_thread() is threading.main_thread(), e.data))
        if len(seen) == 3:
            done.set_result(None)

    ch.port2.onmessage = handler
    t = threading.Thread(target=lambda: [ch.port1.post_message(i) for i in range(3)])
    t.start()
    await asyncio.wait_for(done, 5)
    t.join()
    assert seen == [(True, 0), (True, 1), (True, 2)]
    ch.port2.close()


@pytest.mark.asyncio
async def test_handler_exception_goes_to_loop_exception_handler():
    ch = MessageChannel()
    loop = asyncio.get_running_loop()
    reported = []
    loop.set_exception_handler(lambda lp, ctx: reported.append(ctx))
    got = []

    def handler(e):
        got.append(e.data)
        raise ValueError("handler failed")

    ch.port2.onmessage = handler
    ch.port1.post_message(1)
    ch.port1.post_message(2)
    for _ in range(200):
        if len(got) == 2 and len(reported) == 2:
            break
        await asyncio.sleep(0.01)
    assert got == [1, 2]
    assert isinstance(reported[0]["exception"], ValueError)
    ch.port2.close()


@pytest.mark.asyncio
async def test_busy_port_does_not_starve_the_loop():
    ch = MessageChannel()
    count = [0]

    def handler(e):
        count[0] += 1
        ch.port1.post_message(e.data)  # endless ping (spec B4)

    ch.port2.onmessage = handler
    ch.port1.post_message(0)
    await asyncio.sleep(0.05)  # a timer still fires
    assert count[0] > 10
    ch.port2.close()


@pytest.mark.asyncio
async def test_recv_async_raises_when_closed_and_async_for_ends():
    ch = MessageChannel()
    ch.port1.post_message("last")
    ch.port1.close()
    assert [m async for m in ch.port2] == ["last"]
    with pytest.raises(PortClosedError):
        await ch.port2.recv_async()


@pytest.mark.asyncio
async def test_cancelled_recv_async_loses_nothing():
    ch = MessageChannel()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ch.port2.recv_async(), 0.05)
    ch.port1.post_message("kept")
    await asyncio.sleep(0.05)
    assert ch.port2.recv(timeout=1) == "kept"


@pytest.mark.asyncio
async def test_ready_resolves_at_once_without_limits():
    ch = MessageChannel()
    assert ch.port1.is_ready()
    assert await asyncio.wait_for(ch.port1.ready(), 1) is None


@pytest.mark.asyncio
async def test_ready_waits_for_room_in_the_partners_queue():
    ch = MessageChannel()
    ch.port2.set_limits(max_messages=2)
    ch.port1.post_message(1)
    ch.port1.post_message(2)
    assert not ch.port1.is_ready()
    waiter = asyncio.ensure_future(ch.port1.ready())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    # The receiver takes a message on another thread: the waiter wakes up on its loop.
    got = await asyncio.get_running_loop().run_in_executor(None, ch.port2.recv, 1)
    assert got == 1
    await asyncio.wait_for(waiter, 1)
    assert ch.port1.is_ready()


@pytest.mark.asyncio
async def test_ready_paces_a_fast_sender():
    ch = MessageChannel()
    ch.port2.set_limits(max_messages=4)
    received = []

    def consume():
        for msg in ch.port2:
            received.append(msg)

    t = threading.Thread(target=consume)
    t.start()
    for i in range(200):
        await ch.port1.ready()
        assert ch.port2.stats()["queued_messages"] <= 4
        ch.port1.post_message(i)
    ch.port1.close()
    await asyncio.get_running_loop().run_in_executor(None, t.join)
    assert received == list(range(200))


@pytest.mark.asyncio
async def test_ready_resolves_when_the_partner_closes():
    ch = MessageChannel()
    ch.port2.set_limits(max_messages=1)
    ch.port1.post_message(1)
    waiter = asyncio.ensure_future(ch.port1.ready())
    await asyncio.sleep(0.02)
    assert not waiter.done()
    ch.port2.close()
    await asyncio.wait_for(waiter, 1)


@pytest.mark.asyncio
async def test_broadcast_recv_async_and_async_for():
    from channel_messaging import BroadcastChannel

    a, b = BroadcastChannel("py-async-bc"), BroadcastChannel("py-async-bc")
    waiter = asyncio.ensure_future(b.recv_async())
    await asyncio.sleep(0.02)
    assert not waiter.done()
    # Posted from another thread: the waiter is woken on this loop.
    await asyncio.get_running_loop().run_in_executor(None, a.post_message, {"n": 0})
    assert await asyncio.wait_for(waiter, 1) == {"n": 0}
    for i in range(1, 4):
        a.post_message({"n": i})
    got = []
    async for msg in b:
        got.append(msg["n"])
        if len(got) == 3:
            b.close()
    assert got == [1, 2, 3]
    with pytest.raises(PortClosedError):
        await b.recv_async()
    a.close()


@pytest.mark.asyncio
async def test_broadcast_recv_async_raises_when_closed_while_waiting():
    from channel_messaging import BroadcastChannel

    b = BroadcastChannel("py-async-bc-close")
    waiter = asyncio.ensure_future(b.recv_async())
    await asyncio.sleep(0.02)
    b.close()
    with pytest.raises(PortClosedError):
        await asyncio.wait_for(waiter, 1)


def source_and_target(kind, name):
    """Two ends to post from and receive on: a channel's ports, or two BroadcastChannels
    of one name."""
    if kind == "port":
        ch = MessageChannel()
        return ch.port1, ch.port2
    return BroadcastChannel(name), BroadcastChannel(name)


@pytest.mark.parametrize("kind", ["port", "broadcast"])
def test_cancelled_and_timed_out_recv_async_leave_nothing_behind(kind):
    # an idle port polled by awaitables that are cancelled or time out (a heartbeat
    # loop: wait_for(recv_async(), t)) holds none of them once the next one registers
    import gc
    import weakref

    async def main():
        source, target = source_and_target(kind, "test-recv-async-leak")
        refs = []
        for i in range(300):
            t = asyncio.ensure_future(target.recv_async())
            await asyncio.sleep(0)
            # what the awaitable waits on: a future the port's waker resolves
            waiting = t._fut_waiter
            assert waiting is not None
            refs.append(weakref.ref(waiting))
            del waiting
            if i % 2:
                t.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await t
            else:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(t, 0.001)
            del t
        last = asyncio.ensure_future(target.recv_async())
        await asyncio.sleep(0)
        gc.collect()
        assert sum(r() is not None for r in refs) <= 1
        source.post_message("after")  # and the awaitable still waiting gets the message
        assert await asyncio.wait_for(last, 5) == "after"
        source.close()
        target.close()

    asyncio.run(main())


def test_a_handler_installed_without_a_loop_does_not_move_the_ports_handlers_off_theirs():
    ch = MessageChannel()
    where = []
    ready = threading.Event()
    done = threading.Event()

    def loop_thread():
        async def main():
            ch.port2.onmessage = lambda e: where.append((e.data, threading.current_thread().name))
            ready.set()
            while not done.is_set():
                await asyncio.sleep(0.005)

        asyncio.run(main())

    t = threading.Thread(target=loop_thread, name="the-loop-thread")
    t.start()
    assert ready.wait(5)
    ch.port1.post_message("before")
    deadline = time.monotonic() + 5
    while not where and time.monotonic() < deadline:
        time.sleep(0.005)
    ch.port2.onclose = lambda e: None  # installed here, a thread without a running loop
    ch.port1.post_message("after")
    while len(where) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    done.set()
    t.join(5)
    assert where == [("before", "the-loop-thread"), ("after", "the-loop-thread")]
    ch.port1.close()


def test_handlers_of_a_loop_that_closed_with_a_delivery_pending_go_on_on_the_dispatcher():
    # the loop closes with the port's delivery still queued on it: the messages are
    # delivered on the dispatcher thread (the documented fallback), then and later
    ch = MessageChannel()
    got = []
    loop = asyncio.new_event_loop()

    async def install():
        ch.port2.onmessage = lambda e: got.append((e.data, threading.current_thread().name))

    loop.run_until_complete(install())
    ch.port1.post_message("pending when the loop closed")
    loop.close()
    ch.port1.post_message("after")
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert [d for d, _ in got] == ["pending when the loop closed", "after"]
    assert {t for _, t in got} == {"channel_messaging-dispatcher"}
    ch.port1.close()


def test_an_awaitable_does_not_wait_for_a_busy_dispatcher_when_a_python_thread_posts():
    # the dispatcher thread is busy in another port's slow handler; a Python thread posts
    # to the awaited port: the wake-up goes straight to the loop
    slow = MessageChannel()
    release = threading.Event()
    slow.port2.onmessage = lambda e: release.wait(10)

    async def main():
        ch = MessageChannel()
        fut = ch.port2.recv_async()
        slow.port1.post_message("occupy the dispatcher")
        await asyncio.sleep(0.05)
        threading.Thread(target=lambda: ch.port1.post_message("hi")).start()
        try:
            return await asyncio.wait_for(fut, 5)
        finally:
            release.set()

    assert asyncio.run(main()) == "hi"
    slow.port1.close()


@pytest.mark.parametrize("kind", ["port", "broadcast"])
def test_a_task_cancelled_after_the_wake_up_leaves_the_message_queued(kind):
    # The port's wake-up has run when the awaiting task is cancelled, before it resumes:
    # the message stays queued (as with asyncio.Queue.get), it is not lost in a future
    # nobody reads.
    from channel_messaging import Empty

    async def main():
        source, target = source_and_target(kind, "test-cancel-after-wake")

        async def reader():
            return await target.recv_async()

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)  # waiting now
        source.post_message("important")
        await asyncio.sleep(0)  # the wake-up ran
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert target.recv_nowait() == "important"
        with pytest.raises(Empty):
            target.recv_nowait()
        source.close()
        target.close()

    asyncio.run(main())


def test_receiving_under_short_timeouts_loses_nothing():
    # a polling loop whose awaits often time out while messages arrive from a thread
    n = 2000

    async def main():
        ch = MessageChannel()
        got = []

        def send():
            for i in range(n):
                ch.port1.post_message(i)
                if i % 50 == 0:
                    time.sleep(0.0005)

        t = threading.Thread(target=send)
        t.start()
        deadline = time.monotonic() + 20
        while len(got) < n and time.monotonic() < deadline:
            try:
                async with asyncio.timeout(0.0002):
                    got.append(await ch.port2.recv_async())
            except TimeoutError:
                pass
        t.join()
        assert got == list(range(n))
        ch.port1.close()

    asyncio.run(main())


def test_recv_async_is_awaitable_and_wraps_in_a_task():
    async def main():
        ch = MessageChannel()
        ch.port1.post_message("a")
        assert await ch.port2.recv_async() == "a"
        task = asyncio.ensure_future(ch.port2.recv_async())
        ch.port1.post_message(("b", 1))
        assert await task == ["b", 1]
        ch.port1.close()
        with pytest.raises(PortClosedError):
            await ch.port2.recv_async()
        assert [m async for m in ch.port2] == []

    asyncio.run(main())

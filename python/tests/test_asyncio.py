"""asyncio: ping-pong, handlers on the installing loop, recv_async, async for."""

import asyncio
import threading

import pytest

from channel_messaging import MessageChannel, PortClosedError


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

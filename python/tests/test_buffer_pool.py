"""The pool of freed Buffer blocks: reuse, zeroing, transfer without copies, bounds."""

import threading

import pytest

import channel_messaging as cm
from channel_messaging import Buffer, DetachedError, MessageChannel

SIZE = 64 * 1024


@pytest.fixture(autouse=True)
def fresh_pool():
    """Every test starts from an empty pool with the default limit, and leaves it so."""
    default = cm.buffer_pool_stats()["limit"]
    cm.clear_buffer_pool()
    yield
    cm.set_buffer_pool_limit(default)
    cm.clear_buffer_pool()


def fill(buf, byte):
    with memoryview(buf) as m:
        m[:] = bytes([byte]) * len(m)


def free_dirty_block(byte):
    """Makes a SIZE-byte Buffer, fills it with `byte` and frees it (its block goes to the
    pool, uncleared); returns the block's address."""
    buf = Buffer(SIZE)
    fill(buf, byte)
    address = buf.address
    del buf
    return address


def test_defaults_and_stats_shape():
    s = cm.buffer_pool_stats()
    assert s["limit"] == 16 << 20
    assert s["bytes"] == 0 and s["blocks"] == 0
    assert s["min_block"] == 16 << 10 and s["max_block"] == 16 << 20
    assert isinstance(s["hits"], int) and isinstance(s["misses"], int)
    assert s["zeroed_blocks"] == 0 and isinstance(s["scrubbed"], int)


def test_freed_block_is_reused_and_zeroed():
    address = free_dirty_block(0xAB)
    s = cm.buffer_pool_stats()
    assert s["blocks"] == 1 and s["bytes"] >= SIZE
    hits = s["hits"]
    again = Buffer(SIZE)
    assert again.address == address  # the same block...
    assert bytes(again) == bytes(SIZE)  # ...cleared first
    assert cm.buffer_pool_stats()["hits"] == hits + 1
    assert cm.buffer_pool_stats()["blocks"] == 0


def test_smaller_request_reuses_a_larger_block_and_shows_only_zeros():
    address = free_dirty_block(0xFF)
    smaller = Buffer(SIZE - 1000)  # same size class (48-64 KiB rounds up to 64 KiB)
    assert smaller.address == address
    assert len(smaller) == SIZE - 1000
    assert bytes(smaller) == bytes(SIZE - 1000)


def test_copy_into_a_reused_block_overwrites_it():
    address = free_dirty_block(0x11)
    data = bytes(range(256)) * (SIZE // 256)
    copy = Buffer(data)
    assert copy.address == address
    assert bytes(copy) == data


def test_a_waiting_receiver_clears_freed_blocks_ahead_of_need():
    address = free_dirty_block(0xAB)
    before = cm.buffer_pool_stats()
    assert before["blocks"] == 1
    ch = MessageChannel()
    with pytest.raises(cm.Empty):
        ch.port2.recv(timeout=0.05)  # waits on an empty queue: time to clear the block
    after = cm.buffer_pool_stats()
    # (cleared by this wait, or by any other thread waiting in a receive meanwhile)
    assert after["blocks"] == 1 and after["zeroed_blocks"] == 1
    assert after["scrubbed"] >= before["scrubbed"] + (1 - before["zeroed_blocks"])
    again = Buffer(SIZE)
    assert again.address == address
    assert bytes(again) == bytes(SIZE)
    assert cm.buffer_pool_stats()["zeroed_blocks"] == 0
    ch.port1.close()


def test_small_and_huge_blocks_are_not_pooled():
    small = Buffer(1000)
    del small
    assert cm.buffer_pool_stats()["blocks"] == 0
    huge = Buffer((16 << 20) + 1)
    del huge
    assert cm.buffer_pool_stats()["blocks"] == 0


def test_pool_is_bounded():
    cm.set_buffer_pool_limit(4 * SIZE)
    bufs = [Buffer(SIZE) for _ in range(10)]
    del bufs
    s = cm.buffer_pool_stats()
    assert s["blocks"] == 4 and s["bytes"] == 4 * SIZE
    cm.set_buffer_pool_limit(2 * SIZE)  # shrinking frees what no longer fits
    s = cm.buffer_pool_stats()
    assert s["blocks"] == 2 and s["bytes"] == 2 * SIZE
    cm.clear_buffer_pool()
    assert cm.buffer_pool_stats()["blocks"] == 0


def test_limit_zero_disables_the_pool():
    cm.set_buffer_pool_limit(0)
    buf = Buffer(SIZE)
    del buf
    assert cm.buffer_pool_stats()["blocks"] == 0
    assert bytes(Buffer(SIZE)) == bytes(SIZE)


def test_negative_limit_is_refused():
    with pytest.raises(ValueError):
        cm.set_buffer_pool_limit(-1)


def test_transfer_keeps_the_address_and_detaches_and_the_block_comes_back():
    ch = MessageChannel()
    received = []

    def receiver():
        received.append(ch.port2.recv(timeout=10))

    buf = Buffer(SIZE)
    with memoryview(buf) as m:
        m[:8] = (12345).to_bytes(8, "little")
    address = buf.address
    t = threading.Thread(target=receiver)
    t.start()
    ch.port1.post_message(buf, [buf])
    t.join()
    assert buf.detached and len(buf) == 0
    with pytest.raises(DetachedError):
        memoryview(buf)
    got = received.pop()
    assert got.address == address  # the same memory on both sides
    with memoryview(got) as m:
        assert int.from_bytes(m[:8], "little") == 12345
    del got  # freed on this thread, made by this thread: back to the pool either way
    assert cm.buffer_pool_stats()["blocks"] == 1
    fresh = Buffer(SIZE)
    assert fresh.address == address
    assert bytes(fresh) == bytes(SIZE)
    ch.port1.close()


def test_detached_buffer_gives_nothing_back():
    ch = MessageChannel()
    buf = Buffer(SIZE)
    ch.port1.post_message(buf, [buf])
    del buf  # detached: it owns no block any more
    assert cm.buffer_pool_stats()["blocks"] == 0
    got = ch.port2.recv(timeout=10)
    del got
    assert cm.buffer_pool_stats()["blocks"] == 1


def test_recycled_buffers_across_threads_never_leak_old_bytes():
    ch = MessageChannel()
    n = 300
    errors = []

    def receiver():
        for i in range(n):
            b = ch.port2.recv(timeout=10)
            with memoryview(b) as m:
                if int.from_bytes(m[:8], "little") != i or any(m[8:]):
                    errors.append(i)
                m[:] = b"\xee" * len(m)  # dirty it before it goes back to the pool

    t = threading.Thread(target=receiver)
    t.start()
    for i in range(n):
        buf = Buffer(SIZE)
        with memoryview(buf) as m:
            assert not any(m)
            m[:8] = i.to_bytes(8, "little")
        ch.port1.post_message(buf, [buf])
    t.join()
    assert errors == []
    assert cm.buffer_pool_stats()["bytes"] <= cm.buffer_pool_stats()["limit"]


def test_blocks_cleared_during_handoffs_are_all_zero():
    # A low handoff threshold makes the producer hand the GIL over every few messages;
    # while it waits it clears the blocks the receiver frees (and the receiver clears
    # them while its queue is empty). Every Buffer(n) must still read as zeros.
    threshold = cm.handoff_stats()["threshold"]
    cm.set_handoff_threshold(4 * SIZE)
    ch = MessageChannel()
    n = 2000
    errors = []
    scrubbed = cm.buffer_pool_stats()["scrubbed"]

    def receiver():
        for i in range(n):
            b = ch.port2.recv(timeout=10)
            with memoryview(b) as m:
                if int.from_bytes(m[:8], "little") != i:
                    errors.append(i)
                m[:] = b"\x5a" * len(m)

    t = threading.Thread(target=receiver)
    t.start()
    try:
        zero = bytes(SIZE)
        for i in range(n):
            buf = Buffer(SIZE)
            with memoryview(buf) as m:
                if m != zero:
                    errors.append(-i)
                m[:8] = i.to_bytes(8, "little")
            ch.port1.post_message(buf, [buf])
        t.join()
    finally:
        cm.set_handoff_threshold(threshold)
    assert errors == []
    assert cm.buffer_pool_stats()["scrubbed"] > scrubbed

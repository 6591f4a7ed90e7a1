"""GIL handoff: a posting thread lets a backlogged thread blocked in recv() have the GIL.

The switch interval is raised to 10 s in these tests, so that CPython itself never moves
the GIL from the posting thread to the receiving one within a test: whatever bound the
receiver's queue respects comes from post_message's handoff alone, and the receiver is
always blocked in recv() (registered) whenever the poster holds the GIL.
"""

import sys
import threading

import pytest

import channel_messaging as cm
from channel_messaging import Buffer, MessageChannel

from conftest import wait_for

SIZE = 64 * 1024
THRESHOLD = 1 << 20


@pytest.fixture(autouse=True)
def handoff_setup():
    default = cm.handoff_stats()["threshold"]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    yield
    sys.setswitchinterval(interval)
    cm.set_handoff_threshold(default)


def run_pair(n, size=SIZE):
    """Posts n transferred Buffers of `size` bytes to a thread blocked in recv(); returns
    the receiver's queued bytes right after each recv() and the handoffs made."""
    ch = MessageChannel()
    tx, rx = ch.port1, ch.port2
    queued = []
    errors = []

    def receiver():
        for i in range(n):
            b = rx.recv(timeout=30)
            queued.append(rx.stats()["queued_bytes"])
            with memoryview(b) as m:
                if int.from_bytes(m[:8], "little") != i:
                    errors.append(i)

    t = threading.Thread(target=receiver)
    waiting = cm.handoff_stats()["waiting"]
    t.start()
    # Start posting once the receiver is blocked in recv() (registered).
    assert wait_for(lambda: cm.handoff_stats()["waiting"] > waiting)
    before = cm.handoff_stats()["handoffs"]
    for i in range(n):
        buf = Buffer(size)
        with memoryview(buf) as m:
            m[:8] = i.to_bytes(8, "little")
        tx.post_message(buf, [buf])
    t.join(30)
    assert not t.is_alive()
    assert errors == []
    tx.close()
    return queued, cm.handoff_stats()["handoffs"] - before


def test_defaults_and_stats_shape():
    s = cm.handoff_stats()
    assert s["threshold"] == 4 << 20
    assert isinstance(s["handoffs"], int) and isinstance(s["waiting"], int)


def test_receiver_queue_stays_near_the_threshold():
    cm.set_handoff_threshold(THRESHOLD)
    n = 400  # 25 MiB in all
    queued, handoffs = run_pair(n)
    # A poster checks once per threshold/8 bytes posted, so the queue reaches at most the
    # threshold plus one check interval plus a message (queued bytes count a message's
    # encoding too: allow a little for it).
    bound = THRESHOLD + THRESHOLD // 8 + 2 * SIZE
    assert max(queued) <= bound, (max(queued), bound)
    assert handoffs >= n * SIZE // (bound + SIZE)


def test_without_handoff_the_queue_grows():
    # What the test above would see without the feature: with the switch interval at
    # 10 s, the poster keeps the GIL until it is done.
    cm.set_handoff_threshold(0)
    n = 100
    queued, handoffs = run_pair(n)
    assert handoffs == 0
    assert max(queued) >= (n - 2) * SIZE


def test_small_messages_never_hand_off_below_the_threshold():
    cm.set_handoff_threshold(THRESHOLD)
    ch = MessageChannel()
    n = 10_000  # about 300 KB in all: under the threshold
    got = []
    t = threading.Thread(target=lambda: got.extend(ch.port2.recv(timeout=30) for _ in range(n)))
    waiting = cm.handoff_stats()["waiting"]
    t.start()
    assert wait_for(lambda: cm.handoff_stats()["waiting"] > waiting)
    before = cm.handoff_stats()["handoffs"]
    for i in range(n):
        ch.port1.post_message({"seq": i, "name": "tick"})
    t.join(30)
    assert got == [{"seq": i, "name": "tick"} for i in range(n)]
    assert cm.handoff_stats()["handoffs"] == before
    ch.port1.close()


def test_a_port_nobody_reads_never_hands_off():
    cm.set_handoff_threshold(THRESHOLD)
    ch = MessageChannel()
    # Another thread blocked in recv() on an idle port does not count: its queue is empty.
    idle = MessageChannel()
    t = threading.Thread(target=lambda: idle.port2.recv(timeout=30))
    waiting = cm.handoff_stats()["waiting"]
    t.start()
    assert wait_for(lambda: cm.handoff_stats()["waiting"] > waiting)
    before = cm.handoff_stats()["handoffs"]
    for _ in range(64):  # 4 MiB, four times the threshold
        buf = Buffer(SIZE)
        ch.port1.post_message(buf, [buf])
    assert cm.handoff_stats()["handoffs"] == before
    assert ch.port2.stats()["queued_messages"] == 64
    idle.port1.post_message(None)
    t.join(30)
    for p in (*ch, *idle):
        p.close()


def test_negative_threshold_is_refused():
    with pytest.raises(ValueError):
        cm.set_handoff_threshold(-1)

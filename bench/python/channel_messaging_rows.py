"""channel_messaging (Python) rows: the workloads of bench/python/peers.py, same message
shapes, through a MessageChannel between two threads.

Usage: python3 bench/python/channel_messaging_rows.py <w1|w2|w3b> <n>

Prints one line `RESULT {json}`. W1: the dict {"seq": i, "name": "tick"} posted n times,
received with port.recv() and checked. W2: round trips with an echo thread. W3b: a fresh
64 KiB Buffer per message, stamped and transferred (no copy), checked by the receiver.
"""

import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)


def ensure_release_build():
    """Installs the package (`pip install ./python`, a release build) into this
    interpreter when it is missing or a debug build (`make test` installs a debug build),
    so that a row never measures unoptimized code. Output goes to stderr."""
    try:
        from channel_messaging import _native

        if getattr(_native, "_build_profile", "debug") == "release":
            return
    except ImportError:
        pass
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--force-reinstall", "--no-deps", os.path.join(REPO, "python")],
        check=True, stdout=sys.stderr,
    )
    os.execv(sys.executable, [sys.executable] + sys.argv)


ensure_release_build()

from peers import W3_BYTES, check_buffer, check_tick, latency, report, timed_pair, warmup  # noqa: E402

from channel_messaging import Buffer, MessageChannel  # noqa: E402


def w1(n):
    ch = MessageChannel()
    tx, rx = ch.port1, ch.port2

    def send_all():
        post = tx.post_message
        for i in range(n):
            post({"seq": i, "name": "tick"})

    recv = rx.recv
    secs = timed_pair(n, lambda seq: check_tick(recv(), seq), send_all)
    report(n / secs, "msg/s", n=n, secs=secs)


def w2(n):
    ping, pong = MessageChannel(), MessageChannel()
    total = n + warmup(n)

    def echo():
        recv, post = ping.port2.recv, pong.port1.post_message
        for _ in range(total):
            post(recv())

    t = threading.Thread(target=echo)
    t.start()
    post, recv = ping.port1.post_message, pong.port2.recv
    for i in range(warmup(n)):
        post({"seq": i, "name": "tick"})
        recv()
    samples = []
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        post({"seq": i, "name": "tick"})
        recv()
        samples.append(clock() - t0)
    t.join()
    latency(samples)


def w3b(n):
    ch = MessageChannel()
    tx, rx = ch.port1, ch.port2

    def send_all():
        post = tx.post_message
        for i in range(n):
            buf = Buffer(W3_BYTES)  # a fresh buffer made by the sender
            with memoryview(buf) as m:
                m[:8] = i.to_bytes(8, "little")
            post(buf, [buf])  # transferred: the receiver gets the same memory
            del buf

    def recv_one(seq):
        b = rx.recv()
        with memoryview(b) as m:
            check_buffer(m, seq)

    secs = timed_pair(n, recv_one, send_all)
    report(n * W3_BYTES / secs / 1e6, "MB/s", n=n, secs=secs)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    workload, n = sys.argv[1], int(sys.argv[2].replace("_", ""))
    runs = {"w1": w1, "w2": w2, "w3b": w3b}
    if workload not in runs:
        sys.exit(f"no workload {workload!r}")
    runs[workload](n)


if __name__ == "__main__":
    main()

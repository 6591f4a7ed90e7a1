"""Python peer rows: queue.Queue and queue.SimpleQueue between threads,
multiprocessing.Pipe between two processes.

Usage: python3 bench/python/peers.py <queue|simplequeue|pipe> <w1|w2|w3a|w3b|w4> <n>

Prints one line `RESULT {json}` (see bench/src/lib.rs for the fields). The W1 message is
the dict {"seq": i, "name": "tick"}; receivers read both fields ("decode") and count.
W2 uses one perf_counter_ns() pair per round trip, like every other mechanism.
"""

import json
import math
import multiprocessing
import queue
import sys
import threading
import time

W3_BYTES = 64 * 1024


def report(value, unit, **extra):
    out = {"value": value, "unit": unit}
    out.update(extra)
    print("RESULT " + json.dumps(out), flush=True)


def check_tick(m, seq):
    if m["seq"] != seq or m["name"] != "tick":
        raise AssertionError(f"message {seq} arrived as {m!r}")


def check_buffer(b, seq):
    if len(b) != W3_BYTES or int.from_bytes(b[:8], "little") != seq:
        raise AssertionError(f"buffer {seq} arrived wrong")


def stamp(buf, seq):
    buf[:8] = seq.to_bytes(8, "little")


def warmup(n):
    return max(10, min(1000, n // 100))


def latency(samples_ns):
    samples_ns.sort()
    k = len(samples_ns)

    def pick(q):
        idx = min(max(math.ceil(k * q), 1), k) - 1
        return samples_ns[idx] / 1000.0

    mean = sum(samples_ns) / k / 1000.0
    report(pick(0.5), "us", p50=pick(0.5), p99=pick(0.99), mean=mean,
           max=samples_ns[-1] / 1000.0, n=k)


def make_queue(mech):
    return queue.Queue() if mech == "queue" else queue.SimpleQueue()


def timed_pair(n, recv_one, send_all):
    """send_all() on this thread, recv_one(seq) n times on another; first send to last receive."""
    barrier = threading.Barrier(2)
    end = [0.0]

    def receiver():
        barrier.wait()
        for seq in range(n):
            recv_one(seq)
        end[0] = time.perf_counter()

    t = threading.Thread(target=receiver)
    t.start()
    barrier.wait()
    start = time.perf_counter()
    send_all()
    t.join()
    return end[0] - start


# --- threads and queues -------------------------------------------------------------


def q_w1(mech, n):
    q = make_queue(mech)

    def send_all():
        put = q.put
        for i in range(n):
            put({"seq": i, "name": "tick"})

    secs = timed_pair(n, lambda seq: check_tick(q.get(), seq), send_all)
    report(n / secs, "msg/s", n=n, secs=secs)


def q_w2(mech, n):
    ping, pong = make_queue(mech), make_queue(mech)
    total = n + warmup(n)

    def echo():
        for _ in range(total):
            pong.put(ping.get())

    t = threading.Thread(target=echo)
    t.start()
    for i in range(warmup(n)):
        ping.put({"seq": i, "name": "tick"})
        pong.get()
    samples = []
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        ping.put({"seq": i, "name": "tick"})
        pong.get()
        samples.append(clock() - t0)
    t.join()
    latency(samples)


def q_w3(mech, n, transfer):
    q = make_queue(mech)

    def send_all():
        src = bytearray(i % 256 for i in range(W3_BYTES))
        for i in range(n):
            if transfer:
                # a fresh buffer made by the sender, handed over by reference
                buf = bytearray([i % 256]) * W3_BYTES
                stamp(buf, i)
                q.put(buf)
                del buf
            else:
                stamp(src, i)
                q.put(bytes(src))  # the copy

    secs = timed_pair(n, lambda seq: check_buffer(q.get(), seq), send_all)
    report(n * W3_BYTES / secs / 1e6, "MB/s", n=n, secs=secs)


def q_w4(mech, n):
    receivers = 4
    queues = [make_queue(mech) for _ in range(receivers)]
    barrier = threading.Barrier(receivers + 1)
    ends = [0.0] * receivers

    def receiver(k):
        q = queues[k]
        barrier.wait()
        for seq in range(n):
            check_tick(q.get(), seq)
        ends[k] = time.perf_counter()

    threads = [threading.Thread(target=receiver, args=(k,)) for k in range(receivers)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    puts = [q.put for q in queues]
    for i in range(n):
        m = {"seq": i, "name": "tick"}
        for put in puts:
            put(m)
    for t in threads:
        t.join()
    secs = max(ends) - start
    report(receivers * n / secs, "msg/s", n=receivers * n, secs=secs)


# --- two processes and a pipe -------------------------------------------------------


def pipe_child(conn, workload, n):
    """Runs in the child process: receives (W1, W3a) or echoes (W2)."""
    if workload == "w2":
        for _ in range(n + warmup(n)):
            conn.send(conn.recv())
        return
    conn.send("ready")
    for seq in range(n):
        if workload == "w1":
            check_tick(conn.recv(), seq)
        else:
            check_buffer(conn.recv_bytes(), seq)
    conn.send(time.perf_counter())  # CLOCK_MONOTONIC: comparable across processes


def pipe_run(workload, n):
    parent, child = multiprocessing.Pipe()
    p = multiprocessing.Process(target=pipe_child, args=(child, workload, n))
    p.start()
    if workload == "w2":
        for i in range(warmup(n)):
            parent.send({"seq": i, "name": "tick"})
            parent.recv()
        samples = []
        clock = time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            parent.send({"seq": i, "name": "tick"})
            parent.recv()
            samples.append(clock() - t0)
        p.join()
        latency(samples)
        return
    assert parent.recv() == "ready"
    start = time.perf_counter()
    if workload == "w1":
        for i in range(n):
            parent.send({"seq": i, "name": "tick"})
    else:
        src = bytearray(i % 256 for i in range(W3_BYTES))
        for i in range(n):
            stamp(src, i)
            parent.send_bytes(src)
    end = parent.recv()
    p.join()
    secs = end - start
    if workload == "w1":
        report(n / secs, "msg/s", n=n, secs=secs)
    else:
        report(n * W3_BYTES / secs / 1e6, "MB/s", n=n, secs=secs)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    mech, workload, n = sys.argv[1], sys.argv[2], int(sys.argv[3].replace("_", ""))
    if mech in ("queue", "simplequeue"):
        runs = {
            "w1": lambda: q_w1(mech, n),
            "w2": lambda: q_w2(mech, n),
            "w3a": lambda: q_w3(mech, n, transfer=False),
            "w3b": lambda: q_w3(mech, n, transfer=True),
            "w4": lambda: q_w4(mech, n),
        }
    elif mech == "pipe":
        runs = {w: (lambda w=w: pipe_run(w, n)) for w in ("w1", "w2", "w3a")}
    else:
        runs = {}
    if workload not in runs:
        sys.exit(f"mechanism {mech!r} has no workload {workload!r}")
    runs[workload]()


if __name__ == "__main__":
    main()

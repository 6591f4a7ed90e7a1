"""A pipeline of worker threads that hand each other ports and buffers.

main --(job port)--> stage "fill" --(Buffer, transferred)--> stage "checksum" --> main

Each stage is a thread that receives its input port *inside a message*, so the wiring
itself travels through channels. Buffers move between stages without being copied (the
same address at every stage); the last stage reports over a port it was handed too.
"""

import threading
import zlib

from channel_messaging import Buffer, MessageChannel

JOBS = 8
SIZE = 1 << 20
_print_lock = threading.Lock()


def say(text):
    with _print_lock:
        print(text, flush=True)


def fill_stage(control):
    setup = control.recv_event()
    jobs, out = setup.ports  # two ports, handed over in one message
    for job in jobs:  # ends when main closes its end
        buf = Buffer(SIZE)
        with memoryview(buf) as m:
            m[:] = bytes([job["seed"] % 256]) * SIZE
        say(f"  fill      job {job['id']}: 1 MiB at {buf.address:#x}")
        out.post_message({"id": job["id"], "data": buf}, [buf])  # moved, not copied
    out.close()


def checksum_stage(control):
    (inp, results) = control.recv_event().ports
    for item in inp:
        data = item["data"]
        with memoryview(data) as m:
            crc = zlib.crc32(m)
        say(f"  checksum  job {item['id']}: same memory at {data.address:#x}")
        results.post_message({"id": item["id"], "crc": crc, "bytes": len(data)})
    results.close()


def main():
    fill_ctl, check_ctl = MessageChannel(), MessageChannel()
    threads = [
        threading.Thread(target=fill_stage, args=(fill_ctl.port2,), name="fill"),
        threading.Thread(target=checksum_stage, args=(check_ctl.port2,), name="checksum"),
    ]
    for t in threads:
        t.start()

    jobs = MessageChannel()  # main -> fill
    link = MessageChannel()  # fill -> checksum
    results = MessageChannel()  # checksum -> main
    fill_ctl.port1.post_message("wire", [jobs.port2, link.port1])
    check_ctl.port1.post_message("wire", [link.port2, results.port1])

    for i in range(JOBS):
        jobs.port1.post_message({"id": i, "seed": i * 37})
    jobs.port1.close()

    for r in results.port2:  # ends when the checksum stage closes its port
        expect = zlib.crc32(bytes([(r["id"] * 37) % 256]) * SIZE)
        status = "ok" if r["crc"] == expect else "MISMATCH"
        say(f"main: job {r['id']} crc {r['crc']:#010x} ({r['bytes']} bytes) {status}")
        assert r["crc"] == expect
    for t in threads:
        t.join()
    say(f"main: {JOBS} jobs through 2 stages, buffers transferred without copies")


if __name__ == "__main__":
    main()

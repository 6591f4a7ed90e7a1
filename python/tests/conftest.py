import gc
import sys
import threading
import time

import pytest

from channel_messaging import MessageChannel


@pytest.fixture
def channel():
    ch = MessageChannel()
    yield ch
    ch.port1.close()
    ch.port2.close()


def wait_for(predicate, timeout=5.0):
    """Polls `predicate` (test helper only) until true or the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


@pytest.fixture
def unraisable(monkeypatch):
    """Collects what handlers report through sys.unraisablehook."""
    seen = []
    lock = threading.Lock()

    def hook(info):
        with lock:
            seen.append(info)

    monkeypatch.setattr(sys, "unraisablehook", hook)
    yield seen
    gc.collect()

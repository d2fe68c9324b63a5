"""Rows waiting for another store: per database, bounded by count and age, forgotten by a forked child."""

import os
import select
import signal
import threading

import pytest

from core.profiler.deferred import DeferredRows


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_databases_wait_apart():
    rows = DeferredRows(max_rows=2, max_age=60, clock=Clock())
    assert rows.defer("a", [1]) and rows.defer("b", [2]) and rows.defer("a", [3])
    assert not rows.defer("a", [4]), "a third row of a: written now"
    assert rows.defer("b", [5])
    assert rows.take("a") == [1, 3]
    assert rows.take("a") == []
    assert rows.drain() == {"b": [2, 5]}
    assert rows.waiting("b") == []


def test_rows_put_back_wait_in_front():
    rows = DeferredRows(max_rows=2, max_age=60, clock=Clock())
    assert rows.defer("a", [1, 2])
    taken = rows.take("a")
    assert rows.defer("a", [3])
    rows.put_back("a", taken)
    assert rows.waiting("a") == [1, 2, 3]
    assert not rows.defer("a", [4]), "more than max_rows wait: the next store writes them"


def test_the_oldest_row_sets_the_age():
    clock = Clock()
    rows = DeferredRows(max_rows=10, max_age=60, clock=clock)
    assert rows.defer("a", [1])
    clock.now = 59
    assert rows.defer("a", [2])
    clock.now = 60
    assert not rows.defer("a", [3]), "the first waited 60 s"
    rows.take("a")
    assert rows.defer("a", [3]), "a new first row"


def test_nothing_waits_with_max_rows_0():
    rows = DeferredRows(max_rows=0)
    assert not rows.defer("a", [1])
    assert rows.take("a") == []


def test_threads_lose_no_row():
    rows = DeferredRows(max_rows=10**6, max_age=10**6)

    def add(start):
        for number in range(start, start + 1000):
            assert rows.defer("a", [number])

    threads = [threading.Thread(target=add, args=(start,)) for start in range(0, 4000, 1000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(rows.take("a")) == list(range(4000))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this OS")
def test_a_forked_child_holds_none_even_with_the_lock_taken():
    rows = DeferredRows()
    rows.defer("a", [1])
    os.register_at_fork(after_in_child=rows.clear_in_child)
    read, write = os.pipe()
    with rows._lock:  # another thread of the parent holds it at fork time
        pid = os.fork()
        if pid == 0:  # the child: would hang on the inherited lock without a new one
            try:
                os.close(read)
                os.write(write, str(len(rows.waiting("a"))).encode())
            finally:
                os._exit(0)
    os.close(write)
    ready = []
    try:
        ready, _w, _x = select.select([read], [], [], 30)
        assert ready, "the child answers (it would hang on the parent's lock)"
        assert os.read(read, 16) == b"0"
    finally:
        os.close(read)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert rows.take("a") == [1], "the parent still has its own"

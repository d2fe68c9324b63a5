import time
import tracemalloc

import psutil
import pytest

from core.common.units import MIB
from core.diagnostics import heap


def test_top_types_of_this_process():
    rows = heap.top_types(10)
    assert len(rows) == 10
    assert rows[0][2] >= rows[-1][2]
    names = {name for name, _count, _size in rows}
    assert names & {"str", "dict", "function", "type", "tuple"}
    assert "type" in heap.format_top_types(rows)


def test_collect_reports_rss_and_trim():
    garbage = []
    garbage.append(garbage)  # a cycle only the collector frees
    del garbage
    result = heap.collect()
    assert result["unreachable"] >= 1
    assert result["rss_before"] > 0 and result["rss_after"] > 0
    assert result["trimmed"] in (True, False, None)
    assert "RSS after trim" in heap.format_collect(result)


def test_collect_without_trim():
    result = heap.collect(rss=lambda: 100, trim=None)
    assert result["trimmed"] is None
    assert "not available" in heap.format_collect(result)


def test_tracer_start_snapshot_compare_stop():
    tracer = heap.Tracer()
    assert tracer.snapshot() is None, "not tracing: no snapshot"
    assert "started" in tracer.start(frames=2)
    try:
        first = tracer.snapshot(top_n=3)
        assert "First snapshot" in first
        kept = [bytearray(1000) for _ in range(200)]  # noqa: F841 - allocated between the snapshots
        second = tracer.snapshot(top_n=3)
        assert "Compared with the previous snapshot" in second
        assert "test_heap.py" in second
    finally:
        assert "stopped" in tracer.stop()
    assert not tracemalloc.is_tracing()
    assert "not tracing" in tracer.stop()


def test_tracer_leaves_foreign_tracing_on():
    tracemalloc.start()
    try:
        tracer = heap.Tracer()
        assert "already" in tracer.start()
        assert "left on" in tracer.stop()
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


def _wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


def test_tracer_stops_by_itself_at_its_traced_size(tmp_path):
    board = heap.TracingBoard(str(tmp_path / "board"))
    tracer = heap.Tracer(board=board, interval=0.02)
    if tracemalloc.is_tracing():
        pytest.skip("something else traces this process")
    text = tracer.start(1, max_seconds=3600, max_bytes=MIB)
    assert "stops by itself after 60 min or when it traces 1.0 MiB" in text
    me = psutil.Process()
    assert board.lookup(me.pid, me.create_time())["max_bytes"] == MIB
    kept = [bytearray(4096) for _ in range(1024)]  # 4 MiB, traced
    assert _wait_for(lambda: not tracemalloc.is_tracing()), "stopped by its watchdog"
    assert kept
    assert tracer.stopped_because.startswith("it traced")
    assert board.lookup(me.pid, me.create_time()) is None, "the board says it no longer traces"


def test_tracer_stops_by_itself_when_its_time_is_up(tmp_path):
    tracer = heap.Tracer(board=heap.TracingBoard(str(tmp_path / "board")), interval=0.02)
    if tracemalloc.is_tracing():
        pytest.skip("something else traces this process")
    tracer.start(1, max_seconds=0.05, max_bytes=None)
    assert _wait_for(lambda: not tracemalloc.is_tracing())
    assert tracer.stopped_because == "its time was up"
    assert "not tracing" in tracer.stop()


def test_board_ignores_a_reused_pid_and_a_foreign_directory(tmp_path):
    board = heap.TracingBoard(str(tmp_path / "board"))
    board.mark(4242, 1000.0, None, None, 1)
    assert board.lookup(4242, 1000.0)["frames"] == 1
    assert board.lookup(4242, 2000.0) is None, "another process took pid 4242"
    assert board.lookup(4242, 1000.0) is None, "and the stale mark is gone"
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o755)
    shared = heap.TracingBoard(str(tmp_path / "open"))
    shared.mark(4242, 1000.0, None, None, 1)
    assert shared.lookup(4242, 1000.0) is None, "never written in a directory others can write to"

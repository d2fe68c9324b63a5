import tracemalloc

from core import heap


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

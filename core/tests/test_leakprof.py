import tracemalloc

import pytest

from core.common.units import MIB
from core.diagnostics import heap
from core.profiler import holders, leakprof

_KEPT = []
_HELD = {}


def keep_one_mib():
    _KEPT.append(bytearray(MIB))  # the line the profile must name


def allocate_and_free():
    data = [bytearray(MIB) for _ in range(4)]
    del data


@pytest.fixture(autouse=True)
def clean():
    _KEPT.clear()
    was_tracing = tracemalloc.is_tracing()
    yield
    _KEPT.clear()
    assert tracemalloc.is_tracing() == was_tracing, "a test left tracemalloc switched"


def profiled(job, **kwargs):
    profile = leakprof.ProfileSession(**kwargs).start()
    job()
    return profile.stop()


def test_names_the_line_that_keeps_memory():
    result = profiled(keep_one_mib, frames=1, top_n=5)
    top = result.top[0]
    assert top["file"] == __file__
    assert top["line"] == keep_one_mib.__code__.co_firstlineno + 1
    assert top["size_diff"] >= MIB
    assert top["count_diff"] >= 1
    assert result.traced_growth >= 0.9 * MIB
    assert result.log_lines()[0].startswith(f"{__file__}:{top['line']}: size=1.0 MiB (+1.0 MiB), count=")


def test_allocate_and_free_keeps_nothing():
    result = profiled(allocate_and_free)
    assert result.traced_growth < MIB / 4
    assert result.traced_peak >= 4 * MIB, "the peak still shows what the run allocated"
    assert all(alloc["size_diff"] < MIB / 4 for alloc in result.top)


def test_starts_and_stops_tracing_only_when_it_was_off():
    assert not tracemalloc.is_tracing()
    profile = leakprof.ProfileSession(frames=3).start()
    assert tracemalloc.is_tracing()
    assert tracemalloc.get_traceback_limit() == 3
    result = profile.stop()
    assert result.frames == 3
    assert not tracemalloc.is_tracing(), "we started it, we stop it"

    tracemalloc.start(2)
    try:
        with pytest.raises(leakprof.TracingBusy):
            profiled(keep_one_mib, frames=5)
        assert tracemalloc.is_tracing(), "someone else's tracing is left on"
    finally:
        tracemalloc.stop()


def test_one_profiled_run_at_a_time_and_shares_the_diagnostics_trace():
    first = leakprof.ProfileSession().start()
    with pytest.raises(leakprof.TracingBusy):
        leakprof.ProfileSession().start()
    tracer = heap.Tracer()
    assert "snapshots use that trace" in tracer.start()
    assert "stays on" in tracer.stop(), "the diagnostics stop never ends a profiled run's trace"
    keep_one_mib()
    assert first.stop().traced_growth >= 0.9 * MIB
    assert not tracemalloc.is_tracing()


def test_a_trace_stopped_by_someone_else_is_interrupted():
    profile = leakprof.ProfileSession().start()
    tracemalloc.stop()  # Odoo 19's profiler does this when it ends
    tracemalloc.start()
    keep_one_mib()
    try:
        result = profile.stop()
        assert result.interrupted
        assert (result.traced_growth, result.top) == (0, [])
        assert tracemalloc.is_tracing(), "the new trace is not ours: left on"
    finally:
        tracemalloc.stop()
    profile = leakprof.ProfileSession().start()
    tracemalloc.stop()
    assert profile.stop().interrupted
    assert not tracemalloc.is_tracing()


def test_names_the_module_global_that_holds_the_kept_memory():
    result = profiled(keep_one_mib, holders=(MIB // 2, dict))
    assert [h["path"] for h in result.holders] == [f"{__name__}._KEPT (list, +1 entry)"]


class Session:
    pass


def test_referrer_chains_name_the_holder_of_kept_objects():
    tracemalloc.start()
    try:
        _HELD["sessions"] = [Session() for _ in range(3)]  # the allocating line
        line = test_referrer_chains_name_the_holder_of_kept_objects.__code__.co_firstlineno + 3
        traceable = tracemalloc.get_object_traceback(_HELD["sessions"][0]) is not None
        chains = holders.referrer_chains({(__file__, line)}, sample=1)
    finally:
        tracemalloc.stop()
        _HELD.clear()
    if not traceable:
        pytest.skip("this Python's tracemalloc cannot look up instances (3.11: pre-header objects)")
    assert [c["root"] for c in chains] == [f"{__name__}._HELD['sessions']"]


def test_close_is_idempotent_and_ends_the_session():
    profile = leakprof.ProfileSession().start()
    profile.close()
    profile.close()
    assert not tracemalloc.is_tracing()


def test_excluded_frames_are_left_out():
    result = profiled(keep_one_mib, excludes=[__file__])
    assert all(alloc["file"] != __file__ for alloc in result.top)
    assert result.traced_growth < MIB / 4


def test_rss_and_fds_are_measured_around_the_run():
    rss = iter([100 * MIB, 130 * MIB, 120 * MIB])
    fds = iter([10, 12])
    collected = []
    profile = leakprof.ProfileSession(
        rss=lambda: next(rss), fds=lambda: next(fds), collect=lambda: collected.append(1)
    )
    result = profile.start().stop()
    assert (result.rss_before, result.rss_after, result.rss_after_gc) == (100 * MIB, 130 * MIB, 120 * MIB)
    assert (result.fds_before, result.fds_after) == (10, 12)
    assert collected == [1], "gc.collect() runs between the two RSS readings after the run"
    assert result.duration >= 0


def test_importlib_and_tracemalloc_frames_are_excluded_by_default():
    patterns = [f._filename_pattern for f in leakprof.build_filters()]
    assert "<frozen importlib._bootstrap>" in patterns
    assert "<frozen importlib._bootstrap_external>" in patterns
    assert tracemalloc.__file__ in patterns
    assert leakprof.__file__ in patterns


def test_own_patterns(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "mod.py").write_text("")
    assert leakprof.own_patterns(tmp_path / "pkg", tmp_path / "mod.py") == [
        f"{tmp_path / 'pkg'}/*",
        str(tmp_path / "mod.py"),
    ]


def test_top_allocations_keeps_growth_only():
    class Frame:
        def __init__(self, filename, lineno):
            self.filename, self.lineno = filename, lineno

    class Stat:
        def __init__(self, size_diff, line):
            self.size_diff, self.count_diff, self.size, self.count = size_diff, 1, size_diff, 1
            self.traceback = [Frame("f.py", line)]

    stats = [Stat(500, 1), Stat(-900, 2), Stat(300, 3), Stat(100, 4)]
    assert [a["line"] for a in leakprof.top_allocations(stats, 2)] == [1, 3]

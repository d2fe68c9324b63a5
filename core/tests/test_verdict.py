import pytest

from core.profiler.verdict import HEALTHY, LEAKING, SUSPECT, UNKNOWN, leak_verdict


@pytest.mark.parametrize(
    ("growth", "traced", "expected"),
    [
        # The appending cron: every run is charged 1 MiB; the trace shows Python keeps it.
        ([1, 1, 1.1, 1, 1], 1.0, LEAKING),
        # Same before its first trace: suspect, and the next run is traced.
        ([1, 1, 1.1, 1, 1], None, SUSPECT),
        # Grows a little every run; the trace shows Python keeps nothing.
        ([0.01, 0.02, 0.01, 0.03, 0.01], 0.0, HEALTHY),
        # Grows by the threshold every run while Python keeps nothing: outside Python.
        ([2, 2, 2, 2, 2], 0.0, LEAKING),
        # Allocates and frees: what it takes it gives back.
        ([3, -3, 0, 3, -3], None, HEALTHY),
        ([0.0, 0.1, -0.1, 0.0, 0.0], None, HEALTHY),
        # Keeps memory in some runs only.
        ([1, 0, 1, 0, 1], None, SUSPECT),
        # A trace that kept memory is not enough alone: the runs must grow.
        ([1, 0, 1, 0, 1], 1.0, SUSPECT),
        ([0, 0, 0, 0, 0], 1.0, HEALTHY),
    ],
)
def test_verdicts(growth, traced, expected):
    assert leak_verdict(growth, window=5, threshold_mb=0.5, traced_mb=traced).state == expected


def test_the_verdict_reads_no_process_size_only_the_runs_own_growth():
    """A healthy cron interleaved with a leaking one is charged its own runs only."""
    healthy = [3.0, -3.0] * 3
    assert leak_verdict(healthy, window=5, threshold_mb=0.5).state == HEALTHY
    assert leak_verdict(healthy, window=5, threshold_mb=0.5, traced_mb=0.0).state == HEALTHY


def test_only_the_last_window_counts():
    history = [1] * 5 + [0] * 5
    assert leak_verdict(history, window=5, threshold_mb=0.5, traced_mb=1).state == HEALTHY
    assert leak_verdict(history[:7], window=5, threshold_mb=0.5, traced_mb=1).state == SUSPECT


def test_unknown_until_window_runs():
    verdict = leak_verdict([1, 1], window=3, threshold_mb=0.5)
    assert verdict.state == UNKNOWN
    assert "2 of 3" in verdict.reason
    assert leak_verdict([], window=3, threshold_mb=0.5).state == UNKNOWN


def test_threshold_decides_what_is_growth():
    small = [0.1] * 5
    assert leak_verdict(small, window=5, threshold_mb=0.05, traced_mb=0.1).state == LEAKING
    assert leak_verdict(small, window=5, threshold_mb=1, traced_mb=0.1).state == HEALTHY


def test_reason_gives_the_figures():
    verdict = leak_verdict([1, 1, 1], window=3, threshold_mb=0.5, traced_mb=1.0)
    assert "charged +3.00 MiB over 3 runs" in verdict.reason
    assert "the traced run kept +1.00 MiB" in verdict.reason


@pytest.mark.parametrize(("window", "threshold"), [(1, 0.5), (5, 0), (5, -1)])
def test_nonsense_arguments(window, threshold):
    with pytest.raises(ValueError):
        leak_verdict([], window=window, threshold_mb=threshold)

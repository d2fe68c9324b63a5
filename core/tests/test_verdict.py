import pytest

from core.verdict import HEALTHY, LEAKING, SUSPECT, UNKNOWN, leak_verdict


def runs(rss, traced):
    return list(zip(rss, traced, strict=True))


@pytest.mark.parametrize(
    ("rss", "traced", "expected"),
    [
        # The appending cron: 1 MiB kept every run, RSS climbs.
        ([300, 301, 302, 303, 304], [1, 1, 1, 1, 1], LEAKING),
        # Same, but the allocator reuses free memory: RSS flat, never falls back.
        ([300, 300, 300.2, 300.2, 300.3], [1, 1, 1.2, 1, 1], LEAKING),
        # Allocates and frees: plateau.
        ([300, 300, 300, 300, 300], [0.1, 0, -0.05, 0, 0.02], HEALTHY),
        # Bounces.
        ([300, 340, 305, 338, 301], [0, 0.1, -0.1, 0, 0], HEALTHY),
        # RSS climbs steadily while Python keeps nothing: outside the heap.
        ([300, 310, 320, 330, 340], [0, 0, 0, 0, 0], SUSPECT),
        # Python keeps memory every run but RSS falls back (a trimmed cache).
        ([300, 320, 301, 320, 300], [1, 1, 1, 1, 1], SUSPECT),
        # Only some runs keep memory.
        ([300, 301, 301, 302, 302], [1, 0, 1, 0, 1], SUSPECT),
    ],
)
def test_verdicts(rss, traced, expected):
    assert leak_verdict(runs(rss, traced), window=5, threshold_mb=0.5).state == expected


def test_only_the_last_window_counts():
    history = runs([300, 301, 302, 303, 304], [1] * 5) + runs([304] * 5, [0] * 5)
    assert leak_verdict(history, window=5, threshold_mb=0.5).state == HEALTHY
    assert leak_verdict(history[:7], window=5, threshold_mb=0.5).state == SUSPECT


def test_unknown_until_window_runs():
    verdict = leak_verdict(runs([300, 301], [1, 1]), window=3, threshold_mb=0.5)
    assert verdict.state == UNKNOWN
    assert "2 of 3" in verdict.reason
    assert leak_verdict([], window=3, threshold_mb=0.5).state == UNKNOWN


def test_threshold_decides_what_is_growth():
    small = runs([300, 300.1, 300.2, 300.3, 300.4], [0.1] * 5)
    assert leak_verdict(small, window=5, threshold_mb=0.05).state == LEAKING
    assert leak_verdict(small, window=5, threshold_mb=1).state == HEALTHY


def test_reason_gives_the_figures():
    verdict = leak_verdict(runs([300, 301, 302], [1, 1, 1]), window=3, threshold_mb=0.5)
    assert "traced +3.0 MiB over 3 runs" in verdict.reason
    assert "RSS after gc +2.0 MiB" in verdict.reason


@pytest.mark.parametrize(("window", "threshold"), [(1, 0.5), (5, 0), (5, -1)])
def test_nonsense_arguments(window, threshold):
    with pytest.raises(ValueError):
        leak_verdict([], window=window, threshold_mb=threshold)

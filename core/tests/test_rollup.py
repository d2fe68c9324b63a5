import random
from datetime import datetime, timedelta

import pytest

from core.common.params import ParamError
from core.snapshot import rollup

START = datetime(2026, 3, 1, 22, 0)


def samples(count=600, seed=3):
    rng = random.Random(seed)
    found = []
    for step in range(count):
        for pid in (10, 11, 12):
            rss = rng.uniform(50, 900)
            found.append(
                {
                    "date": START + timedelta(minutes=5 * step, seconds=pid),
                    "host": "a" if pid < 12 else "b",
                    "pid": pid,
                    "kind": "http",
                    "rss_mb": rss,
                    "vms_mb": rss * 3,
                    "soft_limit_pct": rss / 10,
                    "recycled": rng.random() < 0.05,
                    "leak_suspect": rng.random() < 0.01,
                }
            )
    return found


def test_days_from_hours_are_days_from_samples():
    raw = samples()
    rng = random.Random(5)
    shuffled = raw[:]
    rng.shuffle(shuffled)
    assert rollup.roll_up(rollup.roll_up(shuffled, rollup.HOUR), rollup.DAY) == rollup.roll_up(
        raw, rollup.DAY
    )


def test_buckets_keep_extremes_last_and_every_recycle():
    raw = samples()
    hours = rollup.roll_up(raw, rollup.HOUR)
    assert sum(h["samples"] for h in hours) == len(raw)
    assert sum(h["recycles"] for h in hours) == sum(s["recycled"] for s in raw)
    for pid in (10, 11, 12):
        mine = [s for s in raw if s["pid"] == pid]
        theirs = [h for h in hours if h["pid"] == pid]
        assert min(h["rss_min_mb"] for h in theirs) == min(s["rss_mb"] for s in mine)
        assert max(h["vms_max_mb"] for h in theirs) == max(s["vms_mb"] for s in mine)
        assert theirs[-1]["rss_mb"] == mine[-1]["rss_mb"]
        assert all(
            h["date"].minute == 0 and h["rss_min_mb"] <= h["rss_mb"] <= h["rss_max_mb"] for h in theirs
        )


def test_windows_cover_every_bucket_once_in_bounded_chunks():
    raw = samples()
    now = raw[-1]["date"] + timedelta(minutes=1)
    grace = timedelta(minutes=10)
    rolled_until, windows = None, []
    while True:
        pending = [s["date"] for s in raw if rolled_until is None or s["date"] >= rolled_until]
        window = rollup.next_window(rollup.HOUR, rolled_until, min(pending, default=None), now, grace, 6)
        if window is None:
            break
        assert window[1] - window[0] <= timedelta(hours=6)
        windows.append(window)
        rolled_until = window[1]
    assert windows[0][0] == rollup.floor(START, rollup.HOUR)
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))
    assert windows[-1][1] == rollup.floor(now - grace, rollup.HOUR), "the hour not over waits"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ((200, 7, 30, 60, 5), "must cover Keep full-resolution snapshots (200 hours), got 7 days"),
        (
            (24, 7, 6, 60, 5),
            "Keep daily history (days) must be at least Keep hourly history (days) (7), got 6.",
        ),
        ((1, 7, 30, 60, 5), "(70 minutes), got 1 hours."),
    ],
)
def test_retentions_that_do_not_fit_say_what_to_fix(values, message):
    with pytest.raises(ParamError, match=None) as caught:
        rollup.check_retention(*values)
    assert message in str(caught.value)

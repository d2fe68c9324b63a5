import random

import pytest

from core.snapshot import trends

HOUR = 3600


def line(rate_per_hour, minutes=60, every=5, start=200.0):
    return [(t * 60, start + rate_per_hour * t / 60) for t in range(0, minutes + 1, every)]


def test_growth_is_the_least_squares_slope_in_mib_per_hour():
    assert trends.growth_rate(line(120)) == pytest.approx(120)
    assert trends.growth_rate(line(-30)) == pytest.approx(-30)
    assert trends.growth_rate(line(0)) == 0


def test_growth_ignores_order_and_resists_noise():
    rng = random.Random(4)
    noisy = [(t, v + rng.uniform(-5, 5)) for t, v in line(60, minutes=180)]
    rng.shuffle(noisy)
    assert trends.growth_rate(noisy) == pytest.approx(60, rel=0.1)


def test_growth_needs_two_distinct_times():
    assert trends.growth_rate([]) is None
    assert trends.growth_rate([(10, 1.0)]) is None
    assert trends.growth_rate([(10, 1.0), (10, 5.0)]) is None


def test_leak_suspect_when_growth_stays_above_the_threshold_for_the_span():
    assert trends.leak_suspect(line(80, minutes=90), threshold=50, min_span=HOUR)
    assert not trends.leak_suspect(line(40, minutes=90), threshold=50, min_span=HOUR)


def test_no_leak_suspect_before_the_minimum_span_is_observed():
    assert not trends.leak_suspect(line(500, minutes=45), threshold=50, min_span=HOUR)


def test_one_step_or_a_plateau_is_not_a_leak():
    step = [(t * 60, 200.0 if t < 30 else 400.0) for t in range(0, 61, 5)]
    assert trends.growth_rate(step) > 50, "the slope alone would say leak"
    assert not trends.leak_suspect(step, threshold=50, min_span=HOUR)
    grew_then_flat = line(200, minutes=60) + [(HOUR + t * 60, 400.0) for t in range(5, 61, 5)]
    assert not trends.leak_suspect(grew_then_flat, threshold=50, min_span=HOUR)


def test_only_the_last_span_counts():
    old_growth_then_flat = line(300, minutes=60) + [(HOUR + t * 60, 500.0) for t in range(5, 121, 5)]
    assert not trends.leak_suspect(old_growth_then_flat, threshold=50, min_span=HOUR)


def test_recycles_pair_gone_and_new_pids_of_a_kind():
    previous = {10: "master", 11: "http", 12: "http", 13: "cron", 14: "gevent"}
    current = {10: "master", 11: "http", 21: "http", 22: "cron", 14: "gevent"}
    assert trends.recycles(previous, current) == [("cron", 13, 22), ("http", 12, 21)]


def test_no_recycle_without_a_replacement_or_on_restart():
    previous = {10: "master", 11: "http", 12: "http"}
    assert trends.recycles(previous, {10: "master", 11: "http"}) == [], "gone, not replaced yet"
    assert trends.recycles(previous, {10: "master", 11: "http", 12: "http", 13: "http"}) == [], "one more"
    assert trends.recycles(previous, {30: "master", 31: "http", 32: "http"}) == [], "the server restarted"
    assert trends.recycles({}, {10: "master", 11: "http"}) == [], "first round"


def test_recycles_in_threaded_mode_use_the_threaded_root():
    assert trends.recycles({5: "threaded"}, {6: "threaded"}, root_kind="threaded") == []

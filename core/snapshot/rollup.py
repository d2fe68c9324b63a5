"""History that scales with hosts, not with time: tiers of snapshots, like a round-robin store.

Three tiers, each kept for its own retention:

- **raw**: every snapshot, full resolution (hours);
- **hour**: per process and hour, min/max/last of RSS and virtual size, the
  highest share of the soft limit, recycles counted (days);
- **day**: the same per process and day, rolled up from the hours (days).

Each completed hour is rolled up as soon as it is over (plus a grace for late
samples), each completed day as soon as its hours are, while the finer tier is
still kept: a tier is purged only once rolled up. Readers take each period
from the coarsest tier that holds it (the ``memory.snapshot.history`` view:
the days before the hours, the hours, the snapshots not rolled up yet), so a
30-day graph reads at most ``hour retention x 24 + days`` rows per process.

Times are naive UTC ``datetime`` (as Odoo stores them). Samples are dicts with
``date``, ``host``, ``pid``, ``kind``, ``rss_mb``, ``vms_mb``,
``soft_limit_pct``, ``recycled`` (bool) and, for a roll-up of roll-ups,
the bucket's own figures (:func:`roll_up`).
"""

from datetime import datetime, timedelta

from ..common.params import ParamError
from ..common.say import Say

RAW, HOUR, DAY = "raw", "hour", "day"
#: Before any row of any tier.
EPOCH = datetime(1970, 1, 1)
#: Length of a bucket of each rolled-up tier.
BUCKET = {HOUR: timedelta(hours=1), DAY: timedelta(days=1)}


def floor(moment, tier):
    """Start of the bucket of ``tier`` that holds ``moment``.

    >>> floor(datetime(2026, 3, 4, 15, 42, 7), HOUR)
    datetime.datetime(2026, 3, 4, 15, 0)
    >>> floor(datetime(2026, 3, 4, 15, 42, 7), DAY)
    datetime.datetime(2026, 3, 4, 0, 0)
    """
    if tier == HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def purge_before(now, raw_hours, hour_days, day_days):
    """``{tier: moment}``: rows of a tier older than its moment are purged (once rolled up).

    The hour tier is purged by whole days, so that the day tier takes over
    exactly where the hours stop.

    >>> cut = purge_before(datetime(2026, 3, 30, 15, 42), 24, 7, 30)
    >>> [str(cut[t]) for t in (RAW, HOUR, DAY)]
    ['2026-03-29 15:42:00', '2026-03-23 00:00:00', '2026-02-28 00:00:00']
    """
    return {
        RAW: now - timedelta(hours=raw_hours),
        HOUR: floor(now - timedelta(days=hour_days), DAY),
        DAY: floor(now - timedelta(days=day_days), DAY),
    }


def next_window(tier, rolled_until, oldest, now, grace, max_buckets):
    """``(start, end)`` of the next buckets of ``tier`` to roll up, or ``None`` when none is due.

    ``rolled_until`` is the end of the last bucket rolled up (``None``: none
    yet), ``oldest`` the date of the oldest row of the finer tier not rolled
    up yet (``None``: none), ``grace`` how long after its end a bucket still
    waits for late samples, ``max_buckets`` how many buckets one call rolls up
    at most (a bounded chunk). Buckets with no row are skipped.

    >>> now = datetime(2026, 3, 4, 15, 7)
    >>> grace = timedelta(minutes=10)
    >>> next_window(HOUR, None, datetime(2026, 3, 4, 9, 30), now, grace, 3)
    (datetime.datetime(2026, 3, 4, 9, 0), datetime.datetime(2026, 3, 4, 12, 0))
    >>> next_window(HOUR, datetime(2026, 3, 4, 12, 0), datetime(2026, 3, 4, 12, 5), now, grace, 3)
    (datetime.datetime(2026, 3, 4, 12, 0), datetime.datetime(2026, 3, 4, 14, 0))
    >>> next_window(HOUR, datetime(2026, 3, 4, 14, 0), datetime(2026, 3, 4, 14, 0), now, grace, 3) is None
    True
    >>> next_window(HOUR, datetime(2026, 3, 4, 5, 0), datetime(2026, 3, 4, 11, 5), now, grace, 3)
    (datetime.datetime(2026, 3, 4, 11, 0), datetime.datetime(2026, 3, 4, 14, 0))
    >>> next_window(HOUR, datetime(2026, 3, 4, 5, 0), None, now, grace, 3) is None
    True
    """
    if oldest is None:
        return None
    start = floor(oldest, tier)
    if rolled_until is not None:
        start = max(start, rolled_until)
    due = floor(now - grace, tier)  # end of the last bucket that is over, its grace included
    end = min(due, start + BUCKET[tier] * max_buckets)
    return (start, end) if end > start else None


def roll_up(samples, tier):
    """Roll ``samples`` (of any processes) up into buckets of ``tier``, one per process and bucket.

    A sample is a raw snapshot (``rss_mb``, ``vms_mb``...) or itself a
    bucket (with ``rss_min_mb``, ``rss_max_mb``, ``samples``, ``recycles``):
    rolling hours up into a day gives what rolling the raw samples would.
    Returns buckets sorted by host, pid and date: ``date`` (start), ``host``,
    ``pid``, ``kind`` (of the last sample), ``samples``, ``rss_min_mb``,
    ``rss_max_mb``, ``rss_mb`` (last), ``vms_min_mb``, ``vms_max_mb``,
    ``vms_mb`` (last), ``soft_limit_pct`` (highest), ``recycles``,
    ``leak_suspect`` (any), ``last_date``.

    >>> t = datetime(2026, 3, 4, 10, 0)
    >>> raw = [
    ...     {"date": t + timedelta(minutes=m), "host": "h", "pid": 7, "kind": "http", "rss_mb": rss,
    ...      "vms_mb": rss * 4, "soft_limit_pct": rss / 10, "recycled": m == 5}
    ...     for m, rss in ((0, 100.0), (5, 300.0), (10, 200.0), (65, 150.0))
    ... ]
    >>> hours = roll_up(raw, HOUR)
    >>> [(str(b["date"]), b["samples"], b["rss_min_mb"], b["rss_max_mb"], b["rss_mb"], b["recycles"])
    ...  for b in hours]
    [('2026-03-04 10:00:00', 3, 100.0, 300.0, 200.0, 1), ('2026-03-04 11:00:00', 1, 150.0, 150.0, 150.0, 0)]
    >>> day = roll_up(hours, DAY)[0]
    >>> day == {**roll_up(raw, DAY)[0]}
    True
    >>> [day[k] for k in ("samples", "rss_min_mb", "rss_max_mb", "rss_mb", "vms_max_mb", "recycles")]
    [4, 100.0, 300.0, 150.0, 1200.0, 1]
    """
    buckets = {}
    for sample in sorted(samples, key=lambda s: s.get("last_date") or s["date"]):
        key = (sample["host"], sample["pid"], floor(sample["date"], tier))
        bucket = buckets.get(key)
        rss_min = sample.get("rss_min_mb", sample["rss_mb"])
        rss_max = sample.get("rss_max_mb", sample["rss_mb"])
        vms_min = sample.get("vms_min_mb", sample["vms_mb"])
        vms_max = sample.get("vms_max_mb", sample["vms_mb"])
        count = sample.get("samples", 1)
        recycles = sample["recycles"] if "recycles" in sample else int(bool(sample.get("recycled")))
        if bucket is None:
            bucket = buckets[key] = {
                "date": key[2],
                "host": key[0],
                "pid": key[1],
                "samples": 0,
                "rss_min_mb": rss_min,
                "rss_max_mb": rss_max,
                "vms_min_mb": vms_min,
                "vms_max_mb": vms_max,
                "soft_limit_pct": sample["soft_limit_pct"],
                "recycles": 0,
                "leak_suspect": False,
            }
        bucket["samples"] += count
        bucket["rss_min_mb"] = min(bucket["rss_min_mb"], rss_min)
        bucket["rss_max_mb"] = max(bucket["rss_max_mb"], rss_max)
        bucket["vms_min_mb"] = min(bucket["vms_min_mb"], vms_min)
        bucket["vms_max_mb"] = max(bucket["vms_max_mb"], vms_max)
        bucket["soft_limit_pct"] = max(bucket["soft_limit_pct"], sample["soft_limit_pct"])
        bucket["recycles"] += recycles
        bucket["leak_suspect"] = bucket["leak_suspect"] or bool(sample.get("leak_suspect"))
        # Sorted by date: the last sample seen is the bucket's last.
        bucket.update(
            kind=sample["kind"],
            rss_mb=sample["rss_mb"],
            vms_mb=sample["vms_mb"],
            last_date=sample.get("last_date") or sample["date"],
        )
    return [buckets[key] for key in sorted(buckets)]


def check_retention(raw_hours, hour_days, day_days, growth_span_minutes, interval_minutes):
    """Raise ParamError unless the tiers' retentions fit one another.

    Each tier keeps at least what the finer one does, and the full-resolution
    tier covers what leak-suspect detection reads (its span plus two intervals).

    >>> check_retention(24, 7, 30, 60, 5)
    >>> try:
    ...     check_retention(24, 7, 3, 60, 5)
    ... except ParamError as exc:
    ...     print(exc)
    Keep daily history (days) must be at least Keep hourly history (days) (7), got 3.
    >>> try:
    ...     check_retention(2, 7, 30, 180, 5)
    ... except ParamError as exc:
    ...     print(exc.say.code, exc.say.figures)
    shorter_than_span {'minutes': 190, 'value': 2}
    """
    if hour_days * 24 < raw_hours:
        raise ParamError(
            f"Keep hourly history (days) must cover Keep full-resolution snapshots ({raw_hours} hours), got {hour_days} days.",  # noqa: E501
            Say("shorter_than_raw", {"raw_hours": raw_hours, "value": hour_days}),
        )
    if day_days < hour_days:
        raise ParamError(
            f"Keep daily history (days) must be at least Keep hourly history (days) ({hour_days}), got {day_days}.",  # noqa: E501
            Say("shorter_than_hours", {"hour_days": hour_days, "value": day_days}),
        )
    needed = growth_span_minutes + 2 * interval_minutes
    if raw_hours * 60 < needed:
        raise ParamError(
            f"Keep full-resolution snapshots (hours) must cover the leak-suspect span and two sampling intervals ({needed} minutes), got {raw_hours} hours.",  # noqa: E501
            Say("shorter_than_span", {"minutes": needed, "value": raw_hours}),
        )

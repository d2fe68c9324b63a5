"""Which process grows, how fast, and which ones were recycled.

Points are ``(seconds, mib)`` pairs of one process (any monotonic time base),
in any order. One definition of growth serves the snapshots (MiB/h over the
last span, ``memory.snapshot.growth_mb_per_hour``) and the leak report (MiB
over its day): the least-squares slope of :func:`growth_rate`, over the points
that :func:`window` keeps, of one process as :func:`series` tells them
apart (a pid reused by a new process is another process).
"""

from datetime import datetime

HOUR = 3600.0
EPOCH = datetime(1970, 1, 1)


def growth_rate(points):
    """Least-squares slope of ``points`` in MiB per hour; ``None`` below two distinct times.

    >>> growth_rate([(0, 100.0), (1800, 110.0), (3600, 120.0)])
    20.0
    >>> growth_rate([(0, 100.0)]) is None
    True
    """
    slope = _slope(points)
    return None if slope is None else round(slope * HOUR, 3)


def _slope(points):
    """The least-squares slope of ``points`` per second, unrounded; ``None`` below two distinct times."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _v in points) / n
    mean_v = sum(v for _t, v in points) / n
    var_t = sum((t - mean_t) ** 2 for t, _v in points)
    if var_t == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var_t


def window(points, end, span):
    """The points of the ``span`` seconds up to ``end`` (both ends included), in time order.

    >>> window([(0, 1.0), (50, 2.0), (100, 3.0), (30, 9.0)], end=100, span=60)
    [(50, 2.0), (100, 3.0)]
    """
    return sorted(p for p in points if end - span <= p[0] <= end)


def growth(points):
    """``(MiB grown, hours observed)`` of one process: the :func:`growth_rate` times the span of ``points``.

    ``(None, hours)`` below two distinct times. The MiB grown is the trend's,
    not last minus first, so that one spike at either end does not make it.

    >>> growth([(0, 300.0), (7200, 1100.0)])
    (800.0, 2.0)
    >>> growth([(0, 100.0), (1800, 150.0), (3600, 100.0)])
    (0.0, 1.0)
    >>> growth([(5, 1.0)])
    (None, 0.0)
    """
    slope = _slope(points)
    span = max(t for t, _v in points) - min(t for t, _v in points) if points else 0.0
    return (None if slope is None else round(slope * span, 3)), span / HOUR


def series(rows):
    """``{(host, pid, started_at): [row, ...]}``: snapshot rows of each process, in time order.

    ``rows`` are dicts with ``host``, ``pid``, ``started_at`` and ``date``
    (datetimes or seconds). A pid reused by a new process (another
    ``started_at``) is another process.

    >>> rows = [{"host": "w", "pid": 7, "started_at": 0, "date": 20},
    ...         {"host": "w", "pid": 7, "started_at": 0, "date": 10},
    ...         {"host": "w", "pid": 7, "started_at": 15, "date": 30}]
    >>> {key: [r["date"] for r in found] for key, found in series(rows).items()}
    {('w', 7, 0): [10, 20], ('w', 7, 15): [30]}
    """
    found = {}
    for row in sorted(rows, key=lambda r: seconds(r["date"])):
        found.setdefault((row["host"], row["pid"], row["started_at"]), []).append(row)
    return found


def points(rows, value="rss_mb"):
    """``[(seconds, MiB)]`` of one process's rows (a missing figure counts as 0).

    >>> points([{"date": 10, "rss_mb": 5.0}, {"date": 20, "rss_mb": None}])
    [(10, 5.0), (20, 0.0)]
    """
    return [(seconds(row["date"]), row[value] or 0.0) for row in rows]


def trend(found, end, threshold, span):
    """``(MiB/h over the last span, leak suspect)`` of one process's points ``found`` up to ``end``.

    What ``memory.snapshot`` records with each sample: :func:`growth_rate` over
    the :func:`window` of ``span`` seconds, and :func:`leak_suspect` (MiB/h
    ``threshold``) over all of ``found``.

    >>> steady = [(t * 300, 100 + t * 10.0) for t in range(13)]  # +120 MiB/h for an hour
    >>> trend(steady, 3600, 50, 3600)
    (120.0, True)
    >>> trend(steady[:1], 0, 50, 3600)
    (None, False)
    """
    return growth_rate(window(found, end, span)), leak_suspect(found, threshold, span)


def seconds(moment):
    """A datetime (naive ones as Odoo stores them, UTC) or a number of seconds, as seconds.

    >>> seconds(datetime(1970, 1, 1, 1)), seconds(90)
    (3600.0, 90)
    """
    if isinstance(moment, datetime):
        return (moment - EPOCH).total_seconds() if moment.tzinfo is None else moment.timestamp()
    return moment


def leak_suspect(points, threshold, min_span):
    """True when the process grew faster than ``threshold`` MiB/h for the last ``min_span`` seconds.

    The process must have been observed for at least ``min_span``; the growth
    over the last ``min_span``, and over each half of it, must stay above the
    threshold, so that one step (a cache filled once) is not taken for a leak.

    >>> steady = [(t * 300, 100 + t * 10.0) for t in range(13)]  # +120 MiB/h for an hour
    >>> leak_suspect(steady, 50, 3600)
    True
    >>> step = [(t * 300, 100.0 if t < 6 else 200.0) for t in range(13)]  # one jump
    >>> leak_suspect(step, 50, 3600)
    False
    >>> leak_suspect(steady[:6], 50, 3600)  # not observed long enough
    False
    """
    if len(points) < 3:
        return False
    points = sorted(points)
    last = points[-1][0]
    if last - points[0][0] < min_span:
        return False
    start = last - min_span
    window = [p for p in points if p[0] >= start]
    middle = start + min_span / 2
    parts = (window, [p for p in window if p[0] <= middle], [p for p in window if p[0] >= middle])
    rates = [growth_rate(part) for part in parts]
    return all(rate is not None and rate > threshold for rate in rates)


def recycles(previous, current, root_kind="master"):
    """Recycled workers between two rounds: ``[(kind, old pid, new pid)]``.

    ``previous`` and ``current`` map pid -> kind for every process of one host
    in one round. A pid of the previous round that is gone, with a new pid of
    the same kind, is a recycle. When the root process (``root_kind``) changed,
    the server restarted: nothing was recycled.

    >>> recycles({1: "master", 2: "http", 3: "http", 4: "cron"},
    ...          {1: "master", 2: "http", 5: "http", 6: "cron"})
    [('cron', 4, 6), ('http', 3, 5)]
    >>> recycles({1: "master", 2: "http"}, {7: "master", 8: "http"})
    []
    """
    if {p for p, k in previous.items() if k == root_kind} != {
        p for p, k in current.items() if k == root_kind
    }:
        return []
    found = []
    for kind in sorted(set(previous.values()) & set(current.values())):
        gone = sorted(p for p, k in previous.items() if k == kind and p not in current)
        new = sorted(p for p, k in current.items() if k == kind and p not in previous)
        found.extend((kind, old, fresh) for old, fresh in zip(gone, new, strict=False))
    return found

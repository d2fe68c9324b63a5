"""Which process grows, how fast, and which ones were recycled.

Points are ``(seconds, mib)`` pairs of one process (any monotonic time base),
in any order.
"""

HOUR = 3600.0


def growth_rate(points):
    """Least-squares slope of ``points`` in MiB per hour; ``None`` below two distinct times.

    >>> growth_rate([(0, 100.0), (1800, 110.0), (3600, 120.0)])
    20.0
    >>> growth_rate([(0, 100.0)]) is None
    True
    """
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _v in points) / n
    mean_v = sum(v for _t, v in points) / n
    var_t = sum((t - mean_t) ** 2 for t, _v in points)
    if var_t == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return round(cov / var_t * HOUR, 3)


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

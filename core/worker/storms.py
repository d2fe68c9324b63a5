"""Recycle storms, and scheduled actions whose runs kill their worker.

A kind of worker (``http``, ``cron``) is in a **recycle storm** when, within
the window, at least ``min_exits`` of its workers ended young: after fewer
than ``max_requests`` requests or ``max_minutes`` minutes of life. Workers
stopped on purpose (``stopped``, the server's stop or a recycle by hand) and
exits of unknown cause are not counted.

The likely cause, a code the ORM layer turns into a sentence with one line of
advice (:data:`LIKELY`):

- ``baseline``: soft-limit recycles after a couple of requests: a fresh
  worker already sits near ``limit_memory_soft`` (modules, preloaded
  registries); raise the limit or slim the baseline;
- ``registries``: soft-limit recycles on a server of several databases: each
  worker loads the registry of every database it serves;
- ``leak``: soft-limit recycles after more work: memory grows per request;
- ``limit_request``: ``limit_request`` is set low;
- ``killed``: workers killed (time, CPU, memory, OOM, signals).
"""

from collections import Counter

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client import Counter as PromCounter

from . import lifecycle

LIKELY = ("baseline", "registries", "leak", "limit_request", "killed")
_COUNTED = tuple(c for c in lifecycle.CAUSES if c not in (lifecycle.STOPPED, lifecycle.UNKNOWN))


def storms(exits, now, *, max_requests, max_minutes, window_minutes, min_exits=3, databases=1):
    """``{kind: {"count", "cause", "likely"}}`` of the kinds in a recycle storm.

    ``exits``: dicts with ``kind``, ``cause``, ``requests``, ``age`` (seconds,
    ``None`` when unknown) and ``ended`` (epoch seconds); ``now`` in epoch seconds.

    >>> young = [{"kind": "http", "cause": "soft_limit", "requests": 2, "age": 30, "ended": 990}] * 3
    >>> storms(young, 1000, max_requests=10, max_minutes=5, window_minutes=60)
    {'http': {'count': 3, 'cause': 'soft_limit', 'likely': 'baseline'}}
    >>> storms(young[:2], 1000, max_requests=10, max_minutes=5, window_minutes=60)
    {}
    >>> old = [dict(e, requests=500, age=3600) for e in young]
    >>> storms(old, 1000, max_requests=10, max_minutes=5, window_minutes=60)
    {}
    >>> stopped = [dict(e, cause="stopped") for e in young]
    >>> storms(stopped, 1000, max_requests=10, max_minutes=5, window_minutes=60)
    {}
    """
    since = now - window_minutes * 60
    by_kind = {}
    for exit_ in exits:
        if exit_["cause"] not in _COUNTED or exit_["ended"] < since:
            continue
        age = exit_.get("age")
        if exit_["requests"] < max_requests or (age is not None and age < max_minutes * 60):
            by_kind.setdefault(exit_["kind"], []).append(exit_)
    found = {}
    for kind, young in by_kind.items():
        if len(young) < min_exits:
            continue
        cause = Counter(e["cause"] for e in young).most_common(1)[0][0]
        found[kind] = {"count": len(young), "cause": cause, "likely": likely(young, cause, databases)}
    return found


def likely(young, cause, databases=1):
    """The likely cause code of a storm of ``young`` exits mostly of ``cause``.

    >>> likely([{"requests": 1}], "soft_limit"), likely([{"requests": 40}], "soft_limit")
    ('baseline', 'leak')
    >>> likely([{"requests": 40}], "soft_limit", databases=3), likely([], "request_limit")
    ('registries', 'limit_request')
    """
    if cause == lifecycle.REQUEST_LIMIT:
        return "limit_request"
    if cause != lifecycle.SOFT_LIMIT:
        return "killed"
    if databases > 1:
        return "registries"
    requests = sorted(e["requests"] for e in young)
    return "baseline" if requests[len(requests) // 2] <= 2 else "leak"


def killing_crons(exits, window_start=None):
    """``{cron_id: {"count", "cause"}}`` of the scheduled actions whose runs ended with their worker killed.

    >>> killing_crons([{"cron_id": 7, "cause": "real_time_limit"}, {"cron_id": 7, "cause": "cpu_limit"},
    ...                {"cron_id": 7, "cause": "real_time_limit"}, {"cron_id": 8, "cause": "stopped"}])
    {7: {'count': 3, 'cause': 'real_time_limit'}}
    """
    found = {}
    for exit_ in exits:
        if not exit_.get("cron_id") or exit_["cause"] not in lifecycle.KILLED:
            continue
        if window_start is not None and exit_.get("ended", window_start) < window_start:
            continue
        found.setdefault(exit_["cron_id"], []).append(exit_["cause"])
    return {
        cron_id: {"count": len(causes), "cause": Counter(causes).most_common(1)[0][0]}
        for cron_id, causes in found.items()
    }


def render_metrics(host, counts, storming):
    """Prometheus text of the exits (``{(cause, kind): count}``) and storms (``{kind: ...}``) of ``host``.

    >>> text = render_metrics("h", {("soft_limit", "http"): 4}, {"http": {"count": 4}}).decode()
    >>> 'memory_hygiene_worker_exits_total{cause="soft_limit",host="h",kind="http"} 4.0' in text
    True
    >>> 'memory_hygiene_recycle_storm{host="h",kind="http"} 1.0' in text
    True
    """
    registry = CollectorRegistry(auto_describe=False)
    exits = PromCounter(
        "memory_hygiene_worker_exits",
        "Workers of this host that ended, by cause and kind (recorded exits).",
        ["host", "cause", "kind"],
        registry=registry,
    )
    for (cause, kind), count in sorted(counts.items()):
        exits.labels(host, cause, kind).inc(count)
    storm = Gauge(
        "memory_hygiene_recycle_storm",
        "1 while workers of this kind live less than the settings' requests or minutes.",
        ["host", "kind"],
        registry=registry,
    )
    for kind in ("http", "cron"):
        storm.labels(host, kind).set(1 if kind in storming else 0)
    return generate_latest(registry)

"""Is a scheduled action leaking? A verdict from its last K profiled runs.

The memory-leak article's rule: "If RSS grows monotonically, you have a leak.
If it plateaus and bounces, you do not." Each profiled run gives two figures:

- ``rss_after_gc_mb``: the process's RSS once the run ended and ``gc.collect()``
  ran: what the operating system sees;
- ``traced_growth_mb``: what tracemalloc saw the run allocate and still hold
  after the collection: what Python code kept.

Over the last ``window`` runs (oldest first):

========== ============================================================================
leaking    every run kept at least ``threshold_mb`` (traced), and RSS never fell back
           by more than ``threshold_mb`` from one run to the next (monotonic)
healthy    the runs together kept less than ``threshold_mb`` (traced: what they take
           they give back), and RSS did not climb steadily (it plateaus or bounces)
suspect    anything in between: growth in some runs only, RSS climbing while Python
           keeps nothing (a C extension, fragmentation), or Python keeping memory
           while RSS falls back (a cache that is trimmed)
unknown    fewer than ``window`` runs
========== ============================================================================

RSS is not asked to *grow* for a leak, only not to fall back: the allocator
reuses memory the process already holds, so a leak first shows in RSS once
that free memory is used up, and tracemalloc sees it from the first run on.

    >>> leaking = [(300 + i, 1.0) for i in range(5)]
    >>> leak_verdict(leaking, window=5, threshold_mb=0.5).state
    'leaking'
    >>> bouncing = [(300, 0.0), (310, 0.1), (301, -0.1), (309, 0.0), (300, 0.0)]
    >>> leak_verdict(bouncing, window=5, threshold_mb=0.5).state
    'healthy'
    >>> leak_verdict(leaking[:4], window=5, threshold_mb=0.5).state
    'unknown'
"""

from dataclasses import dataclass

UNKNOWN = "unknown"
HEALTHY = "healthy"
SUSPECT = "suspect"
LEAKING = "leaking"

STATES = (UNKNOWN, HEALTHY, SUSPECT, LEAKING)


@dataclass(frozen=True)
class Verdict:
    state: str
    reason: str


def leak_verdict(runs, window, threshold_mb):
    """The verdict over the last ``window`` of ``runs``.

    :param runs: ``(rss_after_gc_mb, traced_growth_mb)`` pairs, oldest first
        (only the last ``window`` count).
    :param window: K, the number of runs a verdict needs (at least 2).
    :param threshold_mb: growth per run that counts as growth, in MiB (> 0).
    """
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window!r}")
    if threshold_mb <= 0:
        raise ValueError(f"threshold_mb must be positive, got {threshold_mb!r}")
    runs = [(float(rss), float(traced)) for rss, traced in runs][-window:]
    if len(runs) < window:
        return Verdict(UNKNOWN, f"{len(runs)} of {window} profiled runs")

    rss = [r for r, _t in runs]
    traced = [t for _r, t in runs]
    steps = [b - a for a, b in zip(rss, rss[1:], strict=False)]
    rss_monotonic = all(step >= -threshold_mb for step in steps)
    rss_net = rss[-1] - rss[0]
    rss_climbs = rss_monotonic and rss_net >= threshold_mb * (window - 1)
    traced_every_run = all(t >= threshold_mb for t in traced)
    traced_total = sum(traced)
    figures = (
        f"traced {traced_total:+.1f} MiB over {window} runs "
        f"(min {min(traced):+.2f} MiB/run), RSS after gc {rss_net:+.1f} MiB"
    )

    if traced_every_run and rss_monotonic:
        return Verdict(LEAKING, f"every run keeps memory and RSS never falls back: {figures}")
    if traced_total < threshold_mb and not rss_climbs:
        return Verdict(HEALTHY, f"memory plateaus or bounces: {figures}")
    if rss_climbs and not traced_every_run:
        return Verdict(SUSPECT, f"RSS climbs but Python code keeps little: {figures}")
    if traced_every_run:
        return Verdict(SUSPECT, f"every run keeps memory but RSS falls back: {figures}")
    return Verdict(SUSPECT, f"some runs keep memory: {figures}")

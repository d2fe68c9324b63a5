"""Is a scheduled action leaking? A verdict from the growth charged to its own runs.

Every run is accounted (``core/profiler/accounting.py``); a charged run is charged
with what grew *during* it, so crons interleaved in one worker do not blame each
other (runs that were not charged have no growth, and no say here). Some runs
are also traced (tracemalloc, ``core/profiler/leakprof.py``): the trace says what
Python memory the run kept after ``gc.collect()``. Over the last ``window``
charged runs (oldest first), with ``threshold_mb`` the growth per run that counts:

========== ===============================================================================
unknown    fewer than ``window`` charged runs
leaking    every run grew, and a traced run of this action kept at least the threshold
           (Python keeps it: the line and its holder are named), or every run grew by at
           least the threshold while the trace shows Python keeps nothing (outside Python)
suspect    every run grew, and no trace says why yet: the next run is traced; or the runs
           together kept at least the threshold with no steady trend
healthy    what the runs take they give back: the growth over the window is below the
           threshold, or a trace shows the growing runs keep nothing while none of them
           grew by the threshold
========== ===============================================================================

Nothing reads the process's size: the figures are the runs' own.

    >>> leaking = [1.0] * 5
    >>> leak_verdict(leaking, window=5, threshold_mb=0.5).state   # steady, not traced yet
    'suspect'
    >>> leak_verdict(leaking, window=5, threshold_mb=0.5, traced_mb=1.0).state
    'leaking'
    >>> churn = [0.01, -0.02, 0.0, 0.03, -0.01]
    >>> leak_verdict(churn, window=5, threshold_mb=0.5).state
    'healthy'
    >>> leak_verdict(leaking[:4], window=5, threshold_mb=0.5).state
    'unknown'
"""

from dataclasses import dataclass

from ..common.say import Say

UNKNOWN = "unknown"
HEALTHY = "healthy"
SUSPECT = "suspect"
LEAKING = "leaking"

STATES = (UNKNOWN, HEALTHY, SUSPECT, LEAKING)


@dataclass(frozen=True)
class Verdict:
    """A state of :data:`STATES` and why: a :class:`Say` whose ``figures`` figure is one too."""

    state: str
    reason: Say


def leak_verdict(growth, window, threshold_mb, traced_mb=None):
    """The verdict over the last ``window`` of ``growth``.

    :param growth: MiB charged to each accounted run, oldest first (only the
        last ``window`` count).
    :param window: K, the number of runs a verdict needs (at least 2).
    :param threshold_mb: growth per run that counts as growth, in MiB (> 0).
    :param traced_mb: Python memory kept by this action's latest valid traced
        run that is still evidence (MiB), or ``None``: no such trace.
    """
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window!r}")
    if threshold_mb <= 0:
        raise ValueError(f"threshold_mb must be positive, got {threshold_mb!r}")
    runs = [float(g) for g in growth][-window:]
    if len(runs) < window:
        return Verdict(UNKNOWN, Say("too_few_runs", {"runs": len(runs), "window": window}))

    net = sum(runs)
    # Every run grew, and by the threshold together: a few KiB per run is Odoo's own bookkeeping.
    growing = all(g > 0 for g in runs) and net >= threshold_mb
    steady = all(g >= threshold_mb for g in runs)
    charged = {"net": net, "window": window, "min": min(runs)}
    if traced_mb is None:
        figures = {"figures": Say("charged", charged)}
    else:
        figures = {"figures": Say("charged_traced", {**charged, "traced": traced_mb})}
    traced_kept = traced_mb is not None and traced_mb >= threshold_mb
    traced_clean = traced_mb is not None and not traced_kept

    if growing and traced_kept:
        return Verdict(LEAKING, Say("keeps_python", figures))
    if steady and traced_clean:
        return Verdict(LEAKING, Say("outside_python", figures))
    if growing and traced_mb is None:
        return Verdict(SUSPECT, Say("grows_untraced", figures))
    if net < threshold_mb or (growing and traced_clean):
        return Verdict(HEALTHY, Say("gives_back", figures))
    return Verdict(SUSPECT, Say("not_steady", figures))

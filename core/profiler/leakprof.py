"""What one run of a job leaves behind in memory: the memory-leak article's tracemalloc recipe.

A :class:`ProfileSession` is one traced run: started before the job, closed after it,
its :class:`ProfileResult` stored by the ORM layer (``memory.cron.run``).

The article's manual diagnosis, made a function: start tracemalloc if it is
not tracing, snapshot, run the job, ``gc.collect()``, snapshot again, and
compare the two by line, with tracemalloc's own, importlib's and the
profiler's own frames left out. What is still allocated after the collection
is what the run keeps::

    >>> kept = []
    >>> profile = ProfileSession(frames=1, top_n=3).start()
    >>> kept.append(bytearray(2 * MIB))
    >>> result = profile.stop()
    >>> result.top[0]["size_diff"] >= 2 * MIB
    True
    >>> result.top[0]["file"].startswith("<doctest")  # the line that allocated it
    True
    >>> result.traced_growth >= 2 * MIB
    True

Nothing here imports Odoo; the ORM layer (``models/ir_cron.py``) decides
when to profile, stores the result and never lets a profiler failure reach
the job.
"""

import gc
import logging
import os
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import datetime

import psutil

from ..common import tracing
from ..common.units import MIB, naive_utc  # noqa: F401 - the doctests use MIB
from . import holders as holders_mod

_logger = logging.getLogger(__name__)


#: Frames that are never a job's own allocations: tracemalloc's bookkeeping
#: (its snapshots are Python objects too) and the import machinery.
DEFAULT_EXCLUDES = (
    tracemalloc.__file__,
    "<frozen importlib._bootstrap>",
    "<frozen importlib._bootstrap_external>",
    "<unknown>",
    tracing.__file__,
    holders_mod.__file__,
)

_OWN_FILE = __file__


def format_size(size, sign=False):
    """Bytes for a log line, the way ``tracemalloc`` writes them.

    >>> format_size(512), format_size(1536), format_size(3 * MIB, sign=True), format_size(-2048, sign=True)
    ('512 B', '1.5 KiB', '+3.0 MiB', '-2.0 KiB')
    """
    value, unit = size, "B"
    for bigger in ("KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            break
        value, unit = value / 1024, bigger
    if unit == "B":
        return f"{value:+d} B" if sign else f"{value:d} B"
    return f"{value:+.1f} {unit}" if sign else f"{value:.1f} {unit}"


def format_line(alloc):
    """One allocation site as the article logs it.

    >>> format_line({"file": "/a/b.py", "line": 7, "size": 1048576, "size_diff": 1048576,
    ...              "count": 3, "count_diff": 1})
    '/a/b.py:7: size=1.0 MiB (+1.0 MiB), count=3 (+1)'
    """
    return "{}:{}: size={} ({}), count={} ({:+d})".format(
        alloc["file"],
        alloc["line"],
        format_size(alloc["size"]),
        format_size(alloc["size_diff"], sign=True),
        alloc["count"],
        alloc["count_diff"],
    )


def build_filters(excludes=()):
    """tracemalloc filters that leave out the default excludes and ``excludes`` (fnmatch patterns)."""
    patterns = list(DEFAULT_EXCLUDES) + [_OWN_FILE] + list(excludes)
    return [tracemalloc.Filter(False, pattern) for pattern in dict.fromkeys(patterns)]


def top_allocations(stats, top_n):
    """The ``top_n`` largest growths of a ``compare_to`` result, as plain dicts.

    ``stats`` are ``tracemalloc.StatisticDiff`` objects (or anything with the
    same attributes), sorted as ``compare_to`` sorts them: biggest change first.
    Only sites that grew are kept: a leak report has no use for what was freed.
    """
    top = []
    for stat in stats:
        if stat.size_diff <= 0:
            continue
        frame = stat.traceback[0]
        top.append(
            {
                "file": frame.filename,
                "line": frame.lineno,
                "size_diff": stat.size_diff,
                "count_diff": stat.count_diff,
                "size": stat.size,
                "count": stat.count,
            }
        )
        if len(top) >= top_n:
            break
    return top


def num_fds(process=None):
    """Open file descriptors of this process (``None`` where the OS does not tell)."""
    try:
        return (process or psutil.Process()).num_fds()
    except (AttributeError, psutil.Error):
        return None


def switch_active(until, now):
    """True while a global "profile until" switch is on.

    ``until`` is Odoo's datetime string (UTC) or empty; ``now`` a naive UTC datetime.

    >>> switch_active("2030-01-01 00:00:00", datetime(2029, 12, 31))
    True
    >>> switch_active("2030-01-01 00:00:00", datetime(2030, 1, 2)), switch_active("", datetime(2030, 1, 2))
    (False, False)
    >>> switch_active("not a date", datetime(2030, 1, 2))
    False
    """
    if not until:
        return False
    try:
        return now < datetime.fromisoformat(str(until).strip())
    except ValueError:
        return False


@dataclass
class ProfileResult:
    """What a profiled run measured. Sizes in bytes, times in seconds."""

    started_at: datetime
    duration: float
    rss_before: int
    rss_after: int
    rss_after_gc: int
    fds_before: int | None
    fds_after: int | None
    traced_growth: int
    traced_peak: int
    frames: int
    top: list = field(default_factory=list)
    #: The trace was stopped or restarted by someone else during the run: no data.
    interrupted: bool = False
    #: What keeps the kept memory alive: dicts ``path, root, type, added`` (:mod:`core.profiler.holders`).
    holders: list = field(default_factory=list)

    def log_lines(self):
        return [format_line(alloc) for alloc in self.top]


class TracingBusy(RuntimeError):
    """tracemalloc cannot be had for this run: someone else traces, or another run is traced."""


class ProfileSession:
    """One profiled run: :meth:`start` before the job, :meth:`stop` after it.

    Tracing is leased from :mod:`core.common.tracing`, exclusively: one profiled run
    at a time per process, and never under someone else's trace
    (:meth:`start` raises :class:`TracingBusy` then).

    :param frames: frames tracemalloc keeps per allocation when this session
        starts it (more frames: slower, same ``lineno`` grouping).
    :param top_n: how many growing sites :meth:`stop` returns.
    :param excludes: more fnmatch patterns of files to leave out (the
        caller's own code).
    :param rss: ``() -> bytes``; default: this process's RSS.
    :param fds: ``() -> int | None``; default: this process's open fds.
    :param holders: ``(min_bytes, roots)`` to look for what holds the kept
        memory (:mod:`core.profiler.holders`) when the run kept at least ``min_bytes``;
        ``roots() -> {path: object}`` gives registry-level roots. ``None``: no search.
    """

    def __init__(
        self,
        frames=1,
        top_n=10,
        excludes=(),
        *,
        rss=None,
        fds=None,
        collect=gc.collect,
        holders=None,
    ):
        self.frames = max(int(frames), 1)
        self.top_n = max(int(top_n), 1)
        self.filters = build_filters(excludes)
        self._rss = rss or (lambda: psutil.Process().memory_info().rss)
        self._fds = fds or num_fds
        self._collect = collect
        self._holders = holders is not None
        self._holders_min, self._roots = holders or (0, dict)
        self._before = None
        self._lease = None

    def start(self):
        # The roots are sized before tracing starts: the scan allocates, and costs more traced.
        self._roots_before = holders_mod.root_sizes(self._roots()) if self._holders else None
        self._lease = tracing.acquire(self.frames, exclusive=True)
        if self._lease is None:
            self._roots_before = None
            raise TracingBusy("tracemalloc is in use by someone else or by another profiled run")
        try:
            self.started_at = naive_utc()
            self.rss_before = self._rss()
            self.fds_before = self._fds()
            tracemalloc.reset_peak()
            self._traced_frames = tracemalloc.get_traceback_limit()
            self._before = tracemalloc.take_snapshot()
            self._clock = time.perf_counter()
        except BaseException:
            self.close()
            raise
        return self

    def stop(self):
        """Measure what the run left, end the session, and return a :class:`ProfileResult`.

        A trace that someone else stopped or restarted during the run gives
        a result with ``interrupted`` set and no figures from tracemalloc.
        """
        try:
            duration = time.perf_counter() - self._clock
            rss_after = self._rss()
            self._collect()
            rss_after_gc = self._rss()
            fds_after = self._fds()
            figures = {
                "started_at": self.started_at,
                "duration": duration,
                "rss_before": self.rss_before,
                "rss_after": rss_after,
                "rss_after_gc": rss_after_gc,
                "fds_before": self.fds_before,
                "fds_after": fds_after,
                "frames": self._traced_frames,
            }
            if not self._lease.intact():
                return ProfileResult(traced_growth=0, traced_peak=0, interrupted=True, **figures)
            after = tracemalloc.take_snapshot()
            peak = tracemalloc.get_traced_memory()[1]
            stats = after.filter_traces(self.filters).compare_to(
                self._before.filter_traces(self.filters), "lineno"
            )
            del after
            growth = sum(stat.size_diff for stat in stats)
            top = top_allocations(stats, self.top_n)
            del stats
            found = []
            if self._holders and growth >= self._holders_min and self._lease.intact():
                try:
                    found = self._find_holders(top)
                except Exception:  # the sites are data enough: the holders are a bonus
                    _logger.exception("Leak profiler: cannot find what holds the kept memory")
            return ProfileResult(
                traced_growth=growth, traced_peak=peak, top=top, holders=found, interrupted=False, **figures
            )
        finally:
            self._before = None
            self._roots_before = None
            self.close()

    def _find_holders(self, top):
        roots = self._roots()
        found = holders_mod.grown_roots(self._roots_before, holders_mod.root_sizes(roots), roots)
        if not found:
            found = holders_mod.referrer_chains({(alloc["file"], alloc["line"]) for alloc in top[:3]})
        return found

    def close(self):
        """End the session without measuring (idempotent); tracing stops with its last user."""
        if self._lease is not None:
            self._lease.release()


def own_patterns(*paths):
    """fnmatch patterns for the files of the given packages or modules (directories get ``/*``)."""
    patterns = []
    for path in map(os.path.abspath, paths):
        patterns.append(os.path.join(path, "*") if os.path.isdir(path) else path)
    return patterns

"""What the Python heap of this process holds, and giving memory back.

- :func:`top_types`: pympler's summary of every live object, top types by size;
- :func:`collect`: a full garbage collection with the RSS before and after, and
  glibc's ``malloc_trim(0)``, which hands freed arena pages back to the kernel
  (CPython's small-object allocator and glibc keep them otherwise, so RSS
  rarely drops after a collection alone);
- :class:`Tracer`: tracemalloc started, snapshotted, compared with the previous
  snapshot, stopped; one per process (a snapshot lives in the process that took
  it: in prefork, in one worker). It stops by itself after a time or a traced
  size, and :class:`TracingBoard` tells the host's other processes it traces.
"""

import contextlib
import ctypes
import ctypes.util
import gc
import json
import logging
import os
import stat
import tempfile
import threading
import time
import tracemalloc

from ..common import tracing
from ..common.units import MIB, human_size
from ..process import limits

_logger = logging.getLogger(__name__)


def top_types(limit=25, objects=None):
    """``[(type name, count, total bytes)]`` of the live objects, biggest first (pympler).

    >>> rows = top_types(5, objects=["a" * 1000, "b" * 1000, 1.5])
    >>> rows[0][:2]
    ('str', 2)
    """
    from pympler import muppy, summary

    if objects is None:
        objects = muppy.get_objects()
    try:
        rows = summary.summarize(objects)
    finally:
        del objects  # the list holds every object of the process
    rows.sort(key=lambda row: row[2], reverse=True)
    return [(_type_name(name), count, size) for name, count, size in rows[:limit]]


def _type_name(name):
    # pympler names types by their repr: "<class 'dict'>" -> "dict"
    if name.startswith("<class '") and name.endswith("'>"):
        return name[8:-2]
    return name


def format_top_types(rows):
    """A fixed-width table of :func:`top_types` rows.

    >>> for line in format_top_types([("dict", 1200, 3 * MIB), ("str", 5, 2048)]).splitlines():
    ...     print(line.split())
    ['type', 'count', 'size']
    ['dict', '1,200', '3.0', 'MiB']
    ['str', '5', '2.0', 'KiB']
    """
    lines = [f"{'type':>40} {'count':>10} {'size':>10}"]
    lines.extend(f"{name[-40:]:>40} {count:>10,} {human_size(size):>10}" for name, count, size in rows)
    return "\n".join(lines)


def libc_function(name, argtypes, restype):
    """The C library's function ``name`` typed for ctypes; ``None`` where it has none (musl, macOS)."""
    try:
        func = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
    func.argtypes, func.restype = argtypes, restype
    return func


def malloc_trim():
    """Call glibc's ``malloc_trim(0)``; ``None`` where the C library has none (musl, macOS)."""
    trim = libc_function("malloc_trim", [ctypes.c_size_t], ctypes.c_int)
    if trim is None:
        return None
    return bool(trim(0))


def collect(rss=limits.rss, trim=malloc_trim):
    """Collect garbage (all generations), then trim the C heap; RSS before, between and after.

    Returns a dict: ``unreachable`` (objects ``gc.collect()`` found),
    ``rss_before``, ``rss_after_gc``, ``rss_after`` (bytes), ``trimmed``
    (``True``/``False`` from ``malloc_trim``, ``None`` when not available)
    and ``seconds``.
    """
    started = time.perf_counter()
    before = rss()
    unreachable = gc.collect()
    after_gc = rss()
    trimmed = trim() if trim else None
    return {
        "unreachable": unreachable,
        "rss_before": before,
        "rss_after_gc": after_gc,
        "rss_after": rss(),
        "trimmed": trimmed,
        "seconds": time.perf_counter() - started,
    }


def format_collect(result):
    """The report of :func:`collect`.

    >>> print(format_collect({"unreachable": 12, "rss_before": 300 * MIB, "rss_after_gc": 290 * MIB,
    ...                       "rss_after": 250 * MIB, "trimmed": True, "seconds": 0.25}))
    gc.collect(): 12 unreachable objects
    RSS before:        300.0 MiB
    RSS after gc:      290.0 MiB (-10.0 MiB)
    RSS after trim:    250.0 MiB (-40.0 MiB; malloc_trim(0) released memory)
    Total: -50.0 MiB in 0.250 s
    """
    trimmed = result["trimmed"]
    trim_word = {
        True: "malloc_trim(0) released memory",
        False: "malloc_trim(0) found nothing to release",
        None: "malloc_trim is not available in this C library",
    }[trimmed]
    before, after_gc, after = result["rss_before"], result["rss_after_gc"], result["rss_after"]
    return "\n".join(
        (
            f"gc.collect(): {result['unreachable']} unreachable objects",
            f"RSS before:     {human_size(before):>12}",
            f"RSS after gc:   {human_size(after_gc):>12} ({_signed(after_gc - before)})",
            f"RSS after trim: {human_size(after):>12} ({_signed(after - after_gc)}; {trim_word})",
            f"Total: {_signed(after - before)} in {result['seconds']:.3f} s",
        )
    )


def _signed(delta):
    text = human_size(delta)
    return text if delta < 0 else "+" + text


class TracingBoard:
    """Which processes of this host trace with the diagnostics' :class:`Tracer`: one small file each.

    A tracer lives in one process; the page is drawn by another. Each tracer
    writes ``<pid>`` (JSON: ``create_time``, ``until`` epoch or ``None``,
    ``max_bytes``, ``frames``) in a directory of this user (mode 0700, checked:
    never one that another user made or a symlink) when it starts, and removes
    it when it stops. A file whose process is gone or whose pid was reused
    (another ``create_time``) is stale: :meth:`lookup` ignores and removes it.
    Every failure is swallowed: the board only informs.
    """

    def __init__(self, directory=None):
        self.directory = directory or os.path.join(
            tempfile.gettempdir(), f"memory_hygiene-tracing-{os.getuid()}"
        )

    def _ready(self):
        try:
            with contextlib.suppress(FileExistsError):  # checked just below, whoever made it
                os.mkdir(self.directory, mode=0o700)
            info = os.lstat(self.directory)
            if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
                _logger.warning(
                    "tracemalloc board %s is not this user's own private directory: unused", self.directory
                )
                return False
            return True
        except OSError:
            _logger.warning("tracemalloc board %s cannot be used", self.directory, exc_info=True)
            return False

    def mark(self, pid, create_time, until, max_bytes, frames):
        if not self._ready():
            return
        path = os.path.join(self.directory, str(int(pid)))
        try:
            with open(path + ".tmp", "w", encoding="utf-8") as out:
                json.dump(
                    {"create_time": create_time, "until": until, "max_bytes": max_bytes, "frames": frames},
                    out,
                )
            os.replace(path + ".tmp", path)
        except OSError:
            _logger.warning("tracemalloc board: cannot mark pid %s", pid, exc_info=True)

    def clear(self, pid):
        with contextlib.suppress(OSError):  # no mark: nothing to clear
            os.unlink(os.path.join(self.directory, str(int(pid))))

    def lookup(self, pid, create_time):
        """The mark of the process ``pid`` started at ``create_time``, or ``None`` (not tracing)."""
        try:
            with open(os.path.join(self.directory, str(int(pid))), encoding="utf-8") as mark:
                info = json.load(mark)
        except (OSError, ValueError):
            return None
        if abs(float(info.get("create_time") or 0) - float(create_time or 0)) >= 0.01:
            self.clear(pid)  # a mark of a process that ended: its pid was reused
            return None
        return info


#: Default limits of a diagnostics trace (the settings hold the figures used).
TRACE_MAX_SECONDS = 30 * 60
TRACE_MAX_BYTES = 512 * MIB


class Tracer:
    """tracemalloc for the diagnostics page: start, snapshot, compare with the previous, stop.

    Tracing is leased from :mod:`core.common.tracing` (shared): "stop" releases this
    tracer's lease only, so it never ends a profiled cron run's trace, and a
    trace someone else started is left to them. The lease is released by itself
    after ``max_seconds`` or when the traced memory passes ``max_bytes`` (a
    watchdog thread checks every ``interval`` seconds), so a forgotten trace
    does not slow a worker for ever. The :class:`TracingBoard` tells the other
    processes of the host that this one traces.
    """

    def __init__(self, board=None, interval=1.0):
        self.previous = None
        self.lease = None
        self.started_at = None
        self.until = None
        self.max_bytes = None
        self.stopped_because = None
        self.board = board
        self.interval = interval
        self._lock = threading.RLock()
        self._stop_watch = None

    @property
    def tracing(self):
        return tracemalloc.is_tracing()

    @property
    def started_here(self):
        return self.lease is not None

    def start(self, frames=1, max_seconds=TRACE_MAX_SECONDS, max_bytes=TRACE_MAX_BYTES):
        with self._lock:
            if self.lease is not None and self.lease.intact():
                return (
                    f"tracemalloc already traces this process ({tracemalloc.get_traceback_limit()} frame(s))."
                )
            self._forget()
            if tracing.foreign():
                return (
                    f"tracemalloc already traces this process ({tracemalloc.get_traceback_limit()} frame(s)),"
                    " started by something else."
                )
            shared = tracemalloc.is_tracing()
            self.lease = tracing.acquire(frames)
            if self.lease is None:
                return "tracemalloc could not be started."
            self.started_at, self.previous = time.time(), None
            self.until = self.started_at + max_seconds if max_seconds else None
            self.max_bytes = max_bytes or None
            self.stopped_because = None
            if self.board is not None:
                self.board.mark(
                    os.getpid(), limits.this_process().create_time(), self.until, self.max_bytes, frames
                )
            if self.until or self.max_bytes:
                self._stop_watch = threading.Event()
                watchdog = threading.Thread(
                    target=self._watch,
                    args=(self._stop_watch,),
                    name="memory_hygiene tracemalloc watchdog",
                    daemon=True,
                )
                watchdog.start()
        if shared:
            return (
                f"tracemalloc already traces this process ({tracemalloc.get_traceback_limit()} frame(s),"
                " a profiled cron run): snapshots use that trace."
            )
        bounds = []
        if self.until:
            bounds.append(f"after {max_seconds / 60:g} min")
        if self.max_bytes:
            bounds.append(f"when it traces {human_size(self.max_bytes)}")
        stops = f" It stops by itself {' or '.join(bounds)}." if bounds else ""
        return f"tracemalloc started with {frames} frame(s) per allocation.{stops}"

    def over_limit(self, now=None, traced=None):
        """Why tracing must stop now (a sentence), or ``None``.

        >>> tracer = Tracer()
        >>> tracer.until, tracer.max_bytes = 100.0, 10 * MIB
        >>> tracer.over_limit(now=50.0, traced=MIB) is None
        True
        >>> tracer.over_limit(now=101.0, traced=MIB)
        'its time was up'
        >>> tracer.over_limit(now=50.0, traced=11 * MIB)
        'it traced 11.0 MiB, above 10.0 MiB'
        """
        now = time.time() if now is None else now
        if self.until and now >= self.until:
            return "its time was up"
        if self.max_bytes:
            traced = tracemalloc.get_traced_memory()[0] if traced is None else traced
            if traced > self.max_bytes:
                return f"it traced {human_size(traced)}, above {human_size(self.max_bytes)}"
        return None

    def _watch(self, stop_watch):
        while not stop_watch.wait(self.interval):
            with self._lock:
                if stop_watch.is_set():
                    return
                if self.lease is None or not self.lease.intact():  # stopped by someone else
                    self._forget()
                    return
                reason = self.over_limit()
                if reason:
                    _logger.info("tracemalloc of pid %s stops by itself: %s", os.getpid(), reason)
                    self.stopped_because = reason  # before it stops: whoever sees it stopped sees why
                    self.stop()
                    return

    def snapshot(self, top_n=10, key_type="lineno"):
        """Take a snapshot; the text compares it with the previous one (or lists its top lines)."""
        with self._lock:  # the watchdog must not stop tracing in the middle of a snapshot
            return self._snapshot(top_n, key_type)

    def _snapshot(self, top_n, key_type):
        if not tracemalloc.is_tracing():
            return None
        if self.lease is not None and not self.lease.intact():
            self.previous = None  # our trace was stopped by someone else: the previous is another trace's
        snap = tracemalloc.take_snapshot().filter_traces(
            (
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap*"),
            )
        )
        current, peak = tracemalloc.get_traced_memory()
        head = f"Traced now {human_size(current)}, peak {human_size(peak)}."
        if self.previous is None:
            stats = snap.statistics(key_type)[:top_n]
            body = "First snapshot: top %d lines by size\n%s" % (top_n, "\n".join(str(s) for s in stats))
        else:
            stats = snap.compare_to(self.previous, key_type)[:top_n]
            body = "Compared with the previous snapshot: top %d differences\n%s" % (
                top_n,
                "\n".join(str(s) for s in stats),
            )
        self.previous = snap
        return head + "\n" + body

    def stop(self):
        with self._lock:
            if self.lease is None:
                if tracemalloc.is_tracing():
                    return (
                        "tracemalloc was started by something else in this process (the cron-leak profiler?):"
                        " left on."
                    )
                return "tracemalloc is not tracing this process."
            self._forget()
            if tracemalloc.is_tracing():
                return (
                    "Diagnostics tracer released; tracemalloc stays on for its other user (a profiled run)."
                )
            return "tracemalloc stopped; its memory and the previous snapshot are released."

    def _forget(self):
        """Release the lease (if any), stop the watchdog, clear the board and this tracer's state."""
        if self._stop_watch is not None:
            self._stop_watch.set()
            self._stop_watch = None
        if self.lease is not None:
            self.lease.release()
            if self.board is not None:
                self.board.clear(os.getpid())
        self.lease, self.previous, self.started_at, self.until, self.max_bytes = None, None, None, None, None


#: Which processes of this host trace (read by the page, written by each process's tracer).
BOARD = TracingBoard()

#: The tracer of this process.
TRACER = Tracer(board=BOARD)

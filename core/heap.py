"""What the Python heap of this process holds, and giving memory back.

- :func:`top_types`: pympler's summary of every live object, top types by size;
- :func:`collect`: a full garbage collection with the RSS before and after, and
  glibc's ``malloc_trim(0)``, which hands freed arena pages back to the kernel
  (CPython's small-object allocator and glibc keep them otherwise, so RSS
  rarely drops after a collection alone);
- :class:`Tracer`: tracemalloc started, snapshotted, compared with the previous
  snapshot, stopped; one per process (a snapshot lives in the process that took
  it: in prefork, in one worker).
"""

import ctypes
import ctypes.util
import gc
import time
import tracemalloc

from . import procmem, tracing

MIB = procmem.MIB


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


def human_size(size):
    """Bytes in the biggest unit that keeps a number above 1.

    >>> human_size(512), human_size(2048), human_size(3 * MIB), human_size(-5 * MIB * 1024)
    ('512 B', '2.0 KiB', '3.0 MiB', '-5.0 GiB')
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def malloc_trim():
    """Call glibc's ``malloc_trim(0)``; ``None`` where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


def collect(rss=procmem.rss, trim=malloc_trim):
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


class Tracer:
    """tracemalloc for the diagnostics page: start, snapshot, compare with the previous, stop.

    Tracing is leased from :mod:`core.tracing` (shared): "stop" releases this
    tracer's lease only, so it never ends a profiled cron run's trace, and a
    trace someone else started is left to them.
    """

    def __init__(self):
        self.previous = None
        self.lease = None
        self.started_at = None

    @property
    def tracing(self):
        return tracemalloc.is_tracing()

    @property
    def started_here(self):
        return self.lease is not None

    def start(self, frames=1):
        if self.lease is not None and self.lease.intact():
            return f"tracemalloc already traces this process ({tracemalloc.get_traceback_limit()} frame(s))."
        self._drop()
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
        if shared:
            return (
                f"tracemalloc already traces this process ({tracemalloc.get_traceback_limit()} frame(s),"
                " a profiled cron run): snapshots use that trace."
            )
        return f"tracemalloc started with {frames} frame(s) per allocation."

    def snapshot(self, top_n=10, key_type="lineno"):
        """Take a snapshot; the text compares it with the previous one (or lists its top lines)."""
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
        if self.lease is None:
            if tracemalloc.is_tracing():
                return (
                    "tracemalloc was started by something else in this process (the cron-leak profiler?):"
                    " left on."
                )
            return "tracemalloc is not tracing this process."
        self._drop()
        if tracemalloc.is_tracing():
            return "Diagnostics tracer released; tracemalloc stays on for its other user (a profiled run)."
        return "tracemalloc stopped; its memory and the previous snapshot are released."

    def _drop(self):
        if self.lease is not None:
            self.lease.release()
        self.lease, self.previous, self.started_at = None, None, None


#: The tracer of this process.
TRACER = Tracer()

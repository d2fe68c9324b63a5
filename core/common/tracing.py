"""The one owner of tracemalloc in this process: start and stop with a count of users.

tracemalloc is process-wide. The diagnostics tracer (``heap.Tracer``) and the
cron-leak profiler (``leakprof.ProfileSession``) both take a :class:`Lease` here;
tracing starts with the first lease and stops when the last one is released,
so that neither ever stops the other's trace::

    >>> first = acquire(frames=1)
    >>> second = acquire(frames=1)
    >>> first.release(); tracemalloc.is_tracing()
    True
    >>> second.intact()
    True
    >>> second.release(); tracemalloc.is_tracing()
    False

Tracing that someone else started (``python -X tracemalloc``, Odoo's own
profiler) is theirs: no lease is given then, and it is never stopped here::

    >>> tracemalloc.start(); acquire() is None, foreign()
    (True, True)
    >>> tracemalloc.stop()

Someone else may also *stop* a trace under way: Odoo 19's profiler memory
collector calls ``tracemalloc.stop()`` unconditionally when it ends. Each lease
holds a sentinel object allocated once its trace runs; tracemalloc forgets
every trace when it stops, so if the sentinel's traceback is gone, the trace
was stopped (and perhaps restarted) by someone else, and what it measured is
not data::

    >>> lease = acquire()
    >>> tracemalloc.stop(); tracemalloc.start()   # someone else's stop and restart
    >>> lease.intact()
    False
    >>> lease.release(); tracemalloc.is_tracing()   # the new trace is not ours: left on
    True
    >>> tracemalloc.stop()

Nothing here imports Odoo.
"""

import threading
import tracemalloc

_lock = threading.Lock()
#: Leases not yet released.
_users = 0
#: Allocated right after *we* started tracing; its traceback vanishes when the trace ends.
_owner_sentinel = None
#: Leases that asked to be alone among exclusive leases (profiled cron runs) and hold it.
_exclusive = 0


def _sentinel():
    # A fresh, non-shared block: its traceback exists only while the trace that saw it lives.
    return bytearray(8)


def _traced(sentinel):
    return (
        sentinel is not None
        and tracemalloc.is_tracing()
        and tracemalloc.get_object_traceback(sentinel) is not None
    )


def ours():
    """True while the current trace is one this module started (and nobody restarted since)."""
    return _traced(_owner_sentinel)


def foreign():
    """True while tracemalloc traces and the trace is not ours (someone else started it)."""
    return tracemalloc.is_tracing() and not ours()


class Lease:
    """A user of the process's trace. :meth:`release` it exactly once (idempotent)."""

    def __init__(self, exclusive):
        self.exclusive = exclusive
        self.frames = tracemalloc.get_traceback_limit()
        self._sentinel = _sentinel()
        self._held = True

    def intact(self):
        """True if the trace this lease started under has run all along (not stopped nor restarted)."""
        return _traced(self._sentinel)

    def release(self):
        global _users, _exclusive, _owner_sentinel  # noqa: PLW0603 - tracemalloc is process-wide
        with _lock:
            if not self._held:
                return
            self._held = False
            _users -= 1
            if self.exclusive:
                _exclusive -= 1
            if _users == 0:
                if ours():
                    tracemalloc.stop()
                _owner_sentinel = None


def acquire(frames=1, *, exclusive=False):
    """A :class:`Lease` on tracing, started with ``frames`` frames if it is off; ``None`` if refused.

    Refused when someone else traces (:func:`foreign`), and, for an
    ``exclusive`` lease, while another exclusive lease is held: two profiled
    runs traced at once would each see the other's allocations.
    When the trace is already ours, the lease shares it with its frame limit.
    """
    global _users, _exclusive, _owner_sentinel  # noqa: PLW0603 - tracemalloc is process-wide
    with _lock:
        if tracemalloc.is_tracing():
            if not ours():
                return None
        else:
            # Off: never started, or our trace was stopped by someone else (its leases see it).
            tracemalloc.start(max(int(frames), 1))
            _owner_sentinel = _sentinel()
        if exclusive and _exclusive:  # held by a lease, so tracing stays on for it
            return None
        _users += 1
        if exclusive:
            _exclusive += 1
        return Lease(exclusive)


def users():
    """Leases not yet released (for diagnostics)."""
    return _users

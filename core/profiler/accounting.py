"""Accounting of every scheduled-action run: what can be read in microseconds, before and after.

No ``gc.collect()``, no tracemalloc: a :func:`read` without the C heap
(``read(heap=False)``) costs some tens of microseconds (one ``pread`` of
``/proc/self/statm``, a listing of ``/proc/self/fd`` and a few counters), so
every run of every scheduled action can afford two of them; the C heap is
read on the runs that are charged (see *What it costs* below)::

    >>> before = read()
    >>> kept = bytearray(4 * MIB)
    >>> run = charge(before, read())
    >>> run["growth"] >= 4 * MIB            # charged to the run that kept it
    True
    >>> sorted(run) == sorted(CHARGE_KEYS)
    True

What a run is charged with is what grew *during* it (after minus before),
never the process's size: crons run one after the other in a cron worker, and
the process's RSS after a run says as much about the crons before it.

**Which growth.** RSS after minus before is what the operating system sees, and
is stored, but it blames the wrong run: the C allocator reuses memory freed by
one run for the next, so a run that keeps 1 MiB in memory freed by a neighbour
shows no RSS growth, and the neighbour, which frees all it takes, grows RSS
when it needs its memory back. The run is therefore charged with the growth of
the bytes *in use* in the C heap (glibc's ``mallinfo2()``: allocated, not
resident: reuse does not hide it) plus Python's small-object blocks
(``sys.getallocatedblocks()``, which live in arenas of their own, counted at
:data:`BLOCK_BYTES` each). Where the C library has no ``mallinfo2`` (musl,
macOS, glibc before 2.33) the charge falls back to RSS.

**What it costs.** Every figure but one is read in microseconds. ``mallinfo2()``
walks every free chunk of the C heap: 0.5 ms in a fresh Odoo process, several
after jobs that freed thousands of records. A reading therefore leaves the heap
out when asked (``read(heap=False)``): the run is then accounted but not
charged (``growth`` is ``None``), and the caller decides which runs need a
charge (``models/ir_cron.py``: every run of an action whose verdict is not
settled, one in N of a healthy one)::

    >>> skipped = charge(read(heap=False), read(heap=False))
    >>> skipped["growth"] is None if heap_readable() else skipped["growth"] is not None
    True
"""

import contextlib
import ctypes
import os
import sys
import threading
import time
import tracemalloc

import psutil

from ..common.units import MIB  # noqa: F401 - the doctests use it
from ..diagnostics import heap

#: Bytes counted per Python small-object block (pymalloc serves requests up
#: to 512 bytes; most are small objects of 32 to 100 bytes).
BLOCK_BYTES = 64

#: The keys of :func:`charge`'s dict.
CHARGE_KEYS = (
    "duration",
    "cpu_time",
    "rss_before",
    "rss_after",
    "vms_before",
    "vms_after",
    "heap_growth",
    "blocks_growth",
    "fds_before",
    "fds_after",
    "growth",
)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_mallinfo2 = heap.libc_function("mallinfo2", [], _Mallinfo2)


def heap_readable():
    """True where the C library tells the bytes in use (glibc >= 2.33's ``mallinfo2``)."""
    return _mallinfo2 is not None


def heap_in_use():
    """Bytes the C allocator has handed out and not had back (``mallinfo2``); ``None`` if unknown.

    ``uordblks`` (chunks in use in every arena) plus ``hblkhd`` (chunks of
    their own, mmap'ed). Allocated bytes, not resident ones: memory freed and
    reused is not counted twice.
    """
    if _mallinfo2 is None:
        return None
    info = _mallinfo2()
    return info.uordblks + info.hblkhd


_process = {"pid": None, "process": None}


def _me():
    # psutil.Process caches the pid: a forked worker needs its own.
    pid = os.getpid()
    if _process["pid"] != pid:
        _process.update(pid=pid, process=psutil.Process(pid))
    return _process["process"]


#: Where Linux tells a process its own size and open files. ``/proc/self`` is
#: resolved when opened: each reading opens it again, so a forked worker reads its own.
_STATM = "/proc/self/statm"
_FD_DIR = "/proc/self/fd"
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_HAS_PROC = os.path.exists(_STATM) and os.path.isdir(_FD_DIR)


#: ``/proc/self/statm`` kept open by the process that opened it: ``{"pid", "fd"}``.
_statm = {"pid": None, "fd": None}
_statm_lock = threading.Lock()


def _statm_fd():
    # /proc/self is resolved when opened: a descriptor inherited through fork reads the
    # parent. Each process opens its own (close-on-exec, as os.open makes it), once,
    # under a lock: two threads of a fresh process must not both open (or close) it.
    pid = os.getpid()
    if _statm["pid"] != pid:
        with _statm_lock:
            if _statm["pid"] != pid:
                fd = os.open(_STATM, os.O_RDONLY)
                _statm.update(pid=pid, fd=fd)
    return _statm["fd"]


def _forget_statm_in_child():
    """In a forked child: close the parent's descriptor at once (its number is free again)."""
    inherited = _statm["fd"]
    _statm.update(pid=None, fd=None)
    if inherited is not None:
        with contextlib.suppress(OSError):
            os.close(inherited)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_statm_in_child)


def memory():
    """``(rss, vms)`` of this process in bytes.

    On Linux, read straight from ``/proc/self/statm`` (what psutil reads too),
    kept open and read with one ``pread``: no process object, no named tuple,
    no path lookup; elsewhere from psutil.
    """
    if _HAS_PROC:
        size, resident = os.pread(_statm_fd(), 256, 0).split()[:2]
        return int(resident) * _PAGE_SIZE, int(size) * _PAGE_SIZE
    info = _me().memory_info()
    return info.rss, info.vms


def fd_count():
    """Open file descriptors of this process (psutil's count: the listing's own included); None if unknown."""
    if _HAS_PROC:
        return len(os.listdir(_FD_DIR))
    try:
        return _me().num_fds()
    except (AttributeError, psutil.Error):
        return None


def read(heap=True):
    """One reading: ``{clock, cpu, rss, vms, heap, heap_skipped, blocks, fds, tracemalloc}``.

    Seconds (``clock``: ``perf_counter``; ``cpu``: user + system of the
    process, ``os.times()``), bytes (``rss``, ``vms`` as ``/proc/self/statm``
    gives them; ``heap``: :func:`heap_in_use`), counts (``blocks``:
    ``sys.getallocatedblocks()``; ``fds``).

    ``tracemalloc`` is the memory tracemalloc uses for its own traces (0 when
    it does not trace): a traced run is not charged with it.

    :param heap: read the C heap (``mallinfo2``, the one figure that costs
        milliseconds); ``False``: ``heap`` is ``None`` and ``heap_skipped`` True
        (the run is accounted, not charged). Without ``mallinfo2``, ``heap`` is
        ``None`` and ``heap_skipped`` False either way: the charge is then RSS
        growth, which costs nothing more. ``fds`` is ``None`` where the OS does
        not tell.
    """
    rss, vms = memory()
    times = os.times()
    return {
        "clock": time.perf_counter(),
        "cpu": times.user + times.system,
        "rss": rss,
        "vms": vms,
        "heap": heap_in_use() if heap else None,
        # Without mallinfo2 the charge is RSS, read every time: nothing is skipped.
        "heap_skipped": not heap and heap_readable(),
        "blocks": sys.getallocatedblocks(),
        "fds": fd_count(),
        "tracemalloc": tracemalloc.get_tracemalloc_memory(),
    }


def charge(before, after):
    """What a run is charged with, from the :func:`read` before and after it.

    Returns a dict with :data:`CHARGE_KEYS`: ``duration`` and ``cpu_time``
    (seconds; CPU of the whole process, which is the run's in a cron
    worker), RSS and VMS before and after (bytes; VMS is what Odoo compares
    with ``limit_memory_soft``), ``heap_growth`` (bytes, ``None`` without
    ``mallinfo2`` or when a reading skipped the heap), ``blocks_growth``
    (Python blocks), fds before and after, and ``growth``: the bytes charged
    to the run (see the module's docstring), ``None`` when a reading skipped
    the heap: the run is accounted, not charged.

    >>> b = {"clock": 1.0, "cpu": 2.0, "rss": 100, "vms": 1000, "heap": 50, "blocks": 10, "fds": 5}
    >>> a = {"clock": 1.5, "cpu": 2.25, "rss": 90, "vms": 1000, "heap": 1050, "blocks": 12, "fds": 6}
    >>> c = charge(b, a)
    >>> c["duration"], c["cpu_time"], c["growth"], c["fds_after"] - c["fds_before"]
    (0.5, 0.25, 1128, 1)
    >>> charge({**b, "heap": None}, {**a, "heap": None})["growth"]   # no mallinfo2: RSS
    -10
    >>> charge(b, {**a, "heap": None, "heap_skipped": True})["growth"] is None   # not charged
    True
    """
    heap_growth = None
    if before["heap"] is not None and after["heap"] is not None:
        own = after.get("tracemalloc", 0) - before.get("tracemalloc", 0)
        heap_growth = after["heap"] - before["heap"] - own
    blocks_growth = after["blocks"] - before["blocks"]
    if heap_growth is not None:
        growth = heap_growth + blocks_growth * BLOCK_BYTES
    elif before.get("heap_skipped") or after.get("heap_skipped"):
        growth = None
    else:
        growth = after["rss"] - before["rss"]
    return {
        "duration": after["clock"] - before["clock"],
        "cpu_time": after["cpu"] - before["cpu"],
        "rss_before": before["rss"],
        "rss_after": after["rss"],
        "vms_before": before["vms"],
        "vms_after": after["vms"],
        "heap_growth": heap_growth,
        "blocks_growth": blocks_growth,
        "fds_before": before["fds"],
        "fds_after": after["fds"],
        "growth": growth,
    }


def growth_shares(growth):
    """``{key: % of the growth}`` from ``{key: net growth}``: over the sum of the ones that grew.

    >>> growth_shares({"sync": 900.0, "mail": 100.0, "churn": -50.0})
    {'sync': 90.0, 'mail': 10.0, 'churn': 0.0}
    >>> growth_shares({"churn": -1.0})
    {}
    """
    total = sum(max(value, 0.0) for value in growth.values())
    if total <= 0:
        return {}
    return {key: 100.0 * max(value, 0.0) / total for key, value in growth.items()}

"""Accounting of every scheduled-action run: what can be read in microseconds, before and after.

No ``gc.collect()``, no tracemalloc: a :func:`read` costs some tens of
microseconds (two small ``/proc`` reads and a few counters), so every run of
every scheduled action can afford two of them::

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
"""

import ctypes
import os
import sys
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


def read():
    """One reading: ``{clock, cpu, rss, vms, heap, blocks, fds, tracemalloc}`` (seconds, bytes, counts).

    ``tracemalloc`` is the memory tracemalloc uses for its own traces (0 when
    it does not trace): a traced run is not charged with it.

    ``heap`` is ``None`` without ``mallinfo2``; ``fds`` is ``None`` where the
    OS does not tell.
    """
    process = _me()
    memory = process.memory_info()
    try:
        fds = process.num_fds()
    except (AttributeError, psutil.Error):
        fds = None
    times = os.times()
    return {
        "clock": time.perf_counter(),
        "cpu": times.user + times.system,
        "rss": memory.rss,
        "vms": memory.vms,
        "heap": heap_in_use(),
        "blocks": sys.getallocatedblocks(),
        "fds": fds,
        "tracemalloc": tracemalloc.get_tracemalloc_memory(),
    }


def charge(before, after):
    """What a run is charged with, from the :func:`read` before and after it.

    Returns a dict with :data:`CHARGE_KEYS`: ``duration`` and ``cpu_time``
    (seconds; CPU of the whole process, which is the run's in a cron
    worker), RSS and VMS before and after (bytes; VMS is what Odoo compares
    with ``limit_memory_soft``), ``heap_growth`` (bytes, ``None`` without
    ``mallinfo2``), ``blocks_growth`` (Python blocks), fds before and after,
    and ``growth``: the bytes charged to the run (see the module's docstring).

    >>> b = {"clock": 1.0, "cpu": 2.0, "rss": 100, "vms": 1000, "heap": 50, "blocks": 10, "fds": 5}
    >>> a = {"clock": 1.5, "cpu": 2.25, "rss": 90, "vms": 1000, "heap": 1050, "blocks": 12, "fds": 6}
    >>> c = charge(b, a)
    >>> c["duration"], c["cpu_time"], c["growth"], c["fds_after"] - c["fds_before"]
    (0.5, 0.25, 1128, 1)
    >>> charge({**b, "heap": None}, {**a, "heap": None})["growth"]   # no mallinfo2: RSS
    -10
    """
    heap_growth = None
    if before["heap"] is not None and after["heap"] is not None:
        own = after.get("tracemalloc", 0) - before.get("tracemalloc", 0)
        heap_growth = after["heap"] - before["heap"] - own
    blocks_growth = after["blocks"] - before["blocks"]
    if heap_growth is None:
        growth = after["rss"] - before["rss"]
    else:
        growth = heap_growth + blocks_growth * BLOCK_BYTES
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

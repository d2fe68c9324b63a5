"""What one Odoo process weighs right now, read with psutil.

Sizes are MiB floats (an integer column overflows at 2 GiB). ``odoo_mb`` is
the figure Odoo compares with its memory limits: the virtual size on Linux
(RSS on macOS, see :mod:`procmem`), so ``soft_limit_pct`` says how close a
worker is to being recycled while ``rss_mb`` says what the OOM killer sees.

The ORM layer adds what only Odoo knows (record cache, ormcache, requests
served) for the process it runs in.
"""

import gc
import os
import time

import psutil

from . import lifecycle, procinfo, procmem, proctree

MIB = procmem.MIB

#: Options of odoo.conf that :func:`limits` reads.
LIMIT_OPTIONS = (
    "limit_memory_soft",
    "limit_memory_hard",
    "limit_memory_soft_gevent",
    "limit_memory_hard_gevent",
)


def sample(process, *, uss=False, now=None):
    """Figures of ``process`` (a ``psutil.Process``) as a dict; raises ``psutil.Error`` if it is gone.

    ``uss`` (unique set size: what the process would give back if it died)
    costs a read of ``/proc/PID/smaps``: only when asked. A figure the OS
    refuses is ``None``.
    """
    now = time.time() if now is None else now
    with process.oneshot():
        memory = process.memory_info()
        cpu = process.cpu_times()
        started = process.create_time()
        figures = {
            "pid": process.pid,
            "rss_mb": memory.rss / MIB,
            "vms_mb": memory.vms / MIB,
            "odoo_mb": procmem.odoo_memory(process) / MIB,
            "uss_mb": None,
            "num_fds": _or_none(process.num_fds),
            "num_threads": _or_none(process.num_threads),
            "cpu_seconds": cpu.user + cpu.system,
            "started_at": started,
            "age_seconds": max(0.0, now - started),
            # What the process is doing, from its title (core/lifecycle.py); None when idle.
            "doing": lifecycle.parse_title(" ".join(_or_none(process.cmdline) or ())),
        }
    if uss:
        full = _or_none(process.memory_full_info)
        figures["uss_mb"] = full.uss / MIB if full is not None else None
    return figures


def sample_tree(root_pid, mode, *, uss=False):
    """``[figures]`` of every process of the server rooted at ``root_pid``, each with its ``kind``.

    Processes that end while they are read are left out.
    """
    now = time.time()
    found = []
    for process, kind in proctree.server_processes(root_pid, mode):
        try:
            found.append({**sample(process, uss=uss, now=now), "kind": kind})
        except psutil.Error:
            continue
    return found


def sample_helpers(root_pid, mode):
    """``[{"pid", "owner_pid", "command", "rss_mb", "vms_mb"}]`` of the helpers of the server's processes.

    Helpers are the programs Odoo processes started (``wkhtmltopdf``, ``node``,
    ``pg_dump``...): their memory is on the host, but Odoo's limits do not
    apply to them (:mod:`proctree`). Those that end while read are left out.
    """
    found = []
    for process, kind, owner in proctree.walk(root_pid, mode):
        if kind != proctree.HELPER:
            continue
        try:
            memory = process.memory_info()
        except psutil.Error:
            continue
        found.append(
            {
                "pid": process.pid,
                "owner_pid": owner,
                "command": procinfo.command(process),
                "rss_mb": memory.rss / MIB,
                "vms_mb": memory.vms / MIB,
            }
        )
    return found


def gc_counts():
    """Collection counters of the three generations of this process, as ``"g0/g1/g2"``."""
    return "/".join(str(n) for n in gc.get_count())


def limits(options, kind):
    """``(soft, hard)`` memory limits in bytes that apply to a process of ``kind`` (0: none).

    ``options`` maps odoo.conf option names (:data:`LIMIT_OPTIONS`) to values.
    The gevent process has limits of its own when they are set (18.0+).

    >>> limits({"limit_memory_soft": 2048 * MIB, "limit_memory_hard": 2560 * MIB,
    ...         "limit_memory_soft_gevent": 1024 * MIB}, "gevent")
    (1073741824, 2684354560)
    >>> limits({"limit_memory_soft": 2048 * MIB, "limit_memory_hard": 0}, "http")
    (2147483648, 0)
    """
    soft = options.get("limit_memory_soft") or 0
    hard = options.get("limit_memory_hard") or 0
    if kind == proctree.GEVENT:
        soft = options.get("limit_memory_soft_gevent") or soft
        hard = options.get("limit_memory_hard_gevent") or hard
    return int(soft), int(hard)


def with_limits(figures, options):
    """``figures`` plus the limits in force for its ``kind`` and ``soft_limit_pct`` (of ``odoo_mb``).

    >>> f = with_limits({"kind": "http", "odoo_mb": 1843.2}, {"limit_memory_soft": 2048 * MIB})
    >>> f["soft_limit_mb"], f["hard_limit_mb"], f["soft_limit_pct"]
    (2048.0, 0.0, 90.0)
    """
    soft, hard = limits(options, figures["kind"])
    return {
        **figures,
        "soft_limit_mb": soft / MIB,
        "hard_limit_mb": hard / MIB,
        "soft_limit_pct": share(figures["odoo_mb"], soft),
    }


def share(value_mb, limit_bytes):
    """``value_mb`` as a percentage of ``limit_bytes``; 0 when there is no limit.

    >>> share(1024, 2048 * MIB)
    50.0
    >>> share(1024, 0)
    0.0
    """
    return round(value_mb * MIB * 100 / limit_bytes, 2) if limit_bytes else 0.0


def top_types(limit=20):
    """The ``limit`` object types of this process using most memory, by pympler.

    ``[[type name, count, total bytes], ...]``, largest first. Walks every
    object of the heap: seconds on a big worker, so only on demand.
    """
    from pympler import muppy, summary

    rows = summary.summarize(muppy.get_objects())
    rows.sort(key=lambda row: row[2], reverse=True)
    return [[str(name), int(count), int(size)] for name, count, size in rows[:limit]]


class Throttle:
    """Says when something is due again in this process; due at once at first.

    The state is reset in a forked child, so a worker never inherits its
    parent's schedule.

    >>> throttle = Throttle()
    >>> throttle.due(now=1000.0)
    True
    >>> throttle.reschedule(300, now=1000.0)
    >>> throttle.due(now=1200.0), throttle.due(now=1300.0)
    (False, True)
    """

    def __init__(self):
        self._pid = None
        self._next = 0.0

    def due(self, now=None):
        if os.getpid() != self._pid:
            self._pid, self._next = os.getpid(), 0.0
        return (time.monotonic() if now is None else now) >= self._next

    def reschedule(self, interval, now=None):
        """Due again ``interval`` seconds from now."""
        self._pid = os.getpid()
        self._next = (time.monotonic() if now is None else now) + interval


def _or_none(read):
    try:
        return read()
    except psutil.AccessDenied:
        return None

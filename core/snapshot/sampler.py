"""What one Odoo process weighs right now, read with psutil.

Sizes are MiB floats (an integer column overflows at 2 GiB). ``odoo_mb`` is
the figure Odoo compares with its memory limits: the virtual size on Linux
(RSS on macOS, see :mod:`core.process.limits`), so ``soft_limit_pct`` says how close a
worker is to being recycled while ``rss_mb`` says what the OOM killer sees.

The ORM layer adds what only Odoo knows (record cache, ormcache, requests
served) for the process it runs in.
"""

import gc
import time

import psutil

from ..common.units import MIB
from ..process import limits, reading, tree


def sample(process, *, uss=False, now=None):
    """Figures of ``process`` (a ``psutil.Process``) as a dict in MiB; raises ``psutil.Error`` if it is gone.

    :func:`core.process.reading.read_figures` in the snapshot's shape: ``rss_mb``,
    ``vms_mb``, ``odoo_mb``, ``uss_mb`` (``None`` unless ``uss``), ``num_fds``,
    ``num_threads``, ``cpu_seconds``, ``started_at`` (epoch), ``age_seconds``.
    """
    figures = reading.read_figures(process, uss=uss, now=now)
    return {
        "pid": figures["pid"],
        "rss_mb": figures["rss"] / MIB,
        "vms_mb": figures["vms"] / MIB,
        "odoo_mb": figures["odoo_memory"] / MIB,
        "uss_mb": figures["uss"] / MIB if figures["uss"] is not None else None,
        "num_fds": figures["num_fds"],
        "num_threads": figures["num_threads"],
        "cpu_seconds": figures["cpu_seconds"],
        "started_at": figures["started"],
        "age_seconds": figures["age"],
    }


def sample_tree(root_pid, mode, *, uss=False):
    """``[figures]`` of every process of the server rooted at ``root_pid``, each with its ``kind``.

    Processes that end while they are read are left out.
    """
    now = time.time()
    found = []
    for process, kind in tree.server_processes(root_pid, mode):
        try:
            found.append({**sample(process, uss=uss, now=now), "kind": kind})
        except psutil.Error:
            continue
    return found


def sample_helpers(root_pid, mode):
    """``[{"pid", "owner_pid", "command", "rss_mb", "vms_mb"}]`` of the helpers of the server's processes.

    Helpers are the programs Odoo processes started (``wkhtmltopdf``, ``node``,
    ``pg_dump``...): their memory is on the host, but Odoo's limits do not
    apply to them (:mod:`core.process.tree`). Those that end while read are left out.
    """
    found = []
    for process, kind, owner in tree.walk(root_pid, mode):
        if kind != tree.HELPER:
            continue
        try:
            memory = process.memory_info()
        except psutil.Error:
            continue
        found.append(
            {
                "pid": process.pid,
                "owner_pid": owner,
                "command": reading.command(process),
                "rss_mb": memory.rss / MIB,
                "vms_mb": memory.vms / MIB,
            }
        )
    return found


def gc_counts():
    """Collection counters of the three generations of this process, as ``"g0/g1/g2"``."""
    return "/".join(str(n) for n in gc.get_count())


def with_limits(figures, options):
    """``figures`` plus the limits in force for its ``kind`` and ``soft_limit_pct`` (of ``odoo_mb``).

    >>> f = with_limits({"kind": "http", "odoo_mb": 1843.2}, {"limit_memory_soft": 2048 * MIB})
    >>> f["soft_limit_mb"], f["hard_limit_mb"], f["soft_limit_pct"]
    (2048.0, 0.0, 90.0)
    """
    soft, hard = limits.memory_limits(options, figures["kind"])
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

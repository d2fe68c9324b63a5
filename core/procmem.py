"""How big this process is, measured the way Odoo measures it for its limits.

Odoo's ``memory_info()`` (``odoo/service/server.py``) compares
``limit_memory_soft`` with the *virtual size* on Linux (RSS only on macOS), and
``limit_memory_hard`` is an ``RLIMIT_AS``: an address-space limit. RSS is what
the OOM killer sees; the virtual size is what recycles a worker.
"""

import platform

import psutil

MIB = 1024 * 1024

_PROCESS = None


def this_process():
    global _PROCESS  # noqa: PLW0603 - one psutil handle per process, reused
    if _PROCESS is None or _PROCESS.pid != _current_pid():
        _PROCESS = psutil.Process()
    return _PROCESS


def _current_pid():
    import os

    return os.getpid()


def odoo_memory(process=None):
    """The figure Odoo compares with its memory limits, in bytes."""
    info = (process or this_process()).memory_info()
    if platform.system() == "Darwin":
        return info.rss
    return info.vms


def rss(process=None):
    return (process or this_process()).memory_info().rss


def cron_budget(config, *, memory_share=80, time_share=80):
    """Default budgets of a batched run inside a cron worker, from odoo.conf.

    ``config`` maps Odoo's option names to values (``odoo.tools.config``).
    Returns ``(max_seconds, memory_limit_mb)``, each ``None`` where the server
    sets no limit. Shares are in percent.

    >>> cron_budget({"limit_memory_soft": 2048 * MIB, "limit_time_real_cron": -1,
    ...              "limit_time_real": 120})
    (96.0, 1638.4)
    >>> cron_budget({"limit_memory_soft": 0, "limit_time_real_cron": 0, "limit_time_real": 120})
    (None, None)
    """
    soft = config.get("limit_memory_soft") or 0
    memory_limit_mb = round(soft * memory_share / 100 / MIB, 1) if soft > 0 else None
    # Odoo: limit_time_real_cron -1 means "use limit_time_real", 0 means no limit.
    real = config.get("limit_time_real_cron")
    if real is None or real < 0:
        real = config.get("limit_time_real") or 0
    max_seconds = round(real * time_share / 100, 1) if real and real > 0 else None
    return max_seconds, memory_limit_mb

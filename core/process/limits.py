"""What Odoo measures against its limits, the limits in force, and the budgets they leave.

One of three modules about one process (:mod:`core.process`): :mod:`core.process.tree` says
which processes the server has, :mod:`core.process.reading` reads their figures; this one
measures a process the way Odoo does (``odoo_memory``, CPU time) and derives the limits and
budgets (``memory_limits``, ``real_time_limit``, ``cron_budget``).

Odoo's ``memory_info()`` (``odoo/service/server.py``) compares
``limit_memory_soft`` with the *virtual size* on Linux (RSS only on macOS), and
``limit_memory_hard`` is an ``RLIMIT_AS``: an address-space limit. RSS is what
the OOM killer sees; the virtual size is what recycles a worker.
"""

import platform

import psutil

from ..common.units import MIB
from . import tree

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


#: Where a batched run executes, for the real-time limit that applies to it.
PREFORK_CRON = "prefork_cron"  # a cron worker of a prefork server
THREADED_CRON = "threaded_cron"  # a cron thread of a threaded server (or no server: scripts, tests)
HTTP = "http"  # a request: 18.0's "Run Manually", either mode


def real_time_limit(config, mode=PREFORK_CRON):
    """Seconds of wall time Odoo allows a run in ``mode``, or ``None`` for no limit.

    Odoo's own rules: a prefork cron worker's watchdog is ``limit_time_real_cron``,
    ``-1`` meaning ``limit_time_real`` and ``0`` no limit; a threaded server applies
    ``limit_time_real_cron`` to cron threads only when it is above 0, and
    ``limit_time_real`` otherwise; a request has ``limit_time_real``.

    >>> conf = {"limit_time_real": 120, "limit_time_real_cron": 0}
    >>> real_time_limit(conf, PREFORK_CRON), real_time_limit(conf, THREADED_CRON), real_time_limit(conf, HTTP)
    (None, 120, 120)
    >>> real_time_limit({"limit_time_real": 120, "limit_time_real_cron": -1}, PREFORK_CRON)
    120
    """
    real = config.get("limit_time_real") or 0
    cron = config.get("limit_time_real_cron")
    if mode == PREFORK_CRON:
        limit = real if cron is None or cron == -1 else cron
    elif mode == THREADED_CRON:
        limit = cron if cron and cron > 0 else real
    else:
        limit = real
    return limit if limit and limit > 0 else None


def cron_budget(config, *, memory_share=80, time_share=80, mode=PREFORK_CRON):
    """Default budgets of a batched run inside a cron run, from odoo.conf.

    ``config`` maps Odoo's option names to values (``odoo.tools.config``).
    Returns ``(max_seconds, memory_limit_mb)``, each ``None`` where the server
    sets no limit. Shares are in percent; ``mode`` as for :func:`real_time_limit`.

    >>> cron_budget({"limit_memory_soft": 2048 * MIB, "limit_time_real_cron": -1,
    ...              "limit_time_real": 120})
    (96.0, 1638.4)
    >>> cron_budget({"limit_memory_soft": 0, "limit_time_real_cron": 0, "limit_time_real": 120})
    (None, None)
    """
    soft = config.get("limit_memory_soft") or 0
    memory_limit_mb = round(soft * memory_share / 100 / MIB, 1) if soft > 0 else None
    real = real_time_limit(config, mode)
    max_seconds = round(real * time_share / 100, 1) if real else None
    return max_seconds, memory_limit_mb


def cpu_time():
    """CPU seconds this process has used (user + system), what ``RLIMIT_CPU`` counts."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds_left():
    """CPU seconds left before ``RLIMIT_CPU`` (SIGXCPU), or ``None`` without a limit.

    A prefork worker sets it to its CPU time so far + ``limit_time_cpu`` before
    each unit of work (``Worker.check_limits``): reading it is reading what Odoo set.
    """
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_CPU)
    if soft == resource.RLIM_INFINITY:
        return None
    return soft - cpu_time()


def address_space_limit_mb():
    """The soft ``RLIMIT_AS`` in MiB (Odoo's ``limit_memory_hard``), or ``None``."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    return soft / MIB


#: Options of odoo.conf that :func:`memory_limits` reads.
LIMIT_OPTIONS = (
    "limit_memory_soft",
    "limit_memory_hard",
    "limit_memory_soft_gevent",
    "limit_memory_hard_gevent",
)


def memory_limits(options, kind):
    """``(soft, hard)`` memory limits in bytes that apply to a process of ``kind`` (0: none).

    ``options`` maps odoo.conf option names (:data:`LIMIT_OPTIONS`) to values
    (a missing or empty one is no limit: the config advisor fills in Odoo's
    defaults first). The gevent process has limits of its own when they are set.

    >>> memory_limits({"limit_memory_soft": 2048 * MIB, "limit_memory_hard": 2560 * MIB,
    ...                "limit_memory_soft_gevent": 1024 * MIB}, "gevent")
    (1073741824, 2684354560)
    >>> memory_limits({"limit_memory_soft": 2048 * MIB, "limit_memory_hard": 0}, "http")
    (2147483648, 0)
    """
    soft = options.get("limit_memory_soft") or 0
    hard = options.get("limit_memory_hard") or 0
    if kind == tree.GEVENT:
        soft = options.get("limit_memory_soft_gevent") or soft
        hard = options.get("limit_memory_hard_gevent") or hard
    return int(soft), int(hard)

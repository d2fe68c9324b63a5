"""One process of the server as the diagnostics page lists it.

RSS is what the OOM killer and the RAM see; the virtual size is what Odoo
compares with ``limit_memory_soft`` (:mod:`core.procmem`); USS is what the host
gets back when the process exits (it costs a read of ``smaps``).
"""

import time

import psutil

from . import procmem


def describe(process, kind, soft_limit=0, uss=True, now=None):
    """A dict of figures of ``process`` (a ``psutil.Process``); ``None`` if it vanished.

    Sizes in bytes: ``rss``, ``vms``, ``uss`` (``None`` when not read or not
    readable), ``odoo_memory`` (the figure Odoo compares), ``soft_pct`` (that
    figure as % of ``soft_limit``, ``None`` without a limit); ``num_fds``,
    ``num_threads``, ``cpu_seconds`` (user + system), ``started`` (epoch) and
    ``age`` (seconds).

    >>> import os
    >>> me = describe(psutil.Process(os.getpid()), "other", soft_limit=1024 ** 4, uss=False)
    >>> me["rss"] > 0, me["uss"], 0 < me["soft_pct"] < 1, me["num_threads"] >= 1
    (True, None, True, True)
    """
    now = time.time() if now is None else now
    try:
        with process.oneshot():
            memory = process.memory_info()
            figures = {
                "pid": process.pid,
                "kind": kind,
                "rss": memory.rss,
                "vms": memory.vms,
                "odoo_memory": procmem.odoo_memory(process),
                "num_fds": _or_none(process.num_fds),
                "num_threads": process.num_threads(),
                "cpu_seconds": sum(process.cpu_times()[:2]),
                "started": process.create_time(),
            }
    except psutil.Error:
        return None
    figures["uss"] = _or_none(lambda: process.memory_full_info().uss) if uss else None
    figures["age"] = max(now - figures["started"], 0)
    figures["soft_pct"] = 100.0 * figures["odoo_memory"] / soft_limit if soft_limit else None
    return figures


def command(process, limit=200):
    """What ``process`` runs, as ``ps`` shows it, at most ``limit`` characters; its name if unreadable.

    >>> import os
    >>> command(psutil.Process(os.getpid())) != ""
    True
    """
    try:
        text = " ".join(process.cmdline()) or process.name()
    except psutil.Error:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _or_none(read):
    try:
        return read()
    except (psutil.Error, OSError):
        return None


def age_text(seconds):
    """A short human age.

    >>> age_text(42), age_text(3 * 60 + 5), age_text(2 * 3600 + 60 * 7), age_text(3 * 86400 + 3600)
    ('42 s', '3 min 5 s', '2 h 7 min', '3 d 1 h')
    """
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"

"""A process's figures read with psutil, in one place (:func:`read_figures`).

The snapshots (:func:`core.snapshot.sampler.sample`, in MiB) and the diagnostics page
(:func:`describe`, in bytes with the share of the soft limit) both read them here.

RSS is what the OOM killer and the RAM see; the virtual size is what Odoo
compares with ``limit_memory_soft`` (:mod:`core.process.limits`); USS is what the host
gets back when the process exits (it costs a read of ``smaps``).
"""

import time

import psutil

from . import limits


def read_figures(process, uss=False, now=None):
    """The figures of ``process`` (a ``psutil.Process``) in bytes; raises ``psutil.Error`` if it is gone.

    ``rss``, ``vms``, ``odoo_memory`` (the figure Odoo compares with its
    limits), ``uss`` (unique set size: what the process gives back if it dies;
    it costs a read of ``/proc/PID/smaps``, so ``None`` unless asked),
    ``num_fds``, ``num_threads``, ``cpu_seconds`` (user + system),
    ``started`` (epoch seconds) and ``age`` (seconds). A figure the OS
    refuses to give is ``None``. The one reader of these figures, for the
    snapshots (:func:`core.snapshot.sampler.sample`) and the diagnostics page (:func:`describe`).

    >>> import os
    >>> me = read_figures(psutil.Process(os.getpid()))
    >>> me["rss"] > 0, me["uss"], me["num_threads"] >= 1, me["age"] >= 0
    (True, None, True, True)
    """
    now = time.time() if now is None else now
    with process.oneshot():
        memory = process.memory_info()
        cpu = process.cpu_times()
        started = process.create_time()
        figures = {
            "pid": process.pid,
            "rss": memory.rss,
            "vms": memory.vms,
            "odoo_memory": limits.odoo_memory(process),
            "uss": None,
            "num_fds": _or_none(process.num_fds),
            "num_threads": _or_none(process.num_threads),
            "cpu_seconds": cpu.user + cpu.system,
            "started": started,
            "age": max(0.0, now - started),
        }
    if uss:
        full = _or_none(process.memory_full_info)
        figures["uss"] = full.uss if full is not None else None
    return figures


def describe(process, kind, soft_limit=0, uss=True, now=None):
    """:func:`read_figures` of ``process`` with its ``kind`` and ``soft_pct``; ``None`` if it vanished.

    ``soft_pct``: ``odoo_memory`` as % of ``soft_limit`` (``None`` without a limit).

    >>> import os
    >>> me = describe(psutil.Process(os.getpid()), "other", soft_limit=1024 ** 4, uss=False)
    >>> me["rss"] > 0, me["uss"], 0 < me["soft_pct"] < 1, me["num_threads"] >= 1
    (True, None, True, True)
    """
    try:
        figures = read_figures(process, uss=uss, now=now)
    except psutil.Error:
        return None
    figures["kind"] = kind
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
    """``read()``, or ``None`` where the OS refuses it (a process that is gone still raises)."""
    try:
        return read()
    except (psutil.AccessDenied, OSError):
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

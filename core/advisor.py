"""The config advisor: what the workers and memory articles warn about, checked on a running setup.

Input: Odoo's options (``workers``, ``max_cron_threads``,
``limit_memory_soft``/``hard``, ``limit_memory_soft_gevent``/``hard_gevent``,
``limit_time_cpu``/``real``/``real_cron``, ``proxy_mode``), the host (CPU
count, RAM) and, when known, the live memory of the server's processes by kind.
Output: :class:`Finding` objects, worst first, each saying what to change.

Odoo compares ``limit_memory_soft`` with the *virtual size* of a process on
Linux, and ``limit_memory_hard`` is an ``RLIMIT_AS`` (address space), while the
host's RAM is consumed by RSS. Address space that is reserved but not resident
(thread stacks, malloc arenas, mapped files) makes the virtual size bigger than
RSS by a roughly constant gap per kind of process. The advisor shows that gap
from the live figures and sizes its advice on what Odoo compares: an RSS budget
per process (about 60 % of the RAM divided by the number of processes) plus the
gap.

>>> GiB = 1024 ** 3
>>> sound = {"workers": 5, "max_cron_threads": 1, "limit_memory_soft": 2 * GiB,
...          "limit_memory_hard": int(2.5 * GiB), "limit_time_cpu": 60, "limit_time_real": 120,
...          "proxy_mode": True}
>>> [f.level for f in advise(sound, cpu_count=4, ram_bytes=32 * GiB)]
['ok']
>>> bad = dict(sound, workers=12, limit_memory_hard=GiB)
>>> [f.code for f in advise(bad, cpu_count=2, ram_bytes=8 * GiB) if f.level != "info"]
['hard_not_above_soft', 'hard_vs_ram', 'workers_vs_cpu']
"""

import statistics
from dataclasses import dataclass

from .heap import MIB, human_size

CRITICAL = "critical"
WARNING = "warning"
INFO = "info"
OK = "ok"
LEVELS = (CRITICAL, WARNING, INFO, OK)

#: Share of the RAM that Odoo's processes may hold together (the rest: PostgreSQL, page cache, the OS).
RAM_SHARE = 0.6
#: Odoo's own defaults put the soft limit at 80 % of the hard one (2048 / 2560 MiB).
SOFT_SHARE = 0.8

DEFAULTS = {
    "workers": 0,
    "max_cron_threads": 2,
    "limit_memory_soft": 2048 * MIB,
    "limit_memory_hard": 2560 * MIB,
    "limit_memory_soft_gevent": None,
    "limit_memory_hard_gevent": None,
    "limit_time_cpu": 60,
    "limit_time_real": 120,
    "limit_time_real_cron": -1,
    "proxy_mode": False,
}


@dataclass(frozen=True)
class Finding:
    level: str
    code: str
    title: str
    advice: str


def limits_for(options, kind):
    """``(soft, hard)`` in force for a process of ``kind`` (the gevent limits for the gevent process).

    >>> opts = {"limit_memory_soft": 10, "limit_memory_hard": 20, "limit_memory_soft_gevent": 5}
    >>> limits_for(opts, "gevent")
    (5, 20)
    """
    opts = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    soft, hard = opts["limit_memory_soft"] or 0, opts["limit_memory_hard"] or 0
    if kind == "gevent":
        soft = opts["limit_memory_soft_gevent"] or soft
        hard = opts["limit_memory_hard_gevent"] or hard
    return soft, hard


def live_gap(live):
    """``{kind: (median rss, median vms, median gap)}`` from ``{kind: [(rss, vms), ...]}``.

    >>> live_gap({"http": [(100, 400), (200, 520)], "cron": []})
    {'http': (150.0, 460.0, 310.0)}
    """
    gaps = {}
    for kind, all_figures in (live or {}).items():
        figures = [(rss, vms) for rss, vms in all_figures if rss and vms]
        if figures:
            gaps[kind] = (
                statistics.median(rss for rss, _v in figures),
                statistics.median(vms for _r, vms in figures),
                statistics.median(vms - rss for rss, vms in figures),
            )
    return gaps


def advise(options, cpu_count, ram_bytes, live=None):
    """Findings for ``options`` on a host with ``cpu_count`` CPUs and ``ram_bytes`` of RAM, worst first.

    ``live``: ``{kind: [(rss, vms), ...]}`` of the running processes, in bytes.
    A sound configuration gets a single ``ok`` finding (plus ``info`` ones).
    """
    opts = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    gaps = live_gap(live)
    findings = []
    findings += _check_workers(opts, cpu_count)
    findings += _check_soft_hard(opts)
    findings += _check_ram(opts, ram_bytes, gaps)
    findings += _check_live(opts, live or {}, gaps)
    findings += _check_times(opts)
    if not any(f.level in (CRITICAL, WARNING) for f in findings):
        findings.append(
            Finding(
                OK,
                "sound",
                "Nothing to change",
                "Workers, limits and RAM agree with each other on this host.",
            )
        )
    return sorted(findings, key=lambda f: LEVELS.index(f.level))


def _recommended_workers(cpu_count):
    return 2 * max(cpu_count or 1, 1) + 1


def _check_workers(opts, cpu_count):
    workers = int(opts["workers"] or 0)
    best = _recommended_workers(cpu_count)
    found = []
    if workers <= 0:
        found.append(
            Finding(
                WARNING,
                "threaded",
                "workers = 0: one threaded process serves everything",
                "Fine for development, not for production: one process runs Python on one CPU (the GIL), a"
                " slow"
                " request holds up the others, there is no per-worker memory limit and no recycling, and a"
                f" limit restarts the whole server. In production set workers = {best} (2 x {cpu_count} CPU +"
                " 1),"
                " max_cron_threads = 1 or 2, and proxy_mode = True behind a reverse proxy.",
            )
        )
        return found
    if workers > best:
        found.append(
            Finding(
                WARNING,
                "workers_vs_cpu",
                f"{workers} HTTP workers for {cpu_count} CPU(s)",
                f"The guideline is at most 2 x CPU + 1 = {best} workers: more only wait for a CPU, and each"
                " one"
                f" holds its own copy of Odoo in memory. Set workers = {best}, or give the host more CPUs.",
            )
        )
    if not opts["proxy_mode"]:
        found.append(
            Finding(
                WARNING,
                "proxy_mode",
                "workers without proxy_mode",
                "With workers, Odoo runs behind a reverse proxy (nginx) that routes /websocket to the gevent"
                " port."
                " Set proxy_mode = True so that Odoo trusts its X-Forwarded-For/-Host/-Proto headers: client"
                " addresses in the logs, https URLs and redirects depend on it.",
            )
        )
    if int(opts["max_cron_threads"] or 0) <= 0:
        found.append(
            Finding(
                INFO,
                "no_cron",
                "max_cron_threads = 0: no cron worker on this server",
                "Scheduled actions run only where another server has cron workers. If none has, set"
                " max_cron_threads = 1.",
            )
        )
    return found


def _check_soft_hard(opts):
    found = []
    pairs = [("", limits_for(opts, "http"))]
    if opts["limit_memory_soft_gevent"] or opts["limit_memory_hard_gevent"]:
        pairs.append(("_gevent", limits_for(opts, "gevent")))
    for suffix, (soft, hard) in pairs:
        if not soft:
            found.append(
                Finding(
                    WARNING,
                    "no_soft" + suffix,
                    f"limit_memory_soft{suffix} = 0: workers are never recycled for their size",
                    "A worker that grows keeps its memory until the hard limit or the OOM killer ends it"
                    " mid-request."
                    f" Set limit_memory_soft{suffix} (see the RAM finding for a size).",
                )
            )
        elif hard and hard <= soft:
            found.append(
                Finding(
                    CRITICAL,
                    "hard_not_above_soft" + suffix,
                    f"limit_memory_hard{suffix} ({human_size(hard)}) is not above"
                    f" limit_memory_soft{suffix} ({human_size(soft)})",
                    "Past the soft limit a worker finishes its request and is replaced; the hard limit makes"
                    " allocations fail (MemoryError) in the middle of a request. With hard <= soft a growing"
                    " worker dies mid-request instead of being recycled cleanly. Keep hard about 25 % above"
                    " soft:"
                    f" limit_memory_hard{suffix} = {int(soft / SOFT_SHARE)}"
                    f" ({human_size(soft / SOFT_SHARE)}).",
                )
            )
    return found


def _check_ram(opts, ram_bytes, gaps):
    workers = int(opts["workers"] or 0)
    processes = workers + int(opts["max_cron_threads"] or 0) if workers > 0 else 1
    soft, hard = limits_for(opts, "http")
    gap = _worker_gap(gaps)
    budget = RAM_SHARE * ram_bytes / max(processes, 1)
    hard_advice = int(budget + gap)
    soft_advice = int(SOFT_SHARE * budget + gap)
    sizes = (
        f"limit_memory_hard = {hard_advice} ({human_size(hard_advice)}) and limit_memory_soft = {soft_advice}"
        f" ({human_size(soft_advice)})"
    )
    why = (
        f"about {int(RAM_SHARE * 100)} % of the RAM ({human_size(ram_bytes)}) divided by {processes}"
        " process(es)"
        + (f", plus the {human_size(gap)} by which the virtual size Odoo compares exceeds RSS" if gap else "")
    )
    if not hard:
        return [
            Finding(
                WARNING,
                "no_hard",
                "limit_memory_hard = 0: nothing stops a runaway process before the OOM killer",
                f"Set {sizes}: {why}.",
            )
        ]
    worst_rss = processes * max(hard - gap, 0)
    if worst_rss > ram_bytes:
        return [
            Finding(
                CRITICAL,
                "hard_vs_ram",
                f"(workers + cron threads) x hard limit: {processes} x {human_size(hard)} is more than the"
                " RAM"
                f" ({human_size(ram_bytes)})",
                f"At their hard limit these processes could hold {human_size(worst_rss)} of RSS: the kernel's"
                " OOM"
                " killer (which may pick PostgreSQL) strikes before Odoo's limits do. Lower the limits to"
                f" {sizes}: {why}; or run fewer workers, or add RAM.",
            )
        ]
    if hard > 1.1 * hard_advice:
        return [
            Finding(
                WARNING,
                "hard_vs_ram",
                f"limit_memory_hard ({human_size(hard)}) leaves little RAM for PostgreSQL and the page cache",
                f"{processes} process(es) at that limit would take {human_size(worst_rss)} of"
                f" {human_size(ram_bytes)}. Prefer {sizes}: {why}.",
            )
        ]
    return []


def _worker_gap(gaps):
    """The vms - rss gap of the workers (HTTP, then cron, then any kind), 0 when unknown."""
    for kind in ("http", "cron", "worker", "threaded"):
        if kind in gaps:
            return max(gaps[kind][2], 0)
    return 0


def _check_live(opts, live, gaps):
    found = []
    for kind, (rss, vms, gap) in sorted(gaps.items()):
        soft, _hard = limits_for(opts, kind)
        at_soft = (
            f"; it is recycled at {human_size(soft)} of virtual size, about {human_size(soft - gap)} of RSS"
        )
        found.append(
            Finding(
                INFO,
                f"gap_{kind}",
                f"{kind}: virtual size {human_size(vms)}, RSS {human_size(rss)}, gap {human_size(gap)}",
                "Odoo's limits apply to the virtual size (address space) on Linux, the OOM killer and the RAM"
                " to RSS" + (at_soft if soft and kind != "master" else "") + ".",
            )
        )
        biggest = max((v for _r, v in live.get(kind, ()) if v), default=0)
        if soft and kind != "master" and biggest > soft:
            found.append(
                Finding(
                    WARNING,
                    f"above_soft_{kind}",
                    f"a {kind} process is above its soft limit ({human_size(biggest)} > {human_size(soft)})",
                    "It is recycled after its current request; if it happens at every request the soft limit"
                    " is"
                    " below what a fresh process already takes in virtual size. Raise limit_memory_soft"
                    f"{'_gevent' if kind == 'gevent' else ''} to at least {human_size(1.5 * vms)}.",
                )
            )
    return found


def _check_times(opts):
    found = []
    cpu, real, cron = opts["limit_time_cpu"] or 0, opts["limit_time_real"] or 0, opts["limit_time_real_cron"]
    if int(opts["workers"] or 0) <= 0:
        return found  # time limits only apply to prefork workers
    if real <= 0:
        found.append(
            Finding(
                WARNING,
                "no_time_real",
                "limit_time_real = 0: a stuck request holds its worker forever",
                "Set limit_time_real (Odoo's default is 120 s; reports and imports may need more).",
            )
        )
    elif cpu > real:
        found.append(
            Finding(
                WARNING,
                "cpu_above_real",
                f"limit_time_cpu ({cpu} s) is above limit_time_real ({real} s)",
                "CPU time never exceeds real time: the real-time limit always fires first, so the CPU limit"
                " does"
                " nothing. Keep limit_time_cpu below limit_time_real, e.g. limit_time_cpu ="
                f" {max(real // 2, 1)}.",
            )
        )
    if cron == 0:
        found.append(
            Finding(
                INFO,
                "no_time_real_cron",
                "limit_time_real_cron = 0: scheduled actions run without a time limit",
                "A cron that hangs holds its cron worker until it is killed by hand. -1 uses"
                " limit_time_real.",
            )
        )
    return found

"""The config advisor: what the workers and memory articles warn about, checked on a running setup.

Input: Odoo's options (``workers``, ``max_cron_threads``,
``limit_memory_soft``/``hard``, ``limit_memory_soft_gevent``/``hard_gevent``,
``limit_time_cpu``/``real``/``real_cron``, ``limit_time_worker_cron`` (19.0),
``db_maxconn``/``db_maxconn_gevent``, ``proxy_mode``), the machine (CPUs and
memory as :mod:`core.host.machine` reads them, with their sources), PostgreSQL's
connection settings when known, and the live memory of the server's processes
by kind. Output: :class:`Finding` objects, worst first, each saying what to
change.

Odoo compares ``limit_memory_soft`` with the *virtual size* of a process on
Linux, and ``limit_memory_hard`` is an ``RLIMIT_AS`` (address space), while the
RAM is consumed by RSS. Address space that is reserved but not resident
(thread stacks, malloc arenas, mapped files) makes the virtual size bigger than
RSS by a roughly constant gap per kind of process. The advisor shows that gap
from the live figures and sizes its advice on what Odoo compares:

- the soft limit is what a process holds in steady state (past it, it is
  recycled after its request): the processes that share the memory (HTTP and
  cron workers and the gevent process) get about 60 % of it between them, plus
  the gap;
- the hard limit is 25 % above the soft one, so that a request that grows past
  the soft limit ends before the hard one fails it, and never below
  :data:`REPORT_FLOOR`: the programs a worker starts inherit its ``RLIMIT_AS``,
  and ``wkhtmltopdf`` reserves about 1.5 GiB of address space for a PDF report.
  When the memory cannot give each process that, the advice is fewer workers,
  or more memory.

Every piece of advice is a configuration the advisor itself passes.

>>> GiB = 1024 ** 3
>>> sound = {"workers": 5, "max_cron_threads": 1, "limit_memory_soft": 2 * GiB,
...          "limit_memory_hard": int(2.5 * GiB), "limit_time_cpu": 60, "limit_time_real": 120,
...          "proxy_mode": True}
>>> [f.level for f in advise(sound, cpu_count=4, ram_bytes=32 * GiB)]
['ok']
>>> bad = dict(sound, workers=12, limit_memory_hard=GiB)
>>> [f.code for f in advise(bad, cpu_count=2, ram_bytes=8 * GiB) if f.level != "info"]
['hard_not_above_soft', 'limits_vs_ram', 'workers_vs_cpu', 'hard_below_report_floor']
"""

import statistics
from dataclasses import dataclass

from ..common.units import MIB, human_size
from ..process import limits

CRITICAL = "critical"
WARNING = "warning"
INFO = "info"
OK = "ok"
LEVELS = (CRITICAL, WARNING, INFO, OK)

#: Share of the memory that Odoo's processes may hold together (the rest: PostgreSQL, page cache, the OS).
RAM_SHARE = 0.6
#: Odoo's own defaults put the soft limit at 80 % of the hard one (2048 / 2560 MiB).
SOFT_SHARE = 0.8
#: Below this hard / soft ratio a request that grows past the soft limit fails on the hard one.
MIN_HARD_RATIO = 1.15
#: Address space a report child (wkhtmltopdf) needs under the RLIMIT_AS it inherits from its worker.
REPORT_FLOOR = 1536 * MIB
#: The least RSS a worker's soft limit may leave it: an idle Odoo worker already holds 150-250 MiB.
MIN_WORKER_RSS = 256 * MIB
#: Connections a prefork worker holds at most at once (a request's cursor and one more).
WORKER_CONNECTIONS = 2

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
    "limit_time_worker_cron": None,  # 19.0+; None: this Odoo has no such option
    "db_maxconn": 64,
    "db_maxconn_gevent": None,
    "proxy_mode": False,
}


@dataclass(frozen=True)
class Finding:
    level: str
    code: str
    title: str
    advice: str


def with_defaults(options):
    """``options`` with Odoo's defaults (:data:`DEFAULTS`) where a value is missing or ``None``.

    >>> with_defaults({"limit_memory_soft": None})["limit_memory_soft"] == DEFAULTS["limit_memory_soft"]
    True
    """
    return {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}


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


def advise(options, cpu_count, ram_bytes, live=None, *, cpu_source=None, ram_source=None, postgres=None):
    """Findings for ``options`` on a machine with ``cpu_count`` CPUs and ``ram_bytes`` of memory, worst first.

    ``cpu_source`` / ``ram_source`` say where those come from (:mod:`core.host.machine`:
    ``"container limit"``, ``"host RAM"``...) and are quoted in the findings.
    ``live``: ``{kind: [(rss, vms), ...]}`` of the running processes, in bytes.
    ``postgres``: ``{"max_connections", "superuser_reserved_connections",
    "reserved_connections"}`` (integers, the last one ``None`` before PostgreSQL 16).
    A sound configuration gets a single ``ok`` finding (plus ``info`` ones).
    """
    opts = with_defaults(options)
    host = _Host(cpu_count, ram_bytes, cpu_source, ram_source)
    gaps = live_gap(live)
    findings = []
    findings += _check_workers(opts, host)
    findings += _check_soft_hard(opts)
    findings += _check_ram(opts, host, gaps)
    findings += _check_live(opts, live or {}, gaps)
    findings += _check_times(opts)
    findings += _check_connections(opts, postgres)
    if not any(f.level in (CRITICAL, WARNING) for f in findings):
        findings.append(
            Finding(
                OK,
                "sound",
                "Nothing to change",
                f"Workers, limits and memory agree with each other on this machine ({host.cpus_text},"
                f" {host.ram_text}).",
            )
        )
    return sorted(findings, key=lambda f: LEVELS.index(f.level))


@dataclass(frozen=True)
class _Host:
    cpus: float
    ram: int
    cpu_source: str | None
    ram_source: str | None

    @property
    def cpus_text(self):
        count = f"{self.cpus:g} CPU" + ("" if self.cpus == 1 else "s")
        return count + (f" ({self.cpu_source})" if self.cpu_source else "")

    @property
    def ram_text(self):
        return human_size(self.ram) + (f" ({self.ram_source})" if self.ram_source else " of RAM")


def recommended_workers(cpu_count):
    """At most 2 x CPUs + 1 HTTP workers (a fractional CPU quota counts as what it is).

    >>> recommended_workers(2), recommended_workers(1.5), recommended_workers(0)
    (5, 4, 3)
    """
    return int(2 * max(cpu_count or 1, 1)) + 1


def processes(opts):
    """The processes that share the memory: HTTP and cron workers and the gevent process (prefork),
    or the single threaded process.

    >>> processes({"workers": 8, "max_cron_threads": 1}), processes({"workers": 0, "max_cron_threads": 2})
    (10, 1)
    """
    workers = int(opts.get("workers") or 0)
    return workers + int(opts.get("max_cron_threads") or 0) + 1 if workers > 0 else 1


def _check_workers(opts, host):
    workers = int(opts["workers"] or 0)
    best = recommended_workers(host.cpus)
    found = []
    if workers <= 0:
        found.append(
            Finding(
                WARNING,
                "threaded",
                "workers = 0: one threaded process serves everything",
                "Fine for development, not for production: one process runs Python on one CPU (the GIL), a"
                " slow request holds up the others, there is no per-worker memory limit and no recycling,"
                f" and a limit restarts the whole server. In production set workers = {best} (2 x"
                f" {host.cpus_text} + 1), max_cron_threads = 1 or 2, and proxy_mode = True behind a reverse"
                " proxy.",
            )
        )
        return found
    if workers > best:
        found.append(
            Finding(
                WARNING,
                "workers_vs_cpu",
                f"{workers} HTTP workers for {host.cpus_text}",
                f"The guideline is at most 2 x CPUs + 1 = {best} workers: more only wait for a CPU, and each"
                f" one holds its own copy of Odoo in memory. Set workers = {best}, or give the server more"
                " CPUs.",
            )
        )
    if not opts["proxy_mode"]:
        found.append(
            Finding(
                WARNING,
                "proxy_mode",
                "workers without proxy_mode",
                "With workers, Odoo runs behind a reverse proxy (nginx) that routes /websocket to the gevent"
                " port. Set proxy_mode = True so that Odoo trusts its X-Forwarded-For/-Host/-Proto headers:"
                " client addresses in the logs, https URLs and redirects depend on it.",
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
    pairs = [("", limits.memory_limits(opts, "http"))]
    if opts["limit_memory_soft_gevent"] or opts["limit_memory_hard_gevent"]:
        pairs.append(("_gevent", limits.memory_limits(opts, "gevent")))
    for suffix, (soft, hard) in pairs:
        advice = (
            f"Keep hard about 25 % above soft: limit_memory_hard{suffix} = {_hard_for(soft)}"
            f" ({human_size(_hard_for(soft))})."
        )
        if not soft:
            found.append(
                Finding(
                    WARNING,
                    "no_soft" + suffix,
                    f"limit_memory_soft{suffix} = 0: workers are never recycled for their size",
                    "A worker that grows keeps its memory until the hard limit or the OOM killer ends it"
                    f" mid-request. Set limit_memory_soft{suffix} (see the memory finding for a size).",
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
                    " worker dies mid-request instead of being recycled cleanly. " + advice,
                )
            )
        elif hard and hard < MIN_HARD_RATIO * soft:
            found.append(
                Finding(
                    WARNING,
                    "hard_close_to_soft" + suffix,
                    f"limit_memory_hard{suffix} ({human_size(hard)}) is only {human_size(hard - soft)} above"
                    f" limit_memory_soft{suffix} ({human_size(soft)})",
                    "A worker is recycled only after the request that takes it past the soft limit; a request"
                    f" that needs more than {human_size(hard - soft)} on top of that fails with MemoryError"
                    " instead. " + advice,
                )
            )
        if hard and hard < REPORT_FLOOR:
            found.append(_report_floor_finding(suffix, hard))
    return found


def _hard_for(soft):
    """The hard limit that goes with ``soft``: 25 % above it, never below :data:`REPORT_FLOOR`."""
    return int(max(soft / SOFT_SHARE, REPORT_FLOOR))


def _report_floor_finding(suffix, hard):
    return Finding(
        WARNING,
        "hard_below_report_floor" + suffix,
        f"limit_memory_hard{suffix} ({human_size(hard)}) is below what a PDF report needs"
        f" ({human_size(REPORT_FLOOR)})",
        "The programs a worker starts inherit its address space limit (RLIMIT_AS): wkhtmltopdf reserves about"
        f" {human_size(REPORT_FLOOR)} of address space (for some 40 MiB of RAM), so below that every PDF"
        f" report fails. Set limit_memory_hard{suffix} = {REPORT_FLOOR} ({human_size(REPORT_FLOOR)}) or"
        " more; if the memory cannot afford it, run fewer workers or give the server more memory (see the"
        " memory finding).",
    )


def sizes(opts, ram_bytes, gap=0, cpu_count=None):
    """``(soft, hard, workers)``: the limits the advisor advises for ``opts`` in ``ram_bytes``.

    ``workers`` is the number of HTTP workers to run: ``opts["workers"]``, at
    most :func:`recommended_workers` for ``cpu_count``, and fewer while one
    process at the hard limit (the report floor at least) and the others at
    their soft limit do not fit the memory; ``0`` when even one does not.

    >>> GiB = 1024 ** 3
    >>> sizes({"workers": 65, "max_cron_threads": 1}, 4 * GiB, cpu_count=2)
    (368140053, 1610612736, 5)
    >>> sizes({"workers": 2, "max_cron_threads": 2}, 512 * MIB)
    (80530636, 1610612736, 0)
    """
    workers = int(opts.get("workers") or 0)
    if workers > 0 and cpu_count:
        workers = min(workers, recommended_workers(cpu_count))
    if workers > 0:
        while workers > 0 and not _fits(ram_bytes, processes(dict(opts, workers=workers)), gap):
            workers -= 1
    count = processes(dict(opts, workers=max(workers, 1))) if opts.get("workers") else 1
    soft = int(RAM_SHARE * ram_bytes / count + gap)
    hard = _hard_for(soft)
    if hard == REPORT_FLOOR and soft > SOFT_SHARE * hard:
        soft = int(SOFT_SHARE * hard)
    return soft, hard, workers


def _fits(ram_bytes, count, gap):
    soft = RAM_SHARE * ram_bytes / count
    hard = _hard_for(soft + gap) - gap
    return soft >= MIN_WORKER_RSS and (count - 1) * soft + hard <= ram_bytes


def _check_ram(opts, host, gaps):
    ram_bytes = host.ram
    count = processes(opts)
    workers = int(opts["workers"] or 0)
    cron = int(opts["max_cron_threads"] or 0)
    soft, hard = limits.memory_limits(opts, "http")
    gap = _worker_gap(gaps)
    soft_advice, hard_advice, fitting = sizes(opts, ram_bytes, gap, host.cpus)
    pair = (
        f"limit_memory_soft = {soft_advice} ({human_size(soft_advice)}) and limit_memory_hard = {hard_advice}"
        f" ({human_size(hard_advice)})"
    )
    shown = f"{workers} HTTP + {cron} cron workers and the gevent process" if workers > 0 else "threaded"
    advised_count = processes(dict(opts, workers=max(fitting, 1))) if workers > 0 else 1
    why = (
        f"about {int(RAM_SHARE * 100)} % of {host.ram_text} shared by {advised_count} process(es)"
        + (f", plus the {human_size(gap)} by which the virtual size Odoo compares exceeds RSS" if gap else "")
        + f"; the hard limit 25 % above the soft one and never below {human_size(REPORT_FLOOR)} (PDF reports)"
    )
    advice = f"Set {pair}: {why}."
    if workers > 0 and fitting == 0:
        needed = _ram_needed(opts, gap)
        advice = (
            f"Even one HTTP worker, {cron} cron worker(s) and the gevent process cannot each get the"
            f" {human_size(REPORT_FLOOR)} of address space a PDF report needs (and a working soft limit)"
            f" within {host.ram_text}: give the server at least {human_size(needed)} of memory."
        )
    elif workers > 0 and fitting != workers:
        advice = f"Set workers = {fitting} with {pair}: {why}."
        if fitting < min(workers, recommended_workers(host.cpus)):
            advice += (
                f" More workers need more memory: each one takes its share, and the hard limit cannot go"
                f" below {human_size(REPORT_FLOOR)}."
            )
    found = []
    if not hard:
        found.append(
            Finding(
                WARNING,
                "no_hard",
                "limit_memory_hard = 0: nothing stops a runaway process before the OOM killer",
                advice,
            )
        )
        return found
    steady = _steady_rss(opts, gaps)
    runaway = steady - max(soft - gap, 0) + max(hard - gap, 0)
    if steady > ram_bytes:
        found.append(
            Finding(
                CRITICAL,
                "limits_vs_ram",
                f"{count} processes ({shown}) at their soft limit need {human_size(steady)}, more than"
                f" {host.ram_text}",
                "Odoo recycles a worker only past its soft limit: before that, the kernel's OOM killer (which"
                " may pick PostgreSQL) strikes. " + advice,
            )
        )
    elif runaway > ram_bytes:
        found.append(
            Finding(
                WARNING,
                "limits_vs_ram",
                f"one process at its hard limit ({human_size(hard)}) while the others sit at their soft"
                f" limit needs {human_size(runaway)}, more than {host.ram_text}",
                "The OOM killer would strike before Odoo's hard limit does. " + advice,
            )
        )
    elif soft > 1.1 * soft_advice and count >= advised_count:
        found.append(
            Finding(
                WARNING,
                "limits_vs_ram",
                f"limit_memory_soft ({human_size(soft)}) leaves little memory for PostgreSQL and the page"
                " cache",
                f"{count} processes ({shown}) at that limit would hold {human_size(steady)} of"
                f" {host.ram_text}. " + advice,
            )
        )
    return found


def _ram_needed(opts, gap):
    """The memory with which one HTTP worker (and the cron workers, the gevent process) fit the floor."""
    count = processes(dict(opts, workers=1))
    # soft = 0.6 x ram / count >= MIN_WORKER_RSS, and (count - 1) x soft + (floor - gap) <= ram
    by_soft = MIN_WORKER_RSS * count / RAM_SHARE
    by_floor = (REPORT_FLOOR - gap) / (1 - RAM_SHARE * (count - 1) / count)
    return int(max(by_soft, by_floor)) + MIB


def _steady_rss(opts, gaps):
    """RSS of the processes that share the memory, each at its soft limit (the gevent one at its own)."""
    workers = int(opts["workers"] or 0)
    soft = limits.memory_limits(opts, "http")[0]
    gap = _worker_gap(gaps)
    if workers <= 0:
        return max(soft - gap, 0)
    gevent_soft = limits.memory_limits(opts, "gevent")[0]
    gevent_gap = max(gaps["gevent"][2], 0) if "gevent" in gaps else gap
    return (workers + int(opts["max_cron_threads"] or 0)) * max(soft - gap, 0) + max(
        gevent_soft - gevent_gap, 0
    )


def _worker_gap(gaps):
    """The vms - rss gap of the workers (HTTP, then cron, then any kind), 0 when unknown."""
    for kind in ("http", "cron", "worker", "threaded"):
        if kind in gaps:
            return max(gaps[kind][2], 0)
    return 0


def _check_live(opts, live, gaps):
    found = []
    for kind, (rss, vms, gap) in sorted(gaps.items()):
        soft, _hard = limits.memory_limits(opts, kind)
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
    cron = -1 if cron is None else cron
    threaded = int(opts["workers"] or 0) <= 0
    if real <= 0:
        found.append(
            Finding(
                WARNING,
                "no_time_real",
                "limit_time_real = 0: a stuck request holds its "
                + ("thread" if threaded else "worker")
                + " forever",
                "Set limit_time_real (Odoo's default is 120 s; reports and imports may need more).",
            )
        )
    elif not threaded and cpu > real:
        found.append(
            Finding(
                WARNING,
                "cpu_above_real",
                f"limit_time_cpu ({cpu} s) is above limit_time_real ({real} s)",
                "CPU time never exceeds real time: the real-time limit always fires first, so the CPU limit"
                " does nothing. Keep limit_time_cpu below limit_time_real, e.g. limit_time_cpu ="
                f" {max(real // 2, 1)}.",
            )
        )
    if threaded:
        found += _check_threaded_times(real, cron, int(opts["max_cron_threads"] or 0))
    elif cron == 0:
        found.append(
            Finding(
                INFO,
                "no_time_real_cron",
                "limit_time_real_cron = 0: scheduled actions run without a time limit",
                "A cron that hangs holds its cron worker until it is killed by hand. -1 uses"
                " limit_time_real.",
            )
        )
    found += _check_cron_age(opts)
    return found


def _check_threaded_times(real, cron, cron_threads):
    """Odoo 18/19's threaded server holds request threads to limit_time_real and cron threads to
    limit_time_real_cron when > 0, else to limit_time_real too; a thread past it restarts the server."""
    if real <= 0 and cron <= 0:
        return []
    found = [
        Finding(
            INFO,
            "threaded_time_limits",
            "workers = 0: a thread past its time limit restarts the whole server",
            f"Request threads are held to limit_time_real ({real} s)"
            + (f", cron threads to limit_time_real_cron ({cron} s)" if cron > 0 else "")
            + ": the server restarts when one passes it, every request in flight with it.",
        )
    ]
    if cron_threads and cron <= 0 < real:
        found.append(
            Finding(
                WARNING,
                "threaded_cron_time",
                f"workers = 0 and limit_time_real_cron = {cron}: scheduled actions are held to"
                f" limit_time_real ({real} s)",
                "In the threaded server a cron thread without a limit of its own (limit_time_real_cron <= 0)"
                " gets limit_time_real, unlike a cron worker: a scheduled action longer than that restarts"
                f" the whole server. Set limit_time_real_cron = {max(real * 30, 3600)} (or what your longest"
                " scheduled action needs).",
            )
        )
    return found


def _check_cron_age(opts):
    """19.0's limit_time_worker_cron: cron workers (threads) restarted once they reach that age."""
    age = opts["limit_time_worker_cron"]
    if age is None or int(opts["max_cron_threads"] or 0) <= 0:
        return []  # an Odoo without the option (18.0), or no cron worker
    if age <= 0:
        return [
            Finding(
                INFO,
                "no_cron_worker_age",
                "limit_time_worker_cron = 0: cron workers are never restarted by age",
                "A cron worker gives its memory back only when it passes limit_memory_soft. Odoo 19 can"
                " restart it after a given age (between two jobs, never in the middle of one):"
                " limit_time_worker_cron = 3600 renews it every hour.",
            )
        ]
    return [
        Finding(
            INFO,
            "cron_worker_age",
            f"limit_time_worker_cron = {age} s: cron workers are renewed at that age",
            "They finish their current job first; their memory goes back to the system each time.",
        )
    ]


def _check_connections(opts, postgres):
    """What the processes' connection pools may open against what PostgreSQL accepts."""
    if not postgres or not postgres.get("max_connections"):
        return []
    reserved = int(postgres.get("superuser_reserved_connections") or 0) + int(
        postgres.get("reserved_connections") or 0
    )
    available = int(postgres["max_connections"]) - reserved
    maxconn = int(opts["db_maxconn"] or 64)
    gevent_maxconn = int(opts["db_maxconn_gevent"] or maxconn)
    workers = int(opts["workers"] or 0)
    if workers > 0:
        pooled = workers + int(opts["max_cron_threads"] or 0)
        demand = pooled * maxconn + gevent_maxconn
        least = pooled * WORKER_CONNECTIONS + min(gevent_maxconn, WORKER_CONNECTIONS)
        who = (
            f"({workers} HTTP + {opts['max_cron_threads']} cron workers) x db_maxconn {maxconn}"
            f" + gevent {gevent_maxconn}"
        )
    else:
        pooled, demand, least = 0, maxconn, min(maxconn, WORKER_CONNECTIONS)
        who = f"db_maxconn {maxconn} of the threaded process"
    if demand <= available:
        return []
    slots = (
        f"PostgreSQL's max_connections ({postgres['max_connections']}) minus {reserved} reserved slot(s) ="
        f" {available}"
    )
    fitting = max((available - gevent_maxconn) // pooled, 1) if pooled else available
    advice = (
        f"Set db_maxconn = {fitting}"
        + (
            " (a worker serves one request at a time and rarely holds more than 2 connections)"
            if pooled
            else ""
        )
        + f", or raise max_connections to {demand + reserved} (every connection costs PostgreSQL memory:"
        " a pooler such as PgBouncer helps past a few hundred). This counts this server only: other Odoo"
        " servers and tools on the same PostgreSQL share the same slots."
    )
    level = CRITICAL if least > available else WARNING
    return [
        Finding(
            level,
            "connections",
            f"Odoo may open {demand} connections ({who}), more than {slots}",
            '"remaining connection slots are reserved" (PostgreSQL) or "Connection Pool Is Full" (Odoo)'
            " errors come next. " + advice,
        )
    ]

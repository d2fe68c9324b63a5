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
from dataclasses import dataclass, field

from ..common.say import Say
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
    """One finding: its level, a stable code, what is wrong and what to change (:class:`Say`).

    ``advice`` is said as one paragraph, a sentence per :class:`~core.common.say.Say`;
    ``settings`` holds the ``{option: value}`` the advice sets (the same
    figures, for whoever applies them).
    """

    level: str
    code: str
    title: Say
    advice: tuple = ()
    settings: dict = field(default_factory=dict)


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
                OK, "sound", Say("sound"), (Say("sound", {"cpus": host.cpus_text, "ram": host.ram_text}),)
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
        if self.cpu_source:
            return Say("cpus_source", {"count": f"{self.cpus:g}", "origin": self.cpu_source})
        return Say("cpus", {"count": f"{self.cpus:g}"})

    @property
    def ram_text(self):
        if self.ram_source:
            return Say("ram_source", {"size": human_size(self.ram), "origin": self.ram_source})
        return Say("ram", {"size": human_size(self.ram)})


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
                Say("threaded"),
                (Say("threaded", {"workers": best, "cpus": host.cpus_text}),),
                {"workers": best, "max_cron_threads": 1},
            )
        )
        return found
    if workers > best:
        found.append(
            Finding(
                WARNING,
                "workers_vs_cpu",
                Say("workers_vs_cpu", {"workers": workers, "cpus": host.cpus_text}),
                (Say("workers_vs_cpu", {"workers": best}),),
                {"workers": best},
            )
        )
    if not opts["proxy_mode"]:
        found.append(Finding(WARNING, "proxy_mode", Say("proxy_mode"), (Say("proxy_mode"),)))
    if int(opts["max_cron_threads"] or 0) <= 0:
        found.append(Finding(INFO, "no_cron", Say("no_cron"), (Say("no_cron"),), {"max_cron_threads": 1}))
    return found


def _check_soft_hard(opts):
    found = []
    pairs = [("", limits.memory_limits(opts, "http"))]
    if opts["limit_memory_soft_gevent"] or opts["limit_memory_hard_gevent"]:
        pairs.append(("_gevent", limits.memory_limits(opts, "gevent")))
    for suffix, (soft, hard) in pairs:
        keep = Say(
            "keep_hard", {"suffix": suffix, "hard": _hard_for(soft), "hard_size": human_size(_hard_for(soft))}
        )
        settings = {"limit_memory_hard" + suffix: _hard_for(soft)}
        sizes = {"suffix": suffix, "hard": human_size(hard), "soft": human_size(soft)}
        if not soft:
            found.append(
                Finding(
                    WARNING,
                    "no_soft" + suffix,
                    Say("no_soft", {"suffix": suffix}),
                    (Say("no_soft", {"suffix": suffix}),),
                )
            )
        elif hard and hard <= soft:
            found.append(
                Finding(
                    CRITICAL,
                    "hard_not_above_soft" + suffix,
                    Say("hard_not_above_soft", sizes),
                    (Say("hard_not_above_soft"), keep),
                    settings,
                )
            )
        elif hard and hard < MIN_HARD_RATIO * soft:
            room = human_size(hard - soft)
            found.append(
                Finding(
                    WARNING,
                    "hard_close_to_soft" + suffix,
                    Say("hard_close_to_soft", {**sizes, "room": room}),
                    (Say("hard_close_to_soft", {"room": room}), keep),
                    settings,
                )
            )
        if hard and hard < REPORT_FLOOR:
            found.append(_report_floor_finding(suffix, hard))
    return found


def _hard_for(soft):
    """The hard limit that goes with ``soft``: 25 % above it, never below :data:`REPORT_FLOOR`."""
    return int(max(soft / SOFT_SHARE, REPORT_FLOOR))


def _report_floor_finding(suffix, hard):
    floor = human_size(REPORT_FLOOR)
    return Finding(
        WARNING,
        "hard_below_report_floor" + suffix,
        Say("hard_below_report_floor", {"suffix": suffix, "hard": human_size(hard), "floor": floor}),
        (Say("hard_below_report_floor", {"suffix": suffix, "floor": floor, "floor_bytes": REPORT_FLOOR}),),
        {"limit_memory_hard" + suffix: REPORT_FLOOR},
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
    if workers > 0:
        shown = Say("prefork_processes", {"workers": workers, "cron": cron})
    else:
        shown = Say("threaded_process")
    advised_count = processes(dict(opts, workers=max(fitting, 1))) if workers > 0 else 1
    floor = human_size(REPORT_FLOOR)
    set_limits = Say(
        "set_limits",
        {
            "soft": soft_advice,
            "soft_size": human_size(soft_advice),
            "hard": hard_advice,
            "hard_size": human_size(hard_advice),
            "share": int(RAM_SHARE * 100),
            "ram": host.ram_text,
            "count": advised_count,
            "floor": floor,
        },
    )
    advice = (set_limits,) + ((Say("limits_gap", {"gap": human_size(gap)}),) if gap else ())
    settings = {"limit_memory_soft": soft_advice, "limit_memory_hard": hard_advice}
    if workers > 0 and fitting == 0:
        needed = _ram_needed(opts, gap)
        advice = (
            Say(
                "more_memory",
                {"cron": cron, "floor": floor, "ram": host.ram_text, "needed": human_size(needed)},
            ),
        )
        settings = {}
    elif workers > 0 and fitting != workers:
        advice = (Say("set_workers", {"workers": fitting}), *advice)
        settings["workers"] = fitting
        if fitting < min(workers, recommended_workers(host.cpus)):
            advice += (Say("more_workers_more_memory", {"floor": floor}),)
    found = []
    if not hard:
        found.append(Finding(WARNING, "no_hard", Say("no_hard"), advice, settings))
        return found
    steady = _steady_rss(opts, gaps)
    runaway = steady - max(soft - gap, 0) + max(hard - gap, 0)
    held = {"count": count, "processes": shown, "steady": human_size(steady), "ram": host.ram_text}
    if steady > ram_bytes:
        found.append(
            Finding(
                CRITICAL,
                "limits_vs_ram",
                Say("limits_vs_ram_steady", held),
                (Say("limits_vs_ram_steady"), *advice),
                settings,
            )
        )
    elif runaway > ram_bytes:
        found.append(
            Finding(
                WARNING,
                "limits_vs_ram",
                Say(
                    "limits_vs_ram_runaway",
                    {"hard": human_size(hard), "runaway": human_size(runaway), "ram": host.ram_text},
                ),
                (Say("limits_vs_ram_runaway"), *advice),
                settings,
            )
        )
    elif soft > 1.1 * soft_advice and count >= advised_count:
        found.append(
            Finding(
                WARNING,
                "limits_vs_ram",
                Say("limits_vs_ram_soft", {"soft": human_size(soft)}),
                (Say("limits_vs_ram_soft", held), *advice),
                settings,
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
        if soft and kind != "master":
            advice = Say("gap_at_soft", {"soft": human_size(soft), "rss_at_soft": human_size(soft - gap)})
        else:
            advice = Say("gap")
        figures = {"kind": kind, "vms": human_size(vms), "rss": human_size(rss), "gap": human_size(gap)}
        found.append(Finding(INFO, f"gap_{kind}", Say("gap", figures), (advice,)))
        biggest = max((v for _r, v in live.get(kind, ()) if v), default=0)
        if soft and kind != "master" and biggest > soft:
            found.append(
                Finding(
                    WARNING,
                    f"above_soft_{kind}",
                    Say("above_soft", {"kind": kind, "size": human_size(biggest), "soft": human_size(soft)}),
                    (
                        Say(
                            "above_soft",
                            {"suffix": "_gevent" if kind == "gevent" else "", "least": human_size(1.5 * vms)},
                        ),
                    ),
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
                Say("no_time_real_thread" if threaded else "no_time_real_worker"),
                (Say("no_time_real"),),
            )
        )
    elif not threaded and cpu > real:
        found.append(
            Finding(
                WARNING,
                "cpu_above_real",
                Say("cpu_above_real", {"cpu": cpu, "real": real}),
                (Say("cpu_above_real", {"cpu": max(real // 2, 1)}),),
                {"limit_time_cpu": max(real // 2, 1)},
            )
        )
    if threaded:
        found += _check_threaded_times(real, cron, int(opts["max_cron_threads"] or 0))
    elif cron == 0:
        found.append(
            Finding(INFO, "no_time_real_cron", Say("no_time_real_cron"), (Say("no_time_real_cron"),))
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
            Say("threaded_time_limits"),
            (
                Say("threaded_time_limits_cron", {"real": real, "cron": cron})
                if cron > 0
                else Say("threaded_time_limits", {"real": real}),
            ),
        )
    ]
    if cron_threads and cron <= 0 < real:
        found.append(
            Finding(
                WARNING,
                "threaded_cron_time",
                Say("threaded_cron_time", {"cron": cron, "real": real}),
                (Say("threaded_cron_time", {"cron": max(real * 30, 3600)}),),
                {"limit_time_real_cron": max(real * 30, 3600)},
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
                Say("no_cron_worker_age"),
                (Say("no_cron_worker_age", {"age": 3600}),),
                {"limit_time_worker_cron": 3600},
            )
        ]
    return [Finding(INFO, "cron_worker_age", Say("cron_worker_age", {"age": age}), (Say("cron_worker_age"),))]


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
        who = Say(
            "pools_prefork",
            {
                "workers": workers,
                "cron": opts["max_cron_threads"],
                "maxconn": maxconn,
                "gevent": gevent_maxconn,
            },
        )
    else:
        pooled, demand, least = 0, maxconn, min(maxconn, WORKER_CONNECTIONS)
        who = Say("pools_threaded", {"maxconn": maxconn})
    if demand <= available:
        return []
    fitting = max((available - gevent_maxconn) // pooled, 1) if pooled else available
    figures = {"maxconn": fitting, "max_connections": demand + reserved}
    level = CRITICAL if least > available else WARNING
    title = {
        "demand": demand,
        "pools": who,
        "max_connections": postgres["max_connections"],
        "reserved": reserved,
        "available": available,
    }
    return [
        Finding(
            level,
            "connections",
            Say("connections", title),
            (Say("connections"), Say("connections_pooled" if pooled else "connections_threaded", figures)),
            {"db_maxconn": fitting},
        )
    ]

"""Benchmark of the cron-leak profiler (issue 11): what accounting and tracing a run cost.

A realistic scheduled action (``test.memory.batch.record._cron_bench_realistic``
of the test addon: it creates 5 000 records of a ``mail.thread`` model with
tracked fields, reads them back and writes each one) is run through Odoo's own
job machinery (``ir.cron._process_job``, real cursors, commits), in five ways:

- no addon: memory_hygiene's hooks on ``ir.cron`` and ``ir.actions.server``
  bypassed (patched to call straight through): the run as without the addon;
- default settings: every run accounted (the cron is not suspect: its runs are
  emptied before each run, so no automatic trace happens);
- traced with 1 frame, and with 10 frames (``memory_profile`` on);
- bare tracemalloc: no addon, inside a bare ``tracemalloc.start(1)`` /
  ``stop()``: the floor under any tracemalloc profiler.

Modes are interleaved, after one warm-up run; each runs ``--repeat`` times (10
frames ``--repeat-10`` times), then "no addon" and "default settings" alternate
for ``--pairs`` more pairs (ABBA), since their ratio is the one that needs many
runs, and "traced, 1 frame" and "bare tracemalloc" for ``--traced-pairs`` more
pairs. For each mode the table gives the median wall time of the job and the
median CPU time of this process during it (``time.process_time``): on a
machine shared with other work the wall time measures the neighbours too, the
CPU time does not, so the targets on ratios are judged on CPU time (the wall
ratio is printed next to it). A traced run's own parts (roots sized for the
holders, ``gc.collect()``, snapshots, diff) are timed and shown by median.

Then the accounting's own cost: a no-op scheduled action run ``--runs`` times,
with the addon's hooks timed from inside (plan, measure, store and verdict),
the median per run; and in runs of their own, each part of the accounting
timed alone (``/proc`` reads, ``getallocatedblocks``, ``mallinfo2``, the
store: an uncharged run's row kept waiting, or the round trip that writes the
rows waiting with this job's and sends the verdict's query), next to a bare
``SELECT 1`` on the same cursor. Targets: default settings <= 1.02 x no addon; accounting <= 1 ms per
run at the median; traced (1 frame) <= 1.05 x bare tracemalloc.

With ``--processes N``, only no addon and default settings are compared, each
in processes of its own (N of each, ABBA): a process's bypass is applied once,
before its first run, and never undone, so no run follows a change of the
model classes' methods (which makes CPython drop what it caches per class).

Usage, with the series' own Python::

    python benchmarks/bench_profiler.py --odoo /opt/odoo/18.0 --db bench_prof_18 --create \
        [--repeat 3] [--pairs 10]

It commits (it is not a test) and empties ``test.memory.batch.record`` in the
database it is given: use a database of its own. It always exits 0; a missed
target is printed as FAIL.
"""

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

from addons_farm import addons_path  # next to this script: python benchmarks/<script>.py

MODEL = "test.memory.batch.record"
TABLE = "test_memory_batch_record"
TARGET_DEFAULT = 1.02
TARGET_TRACED = 1.05
TARGET_ACCOUNTING_MS = 1.0
NO_ADDON = "no addon"
DEFAULT = "default settings (accounting)"
TRACED_1 = "traced, 1 frame"
TRACED_10 = "traced, 10 frames"
BARE = "bare tracemalloc, 1 frame"
#: (name, frames traced by the addon, addon bypassed, bare tracemalloc)
MODES = (
    (NO_ADDON, None, True, False),
    (DEFAULT, None, False, False),
    (TRACED_1, 1, False, False),
    (TRACED_10, 10, False, False),
    (BARE, None, True, True),
)


def create_database(args, paths):
    """(Re)create ``--db`` with the test addon (and memory_hygiene) installed, no demo data."""
    subprocess.run(["dropdb", "--if-exists", args.db], check=True)
    cmd = [
        sys.executable,
        f"{args.odoo}/odoo-bin",
        f"--addons-path={paths}",
        "-d",
        args.db,
        "-i",
        "test_memory_hygiene",
        "--stop-after-init",
        "--log-level=warn",
        "--http-interface=127.0.0.1",
        f"--http-port={args.http_port}",
    ]
    if args.odoo.rstrip("/").endswith("18.0"):
        cmd.append("--without-demo=all")
    subprocess.run(cmd, check=True)


def bootstrap(args, paths):
    sys.path.insert(0, args.odoo)
    import odoo  # noqa: F401 - the source tree given by --odoo
    from odoo.tools import config

    options = [f"--addons-path={paths}", "-d", args.db, "--log-level=warn", "--http-interface=127.0.0.1"]
    config.parse_config(options, setup_logging=True)
    threading.current_thread().dbname = args.db
    from odoo.modules.registry import Registry

    registry = Registry(args.db)
    from odoo.addons.memory_hygiene.models import ir_cron

    # Measured as a prefork cron worker runs it, where rows of uncharged runs wait for a later
    # job's round trip (a threaded server writes each job's: about 0.4 ms more per run).
    ir_cron.DEFER_ROWS = True
    return registry


def make_cron(registry, count):
    from odoo import api
    from odoo.api import SUPERUSER_ID

    from odoo.addons.memory_hygiene.core.common import params

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["ir.config_parameter"].set_param(params.PROFILE_UNTIL, "")
        return (
            env["ir.cron"]
            .create(
                {
                    "name": "bench_profiler: realistic cron",
                    "model_id": env["ir.model"]._get_id(MODEL),
                    "state": "code",
                    "code": f"model._cron_bench_realistic({count})",
                    "user_id": SUPERUSER_ID,
                    "interval_number": 1,
                    "interval_type": "days",
                }
            )
            .id
        )


def clean(cr, cron_id):
    cr.execute(f"TRUNCATE {TABLE} RESTART IDENTITY")
    cr.execute("DELETE FROM mail_message WHERE model = %s", [MODEL])
    cr.execute("DELETE FROM mail_followers WHERE res_model = %s", [MODEL])
    cr.execute("DELETE FROM memory_cron_run WHERE cron_id = %s", [cron_id])


@contextlib.contextmanager
def addon_bypassed(active):
    """memory_hygiene's run hooks call straight through to Odoo's while active."""
    if not active:
        yield
        return
    from odoo.addons.memory_hygiene.models import ir_actions_server, ir_cron

    cron_cls, action_cls = ir_cron.IrCron, ir_actions_server.IrActionsServer
    saved = {name: cron_cls.__dict__[name] for name in ("_callback", "_update_failure_count")}
    saved_run = action_cls.__dict__["run"]
    cron_cls._callback = lambda self, *args: super(cron_cls, self)._callback(*args)
    cron_cls._update_failure_count = lambda self, *args: super(cron_cls, self)._update_failure_count(*args)
    action_cls.run = lambda self: super(action_cls, self).run()
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(cron_cls, name, method)
        action_cls.run = saved_run


def run(registry, cron_id, frames, count, *, bypass=False, bare=False, parts=None, hooks=None, patch=True):  # noqa: PLR0913
    """One job of the cron: ``(wall, cpu, profile)``; ``frames``: traced (None: accounted only).

    ``cpu``: the CPU time of this process during the job (``time.process_time``): what the job
    cost here, whatever else the machine runs (PostgreSQL's own work is not in it).

    ``bypass``: the addon's hooks bypassed (by this call unless ``patch`` is false: bypassed
    already, for the whole process); ``bare``: tracemalloc (1 frame) around the job;
    ``parts``: a dict given the seconds of each of :data:`TRACE_PARTS` (traced runs);
    ``hooks``: a one-item list given the seconds spent in the addon's accounting hooks.
    """
    from odoo import api
    from odoo.api import SUPERUSER_ID

    from odoo.addons.memory_hygiene.core.common import params
    from odoo.addons.memory_hygiene.tests import harness

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        clean(cr, cron_id)
        env["ir.config_parameter"].set_param(params.PROFILE_FRAMES, str(frames or 1))
        env["ir.cron"].browse(cron_id).write({"memory_profile": bool(frames), "memory_profile_every": 1})
    timed = trace_parts_timed(parts) if parts is not None else contextlib.nullcontext()
    hooked = hooks_timed(hooks) if hooks is not None else contextlib.nullcontext()
    with registry.cursor() as cron_cr, addon_bypassed(bypass and patch), timed, hooked:
        started, started_cpu = time.perf_counter(), time.process_time()
        if bare:
            tracemalloc.start(1)
        try:
            if not harness.run_cron_job_now(registry, cron_cr, cron_id):
                raise RuntimeError("the benchmark cron could not be acquired")
            cron_cr.commit()
        finally:
            if bare:
                tracemalloc.stop()
        wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    with registry.cursor() as cr:
        cr.execute(f"SELECT count(*) FROM {TABLE} WHERE state = 'done'")
        done = cr.fetchone()[0]
        cr.execute(
            "SELECT traced_peak_mb, traced_growth_mb, top_site, trace, growth_mb FROM memory_cron_run"
            " WHERE cron_id = %s",
            [cron_id],
        )
        profile = cr.fetchone()
    if done != count:
        raise RuntimeError(f"the cron wrote {done} records instead of {count}")
    if bypass == bool(profile) or (profile and (profile[3] != "no") != bool(frames)):
        raise RuntimeError(f"run {profile!r} for frames={frames}, bypass={bypass}")
    return wall, cpu, profile


#: The addon's methods timed from inside for the accounting's own cost.
TIMED = ("_memory_run_plan", "_memory_run_measure", "_memory_after_job")


@contextlib.contextmanager
def hooks_timed(spent, heap_read=None):
    """Add the seconds spent in the addon's accounting methods to ``spent[0]``.

    ``heap_read``: a list whose first item is set True when a reading of the run read the C heap
    (the run was charged).
    """
    from odoo.addons.memory_hygiene.models import ir_cron

    cls = ir_cron.IrCron
    saved = {name: cls.__dict__[name] for name in TIMED}
    saved_read = ir_cron.accounting.read

    depth = [0]  # a reading inside a timed method is already counted

    def timed(method):
        def wrapper(self, *args, **kwargs):
            depth[0] += 1
            started = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                depth[0] -= 1
                if not depth[0]:
                    spent[0] += time.perf_counter() - started

        return wrapper

    for name, method in saved.items():
        setattr(cls, name, timed(method))

    # The reading before the run is taken outside those methods.
    def read(heap=True):
        if heap and heap_read is not None:
            heap_read[0] = True
        return timed(lambda _self: saved_read(heap=heap))(None)

    ir_cron.accounting.read = read
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(cls, name, method)
        ir_cron.accounting.read = saved_read


#: The accounting's parts, timed one by one: label, where the callable lives, its name.
PARTS = (
    ("plan (settings, job row)", "cron", "_memory_run_plan"),
    ("/proc statm (RSS, VMS)", "accounting", "memory"),
    ("fd count", "accounting", "fd_count"),
    ("getallocatedblocks", "sys", "getallocatedblocks"),
    ("mallinfo2", "accounting", "heap_in_use"),
    ("record cache size", "odoo_runtime", "record_cache_size"),
    ("cache release (18.0)", "compat", "release_run_cache"),
    ("store: rows kept waiting, or one round trip", "cron", "_memory_store_or_defer"),
)
#: For reference next to the parts: one bare round trip to PostgreSQL on the job's cursor.
ROUND_TRIP = "for reference: SELECT 1 on the job's cursor"


def _timed_call(func, parts, label):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            parts[label] = parts.get(label, 0.0) + time.perf_counter() - started

    return wrapper


@contextlib.contextmanager
def parts_timed(parts):
    """Add the seconds spent in each of :data:`PARTS` to ``parts[label]``."""
    from odoo.addons.memory_hygiene import compat, odoo_runtime
    from odoo.addons.memory_hygiene.models import ir_cron

    owners = {
        "cron": ir_cron.IrCron,
        "sys": sys,
        "accounting": ir_cron.accounting,
        "compat": compat,
        "odoo_runtime": odoo_runtime,
    }
    saved = []
    for label, where, name in PARTS:
        owner = owners[where]
        original = getattr(owner, name)
        saved.append((owner, name, original))
        setattr(owner, name, _timed_call(original, parts, label))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


#: The parts of a traced run that a bare tracemalloc run does not have.
TRACE_PARTS = (
    "start (roots sized, lease, first snapshot)",
    "gc.collect() after the run",
    "snapshots",
    "diff (filter, compare_to)",
    "holders (roots sized again, referrers)",
    "stop, total",
)


@contextlib.contextmanager
def trace_parts_timed(parts):
    """Add the seconds spent in each of :data:`TRACE_PARTS` to ``parts[label]``."""
    from odoo.addons.memory_hygiene.core.profiler import leakprof

    start, stop, diff = TRACE_PARTS[0], TRACE_PARTS[-1], TRACE_PARTS[3]
    cls, snapshot_cls = leakprof.ProfileSession, tracemalloc.Snapshot
    saved = [
        (cls, "start", cls.start),
        (cls, "stop", cls.stop),
        (cls, "_find_holders", cls._find_holders),
        (tracemalloc, "take_snapshot", tracemalloc.take_snapshot),
        (snapshot_cls, "compare_to", snapshot_cls.compare_to),
        (snapshot_cls, "filter_traces", snapshot_cls.filter_traces),
    ]
    defaults = cls.__init__.__kwdefaults__
    saved_collect = defaults["collect"]
    cls.start = _timed_call(cls.start, parts, start)
    cls.stop = _timed_call(cls.stop, parts, stop)
    cls._find_holders = _timed_call(cls._find_holders, parts, TRACE_PARTS[4])
    tracemalloc.take_snapshot = _timed_call(tracemalloc.take_snapshot, parts, TRACE_PARTS[2])
    snapshot_cls.compare_to = _timed_call(snapshot_cls.compare_to, parts, diff)
    snapshot_cls.filter_traces = _timed_call(snapshot_cls.filter_traces, parts, diff)
    defaults["collect"] = _timed_call(saved_collect, parts, TRACE_PARTS[1])
    try:
        yield
    finally:
        defaults["collect"] = saved_collect
        for owner, name, original in saved:
            setattr(owner, name, original)


def print_trace_parts(trace_parts):
    """The median seconds of each part of a traced run, by number of frames."""
    print(
        "| part of a traced run (not in a bare one) | "
        + " | ".join(f"{n}, median (s)" for n in trace_parts)
        + " |"
    )
    print("|---|" + "---:|" * len(trace_parts))
    for label in TRACE_PARTS:
        cells = " | ".join(
            f"{statistics.median(runs.get(label) or [0.0]):.3f}" for runs in trace_parts.values()
        )
        print(f"| {label} | {cells} |")


def accounting_cost(registry, runs, breakdown=None):
    """Seconds per run spent in the accounting, and median wall with and without the addon.

    Returns ``{"median", "mean", "charged", "uncharged", "charged_runs", "runs", "wall_bypassed",
    "wall_accounted"}``: the median and the mean over every run, the medians of the charged runs
    (the C heap read) and of the others, how many were charged.

    ``breakdown``: a dict filled with ``{part: [seconds per run]}`` (:data:`PARTS`), from runs of
    their own (the timers of the parts would count in the total otherwise).
    """
    from odoo import api
    from odoo.api import SUPERUSER_ID

    from odoo.addons.memory_hygiene.tests import harness

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        cron_id = (
            env["ir.cron"]
            .create(
                {
                    "name": "bench_profiler: no-op cron",
                    "model_id": env["ir.model"]._get_id(MODEL),
                    "state": "code",
                    "code": "model.browse()",
                    "user_id": SUPERUSER_ID,
                    "interval_number": 1,
                    "interval_type": "days",
                }
            )
            .id
        )
    spent_per_run, walls = [], {True: [], False: []}
    heap_per_run = []
    try:
        if breakdown is not None:
            for index in range(runs + 1):
                parts = {}
                with registry.cursor() as cron_cr, parts_timed(parts):
                    if not harness.run_cron_job_now(registry, cron_cr, cron_id):
                        raise RuntimeError("the no-op cron could not be acquired")
                    cron_cr.commit()
                    started = time.perf_counter()
                    cron_cr.execute("SELECT 1")
                    parts[ROUND_TRIP] = time.perf_counter() - started
                if index:
                    for label in [label for label, _where, _name in PARTS] + [ROUND_TRIP]:
                        breakdown.setdefault(label, []).append(parts.get(label, 0.0))
        for index in range(2 * runs + 2):
            bypass = bool(index % 2)
            spent, heap_read = [0.0], [False]
            with registry.cursor() as cron_cr, addon_bypassed(bypass), hooks_timed(spent, heap_read):
                started = time.perf_counter()
                if not harness.run_cron_job_now(registry, cron_cr, cron_id):
                    raise RuntimeError("the no-op cron could not be acquired")
                cron_cr.commit()
                wall = time.perf_counter() - started
            if index < 2:
                continue  # warm-up
            walls[bypass].append(wall)
            if not bypass:
                spent_per_run.append(spent[0])
                heap_per_run.append(heap_read[0])
    finally:
        with registry.cursor() as cr:
            cron = api.Environment(cr, SUPERUSER_ID, {})["ir.cron"].browse(cron_id)
            action = cron.ir_actions_server_id
            cron.unlink()
            action.unlink()
    charged = [spent for spent, heap in zip(spent_per_run, heap_per_run, strict=True) if heap]
    uncharged = [spent for spent, heap in zip(spent_per_run, heap_per_run, strict=True) if not heap]
    return {
        "median": statistics.median(spent_per_run),
        "mean": statistics.fmean(spent_per_run),
        "charged": statistics.median(charged) if charged else 0.0,
        "uncharged": statistics.median(uncharged) if uncharged else 0.0,
        "charged_runs": len(charged),
        "runs": len(spent_per_run),
        "wall_bypassed": statistics.median(walls[True]),
        "wall_accounted": statistics.median(walls[False]),
    }


def print_accounting(cost):
    """The accounting's cost per run: median, mean, charged and uncharged runs."""
    print(
        f"Python {sys.version.split()[0]}: accounting {cost['median'] * 1000:.2f} ms per run in the "
        f"addon's hooks (median of {cost['runs']}; mean {cost['mean'] * 1000:.2f} ms); "
        f"{cost['charged_runs']} runs charged (C heap read): median {cost['charged'] * 1000:.2f} ms, "
        f"the others {cost['uncharged'] * 1000:.2f} ms; job {cost['wall_accounted'] * 1000:.1f} ms "
        f"with the hooks, {cost['wall_bypassed'] * 1000:.1f} ms without."
    )


def print_breakdown(breakdown):
    """The median microseconds per run of each part of the accounting."""
    print("| part of the accounting | median per run (us) | mean (us) | 90th percentile (us) |")
    print("|---|---:|---:|---:|")
    for label in [label for label, _where, _name in PARTS] + [ROUND_TRIP]:
        values = sorted(breakdown.get(label) or [0.0])
        ninetieth = values[min(len(values) - 1, int(0.9 * len(values)))]
        print(
            f"| {label} | {statistics.median(values) * 1e6:.0f} | {statistics.fmean(values) * 1e6:.0f} "
            f"| {ninetieth * 1e6:.0f} |"
        )


def print_table(walls, cpus, profiles, accounting, args, hook_shares):  # noqa: PLR0913
    """The table of the modes, the accounting's cost, and the targets (judged on CPU time)."""
    import odoo.release

    def median(figures, name):
        return statistics.median(figures[name])

    print()
    print(
        f"Odoo {odoo.release.series}, Python {sys.version.split()[0]}: a cron creating, reading and "
        f"writing {args.count} tracked records, through ir.cron._process_job; medians. CPU: this "
        "process's CPU time during the job (time.process_time), the figure the targets are judged on."
    )
    print()
    print(
        "| mode | runs | median wall (s) | wall ratio | median CPU (s) | CPU ratio "
        "| traced peak (MiB) | traced growth (MiB) | top site |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, *_rest in MODES:
        if not walls[name]:
            continue
        wall, cpu = median(walls, name), median(cpus, name)
        profile = profiles.get(name)
        peak, growth, site = (
            (f"{profile[0]:.1f}", f"{profile[1]:+.2f}", Path(profile[2] or "-").name)
            if profile and profile[3] == "traced"
            else ("-",) * 3
        )
        print(
            f"| {name} | {len(walls[name])} | {wall:.2f} | {wall / median(walls, NO_ADDON):.3f} | {cpu:.2f} "
            f"| {cpu / median(cpus, NO_ADDON):.3f} | {peak} | {growth} | {site} |"
        )
    spent = accounting["median"]
    if hook_shares:
        print()
        print(
            f"Default settings, measured from inside: the addon's accounting hooks took "
            f"{statistics.median(s for s, _r in hook_shares) * 1000:.1f} ms per run at the median, "
            f"{statistics.median(r for _s, r in hook_shares) * 100:.2f} % of the run's CPU time "
            f"(max {max(r for _s, r in hook_shares) * 100:.2f} %; {len(hook_shares)} runs): what the "
            "ratio above measures through the noise of run-to-run variation."
        )
    print()
    print(f"Accounting alone, a no-op cron run {args.runs} times:")
    print_accounting(accounting)
    print()
    checks = (
        ("default settings", DEFAULT, NO_ADDON, TARGET_DEFAULT, "no addon"),
        ("traced, 1 frame", TRACED_1, BARE, TARGET_TRACED, "bare tracemalloc"),
    )
    for label, name, base, target, unit in checks:
        if not cpus[name] or not cpus[base]:
            continue  # a mode left out (--repeat 0, --traced-pairs 0)
        ratio = median(cpus, name) / median(cpus, base)
        verdict = "PASS" if ratio <= target else "FAIL"
        print(
            f"{verdict}: {label} {ratio:.3f} x {unit} in CPU time (target <= {target}; wall "
            f"{median(walls, name) / median(walls, base):.3f} x)."
        )
    verdict = "PASS" if spent * 1000 <= TARGET_ACCOUNTING_MS else "FAIL"
    print(f"{verdict}: accounting {spent * 1000:.3f} ms per run (target <= {TARGET_ACCOUNTING_MS}).")


def run_modes(registry, cron_id, args):
    """Every mode, interleaved, then more pairs of no addon / default.

    Returns ``(walls, cpus, profiles, trace_parts, hook_shares)``: the first four by mode;
    ``hook_shares``: per default-settings run, ``(seconds in the addon's accounting hooks, that
    over the run's CPU time)``.
    """
    run(registry, cron_id, None, args.count)  # warm-up: imports, caches, the first tracked create
    walls = {name: [] for name, *_rest in MODES}
    cpus = {name: [] for name, *_rest in MODES}
    profiles, trace_parts = {}, {}
    hook_shares = []

    def one(mode):
        name, frames, bypass, bare = mode
        parts = {} if frames else None
        hooks = [0.0] if name == DEFAULT else None
        wall, cpu, profiles[name] = run(
            registry, cron_id, frames, args.count, bypass=bypass, bare=bare, parts=parts, hooks=hooks
        )
        walls[name].append(wall)
        cpus[name].append(cpu)
        if hooks is not None:
            hook_shares.append((hooks[0], hooks[0] / cpu))
        for label, seconds in (parts or {}).items():
            trace_parts.setdefault(name, {}).setdefault(label, []).append(seconds)

    for round_ in range(args.repeat):
        for mode in MODES:
            if mode[1] != 10 or round_ < args.repeat_10:
                one(mode)
    # No addon / default settings alternated (ABBA: a drift of the machine's load hits both).
    for pair in range(args.pairs):
        for mode in (MODES[0], MODES[1]) if pair % 2 else (MODES[1], MODES[0]):
            one(mode)
    # Traced / bare tracemalloc, the same way: one run of each is 15 to 60 s, long enough to drift.
    traced, bare = MODES[2], MODES[4]
    for pair in range(args.traced_pairs):
        for mode in (traced, bare) if pair % 2 else (bare, traced):
            one(mode)
    return walls, cpus, profiles, trace_parts, hook_shares


#: ``--processes``: the two modes compared, each in processes of its own.
PROCESS_MODES = {"no-addon": MODES[0], "default": MODES[1]}


def run_process(registry, cron_id, args):
    """``--child``: this process runs one mode only; its bypass, if any, is applied once for all runs.

    Prints one JSON line: ``{"mode", "wall": [s, ...], "cpu": [s, ...], "hooks": [s, ...]}``
    (after ``--warmup`` runs left out). No method of the model classes is replaced between two
    runs, so nothing that CPython caches per class (type versions, specialised attribute look-ups)
    is invalidated by the benchmark itself.
    """
    name, frames, bypass, bare = PROCESS_MODES[args.child]
    figures = {"mode": name, "wall": [], "cpu": [], "hooks": []}
    spent = [0.0]  # the default runs' hooks, timed by wrappers set once for the whole process
    with addon_bypassed(bypass), contextlib.nullcontext() if bypass else hooks_timed(spent):
        for index in range(args.warmup + args.runs_per_process):
            before = spent[0]
            wall, cpu, _profile = run(
                registry, cron_id, frames, args.count, bypass=bypass, bare=bare, patch=False
            )
            if index >= args.warmup:
                figures["wall"].append(wall)
                figures["cpu"].append(cpu)
                if not bypass:
                    figures["hooks"].append(spent[0] - before)
    print(json.dumps(figures), flush=True)


def compare_processes(args, argv):
    """``--processes N``: N pairs of processes, no addon and default settings, in ABBA order."""
    own = [arg for arg in (argv if argv is not None else sys.argv[1:]) if arg != "--create"]
    runs = {name: {"wall": [], "cpu": [], "hooks": [], "medians": []} for name, *_rest in MODES[:2]}
    for pair in range(args.processes):
        for child in ("default", "no-addon") if pair % 2 else ("no-addon", "default"):
            done = subprocess.run(
                [sys.executable, __file__, *own, "--child", child],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            mine = runs[figures["mode"]]
            for key in ("wall", "cpu", "hooks"):
                mine[key] += figures[key]
            mine["medians"].append(statistics.median(figures["cpu"]))
    import odoo.release  # noqa: PLC0415 - the source tree given by --odoo

    print()
    print(
        f"Odoo {odoo.release.series}, Python {sys.version.split()[0]}: no addon and default settings, "
        f"each in processes of its own ({args.processes} each, in ABBA order; {args.warmup} warm-up "
        f"run then {args.runs_per_process} runs per process); a cron creating, reading and writing "
        f"{args.count} tracked records. CPU: the process's CPU time during the job."
    )
    print()
    print(
        "| mode | processes | runs | median wall (s) | median CPU (s) | CPU ratio "
        "| per-process medians, CPU (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    base = statistics.median(runs[NO_ADDON]["cpu"])
    for name, mine in runs.items():
        cpu = statistics.median(mine["cpu"])
        print(
            f"| {name} | {len(mine['medians'])} | {len(mine['cpu'])} | {statistics.median(mine['wall']):.2f} "
            f"| {cpu:.2f} | {cpu / base:.3f} | {' '.join(f'{m:.2f}' for m in mine['medians'])} |"
        )
    hooks = runs[DEFAULT]["hooks"]
    print()
    print(
        f"The addon's accounting hooks, measured inside the default runs: "
        f"{statistics.median(hooks) * 1000:.1f} ms per run at the median."
    )
    ratio = statistics.median(runs[DEFAULT]["cpu"]) / base
    verdict = "PASS" if ratio <= TARGET_DEFAULT else "FAIL"
    print(f"{verdict}: default settings {ratio:.3f} x no addon in CPU time (target <= {TARGET_DEFAULT}).")
    return 0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--odoo", required=True, help="Odoo source tree (/opt/odoo/18.0)")
    parser.add_argument("--db", required=True, help="a database of its own")
    parser.add_argument("--create", action="store_true", help="(re)create the database first")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repeat-10", type=int, default=1, help="runs with 10 frames (slow)")
    parser.add_argument(
        "--pairs", type=int, default=10, help="more runs of no addon / default settings, alternated"
    )
    parser.add_argument(
        "--traced-pairs", type=int, default=2, help="more runs of traced (1 frame) / bare, alternated"
    )
    parser.add_argument("--runs", type=int, default=100, help="runs of the no-op cron (accounting cost)")
    parser.add_argument("--accounting-only", action="store_true", help="only the accounting's own cost")
    parser.add_argument("--count", type=int, default=5000, help="records the cron creates")
    parser.add_argument("--http-port", type=int, default=18290, help="for --create's odoo-bin only")
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="instead of the modes in one process: this many pairs of processes, no addon / default",
    )
    parser.add_argument("--runs-per-process", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="runs left out at a process's start")
    parser.add_argument("--child", choices=sorted(PROCESS_MODES), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    with addons_path(args.odoo) as paths:
        if args.create:
            create_database(args, paths)
        if args.processes and not args.child:
            sys.path.insert(0, args.odoo)
            return compare_processes(args, argv)
        registry = bootstrap(args, paths)
        cron_id = make_cron(registry, args.count)
        try:
            if args.child:
                run_process(registry, cron_id, args)
                return 0
            if args.accounting_only:
                breakdown = {}
                cost = accounting_cost(registry, args.runs, breakdown)
                print_breakdown(breakdown)
                print()
                print_accounting(cost)
                return 0
            walls, cpus, profiles, trace_parts, hook_shares = run_modes(registry, cron_id, args)
            breakdown = {}
            accounting = accounting_cost(registry, args.runs, breakdown)
        finally:
            from odoo import api
            from odoo.api import SUPERUSER_ID

            with registry.cursor() as cr:
                clean(cr, cron_id)
                cron = api.Environment(cr, SUPERUSER_ID, {})["ir.cron"].browse(cron_id)
                action = cron.ir_actions_server_id
                cron.unlink()
                action.unlink()
        print_table(walls, cpus, profiles, accounting, args, hook_shares)
        print()
        print_breakdown(breakdown)
        print()
        print_trace_parts(trace_parts)
    return 0


if __name__ == "__main__":
    sys.exit(main())

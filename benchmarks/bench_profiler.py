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

Modes are interleaved, after one warm-up run; each runs ``--repeat`` times and
the table shows the median wall time of the job and its ratio to "no addon".
Then the accounting's own cost: a no-op scheduled action run ``--runs`` times,
with the addon's hooks timed from inside (plan, measure, store and verdict),
the median per run. Targets: default settings <= 1.02 x no addon; accounting
<= 1 ms per run at the median; traced (1 frame) <= 1.05 x bare tracemalloc.

Usage, with the series' own Python::

    python benchmarks/bench_profiler.py --odoo /opt/odoo/18.0 --db bench_prof_18 --create [--repeat 3]

It commits (it is not a test) and empties ``test.memory.batch.record`` in the
database it is given: use a database of its own. It always exits 0; a missed
target is printed as FAIL.
"""

import argparse
import contextlib
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

    return Registry(args.db)


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


def run(registry, cron_id, frames, count, bypass=False, bare=False):
    """One job of the cron: ``(wall, profile)``; ``frames``: traced (None: accounted only).

    ``bypass``: the addon's hooks bypassed; ``bare``: tracemalloc (1 frame) around the job.
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
    with registry.cursor() as cron_cr, addon_bypassed(bypass):
        started = time.perf_counter()
        if bare:
            tracemalloc.start(1)
        try:
            if not harness.run_cron_job_now(registry, cron_cr, cron_id):
                raise RuntimeError("the benchmark cron could not be acquired")
            cron_cr.commit()
        finally:
            if bare:
                tracemalloc.stop()
        wall = time.perf_counter() - started
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
    return wall, profile


#: The addon's methods timed from inside for the accounting's own cost.
TIMED = ("_memory_run_plan", "_memory_run_measure", "_memory_after_job")


@contextlib.contextmanager
def hooks_timed(spent):
    """Add the seconds spent in the addon's accounting methods to ``spent[0]``."""
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
    ir_cron.accounting.read = lambda: timed(lambda _self: saved_read())(None)
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(cls, name, method)
        ir_cron.accounting.read = saved_read


def accounting_cost(registry, runs):
    """Median seconds per run spent in the accounting, and median wall with and without the addon."""
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
    try:
        for index in range(2 * runs + 2):
            bypass = bool(index % 2)
            spent = [0.0]
            with registry.cursor() as cron_cr, addon_bypassed(bypass), hooks_timed(spent):
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
    finally:
        with registry.cursor() as cr:
            cron = api.Environment(cr, SUPERUSER_ID, {})["ir.cron"].browse(cron_id)
            action = cron.ir_actions_server_id
            cron.unlink()
            action.unlink()
    return statistics.median(spent_per_run), statistics.median(walls[True]), statistics.median(walls[False])


def print_table(walls, profiles, accounting, args):
    import odoo.release

    base = statistics.median(walls[NO_ADDON])
    print()
    print(
        f"Odoo {odoo.release.series}, Python {sys.version.split()[0]}: a cron creating, reading and "
        f"writing {args.count} tracked records, through ir.cron._process_job; median of the runs shown."
    )
    print()
    print(
        "| mode | median wall (s) | runs (s) | ratio | traced peak (MiB) | traced growth (MiB) | top site |"
    )
    print("|---|---:|---|---:|---:|---:|---|")
    for name, *_rest in MODES:
        if not walls[name]:
            continue
        median = statistics.median(walls[name])
        runs = ", ".join(f"{w:.2f}" for w in walls[name])
        profile = profiles.get(name)
        peak, growth, site = (
            (f"{profile[0]:.1f}", f"{profile[1]:+.2f}", Path(profile[2] or "-").name)
            if profile and profile[3] == "traced"
            else ("-",) * 3
        )
        print(f"| {name} | {median:.2f} | {runs} | {median / base:.2f} | {peak} | {growth} | {site} |")
    spent, wall_bypassed, wall_accounted = accounting
    print()
    print(
        f"Accounting alone, a no-op cron run {args.runs} times: {spent * 1000:.2f} ms per run in the "
        f"addon's hooks (median); job {wall_accounted * 1000:.1f} ms with them, "
        f"{wall_bypassed * 1000:.1f} ms without."
    )
    print()
    checks = (
        ("default settings", statistics.median(walls[DEFAULT]) / base, TARGET_DEFAULT, "x no addon"),
        ("accounting", spent * 1000, TARGET_ACCOUNTING_MS, "ms per run"),
        (
            "traced, 1 frame",
            statistics.median(walls[TRACED_1]) / statistics.median(walls[BARE]),
            TARGET_TRACED,
            "x bare tracemalloc",
        ),
    )
    for label, value, target, unit in checks:
        verdict = "PASS" if value <= target else "FAIL"
        print(f"{verdict}: {label} {value:.3f} {unit} (target <= {target}).")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--odoo", required=True, help="Odoo source tree (/opt/odoo/18.0)")
    parser.add_argument("--db", required=True, help="a database of its own")
    parser.add_argument("--create", action="store_true", help="(re)create the database first")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repeat-10", type=int, default=1, help="runs with 10 frames (slow)")
    parser.add_argument("--runs", type=int, default=100, help="runs of the no-op cron (accounting cost)")
    parser.add_argument("--accounting-only", action="store_true", help="only the accounting's own cost")
    parser.add_argument("--count", type=int, default=5000, help="records the cron creates")
    parser.add_argument("--http-port", type=int, default=18290, help="for --create's odoo-bin only")
    args = parser.parse_args(argv)

    with addons_path(args.odoo) as paths:
        if args.create:
            create_database(args, paths)
        registry = bootstrap(args, paths)
        cron_id = make_cron(registry, args.count)
        try:
            if args.accounting_only:
                spent, without, with_ = accounting_cost(registry, args.runs)
                print(
                    f"Python {sys.version.split()[0]}: accounting {spent * 1000:.2f} ms per run in the "
                    f"addon's hooks (median of {args.runs}); job {with_ * 1000:.1f} ms with them, "
                    f"{without * 1000:.1f} ms without."
                )
                return 0
            run(registry, cron_id, None, args.count)  # warm-up: imports, caches, the first tracked create
            walls = {name: [] for name, *_rest in MODES}
            profiles = {}
            for round_ in range(args.repeat):
                for name, frames, bypass, bare in MODES:
                    if frames == 10 and round_ >= args.repeat_10:
                        continue
                    wall, profiles[name] = run(
                        registry, cron_id, frames, args.count, bypass=bypass, bare=bare
                    )
                    walls[name].append(wall)
            accounting = accounting_cost(registry, args.runs)
        finally:
            from odoo import api
            from odoo.api import SUPERUSER_ID

            with registry.cursor() as cr:
                clean(cr, cron_id)
                cron = api.Environment(cr, SUPERUSER_ID, {})["ir.cron"].browse(cron_id)
                action = cron.ir_actions_server_id
                cron.unlink()
                action.unlink()
        print_table(walls, profiles, accounting, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the cron-leak profiler (issue 4, section 5): what profiling a run costs.

A realistic scheduled action (``test.memory.batch.record._cron_bench_realistic``
of the test addon: it creates 5 000 records of a ``mail.thread`` model with
tracked fields, reads them back and writes each one) is run through Odoo's own
job machinery (``ir.cron._process_job``, real cursors, commits), in three ways:

- unprofiled (``memory_profile`` off, the global switch off);
- profiled with 1 frame (the default);
- profiled with 10 frames;
- unprofiled, inside a bare ``tracemalloc.start(1)`` / ``stop()`` and nothing
  else: what tracing alone costs, the floor under any tracemalloc profiler.

Modes are interleaved, after one warm-up run; each runs ``--repeat`` times and
the table shows the median wall time of the job, its ratio to the unprofiled
median, and for the profiled modes what the profiler saw (traced peak and
growth, the top allocation site). Target: 1 frame at most 2 x unprofiled.

Usage, with the series' own Python::

    python benchmarks/bench_profiler.py --odoo /opt/odoo/18.0 --db bench_prof_18 --create [--repeat 3]

It commits (it is not a test) and empties ``test.memory.batch.record`` in the
database it is given: use a database of its own. It always exits 0; a missed
target is printed as FAIL.
"""

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent.parent
MODEL = "test.memory.batch.record"
TABLE = "test_memory_batch_record"
TARGET_RATIO_1_FRAME = 2.0
BARE = "tracemalloc alone, 1 frame"
MODES = (
    ("unprofiled", None),
    ("profiled, 1 frame", 1),
    ("profiled, 10 frames", 10),
    (BARE, None),
)


@contextlib.contextmanager
def addons_path(odoo_src):
    """The series' addons, this addon under its own folder name, and the test addons."""
    farm = None
    if ADDON_DIR.name == "memory_hygiene":
        own = str(ADDON_DIR.parent)
    else:
        farm = tempfile.mkdtemp(prefix="bench_profiler_addons_")
        os.symlink(ADDON_DIR, Path(farm) / "memory_hygiene")
        own = farm
    try:
        yield ",".join([f"{odoo_src}/addons", f"{odoo_src}/odoo/addons", own, str(ADDON_DIR / "test_addons")])
    finally:
        if farm:
            os.unlink(Path(farm) / "memory_hygiene")
            os.rmdir(farm)


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

    from odoo.addons.memory_hygiene.core import params

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


def run(registry, cron_id, frames, count, bare=False):
    """One job of the cron, profiled with ``frames`` frames (None: unprofiled): ``(wall, profile)``.

    ``bare``: unprofiled, with tracemalloc tracing (1 frame) around the job.
    """
    from odoo import api
    from odoo.api import SUPERUSER_ID

    from odoo.addons.memory_hygiene import compat
    from odoo.addons.memory_hygiene.core import params

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        clean(cr, cron_id)
        env["ir.config_parameter"].set_param(params.PROFILE_FRAMES, str(frames or 1))
        env["ir.cron"].browse(cron_id).write({"memory_profile": bool(frames), "memory_profile_every": 1})
    with registry.cursor() as cron_cr:
        started = time.perf_counter()
        if bare:
            tracemalloc.start(1)
        try:
            if not compat.process_cron_job(registry, cron_cr, cron_id):
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
            "SELECT traced_peak_mb, traced_growth_mb, top_site FROM memory_cron_run WHERE cron_id = %s",
            [cron_id],
        )
        profile = cr.fetchone()
    if done != count:
        raise RuntimeError(f"the cron wrote {done} records instead of {count}")
    if bool(frames) != bool(profile):
        raise RuntimeError(f"profile {profile!r} for frames={frames}")
    return wall, profile


def print_table(walls, profiles, args):
    import odoo.release

    base = statistics.median(walls["unprofiled"])
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
    for name, _frames in MODES:
        if not walls[name]:
            continue
        median = statistics.median(walls[name])
        runs = ", ".join(f"{w:.2f}" for w in walls[name])
        profile = profiles.get(name)
        peak, growth, site = (
            (f"{profile[0]:.1f}", f"{profile[1]:+.2f}", Path(profile[2] or "-").name)
            if profile
            else ("-",) * 3
        )
        print(f"| {name} | {median:.2f} | {runs} | {median / base:.2f} | {peak} | {growth} | {site} |")
    ratio = statistics.median(walls["profiled, 1 frame"]) / base
    verdict = "PASS" if ratio <= TARGET_RATIO_1_FRAME else "FAIL"
    print()
    print(f"{verdict}: profiled with 1 frame takes {ratio:.2f} x the unprofiled run (target <= 2).")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--odoo", required=True, help="Odoo source tree (/opt/odoo/18.0)")
    parser.add_argument("--db", required=True, help="a database of its own")
    parser.add_argument("--create", action="store_true", help="(re)create the database first")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repeat-10", type=int, default=1, help="runs with 10 frames (slow)")
    parser.add_argument("--count", type=int, default=5000, help="records the cron creates")
    parser.add_argument("--http-port", type=int, default=18290, help="for --create's odoo-bin only")
    args = parser.parse_args(argv)

    with addons_path(args.odoo) as paths:
        if args.create:
            create_database(args, paths)
        registry = bootstrap(args, paths)
        cron_id = make_cron(registry, args.count)
        try:
            run(registry, cron_id, None, args.count)  # warm-up: imports, caches, the first tracked create
            walls = {name: [] for name, _frames in MODES}
            profiles = {}
            for round_ in range(args.repeat):
                for name, frames in MODES:
                    if frames == 10 and round_ >= args.repeat_10:
                        continue
                    wall, profiles[name] = run(registry, cron_id, frames, args.count, bare=name == BARE)
                    walls[name].append(wall)
        finally:
            from odoo import api
            from odoo.api import SUPERUSER_ID

            with registry.cursor() as cr:
                clean(cr, cron_id)
                cron = api.Environment(cr, SUPERUSER_ID, {})["ir.cron"].browse(cron_id)
                action = cron.ir_actions_server_id
                cron.unlink()
                action.unlink()
        print_table(walls, profiles, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

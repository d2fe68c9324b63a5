"""Benchmark of worker snapshots (issue 3): what sampling costs a real server.

1. Requests per second on the same routes of two real ``odoo-bin`` (2 HTTP
   workers, a cron worker, gevent each; started by the test harness), one
   without and one with memory_hygiene installed: two databases, with
   ``base_setup`` + ``mail`` in both. Both servers run side by side and get
   short bursts in turn (``--requests`` requests from ``--concurrency``
   client threads, ``--repeat`` bursts each, after a warm-up), so that a
   machine busy with something else slows both alike. The table shows the
   median burst of each, the median ratio of paired bursts, and the CPU time
   the server's processes spent per request (less sensitive to other load
   than the rate). Target: with / without >= 97 %.
2. Cost, in microseconds, of what a request pays when no sample is due (the
   check in ``ir.http._post_dispatch``), of one sample of this process
   (psutil, with and without USS), of all processes of a running server (what
   the cron worker does each round), and of a whole ORM round in this process
   (trends and the insert included, rolled back).

Usage, with the series' own Python::

    python benchmarks/bench_snapshot.py --odoo /opt/odoo/18.0 [--requests 200] [--repeat 10] [--raw]

Not a test: it prints a table and always exits 0 (a missed target is printed
as FAIL). It makes two databases of its own and drops them at the end.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent.parent
ROUTES = ("/web/login", "/web/health")
TARGET = 97.0


def setup_odoo(odoo_src):
    """Import Odoo of ``odoo_src`` with this addon on its addons path."""
    sys.path.insert(0, odoo_src)
    import odoo  # noqa: F401
    from odoo.tools import config

    if ADDON_DIR.name == "memory_hygiene":
        own = str(ADDON_DIR.parent)
    else:  # a worktree: Odoo finds an addon by its folder name
        own = tempfile.mkdtemp(prefix="bench_snapshot_addons_")
        os.symlink(ADDON_DIR, Path(own) / "memory_hygiene")
    addons = ",".join([f"{odoo_src}/addons", f"{odoo_src}/odoo/addons", own, str(ADDON_DIR / "test_addons")])
    config.parse_config(["--addons-path", addons, "--log-level=warn", "--http-interface=127.0.0.1"])
    from odoo.modules.module import initialize_sys_path

    initialize_sys_path()
    # The harness lives in the addon's tests package: importing odoo.tests outside
    # of a test run logs an error, and running with --test-enable would run the
    # tests of every module this process loads a registry of.
    config["test_enable"] = True
    from odoo.addons.memory_hygiene.tests import harness  # noqa: F401

    config["test_enable"] = False


def server_cpu(server):
    """CPU seconds used so far by the processes of ``server``."""
    import psutil

    total = 0.0
    for pids in server.pids().values():
        for pid in pids:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


def load(server, path, requests_count, concurrency):
    """``(requests per second, server CPU ms per request)`` of ``requests_count`` GETs of ``path``."""
    import requests

    per_thread = requests_count // concurrency
    errors = []

    def client():
        with requests.Session() as session:
            for _ in range(per_thread):
                response = session.get(server.url(path), timeout=60)
                if response.status_code != 200:
                    errors.append(response.status_code)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    cpu = server_cpu(server)
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    cpu = server_cpu(server) - cpu
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests on {path}: {sorted(set(errors))}")
    done = per_thread * concurrency
    return done / elapsed, cpu * 1000 / done


def micros(func, repeat, batch=1):
    """Median duration of ``func()`` in microseconds over ``repeat`` batches of ``batch`` calls."""
    func()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(batch):
            func()
        times.append((time.perf_counter() - start) * 1e6 / batch)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--odoo", required=True, help="Odoo source tree, e.g. /opt/odoo/18.0")
    parser.add_argument("--requests", type=int, default=200, help="requests per burst")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=10, help="bursts per server and route")
    parser.add_argument("--routes", default=",".join(ROUTES), help="comma-separated routes to load")
    parser.add_argument("--raw", action="store_true", help="also print every burst")
    parser.add_argument("--prefix", default="bench_snapshot", help="prefix of the two databases")
    args = parser.parse_args()
    routes = args.routes.split(",")
    setup_odoo(args.odoo)

    import psutil

    from odoo import release

    from odoo.addons.memory_hygiene.core.snapshot import sampler
    from odoo.addons.memory_hygiene.models import memory_snapshot
    from odoo.addons.memory_hygiene.tests import harness

    series = release.series
    without_db = harness.server_database(("base_setup", "mail"), name=f"{args.prefix}_without_{series[:2]}")
    with_db = harness.server_database(("memory_hygiene",), name=f"{args.prefix}_with_{series[:2]}")
    rates = {(db, path): [] for db in (without_db, with_db) for path in routes}
    memory_snapshot.SELF_SAMPLE_THROTTLE.reschedule(300)
    costs = {
        "a request when no sample is due (the check in _post_dispatch)": micros(
            memory_snapshot.self_sample_due, 100, batch=1000
        ),
        "one sample of this process (psutil)": micros(lambda: sampler.sample(psutil.Process()), 200),
        "one sample of this process, with USS (smaps)": micros(
            lambda: sampler.sample(psutil.Process(), uss=True), 200
        ),
    }
    try:
        with (
            harness.OdooServer(without_db, workers=2, max_cron_threads=1) as without,
            harness.OdooServer(with_db, workers=2, max_cron_threads=1) as with_,
        ):
            for server in (without, with_):
                for path in routes:
                    load(server, path, 100, args.concurrency)  # warm-up: registry, assets, first sample
            for burst in range(args.repeat):
                for path in routes:
                    for server in (without, with_) if burst % 2 == 0 else (with_, without):
                        rates[server.db, path].append(load(server, path, args.requests, args.concurrency))
            root = with_.process.pid
            count = len(sampler.sample_tree(root, "prefork"))
            costs[f"all {count} processes of a server (a cron round, psutil)"] = micros(
                lambda: sampler.sample_tree(root, "prefork"), 100
            )
            costs[f"all {count} processes of a server, with USS"] = micros(
                lambda: sampler.sample_tree(root, "prefork", uss=True), 100
            )
        costs["ORM round in this process (trends, insert; rolled back)"] = orm_round_cost(with_db)
    finally:
        harness.drop()

    print(
        f"\nmemory_hygiene snapshots, Odoo {series}, {os.cpu_count()} CPUs, 2 HTTP workers per server, "
        f"{args.concurrency} clients, {args.repeat} bursts of {args.requests} requests (median burst)\n"
    )
    print(
        "| route | without addon (req/s) | with addon (req/s) | with / without (paired) "
        "| server CPU per request without / with (ms) | target >= 97 % |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for path in routes:
        without, with_ = rates[without_db, path], rates[with_db, path]
        # Bursts i of both servers ran one after the other: their ratio cancels the
        # drift of a machine that is busy with other things.
        ratio = statistics.median(w[0] / wo[0] for w, wo in zip(with_, without, strict=True)) * 100
        verdict = "ok" if ratio >= TARGET else "FAIL"
        rate = [statistics.median(r for r, _c in runs) for runs in (without, with_)]
        cpu = [statistics.median(c for _r, c in runs) for runs in (without, with_)]
        print(
            f"| `{path}` | {rate[0]:.1f} | {rate[1]:.1f} | {ratio:.1f} % "
            f"| {cpu[0]:.2f} / {cpu[1]:.2f} | {verdict} |"
        )
    if args.raw:
        for (db, path), values in rates.items():
            print(f"\n{db} {path}: " + ", ".join(f"{rate:.1f} req/s {cpu:.2f} ms" for rate, cpu in values))
    print("\n| one sample | microseconds (median) |\n|---|---:|")
    for label, value in costs.items():
        print(f"| {label} | {value:,.0f} |" if value >= 10 else f"| {label} | {value:.2f} |")
    return 0


def orm_round_cost(db):
    from odoo import SUPERUSER_ID, api
    from odoo.modules.registry import Registry

    registry = Registry(db)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        try:
            return micros(lambda: env["memory.snapshot"]._sample_round("manual"), 50)
        finally:
            cr.rollback()


if __name__ == "__main__":
    sys.exit(main())

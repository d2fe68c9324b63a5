"""Benchmark of ``memory.batch.mixin`` against the loops it replaces (issue 2, section 4).

Against a real database, on the test addon's ``test.memory.batch.record`` (a
``mail.thread`` model whose ``name``, ``state`` and ``value`` are tracked), it
runs four strategies over N records of state ``todo``; each sets
``state = "done"`` and ``value = value + 1`` on every record it meets, one
``write()`` per record:

(a) naive loop: ``search(domain)`` of everything, write per record, tracking
    on, one commit at the end;
(b) the memory-leak article's offset recipe, as printed (``search(domain,
    limit=batch, offset=offset)``, process, ``commit()``, ``invalidate_all()``,
    ``offset += batch``; the loop has no ``tracking_disable``);
(c) a hand-written keyset loop (``id > last``, by id) with tracking disabled,
    commit and ``invalidate_all()`` per batch;
(d) the mixin: ``_batch_process(domain, callback, batch_size=batch)``;
(p) the mixin with 1 % poison records spread out evenly (every 100th record,
    the callback raises for it): wall time against (d), callback calls per
    record (each failing batch is retried record by record), ``failed_ids``;
(w) the mixin with a concurrent writer: a second connection, in a thread,
    commits ``UPDATE ... SET value = value`` on a random record of the batch
    being processed or the next one, ``--writer-rate`` times a second, while
    the mixin runs. A call that stops on ``"conflict"`` is called again, as
    the cron's re-trigger would (the domain skips what is done): wall time,
    records done, ``failed_ids`` (target 0), conflicts retried (callback
    attempts beyond one per batch), calls of ``_batch_process``.

Each (strategy, N) runs in a fresh subprocess: the data is reset (SQL), the
process is warmed up (one tracked write, rolled back), then the strategy is
measured: wall time, CPU time (the Odoo process, its PostgreSQL backend),
peak RSS growth over the RSS just before it started (a thread reading RSS
every 5 ms plus a final read; the kernel's own high-water mark, reset before
the run, is shown next to it), records processed (value incremented at least
once; "twice" counts those incremented more than once) and tracking messages
(``mail.message`` rows of the model that carry tracking values; every message
of the model is deleted before each run). (c) and (d) run ``--repeat`` times,
back to back in alternating order; the wall-time target of (d) is checked on
the median ratio of those pairs (see :func:`check_targets`).

Usage, with the series' own Python (the one Odoo runs with)::

    python benchmarks/bench_batch.py --odoo /opt/odoo/18.0 --db bench_18 --create \\
        [--sizes 10000,100000] [--batch 1000] [--naive-max 10000] [--repeat 5] [--strategies abcdz]

It commits (it is not a test) and it deletes every record of
``test.memory.batch.record`` and its messages in the database it is given: use
a database of its own. It always exits 0; targets missed are printed as FAIL.
"""

# A benchmark's output is its table: print() is its interface, not a logger.
# pylint: disable=print-used

import argparse
import contextlib
import gc
import json
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from addons_farm import addons_path  # next to this script: python benchmarks/<script>.py

MODEL = "test.memory.batch.record"
DOMAIN = [("state", "=", "todo")]

MIB = 1024 * 1024

STRATEGIES = {
    "a": "(a) naive loop",
    "b": "(b) offset recipe",
    "c": "(c) keyset loop",
    "d": "(d) mixin",
    "z": "(z) nothing (floor)",
    "p": "(p) mixin, 1 % poison",
    "w": "(w) mixin, concurrent writer",
}

#: (p): every POISON_EVERY-th record (from the middle of each hundred) raises in the callback.
POISON_EVERY = 100

#: Targets of the mixin (d), from the issue.
TARGET_WALL_RATIO = 1.15
TARGET_RSS_MIB = 10.0
TARGET_RSS_FROM_N = 100_000


# --------------------------------------------------------------------------
# The four strategies. ``env`` is a superuser environment on its own cursor.
# --------------------------------------------------------------------------


def process(records):
    """The work of every strategy: close each record and count the visit."""
    for record in records:
        record.write({"state": "done", "value": record.value + 1})


def run_naive(env, batch_size):
    records = env[MODEL].search(DOMAIN)
    process(records)
    env.cr.commit()  # the benchmark's own transaction: one commit at the end


def run_offset(env, batch_size):
    # The memory-leak article's "Permanent Fix" loop, as printed there.
    model = env[MODEL]
    offset = 0
    while True:
        records = model.search(DOMAIN, limit=batch_size, offset=offset)
        if not records:
            break
        process(records)
        env.cr.commit()  # the article's commit per batch
        env.invalidate_all()
        offset += batch_size


def run_keyset(env, batch_size):
    model = env[MODEL].with_context(tracking_disable=True, mail_notrack=True)
    last_id = 0
    while True:
        records = model.search(DOMAIN + [("id", ">", last_id)], order="id", limit=batch_size)
        if not records:
            break
        process(records)
        last_id = records.ids[-1]
        env.cr.commit()  # a batch is done: make it durable, free the transaction
        env.invalidate_all()


def run_mixin(env, batch_size):
    return env[MODEL]._batch_process(DOMAIN, process, batch_size=batch_size)


def run_nothing(env, batch_size):
    """The measurement's own floor: a strategy that does nothing."""


class PoisonRecord(Exception):
    """Raised by the callback of (p) for a record whose ``poison`` is set."""


def run_poison(env, batch_size):
    handed = [0]

    def process_poison(records):
        for record in records:
            handed[0] += 1
            if record.poison:
                raise PoisonRecord(f"poison record {record.id}")
            record.write({"state": "done", "value": record.value + 1})

    result = env[MODEL]._batch_process(DOMAIN, process_poison, batch_size=batch_size)
    result["handed"] = handed[0]
    result["invocations"] = 1
    return result


class ConcurrentWriter(threading.Thread):
    """Commits updates to records of the batch being processed (or the next) from its own connection."""

    def __init__(self, connection, batch_size, rate):
        super().__init__(daemon=True)
        import random

        self.connection = connection
        self.batch_size = batch_size
        self.interval = 1.0 / rate
        self.random = random.Random(10)
        self.commits = 0
        self.errors = 0
        self._done = threading.Event()

    def run(self):
        with self.connection.cursor() as cr:
            while not self._done.wait(self.interval):
                try:
                    # The first record not committed as done: the batch under way starts there.
                    cr.execute("SELECT min(id) FROM test_memory_batch_record WHERE state = 'todo'")
                    first = cr.fetchone()[0]
                    if first is None:
                        continue
                    target = first + self.random.randrange(2 * self.batch_size)
                    cr.execute("UPDATE test_memory_batch_record SET value = value WHERE id = %s", [target])
                    self.commits += cr.rowcount
                except Exception:  # noqa: BLE001 - the writer only disturbs; its errors are counted
                    self.errors += 1

    def finish(self):
        self._done.set()
        self.join()


def run_writer(env, batch_size, args=None):
    writer = ConcurrentWriter(db_connection(args), batch_size, args.writer_rate)
    writer.start()
    total = {"processed": 0, "failed_ids": [], "batches": 0, "calls": 0, "stop_reasons": []}
    try:
        for _call in range(50):  # a cron re-triggered after "conflict" runs again
            result = env[MODEL]._batch_process(DOMAIN, process, batch_size=batch_size)
            for key in ("processed", "failed_ids", "batches", "calls"):
                total[key] += result[key]
            total["stop_reasons"].append(result["stop_reason"])
            if result["stop_reason"] != "conflict":
                break
    finally:
        writer.finish()
        writer.connection.close()
    total.update(
        invocations=len(total["stop_reasons"]),
        stop_reason=total["stop_reasons"][-1],
        # No poison here: every callback call beyond one per batch is a conflict retry.
        conflicts_retried=total["calls"] - total["batches"],
        writer_commits=writer.commits,
        writer_errors=writer.errors,
    )
    return total


RUNNERS = {
    "a": run_naive,
    "b": run_offset,
    "c": run_keyset,
    "d": run_mixin,
    "z": run_nothing,
    "p": run_poison,
    "w": run_writer,
}


# --------------------------------------------------------------------------
# Worker: one (strategy, N) in this process.
# --------------------------------------------------------------------------


class PeakRss(threading.Thread):
    """Highest RSS seen, read every ``interval`` seconds until :meth:`finish`."""

    def __init__(self, interval=0.005):
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process()
        self.interval = interval
        self.peak = self.process.memory_info().rss
        self.samples = 0
        self._done = threading.Event()

    def sample(self):
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.samples += 1

    def run(self):
        while not self._done.wait(self.interval):
            self.sample()

    def finish(self):
        self._done.set()
        self.join()
        self.sample()
        return self.peak


def kernel_hwm_reset():
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False if impossible."""
    try:
        Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def kernel_hwm():
    """The kernel's peak RSS of this process (VmHWM), in bytes, or None."""
    try:
        status = Path(f"/proc/{os.getpid()}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def process_cpu(pid):
    """User + system CPU seconds of process ``pid`` (here: a PostgreSQL backend), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # Fields 14 and 15 of proc(5), counted after the command name's closing parenthesis.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bootstrap(args):
    """Load the Odoo of ``--odoo`` and the registry of ``--db`` in this process."""
    sys.path.insert(0, args.odoo)
    import odoo  # noqa: F401 - the source tree given by --odoo
    from odoo.tools import config

    config.parse_config(odoo_options(args, log_level="warn"), setup_logging=True)
    threading.current_thread().dbname = args.db
    from odoo.modules.registry import Registry  # 18.0 and 19.0 alike

    return Registry(args.db)


def db_connection(args):
    """A plain autocommit psycopg2 connection to ``--db``, for setup and counting."""
    import psycopg2

    from odoo.sql_db import connection_info_for

    _name, info = connection_info_for(args.db)
    info.pop("application_name", None)
    connection = psycopg2.connect(**info, application_name="bench_batch")
    connection.autocommit = True
    return connection


def reset_data(connection, count, poison=False):
    with connection.cursor() as cr:
        # Failed records are kept and skipped by later runs of the same key: none from a run before.
        cr.execute("DELETE FROM memory_batch_failure WHERE res_model = %s", [MODEL])
        # Cascades to tracking values, notifications and partner links of these messages.
        cr.execute("DELETE FROM mail_message WHERE model = %s", [MODEL])
        cr.execute("DELETE FROM mail_followers WHERE res_model = %s", [MODEL])
        cr.execute("DELETE FROM memory_batch_position WHERE res_model = %s", [MODEL])
        cr.execute("TRUNCATE test_memory_batch_record RESTART IDENTITY")
        cr.execute(
            """
            INSERT INTO test_memory_batch_record
                   (name, state, value, poison, create_uid, write_uid, create_date, write_date)
            SELECT 'record ' || i, 'todo', 0, %s AND i %% %s = %s, 1, 1,
                   now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
              FROM generate_series(1, %s) AS i
            """,
            [poison, POISON_EVERY, POISON_EVERY // 2, count],
        )
        cr.execute("VACUUM ANALYZE test_memory_batch_record")
        cr.execute("VACUUM ANALYZE mail_message")
        cr.execute("VACUUM ANALYZE mail_tracking_value")


def count_results(connection):
    with connection.cursor() as cr:
        cr.execute(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE value >= 1),
                   count(*) FILTER (WHERE value > 1),
                   count(*) FILTER (WHERE state = 'todo'),
                   count(*) FILTER (WHERE poison)
              FROM test_memory_batch_record
            """
        )
        total, processed, twice, left, poisoned = cr.fetchone()
        cr.execute(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE EXISTS (
                       SELECT 1 FROM mail_tracking_value t WHERE t.mail_message_id = m.id))
              FROM mail_message m
             WHERE m.model = %s
            """,
            [MODEL],
        )
        messages, tracking_messages = cr.fetchone()
    return {
        "total": total,
        "processed": processed,
        "twice": twice,
        "left_todo": left,
        "poison": poisoned,
        "messages": messages,
        "tracking_messages": tracking_messages,
    }


def warm_up(registry):
    """Run the code paths of a tracked write once and roll back: a worker that has served before."""
    from odoo import api
    from odoo.api import SUPERUSER_ID

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        records = env[MODEL].search(DOMAIN, order="id", limit=2)
        process(records)
        env[MODEL].search_count(DOMAIN)
        cr.precommit.run()  # flush and write the tracking messages, as a commit would
        cr.rollback()
    gc.collect()


def worker(args):
    import psutil

    registry = bootstrap(args)
    from odoo import api
    from odoo.api import SUPERUSER_ID

    connection = db_connection(args)
    reset_data(connection, args.n, poison=args.strategy == "p")
    warm_up(registry)

    runner = RUNNERS[args.strategy]
    returned = error = profiler = None
    with registry.cursor() as cr:
        cr.execute("SELECT pg_backend_pid()")
        backend_pid = cr.fetchone()[0]
        env = api.Environment(cr, SUPERUSER_ID, {})
        # The sampler runs before the start is read: its own thread is not the strategy's growth.
        sampler = PeakRss()
        sampler.start()
        time.sleep(0.05)
        rss_start = psutil.Process().memory_info().rss
        sampler.peak = rss_start
        hwm_ok = kernel_hwm_reset()
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        pg_cpu_started = process_cpu(backend_pid)
        cpu_started = time.process_time()
        started = time.perf_counter()
        try:
            if args.strategy == "w":
                returned = runner(env, args.batch, args)
            else:
                returned = runner(env, args.batch)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports a crash, it does not hide it
            error = repr(exc)
            cr.rollback()
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        pg_cpu_ended = process_cpu(backend_pid)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
    peak = sampler.finish()
    hwm = kernel_hwm() if hwm_ok else None
    rss_end = psutil.Process().memory_info().rss

    result = {
        "strategy": args.strategy,
        "n": args.n,
        "batch": args.batch,
        "wall": wall,
        "cpu": cpu,
        "pg_cpu": None if pg_cpu_started is None or pg_cpu_ended is None else pg_cpu_ended - pg_cpu_started,
        "rss_start_mib": rss_start / MIB,
        "peak_growth_mib": (peak - rss_start) / MIB,
        "hwm_growth_mib": None if hwm is None else (hwm - rss_start) / MIB,
        "end_growth_mib": (rss_end - rss_start) / MIB,
        "samples": sampler.samples,
        "returned": returned if isinstance(returned, dict) else None,
        "error": error,
        **count_results(connection),
    }
    connection.close()
    Path(args.result_file).write_text(json.dumps(result))


# --------------------------------------------------------------------------
# Driver: creates the database if asked, runs the workers, prints the table.
# --------------------------------------------------------------------------


def odoo_release(odoo_dir):
    release = runpy.run_path(str(Path(odoo_dir) / "odoo" / "release.py"))
    return release["version_info"][0], release["serie"]


def odoo_options(args, log_level):
    options = [f"--addons-path={args.addons_path}", "-d", args.db, f"--log-level={log_level}"]
    for option in ("db_host", "db_port", "db_user", "db_password"):
        value = getattr(args, option)
        if value:
            options.append(f"--{option.replace('_', '-')}={value}")
    return options


def create_database(args, major):
    command = [
        sys.executable,
        f"{args.odoo}/odoo-bin",
        *odoo_options(args, log_level="warn"),
        "-i",
        "test_memory_hygiene",
        "--stop-after-init",
        f"--http-port={args.http_port}",
        "--http-interface=127.0.0.1",
    ]
    if major < 19:
        command.append("--without-demo=all")  # 19.0 installs no demo data unless asked
    print(f"creating {args.db} with memory_hygiene and test_memory_hygiene...", file=sys.stderr)
    subprocess.run(command, check=True)


def run_worker(args, strategy, count, run):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_file = handle.name
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--odoo",
        args.odoo,
        "--db",
        args.db,
        "--addons-path-resolved",
        args.addons_path,
        "--strategy",
        strategy,
        "--n",
        str(count),
        "--batch",
        str(args.batch),
        "--result-file",
        result_file,
        "--writer-rate",
        str(args.writer_rate),
    ]
    if args.profile:
        command += ["--profile", f"{args.profile}.{strategy}.{count}.{run}.prof"]
    for option in ("db_host", "db_port", "db_user", "db_password"):
        if getattr(args, option):
            command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    completed = subprocess.run(command, check=False, capture_output=True, text=True)
    try:
        result = json.loads(Path(result_file).read_text())
    except (OSError, ValueError):
        tail = "\n".join(completed.stderr.splitlines()[-20:])
        result = {"strategy": strategy, "n": count, "error": f"worker exit {completed.returncode}: {tail}"}
    finally:
        with contextlib.suppress(OSError):
            os.unlink(result_file)
    if completed.returncode and not result.get("error"):
        result["error"] = f"worker exit {completed.returncode}"
    return result


def plan(sizes, naive_max, repeat):
    """``[(strategy, N, run)]``: (c) and (d) interleaved ``repeat`` times, so noise hits both."""
    steps = []
    for count in sizes:
        if count <= naive_max:
            steps.append(("a", count, 1))
        steps.append(("b", count, 1))
        steps.append(("z", count, 1))
        for run in range(1, repeat + 1):
            # c d, d c, c d...: neither always runs right after the other's writes.
            pair = [("c", count, run), ("d", count, run)]
            steps += pair if run % 2 else pair[::-1]
        steps += [("p", count, 1), ("w", count, 1)]
    return steps


def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def ok_runs(results, strategy, count):
    return [
        r
        for r in results
        if r["strategy"] == strategy and r["n"] == count and "wall" in r and not r.get("error")
    ]


def table(series, results):
    lines = [
        f"Series {series}, batch size {results[0]['batch'] if results else '-'}",
        "",
        "| series | N | strategy | run | wall s | CPU s Odoo | CPU s PG | peak RSS growth MiB "
        "| kernel HWM growth MiB | processed | processed % | twice | tracking messages |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        head = f"| {series} | {result['n']} | {STRATEGIES[result['strategy']]} | {result['run']} "
        if result.get("error") and "processed" not in result:
            lines.append(head + f"| **ERROR** {result['error'].splitlines()[-1][:80]} | | | | | | | | |")
            continue
        share = 100.0 * result["processed"] / result["n"] if result["n"] else 0.0
        error = f" **ERROR** {result['error'][:80]}" if result.get("error") else ""
        lines.append(
            head
            + f"| {fmt(result['wall'], 2)}{error} | {fmt(result['cpu'], 2)} | {fmt(result.get('pg_cpu'), 2)} "
            f"| {fmt(result['peak_growth_mib'])} | {fmt(result['hwm_growth_mib'])} "
            f"| {result['processed']} | {share:.1f} | {result['twice']} | {result['tracking_messages']} |"
        )
    return lines


def spread(values):
    values = sorted(values)
    median = statistics.median(values)
    return f"min {values[0]:.2f}, median {median:.2f}, max {values[-1]:.2f}"


def paired_ratios(mixin, keyset, key):
    """``d / c`` of the runs made back to back (same run number)."""
    by_run = {r["run"]: r for r in keyset}
    return [
        r[key] / by_run[r["run"]][key]
        for r in mixin
        if r["run"] in by_run and r.get(key) is not None and by_run[r["run"]].get(key)
    ]


def check_targets(series, results):
    """Lines of the targets table for (d), and how many targets failed.

    Wall time: (c) and (d) run back to back, in alternating order, ``--repeat``
    times; the target is checked on the median of the ratios of these pairs,
    each pair having run under about the same load of the machine. The
    best-to-best ratio and the CPU-time ratio (the Odoo process, and the Odoo
    process plus its PostgreSQL backend: figures the machine's load barely
    moves) are shown next to it.
    """
    lines = [
        "",
        f"Targets for (d) the mixin, series {series}",
        "",
        "| N | target | measured | result |",
        "|---:|---|---|---|",
    ]
    failed = 0
    for count in sorted({r["n"] for r in results}):
        mixin = [r for r in results if r["n"] == count and r["strategy"] == "d"]
        if not mixin:
            continue
        if len(ok_runs(results, "d", count)) != len(mixin):
            lines.append(f"| {count} | all | (d) crashed | **FAIL** |")
            failed += 1
            continue
        checks = []
        worst = min(r["processed"] for r in mixin)
        twice = max(r["twice"] for r in mixin)
        checks.append(
            (
                "100 % processed, none twice",
                f"{worst} of {count} (worst run), {twice} twice",
                worst == count and twice == 0,
            )
        )
        tracking = max(r["tracking_messages"] for r in mixin)
        checks.append(("0 tracking messages", f"{tracking} (worst run)", tracking == 0))
        growth = max(max(r["peak_growth_mib"], r["hwm_growth_mib"] or 0.0) for r in mixin)
        if count >= TARGET_RSS_FROM_N:
            label, ok = f"peak RSS growth <= {TARGET_RSS_MIB:g} MiB", growth <= TARGET_RSS_MIB
        else:
            label, ok = f"peak RSS growth (target at {TARGET_RSS_FROM_N} only)", None
        checks.append((label, f"{growth:.1f} MiB (worst run, sampler or kernel HWM)", ok))
        keyset = ok_runs(results, "c", count)
        label = f"wall <= {TARGET_WALL_RATIO} x (c)"
        pairs = paired_ratios(mixin, keyset, "wall")
        if pairs:
            ratio = statistics.median(pairs)
            for r in mixin + keyset:
                r["total_cpu"] = r["cpu"] + r["pg_cpu"] if r.get("pg_cpu") is not None else None
            cpu = statistics.median(paired_ratios(mixin, keyset, "cpu"))
            total = paired_ratios(mixin, keyset, "total_cpu")
            d_wall = [r["wall"] for r in mixin]
            c_wall = [r["wall"] for r in keyset]
            best = min(d_wall) / min(c_wall)
            total_ratio = fmt(statistics.median(total) if total else None, 2)
            listed = ", ".join(f"{p:.2f}" for p in pairs)
            checks += [
                (
                    label,
                    f"{ratio:.2f} x (median of the back-to-back pairs {listed})",
                    ratio <= TARGET_WALL_RATIO,
                ),
                ("wall, best (d) / best (c)", f"{best:.2f} x", None),
                ("CPU, Odoo (+ PostgreSQL backend), pair median", f"{cpu:.2f} x ({total_ratio} x)", None),
                ("wall of (d)", f"{spread(d_wall)} s", None),
                ("wall of (c)", f"{spread(c_wall)} s", None),
            ]
        else:
            checks.append((label, "(c) crashed or did not run", False))
        for label, measured, ok in checks:
            verdict = "info" if ok is None else ("PASS" if ok else "**FAIL**")
            failed += ok is False
            lines.append(f"| {count} | {label} | {measured} | {verdict} |")
    return lines, failed


def fault_rows(series, results):
    """Lines of the table of rows (p) and (w), and how many of their targets failed.

    (p) is set against the median wall time of (d) at the same N (the same run
    without poison); its targets: every record that is not poison done once,
    every poison record in ``failed_ids``, no record handed more than twice on
    average (records the callback looked at, over N; a failed batch attempt
    stops at its first poison record).
    (w): every record done once, ``failed_ids`` empty.
    """
    lines = [
        "",
        f"Rows (p) and (w), series {series}",
        "",
        "| N | row | wall s | wall / (d) median | done | failed_ids | records handed / N "
        "| callback calls | conflicts retried | writer commits | _batch_process calls | stop | result |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    failed = 0
    for result in results:
        if result["strategy"] not in "pw":
            continue
        count = result["n"]
        head = f"| {count} | {STRATEGIES[result['strategy']]} "
        returned = result.get("returned")
        if result.get("error") or not returned:
            lines.append(head + f"| **ERROR** {str(result.get('error'))[:80]} | | | | | | | | | | **FAIL** |")
            failed += 1
            continue
        mixin = [r["wall"] for r in ok_runs(results, "d", count)]
        versus = f"{result['wall'] / statistics.median(mixin):.2f} x" if mixin else "-"
        failed_ids = len(returned["failed_ids"])
        if result["strategy"] == "p":
            per_record = f"{returned['handed'] / count:.2f}"
            conflicts = writes = "-"
            ok = (
                result["processed"] == count - result["poison"]
                and result["twice"] == 0
                and failed_ids == result["poison"]
                and returned["handed"] <= 2 * count
            )
        else:
            per_record = "-"
            conflicts, writes = returned["conflicts_retried"], returned["writer_commits"]
            ok = result["processed"] == count and result["twice"] == 0 and failed_ids == 0
        failed += not ok
        lines.append(
            head + f"| {result['wall']:.2f} | {versus} | {result['processed']} | {failed_ids} "
            f"| {per_record} | {returned['calls']} | {conflicts} | {writes} | {returned['invocations']} "
            f"| {returned['stop_reason']} | {'PASS' if ok else '**FAIL**'} |"
        )
    return lines, failed


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--odoo", required=True, help="Odoo source tree, e.g. /opt/odoo/18.0")
    parser.add_argument("--db", required=True, help="a database of its own: its test records are replaced")
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated record counts")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--writer-rate", type=float, default=5.0, help="(w): updates committed per second by the writer"
    )
    parser.add_argument("--naive-max", type=int, default=10000, help="largest N the naive loop runs at")
    parser.add_argument("--repeat", type=int, default=5, help="runs of (c) and (d), back to back")
    parser.add_argument(
        "--strategies", default="abcdzpw", help="subset of abcdzpw to run (z: do nothing, the floor)"
    )
    parser.add_argument("--create", action="store_true", help="install the addons in --db first")
    parser.add_argument("--http-port", type=int, default=18400, help="for --create")
    parser.add_argument("--extra-addons-path", help="appended to the addons path")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument(
        "--profile",
        help="cProfile each run into PROFILE.<strategy>.<N>.<run>.prof (slows the runs down)",
    )
    for option in ("--db-host", "--db-port", "--db-user", "--db-password"):
        parser.add_argument(option)
    # Internal: one measurement in a fresh process.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--addons-path-resolved", dest="addons_path", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)

    if args.worker:
        worker(args)
        return 0

    major, series = odoo_release(args.odoo)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    with addons_path(args.odoo, args.extra_addons_path) as path:
        args.addons_path = path
        if args.create:
            create_database(args, major)
        results = []
        for strategy, count, run in plan(sizes, args.naive_max, args.repeat):
            if strategy not in args.strategies:
                continue
            print(f"{series} N={count} {STRATEGIES[strategy]} run {run}...", file=sys.stderr, flush=True)
            result = run_worker(args, strategy, count, run)
            result.update(run=run, batch=args.batch)
            if result.get("error"):
                print(f"  ERROR: {result['error']}", file=sys.stderr)
            else:
                print(
                    f"  {result['wall']:.1f} s, +{result['peak_growth_mib']:.1f} MiB, "
                    f"{result['processed']} processed, {result['tracking_messages']} tracking messages",
                    file=sys.stderr,
                    flush=True,
                )
            results.append(result)

    lines = table(series, results)
    target_lines, failed = check_targets(series, results)
    lines += target_lines
    fault_lines, fault_failed = fault_rows(series, results)
    lines += fault_lines
    lines.append("")
    lines.append(f"{failed} target(s) of (d) FAILED" if failed else "All targets of (d) PASS")
    if fault_lines[5:]:
        lines.append(f"{fault_failed} row(s) of (p)/(w) FAILED" if fault_failed else "Rows (p) and (w) PASS")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"series": series, "results": results}, indent=1))
    if failed:
        print(f"WARNING: {failed} target(s) of the mixin FAILED on {series}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

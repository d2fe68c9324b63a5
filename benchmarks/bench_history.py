"""Benchmark of the snapshot history (issue 15): size, scrape and graph at many hosts and 30 days.

Generates, with one ``INSERT ... SELECT`` over ``generate_series``, the
snapshots of ``--hosts`` hosts x ``--processes`` processes sampled every 5
minutes for ``--days`` days (default 20 x 40 x 30: 6.9 M rows), in a database
with memory_hygiene installed, then prints, before and after the roll-up:

- the size of ``memory_snapshot`` and ``memory_snapshot_rollup`` with their
  indexes (after the roll-up and purge, ``VACUUM FULL``: the size of tables
  that only ever held their retention; ``VACUUM FULL`` is repeated until no
  dead row is left, as a transaction of another database that began before
  the purge keeps them). Target < 150 MB;
- the database time of one metrics scrape: the SQL of
  ``memory.snapshot._scrape_figures`` (what ``/memory_hygiene/metrics`` reads
  from the database; the settings it reads are cached), as Odoo's cursor
  counts it (``query_time``), median of ``--repeat`` scrapes. Target <= 20 ms;
- the wall time of the 30-day graph by host and day (``_read_group`` of
  ``memory.snapshot.history``, the *Worker Memory by Host* action's default),
  median of ``--repeat`` reads. Target <= 200 ms.

The roll-up runs as the scheduled action does (``_housekeep``), in chunks of
a day of hours and a month of days, committed one by one. The sampling
interval setting is 60 minutes in this database, so that the generated hosts
stay "live" for the whole run (a host is gone after 3 intervals).

Usage, with the series' own Python::

    python benchmarks/bench_history.py --odoo /opt/odoo/18.0 [--hosts 20] [--processes 40] [--days 30]

Not a test: it prints a table and always exits 0 (a missed target is printed
as FAIL). It makes a database of its own and drops it at the end.
"""

import argparse
import statistics
import sys
import threading
import time
from datetime import timedelta

from bench_snapshot import setup_odoo

TARGET_MB, TARGET_SCRAPE_MS, TARGET_GRAPH_MS = 150, 20, 200
#: ``(relation, MB)`` of the last :func:`sizes`, largest first.
DETAIL = []

GENERATE = """
INSERT INTO memory_snapshot (
    date, host, pid, process_kind, trigger, round_key, rss_mb, vms_mb, uss_mb, soft_limit_pct,
    soft_limit_mb, hard_limit_mb, num_fds, num_threads, cpu_seconds, started_at, age_hours,
    requests_count, record_cache_size, ormcache_entries, gc_counts, growth_mb_per_hour, leak_suspect,
    recycled_pid)
SELECT t.ts, 'host-' || lpad(h::text, 2, '0'), 1000 + p,
       CASE WHEN p = 0 THEN 'master' WHEN p <= 2 THEN 'cron' WHEN p = 3 THEN 'gevent' ELSE 'http' END,
       'schedule', md5(h::text || t.ts::text),
       300 + 200 * random(), 1200 + 600 * random(), 0, 40 + 40 * random(), 2048, 2560,
       30 + (random() * 20)::int, 4, t.n * 0.5, %(start)s, t.n / 12.0,
       t.n, 5000, 12000, '12/3/1', 0, random() < 0.001,
       CASE WHEN random() < 0.0005 THEN 999 ELSE 0 END
  FROM generate_series(1, %(hosts)s) h,
       generate_series(0, %(processes)s - 1) p,
       (SELECT %(start)s + n * interval '5 minutes' AS ts, n
          FROM generate_series(0, %(steps)s - 1) n) t
"""


def sizes(cr):
    """``{relation: MB}`` of the history's tables, their indexes and TOAST included."""
    cr.execute(
        "SELECT relname, pg_total_relation_size(oid) / 1048576.0 FROM pg_class"
        " WHERE relname IN ('memory_snapshot', 'memory_snapshot_rollup') ORDER BY relname"
    )
    # By relation, indexes apart (printed under the table).
    cr.execute(
        "SELECT c.relname, pg_relation_size(c.oid) / 1048576.0 FROM pg_class c"
        " WHERE c.relname LIKE 'memory\\_snapshot%%' AND c.relkind IN ('r', 'i') ORDER BY 2 DESC"
    )
    DETAIL[:] = cr.fetchall()
    cr.execute(
        "SELECT relname, pg_total_relation_size(oid) / 1048576.0 FROM pg_class"
        " WHERE relname IN ('memory_snapshot', 'memory_snapshot_rollup') ORDER BY relname"
    )
    return dict(cr.fetchall())


def query_ms(func, log=None):
    """Database time of ``func()`` in milliseconds, as Odoo's cursor counts it.

    ``log``, a list, receives ``(ms, query)`` of each query.
    """
    thread = threading.current_thread()
    thread.query_count, thread.query_time = 0, 0.0
    if log is not None:
        thread.query_hooks = (lambda _cr, query, _params, _start, delay: log.append((delay * 1000, query)),)
    try:
        func()
    finally:
        thread.query_hooks = ()
    return thread.query_time * 1000, thread.query_count


def wall_ms(func):
    start = time.perf_counter()
    func()
    return (time.perf_counter() - start) * 1000


def measure(env, repeat):
    """``(scrape DB ms, queries, graph ms, groups)``: medians of ``repeat`` runs, caches warm."""
    Snapshot, History = env["memory.snapshot"], env["memory.snapshot.history"].with_context(tz="UTC")
    pids = list(range(1000, 1040))

    def scrape():
        env.invalidate_all()  # a scrape is a request of its own: no record cache
        Snapshot._scrape_figures("host-01", pids)

    def graph():
        env.invalidate_all()
        return History._read_group(
            [("period", "=", "30d"), ("host_gone", "=", False)], ["date:day", "host"], ["rss_max_mb:max"]
        )

    scrape(), graph()  # warm-up: settings cached, plans and pages in memory
    scrapes = [query_ms(scrape) for _ in range(repeat)]
    log = []
    query_ms(scrape, log)
    for ms, query in sorted(log, key=lambda entry: -entry[0])[:3]:
        print(f"  scrape query {ms:.1f} ms: {' '.join(str(query).split())[:300]}")
    graphs = [wall_ms(graph) for _ in range(repeat)]
    return (
        statistics.median(ms for ms, _n in scrapes),
        scrapes[0][1],
        statistics.median(graphs),
        len(graph()),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--odoo", required=True, help="Odoo source tree, e.g. /opt/odoo/18.0")
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--processes", type=int, default=40)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--prefix", default="bench_history")
    parser.add_argument("--keep-db", action="store_true", help="keep the database (to look into it)")
    args = parser.parse_args()
    setup_odoo(args.odoo)

    from odoo import SUPERUSER_ID, api, release
    from odoo.modules.registry import Registry

    from odoo.addons.memory_hygiene.tests import harness

    db = harness.server_database(("memory_hygiene",), name=f"{args.prefix}_{release.series[:2]}")
    steps = args.days * 24 * 12
    rows = args.hosts * args.processes * steps
    try:
        registry = Registry(db)
        generated = generate(registry, args, steps)
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            before_size = sizes(cr)
            before = measure(env, args.repeat)
        began = time.perf_counter()
        chunks = roll_up(registry)
        rolled = time.perf_counter() - began
        vacuum_full(db)
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            after_size = sizes(cr)
            cr.execute("SELECT tier, count(*) FROM memory_snapshot_rollup GROUP BY tier ORDER BY tier")
            tiers = dict(cr.fetchall())
            cr.execute("SELECT count(*) FROM memory_snapshot")
            tiers["raw"] = cr.fetchone()[0]
            after = measure(env, args.repeat)
    finally:
        if args.keep_db:
            harness._DATABASES.clear()  # noqa: SLF001 - nothing left for the harness to drop at exit
        else:
            harness.drop()

    report(args, rows, generated, chunks, rolled, (before_size, before), (after_size, after), tiers)
    return 0


def generate(registry, args, steps):
    """Insert the snapshots of ``args.hosts`` x ``args.processes`` x ``steps``; the seconds it took."""
    from odoo import SUPERUSER_ID, api, fields

    from odoo.addons.memory_hygiene.core.common import params

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["ir.config_parameter"].set_param(params.SNAPSHOT_INTERVAL, "60")
        start = fields.Datetime.now().replace(microsecond=0) - steps * timedelta(minutes=5)
        began = time.perf_counter()
        cr.execute(
            GENERATE, {"hosts": args.hosts, "processes": args.processes, "steps": steps, "start": start}
        )
        cr.execute("ANALYZE memory_snapshot")
        return time.perf_counter() - began


def vacuum_full(db):
    """``VACUUM FULL ANALYZE`` both tables (outside of a transaction: a connection in autocommit)."""
    import psycopg2

    from odoo.sql_db import connection_info_for

    _name, info = connection_info_for(db)
    connection = psycopg2.connect(**info)
    try:
        connection.autocommit = True
        with connection.cursor() as cr:
            # A transaction of another database of the cluster that began before the purge keeps its
            # dead rows: try again a few seconds later until the size stops shrinking.
            for _attempt in range(10):
                cr.execute("VACUUM FULL ANALYZE memory_snapshot")
                cr.execute("VACUUM FULL ANALYZE memory_snapshot_rollup")
                cr.execute(
                    "SELECT pg_relation_size('memory_snapshot'), sum(pg_column_size(s.*))"
                    " FROM memory_snapshot s"
                )
                size, data = cr.fetchone()
                if size <= 1.5 * (data or 0) + 8192:  # no dead rows left (page overhead aside)
                    break
                time.sleep(5)
    finally:
        connection.close()


def roll_up(registry):
    """Roll up and purge as the scheduled action does, a chunk per transaction; the number of chunks."""
    from odoo import SUPERUSER_ID, api

    chunks, more = 0, True
    while more:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            more = env["memory.snapshot.rollup"]._housekeep(
                purge_limit=200_000, max_buckets={"hour": 24, "day": 31}
            )
            chunks += 1
    return chunks


def report(args, rows, generated, chunks, rolled, before, after, tiers):  # noqa: PLR0913 - one table
    """Print the table of the run."""
    from odoo import release

    from odoo.addons.memory_hygiene.core.common import params

    defaults = [params.PARAMS[key].default for key in params.HISTORY_RETENTIONS]
    print(
        f"\nmemory_hygiene history, Odoo {release.series}: {args.hosts} hosts x {args.processes} processes"
        f" x {args.days} days of 5-minute snapshots ({rows:,} rows generated in {generated:.0f} s;"
        f" roll-up and purge in {chunks} chunks, {rolled:.0f} s), default retentions"
        f" ({defaults[0]} h full resolution, {defaults[1]} days of hours, {defaults[2]} days of days)\n"
    )
    print(
        "| | rows (raw / hour / day) | snapshots + roll-ups with indexes (MB) "
        "| metrics scrape, database (ms) | 30-day graph by host (ms) |"
    )
    print("|---|---:|---:|---:|---:|")
    (before_size, b), (after_size, a) = before, after
    print(
        f"| before the roll-up | {rows:,} / 0 / 0 | {sum(before_size.values()):,.0f} | {b[0]:.1f}"
        f" ({b[1]} queries) | {b[2]:,.0f} ({b[3]} groups) |"
    )
    total = sum(after_size.values())
    print(
        f"| after (`VACUUM FULL`) | {tiers['raw']:,} / {tiers.get('hour', 0):,} / {tiers.get('day', 0):,}"
        f" | {total:,.1f} ({' + '.join(f'{mb:.1f}' for mb in after_size.values())})"
        f" | {a[0]:.1f} ({a[1]} queries) | {a[2]:,.0f} ({a[3]} groups) |"
    )
    verdicts = (
        ("size", total < TARGET_MB, f"< {TARGET_MB} MB"),
        ("scrape", a[0] <= TARGET_SCRAPE_MS, f"<= {TARGET_SCRAPE_MS} ms"),
        ("graph", a[2] <= TARGET_GRAPH_MS, f"<= {TARGET_GRAPH_MS} ms"),
    )
    print("\n" + ", ".join(f"{name} {target}: {'ok' if ok else 'FAIL'}" for name, ok, target in verdicts))
    print("\nAfter, by relation (MB): " + ", ".join(f"{name} {mb:.1f}" for name, mb in DETAIL))


if __name__ == "__main__":
    sys.exit(main())

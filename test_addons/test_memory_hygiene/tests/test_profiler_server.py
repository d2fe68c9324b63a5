import pathlib

from odoo.tests import TransactionCase, tagged

from odoo.addons.memory_hygiene.tests.harness import (
    OdooServer,
    db_cursor,
    server_database,
    wait_until,
    wake_cron_workers,
)

from ..models import test_memory_leak_job as jobs
from .common import USER_ADDON

CRONS = ("ir_cron_test_leak_job", "ir_cron_test_tracked_job")


@tagged("post_install", "-at_install", "memory_hygiene_server")
class TestProfilerUnderServer(TransactionCase):
    """The profiler in a real prefork server: the cron worker runs the jobs, on real cursors."""

    def test_cron_worker_leaves_its_runs(self):
        db = server_database(USER_ADDON)
        with db_cursor(db) as cr:
            cr.execute(
                "SELECT name, res_id FROM ir_model_data WHERE module = 'test_memory_hygiene' AND name IN %s",
                [CRONS],
            )
            cron_ids = dict(cr.fetchall())
            ids = tuple(cron_ids.values())
            cr.execute("DELETE FROM memory_cron_run WHERE cron_id IN %s", [ids])
            cr.execute(
                """
                UPDATE ir_cron
                   SET active = true, memory_profile = true, memory_profile_runs = 0,
                       memory_leak_state = 'unknown', failure_count = 0, lastcall = NULL,
                       nextcall = (now() at time zone 'UTC') - interval '1 minute'
                 WHERE id IN %s
                """,
                [ids],
            )

        def switch_off():
            with db_cursor(db) as cr:
                cr.execute("UPDATE ir_cron SET active = false WHERE id IN %s", [ids])

        self.addCleanup(switch_off)
        server = OdooServer(db, workers=2, max_cron_threads=1)
        self.addCleanup(server.stop)
        server.start()
        wake_cron_workers(db)

        def fetch(query, *args):
            with db_cursor(db) as cr:
                cr.execute(query, args)
                return cr.fetchall()

        def both(query):
            rows = fetch(query, ids)
            return rows if len({row[0] for row in rows}) == 2 else None

        runs = wait_until(
            lambda: both(
                "SELECT cron_id, pid, state, top_site, traced_growth_mb"
                " FROM memory_cron_run WHERE cron_id IN %s"
            ),
            180,
            interval=1,
            message="a memory.cron.run of each profiled cron",
        )
        by_cron = {row[0]: row[1:] for row in runs}
        cron_pids = server.pids()["cron"]

        pid, state, top_site, traced_growth_mb = by_cron[cron_ids["ir_cron_test_leak_job"]]
        self.assertEqual(state, "ok")
        self.assertIn(pid, cron_pids, "written by the cron worker")
        leak_line = next(
            number
            for number, line in enumerate(pathlib.Path(jobs.__file__).read_text().splitlines(), start=1)
            if "LEAK.append(" in line
        )
        self.assertEqual(top_site, f"{jobs.__file__}:{leak_line}")
        self.assertGreater(traced_growth_mb, 0.75)

        pid, state, _top_site, traced_growth_mb = by_cron[cron_ids["ir_cron_test_tracked_job"]]
        self.assertEqual(state, "ok")
        self.assertIn(pid, cron_pids)
        self.assertLess(
            traced_growth_mb, 0.5, "what the run's transaction held until its commit is not kept memory"
        )

        # The job's own bookkeeping counted each run: no wait on the job's row lock, no failure.
        counted = wait_until(
            lambda: both(
                "SELECT id, failure_count, lastcall FROM ir_cron WHERE id IN %s AND memory_profile_runs = 1"
            ),
            60,
            interval=1,
            message="the runs counted on the crons",
        )
        for _cron_id, failure_count, lastcall in counted:
            self.assertEqual(failure_count, 0)
            self.assertTrue(lastcall)
        self.assertIn("memory: RSS", server.log())

    def test_uncharged_rows_that_waited_are_written_when_the_worker_exits(self):
        """A healthy action's uncharged run waits in the cron worker's memory; its exit writes it."""
        db = server_database(USER_ADDON)
        with db_cursor(db) as cr:
            cr.execute(
                "SELECT res_id FROM ir_model_data WHERE module = 'test_memory_hygiene' AND name = %s",
                ["ir_cron_test_tracked_job"],
            )
            (cron_id,) = cr.fetchone()
            cr.execute("DELETE FROM memory_cron_run WHERE cron_id = %s", [cron_id])
            for key, value in (("heap_every", "1000"), ("leak_threshold", "256")):
                cr.execute(
                    "INSERT INTO ir_config_parameter (key, value) VALUES (%s, %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    [f"memory_hygiene.{key}", value],
                )
            # Settled healthy: the verdict's window of charged runs that kept nothing.
            cr.execute(
                "INSERT INTO memory_cron_run (cron_id, start, state, trace, growth_mb, charged)"
                " SELECT %s, (now() at time zone 'UTC') - interval '1 hour', 'ok', 'no', 0, true"
                "   FROM generate_series(1, 20)",
                [cron_id],
            )
            # No other job of this worker may write the row that waits before the test looks.
            cr.execute("SELECT id FROM ir_cron WHERE active AND id != %s", [cron_id])
            others = tuple(cron for (cron,) in cr.fetchall())
            if others:
                cr.execute("UPDATE ir_cron SET active = false WHERE id IN %s", [others])
            cr.execute(
                """
                UPDATE ir_cron
                   SET active = true, memory_profile = false, memory_leak_state = 'healthy',
                       failure_count = 0, lastcall = NULL,
                       nextcall = (now() at time zone 'UTC') - interval '1 minute'
                 WHERE id = %s
                """,
                [cron_id],
            )

        def restore():
            with db_cursor(db) as cr:
                cr.execute(
                    "UPDATE ir_cron SET active = false, memory_leak_state = 'unknown' WHERE id = %s",
                    [cron_id],
                )
                cr.execute(
                    "DELETE FROM ir_config_parameter"
                    " WHERE key IN ('memory_hygiene.heap_every', 'memory_hygiene.leak_threshold')"
                )
                cr.execute("DELETE FROM memory_cron_run WHERE cron_id = %s", [cron_id])
                if others:
                    cr.execute("UPDATE ir_cron SET active = true WHERE id IN %s", [others])

        self.addCleanup(restore)
        server = OdooServer(db, workers=2, max_cron_threads=1)
        self.addCleanup(server.stop)
        server.start()

        def fetch(query):
            with db_cursor(db) as cr:
                cr.execute(query, [cron_id])
                return cr.fetchall()

        wake_cron_workers(db)

        runs_query = (
            "SELECT pid, charged FROM memory_cron_run WHERE cron_id = %s AND pid IS NOT NULL ORDER BY id"
        )
        first = wait_until(lambda: fetch(runs_query), 180, interval=1, message="the first run, charged")
        self.assertEqual(first[0][1], True, "the first run of a healthy action in a process is charged")
        # The row was committed with the job's rescheduling (one commit): the job is due again once
        # this UPDATE is, and only the second run's rescheduling moves nextcall back to the future.
        # (Not lastcall: it holds whole seconds, and the second run may end within the first one's.)
        with db_cursor(db) as cr:
            cr.execute(
                "UPDATE ir_cron SET nextcall = (now() at time zone 'UTC') - interval '1 minute'"
                " WHERE id = %s",
                [cron_id],
            )
        wake_cron_workers(db)
        wait_until(
            lambda: fetch("SELECT nextcall > (now() at time zone 'UTC') FROM ir_cron WHERE id = %s")[0][0],
            180,
            interval=1,
            message="the second run done (rescheduled)",
        )
        self.assertEqual(len(fetch(runs_query)), 1, "the uncharged run's row waits in the worker")
        server.stop(graceful=True)
        runs = fetch(runs_query)
        self.assertEqual([charged for _pid, charged in runs], [True, False], "written at the worker's exit")
        self.assertEqual(runs[0][0], runs[1][0], "by the cron worker that ran both")

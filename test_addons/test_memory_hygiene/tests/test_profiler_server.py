import pathlib

from odoo.tests import TransactionCase, tagged

from odoo.addons.memory_hygiene.tests.harness import OdooServer, db_cursor, server_database, wait_until

from ..models import test_memory_leak_job as jobs


@tagged("post_install", "-at_install")
class TestProfilerUnderServer(TransactionCase):
    """The profiler in a real prefork server: the cron worker runs the job, on real cursors."""

    def test_cron_worker_leaves_its_run(self):
        db = server_database()
        with db_cursor(db) as cr:
            cr.execute(
                "SELECT res_id FROM ir_model_data WHERE module = 'test_memory_hygiene' AND name = %s",
                ["ir_cron_test_leak_job"],
            )
            cron_id = cr.fetchone()[0]
            cr.execute("DELETE FROM memory_cron_run WHERE cron_id = %s", [cron_id])
            cr.execute(
                """
                UPDATE ir_cron
                   SET active = true, memory_profile = true, memory_profile_runs = 0,
                       memory_leak_state = 'unknown', failure_count = 0,
                       nextcall = (now() at time zone 'UTC') - interval '1 minute'
                 WHERE id = %s
                """,
                [cron_id],
            )

        def switch_off():
            with db_cursor(db) as cr:
                cr.execute("UPDATE ir_cron SET active = false WHERE id = %s", [cron_id])

        self.addCleanup(switch_off)
        server = OdooServer(db, workers=2, max_cron_threads=1)
        self.addCleanup(server.stop)
        server.start()

        def fetch(query):
            with db_cursor(db) as cr:
                cr.execute(query, [cron_id])
                return cr.fetchone()

        run = wait_until(
            lambda: fetch(
                "SELECT pid, state, top_site, traced_growth_mb FROM memory_cron_run WHERE cron_id = %s"
            ),
            120,
            interval=1,
            message="a memory.cron.run of the profiled cron",
        )
        pid, state, top_site, traced_growth_mb = run
        self.assertEqual(state, "ok")
        self.assertIn(pid, server.pids()["cron"], "written by the cron worker")
        leak_line = next(
            number
            for number, line in enumerate(pathlib.Path(jobs.__file__).read_text().splitlines(), start=1)
            if "LEAK.append(" in line
        )
        self.assertEqual(top_site, f"{jobs.__file__}:{leak_line}")
        self.assertGreater(traced_growth_mb, 0.75)
        # The job's own bookkeeping counted the run: no wait on the job's row lock, no failure.
        counted = wait_until(
            lambda: fetch(
                "SELECT memory_profile_runs, failure_count, lastcall FROM ir_cron WHERE id = %s"
                " AND memory_profile_runs = 1"
            ),
            60,
            interval=1,
            message="the run counted on the cron",
        )
        self.assertEqual(counted[1], 0)
        self.assertTrue(counted[2])
        self.assertIn("memory: RSS", server.log())

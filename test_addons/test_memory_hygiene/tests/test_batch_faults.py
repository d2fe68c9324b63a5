from unittest.mock import patch

from odoo import SUPERUSER_ID, api
from odoo.exceptions import UserError
from odoo.tests import tagged

from odoo.addons.memory_hygiene import odoo_runtime
from odoo.addons.memory_hygiene.models import memory_batch_mixin

from .common import BatchCase

MIXIN_LOGGER = memory_batch_mixin.__name__
CRON_LOGGER = "odoo.addons.base.models.ir_cron"
SQL_LOGGER = "odoo.sql_db"


@tagged("post_install", "-at_install")
class TestBatchFaults(BatchCase):
    """Faults that need real transactions: records committed apart from the test's transaction.

    The test's own transaction cannot commit, nor see rows committed after it
    began: these tests work on a real cursor of the registry (not the test's),
    on records committed for them and deleted afterwards, with the mixin's
    per-batch commit on, as in a production cron worker.
    """

    def real_env(self):
        cr = self.registry.cursor()  # a real transaction, apart from the test's
        self.addCleanup(cr.close)
        return api.Environment(cr, SUPERUSER_ID, {})

    def committed_records(self, count):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
            ids = env["test.memory.batch.record"].create([{"name": f"real {i}"} for i in range(count)]).ids
        self.addCleanup(self.delete_committed, ids)
        return ids

    def delete_committed(self, ids):
        with self.registry.cursor() as cr:
            cr.execute("DELETE FROM test_memory_batch_record WHERE id IN %s", [tuple(ids)])

    def states(self, ids):
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT id, state, name FROM test_memory_batch_record WHERE id IN %s ORDER BY id",
                [tuple(ids)],
            )
            return cr.fetchall()

    def test_concurrent_committed_update_is_retried_not_failed(self):
        """A user saves a record of the batch meanwhile: REPEATABLE READ fails the write; retried."""
        ids = self.committed_records(6)
        env = self.real_env()
        calls = []

        def close(batch):
            calls.append(batch.ids)
            if len(calls) == 1:
                with self.registry.cursor() as other:  # a user saving record 3, committed
                    other.execute(
                        "UPDATE test_memory_batch_record SET name = 'saved' WHERE id = %s", [ids[2]]
                    )
            batch.write({"state": "done"})

        with (
            patch.object(odoo_runtime, "in_test_mode", return_value=False),
            self.assertLogs(SQL_LOGGER, "ERROR") as sql_logs,  # Odoo logs the failed UPDATE
        ):
            result = env["test.memory.batch.record"]._batch_process([("id", "in", ids)], close, batch_size=6)
        self.assertIn("could not serialize access", sql_logs.output[0])
        self.assertEqual((result["stop_reason"], result["processed"], result["failed_ids"]), ("done", 6, []))
        self.assertEqual(calls, [ids, ids], "the batch again, in a new transaction")
        self.assertEqual({state for _id, state, _name in self.states(ids)}, {"done"})
        self.assertEqual(self.states(ids)[2][2], "saved", "the user's change is kept")

    def test_callback_that_commits_gets_one_clear_error(self):
        ids = self.committed_records(6)
        env = self.real_env()
        calls = []

        def close_and_commit(batch):
            calls.append(batch.ids)
            batch.write({"state": "done"})
            batch.env.cr.commit()  # "to be safe": the habit the mixin refuses

        with (
            patch.object(odoo_runtime, "in_test_mode", return_value=False),
            self.assertRaisesRegex(UserError, r"close_and_commit called cr.commit\(\) or cr.rollback\(\)"),
            self.assertNoLogs(MIXIN_LOGGER, "ERROR"),
            self.assertLogs(SQL_LOGGER, "ERROR"),  # Odoo logs the RELEASE of the lost savepoint
        ):
            env["test.memory.batch.record"]._batch_process(
                [("id", "in", ids)], close_and_commit, batch_size=3
            )
        env.cr.rollback()
        self.assertEqual(calls, [ids[:3]], "stopped at the first attempt, no record retried")
        self.assertEqual([state for _id, state, _name in self.states(ids)], ["done"] * 3 + ["todo"] * 3)

    def test_after_commit_gets_the_committed_records_only(self):
        ids = self.committed_records(6)
        env = self.real_env()
        committed = []

        def close(batch):
            batch.write({"state": "done"})
            if ids[4] in batch.ids:
                raise ValueError("bad record")

        def mail(batch):
            # Called after the commit: the records' work is durable.
            committed.append((batch.ids, [state for _id, state, _name in self.states(batch.ids)]))

        with (
            patch.object(odoo_runtime, "in_test_mode", return_value=False),
            self.assertLogs(MIXIN_LOGGER, "ERROR"),
        ):
            result = env["test.memory.batch.record"]._batch_process(
                [("id", "in", ids)], close, batch_size=3, after_commit=mail
            )
        self.assertEqual(result["failed_ids"], [ids[4]])
        self.assertEqual(
            committed,
            [(ids[:3], ["done"] * 3), ([ids[3], ids[5]], ["done"] * 2)],
            "once per batch, failed records left out",
        )

    def test_systematic_failure_counted_by_odoo(self):
        """Every record fails alike: the job fails, Odoo's consecutive-failure count goes up."""
        self.make_records(30)
        cron = self.make_cron("model._cron_call_dead_service()", user=self.env.ref("base.user_root"))
        self.assertEqual(cron.failure_count, 0)
        with self.assertLogs(MIXIN_LOGGER, "ERROR") as logs, self.assertLogs(CRON_LOGGER, "ERROR"):
            self.run_cron_job(cron)
        self.assertEqual(len(logs.records), 1, logs.output)
        self.assertIn("5 records in a row failed alone with ConnectionRefusedError", logs.output[0])
        self.assertEqual(cron.failure_count, 1)
        self.assertEqual(self.Record.search_count([("state", "=", "todo")]), 30)

import time
from datetime import timedelta
from unittest.mock import patch

import psutil
from freezegun import freeze_time

from odoo.exceptions import AccessError
from odoo.tests import tagged
from odoo.tools import config

from odoo.addons.memory_hygiene import compat, odoo_runtime
from odoo.addons.memory_hygiene.core.batch import batching

from .common import BatchCase

MIXIN_LOGGER = "odoo.addons.memory_hygiene.models.memory_batch_mixin"

MIB = 1024 * 1024


@tagged("post_install", "-at_install")
class TestBatchInCron(BatchCase):
    """Inside a scheduled run: budgets from odoo.conf, progress, re-trigger, resume."""

    def small_soft_limit(self):
        """A soft limit above this process, and a share of it below: one batch per call.

        Below the soft limit a call starts a batch (Odoo would not replace the
        worker, so waiting would not help); after it, the next one would pass the share.
        """
        self.env["ir.config_parameter"].sudo().set_param("memory_hygiene.batch_memory_share", "10")
        soft = int(psutil.Process().memory_info().vms * 1.5)
        return patch.dict(config.options, {"limit_memory_soft": soft, "limit_time_real_cron": 0})

    def triggers(self, cron):
        return self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)])

    def test_memory_default_from_soft_limit_stops_retriggers_and_reports(self):
        records = self.make_records(12)
        cron = self.make_cron("model._cron_touch_todo()")
        model, progress = self.cron_env_record(cron)
        triggers_before = self.triggers(cron)
        with self.small_soft_limit():
            result = model._cron_touch_todo(batch_size=5)
        self.assertEqual((result["stop_reason"], result["processed"], result["remaining"]), ("memory", 5, 7))
        self.assertEqual(len(self.triggers(cron) - triggers_before), 1, "the cron is triggered again")
        self.assertEqual((progress.done, progress.remaining), (5, 7), "Odoo's progress record is fed")
        position = self.env["memory.batch.position"].search([("cron_id", "=", cron.id)])
        self.assertEqual(position.last_id, records[4].id)
        self.assertEqual(position.res_model, "test.memory.batch.record")

    def test_no_budget_without_cron_limits(self):
        self.make_records(12)
        cron = self.make_cron("model._cron_touch_todo()")
        model, _progress = self.cron_env_record(cron)
        with patch.dict(config.options, {"limit_memory_soft": 0, "limit_time_real_cron": 0}):
            result = model._cron_touch_todo(batch_size=5)
        self.assertEqual((result["stop_reason"], result["processed"]), ("done", 12))
        self.assertFalse(self.env["memory.batch.position"].search([("cron_id", "=", cron.id)]))

    def test_time_default_from_cron_real_time_limit(self):
        self.make_records(20)
        cron = self.make_cron("model._cron_touch_todo()")
        model, _progress = self.cron_env_record(cron)
        options = {"limit_memory_soft": 0, "limit_time_real_cron": 10}  # 80 %: 8 s
        with patch.dict(config.options, options), freeze_time("2026-01-01") as frozen:

            def slow(batch):
                batch._touch()
                frozen.tick(delta=timedelta(seconds=3))

            result = model._batch_process([("state", "=", "todo")], slow, batch_size=4)
        # 3 s per batch: a third would end at 9 s, past 8 s.
        self.assertEqual((result["stop_reason"], result["batches"]), ("time", 2))
        self.assertEqual(len(self.triggers(cron)), 1)

    def test_share_of_soft_limit_is_a_setting(self):
        self.make_records(6)
        cron = self.make_cron("model._cron_touch_todo()")
        model, _progress = self.cron_env_record(cron)
        vms_mb = psutil.Process().memory_info().vms / MIB
        # Soft limit twice the current size: 80 % is above it, 40 % below.
        options = {"limit_memory_soft": int(vms_mb * 2 * MIB), "limit_time_real_cron": 0}
        icp = self.env["ir.config_parameter"].sudo()
        with patch.dict(config.options, options):
            self.assertEqual(model._cron_touch_todo(batch_size=2)["stop_reason"], "done")
            icp.set_param("memory_hygiene.batch_memory_share", "40")
            self.assertEqual(model._cron_touch_todo(batch_size=2)["stop_reason"], "memory")

    def test_job_resumes_through_odoo_cron_machinery(self):
        """Real ir.cron jobs: the callback leaves all records in the domain.

        One batch per job (memory budget: past the share after the first batch,
        the job's later calls start none); each job re-triggers the cron and the
        next resumes after the last record handed on. Every record is touched
        exactly once, the run ends, and the position is cleared.
        """
        records = self.make_records(23)
        cron = self.make_cron("model._cron_touch_todo(batch_size=5)", user=self.env.ref("base.user_root"))
        jobs = 0
        with self.small_soft_limit():
            while self.env["memory.batch.position"].search([("cron_id", "=", cron.id)]) or not jobs:
                self.run_cron_job(cron)
                jobs += 1
                self.assertLess(jobs, 10, "the run ends")
        self.assertEqual(records.mapped("value"), [1] * 23, "each record handed on exactly once")
        self.assertEqual(jobs, 5, "one batch per job")
        progress = self.env["ir.cron.progress"].search([("cron_id", "=", cron.id)])
        self.assertEqual(sum(progress.mapped("done")), 23)
        runs = self.env["memory.cron.run"].search([("cron_id", "=", cron.id)])
        self.assertGreaterEqual(len(runs), jobs, "each call of each job is accounted, in one row")
        self.assertEqual(set(runs.mapped("trace")), {"no"}, "and none traced: nobody asked, none suspect")

    def test_budget_spent_on_entry_starts_no_batch(self):
        """A job's call that finds the real-time budget spent returns at once, and re-triggers."""
        self.make_records(4)
        cron = self.make_cron("model._cron_touch_todo()")
        model, _progress = self.cron_env_record(cron)
        calls = []
        with patch.dict(config.options, {"limit_memory_soft": 0, "limit_time_real_cron": 10}):
            batching.RUNNING_JOB.get()["started"] = time.monotonic() - 9  # the job began 9 s ago
            result = model._batch_process([("state", "=", "todo")], calls.append, batch_size=2)
        self.assertEqual(
            (result["stop_reason"], result["batches"], result["remaining"], calls), ("time", 0, 4, [])
        )
        self.assertEqual(len(self.triggers(cron)), 1)

    def test_progress_reported_and_committed_per_batch(self):
        """Outside tests: progress per batch, one commit per batch in the mixin's own step (mocked)."""
        self.make_records(6)
        cron = self.make_cron("model._cron_touch_todo()")
        model, progress = self.cron_env_record(cron)
        with (
            patch.object(odoo_runtime, "in_test_mode", return_value=False),
            patch.object(self.env.cr, "commit") as commit,
        ):
            result = model._cron_touch_todo(batch_size=2)
        self.assertEqual(result["batches"], 3)
        self.assertEqual(commit.call_count, 4, "one per batch, one for the cleared position")
        self.assertEqual((progress.done, progress.remaining), (6, 0))

    def test_a_context_does_not_make_a_scheduled_run(self):
        """A caller's cron_id in the context (RPC, a button) moves no cron's position or progress."""
        self.make_records(6)
        cron = self.make_cron("model._cron_touch_todo()")
        _cron, progress = cron.sudo().with_context(cron_id=cron.id)._add_progress()
        positions = self.env["memory.batch.position"]
        positions.sudo().create({"key": "other", "cron_id": cron.id, "last_id": 0})
        model = self.Record.with_context(cron_id=cron.id, ir_cron_progress_id=progress.id)
        triggers = self.triggers(cron)
        result = model._batch_process([("state", "=", "todo")], lambda b: b._touch(), batch_size=2)
        self.assertEqual((result["stop_reason"], result["processed"]), ("done", 6))
        self.assertEqual((progress.done, progress.remaining), (0, 0), "progress untouched")
        self.assertEqual(self.triggers(cron), triggers, "no trigger")
        self.assertEqual(positions.sudo().search([("cron_id", "=", cron.id)]).mapped("key"), ["other"])

    def test_two_calls_in_one_cron_keep_their_own_positions(self):
        records = self.make_records(10)
        cron = self.make_cron("model._cron_touch_todo()")
        model, _progress = self.cron_env_record(cron)
        seen = {"low": [], "all": []}
        with freeze_time("2026-01-01") as frozen, patch.dict(config.options, {"limit_memory_soft": 0}):

            def touch(label):
                def callback(batch):
                    seen[label].extend(batch.ids)
                    frozen.tick(delta=timedelta(seconds=2))

                return callback

            # First call: the last 5 records, stopped after one batch of 3 (2 s per batch, 3 s budget).
            model._batch_process([("id", "in", records[5:].ids)], touch("low"), batch_size=3, max_seconds=3)
            # Second call, another domain: its own position, from the beginning.
            model._batch_process([("id", "in", records.ids)], touch("all"), batch_size=10, max_seconds=30)
        self.assertEqual(seen["all"], records.ids, "not skipped below the first call's position")
        keys = self.env["memory.batch.position"].search([("cron_id", "=", cron.id)]).mapped("key")
        self.assertEqual(len(keys), 1, "the first call's position is kept, the second is cleared")
        self.assertIn("test_two_calls_in_one_cron_keep_their_own_positions", keys[0])

    def test_ten_calls_in_one_job_stay_inside_the_budget(self):
        """Odoo calls the action again while records remain: a spent budget starts no batch."""
        self.make_records(40)
        cron = self.make_cron("model._cron_touch_todo()")
        model, _progress = self.cron_env_record(cron)
        batches = []
        with (
            freeze_time("2026-01-01") as frozen,
            patch.dict(config.options, {"limit_memory_soft": 0, "limit_time_real_cron": 10}),
        ):

            def slow(batch):
                batch._touch()
                frozen.tick(delta=timedelta(seconds=3))

            for _call in range(10):
                batches.append(model._batch_process([("state", "=", "todo")], slow, batch_size=2)["batches"])
            elapsed = frozen.time_to_freeze
        # 8 s of budget (80 % of 10 s) from the job's start, 3 s per batch: 2 batches in all.
        self.assertEqual(batches, [2] + [0] * 9)
        self.assertLessEqual(elapsed.timestamp() - 1767225600, 8)

    def test_run_manually_keeps_the_job_lock(self):
        """18.0's Run Manually holds the job's lock in the request: one batch, no commit, re-trigger."""
        records = self.make_records(12)
        cron = self.make_cron("model._cron_touch_todo(batch_size=5)", user=self.env.ref("base.user_root"))
        if not compat.RUN_MANUALLY_SKIPS_CALLBACK:
            self.skipTest("19.0's Run Manually runs the job like the cron worker, on a cursor of its own")
        with (
            patch.object(odoo_runtime, "in_test_mode", return_value=False),
            patch.object(type(self.env.cr), "commit") as commit,
            self.small_soft_limit(),
        ):
            self.run_manually(cron)
        self.assertEqual(commit.call_count, 0, "the lock is released only when the request ends")
        self.assertEqual(records.mapped("value"), [1] * 5 + [0] * 7)
        self.assertEqual(len(self.triggers(cron)), 1, "the cron worker does the rest")
        position = self.env["memory.batch.position"].search([("cron_id", "=", cron.id)])
        self.assertEqual(position.last_id, records[4].id)

    def test_failed_records_are_kept_skipped_and_retried(self):
        records = self.make_records(8)
        records[2].poison = True
        cron = self.make_cron("model._cron_touch_todo()")
        model, _progress = self.cron_env_record(cron)
        handed = []

        def close(batch):
            handed.extend(batch.ids)
            batch.write({"state": "done"})
            if batch.filtered("poison"):
                raise ValueError("cannot close a poisoned record")

        todo = [("state", "=", "todo")]
        with self.assertLogs(MIXIN_LOGGER, "ERROR"):
            first = model._batch_process(todo, close, batch_size=4)
        self.assertEqual(first["failed_ids"], records[2].ids)
        failures = self.env["memory.batch.failure"].search([("cron_id", "=", cron.id)])
        self.assertEqual(
            [(f.res_model, f.res_id, f.exception_type, f.message) for f in failures],
            [("test.memory.batch.record", records[2].id, "ValueError", "cannot close a poisoned record")],
        )
        self.assertEqual(cron.memory_failure_count, 1)

        handed.clear()
        second = model._batch_process(todo, close, batch_size=4)
        self.assertEqual(
            (second["processed"], second["failed_ids"], handed), (0, [], []), "skipped, not bisected"
        )

        with self.assertRaises(AccessError):
            failures.with_user(self.user).action_retry()
        action = cron.action_memory_open_failures()
        self.assertEqual(self.env["memory.batch.failure"].search(action["domain"]), failures)
        records[2].poison = False
        failures.action_retry()
        self.assertFalse(failures.exists())
        self.assertEqual(len(self.triggers(cron)), 1, "the cron runs again")
        third = model._batch_process(todo, close, batch_size=4)
        self.assertEqual((third["processed"], handed), (1, records[2].ids))

from datetime import timedelta
from unittest.mock import patch

import psutil
from freezegun import freeze_time

from odoo.tests import tagged
from odoo.tools import config

from odoo.addons.memory_hygiene import compat

from .common import BatchCase

MIB = 1024 * 1024


@tagged("post_install", "-at_install")
class TestBatchInCron(BatchCase):
    """Inside a scheduled run: budgets from odoo.conf, progress, re-trigger, resume."""

    def small_soft_limit(self):
        # Any Odoo process is above 80 % of 64 MiB of address space: one batch per run.
        return patch.dict(config.options, {"limit_memory_soft": 64 * MIB, "limit_time_real_cron": 0})

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
        options = {"limit_memory_soft": 0, "limit_time_real_cron": 10}  # 80 %: stop after 8 s
        with patch.dict(config.options, options), freeze_time("2026-01-01") as frozen:

            def slow(batch):
                batch._touch()
                frozen.tick(delta=timedelta(seconds=3))

            result = model._batch_process([("state", "=", "todo")], slow, batch_size=4)
        self.assertEqual((result["stop_reason"], result["batches"]), ("time", 3))
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
        """A real ir.cron job: the callback leaves all records in the domain.

        One batch per server-action call (memory budget); Odoo's job loop calls
        again because progress says some remain; each call resumes after the
        last record handed on. Every record is touched exactly once, the run
        ends, and the position is cleared.
        """
        records = self.make_records(23)
        cron = self.make_cron("model._cron_touch_todo(batch_size=5)", user=self.env.ref("base.user_root"))
        with self.small_soft_limit():
            self.run_cron_job(cron)
        self.assertEqual(records.mapped("value"), [1] * 23, "each record handed on exactly once")
        self.assertFalse(self.env["memory.batch.position"].search([("cron_id", "=", cron.id)]))
        progress = self.env["ir.cron.progress"].search([("cron_id", "=", cron.id)])
        self.assertEqual(sum(progress.mapped("done")), 23)
        self.assertEqual(len(progress), 5, "one server-action call per batch")
        runs = self.env["memory.cron.run"].search([("cron_id", "=", cron.id)])
        self.assertEqual(len(runs), 5, "each call of the job is accounted, in one row")
        self.assertEqual(set(runs.mapped("trace")), {"no"}, "and none traced: nobody asked, none suspect")

    def test_progress_goes_through_the_series_api(self):
        """Outside tests, progress is reported with the series' own call (commit mocked)."""
        self.make_records(6)
        cron = self.make_cron("model._cron_touch_todo()")
        model, progress = self.cron_env_record(cron)
        method = "_commit_progress" if compat.MAJOR >= 19 else "_notify_progress"
        cron_class = type(self.env["ir.cron"])
        with (
            patch.object(compat, "in_test_mode", return_value=False),
            patch.object(self.env.cr, "commit"),
            patch.object(cron_class, method, autospec=True, side_effect=getattr(cron_class, method)) as api,
        ):
            result = model._cron_touch_todo(batch_size=2)
        self.assertEqual(result["batches"], 3)
        self.assertEqual(api.call_count, 3, f"{method} once per batch")
        self.assertEqual((progress.done, progress.remaining), (6, 0))

import os
import time

import psutil

from odoo import fields
from odoo.tests import TransactionCase, tagged

from .. import odoo_runtime
from ..core.snapshot import sampler
from ..core.worker import lifecycle


@tagged("post_install", "-at_install")
class TestWorkerLifecycle(TransactionCase):
    """The ORM side of worker lifecycle: what snapshots keep, storms, killed crons, rate-limited alerts."""

    def make_exit(self, **values):
        now = fields.Datetime.now()
        return self.env["memory.worker.exit"].create(
            {
                "host": odoo_runtime.host_name(),
                "pid": 4242,
                "kind": "http",
                "cause": "soft_limit",
                "evidence": "worker",
                "requests": 1,
                "age_seconds": 20,
                "ended_at": now,
                **values,
            }
        )

    def test_a_snapshot_keeps_what_its_process_was_doing(self):
        figures = sampler.sample(psutil.Process(os.getpid()))
        figures.update(
            kind="http", doing=lifecycle.doing("cron", self.env.cr.dbname, "#3 Slow", time.time() - 5)
        )
        other = dict(figures, doing=lifecycle.doing("http", "another_db", "/secret/path", time.time()))
        mine, theirs = self.env["memory.snapshot"]._record("manual", [figures, other])
        self.assertEqual(mine.doing, f"cron {self.env.cr.dbname}: #3 Slow")
        allowed = self.env["memory.diagnostics"]._server_wide_scope().allowed
        self.assertEqual(
            theirs.doing, "http another_db: /secret/path" if allowed else "http of another database"
        )

    def test_a_storm_needs_three_young_exits_of_a_kind(self):
        Exit = self.env["memory.worker.exit"]
        Exit.search([]).unlink()
        self.make_exit()
        self.make_exit(pid=4243, requests=500, age_seconds=7200)  # an old worker: no storm
        self.make_exit(pid=4244)
        self.assertEqual(Exit._storms(), {})
        self.make_exit(pid=4245)
        storm = Exit._storms()["http"]
        self.assertEqual((storm["count"], storm["cause"], storm["likely"]), (3, "soft_limit", "baseline"))
        self.assertIn("limit_memory_soft", storm["reason"])
        page = self.env["memory.diagnostics"].create({})
        self.assertIn("recycle storm: 3 http workers", page.lifecycle_alerts)
        report = self.env["memory.leak.report"]._build()
        self.assertTrue(any("recycle storm: 3 http workers" in note for note in report.notes), report.notes)

    def test_a_scheduled_action_killing_its_worker_is_flagged(self):
        cron = self.env.ref("memory_hygiene.ir_cron_memory_snapshot")
        for pid in (1, 2):
            self.make_exit(pid=pid, kind="cron", cause="real_time_limit", evidence="master", cron_id=cron.id)
        self.make_exit(pid=3, kind="cron", cause="stopped", cron_id=cron.id)
        [(flagged, figures)] = self.env["memory.worker.exit"]._killing_crons().items()
        self.assertEqual((flagged, figures["count"], figures["cause"]), (cron, 2, "real_time_limit"))
        self.assertIn("2 runs ended with their worker killed", figures["reason"])

    def test_an_alert_is_raised_once_per_cause_and_kind_per_period(self):
        Alert = self.env["memory.lifecycle.alert"]
        self.assertTrue(Alert._raise("storm", "http", "storm!", "raise limit_request"))
        self.assertFalse(Alert._raise("storm", "http", "storm again", "raise limit_request"))
        self.assertTrue(Alert._raise("storm", "cron", "a storm of crons", "advice"))
        alert = Alert.search([("key", "=", "storm:http")])
        self.assertEqual((alert.raised_count, alert.pending, alert.message), (1, True, "storm!"))
        # Once the period is over, the same cause alerts again.
        self.env.cr.execute(
            "UPDATE memory_lifecycle_alert SET last_raised = last_raised - interval '7 hours' WHERE id = %s",
            [alert.id],
        )
        self.assertTrue(Alert._raise("storm", "http", "storm later", "raise limit_request"))
        alert.invalidate_recordset()
        self.assertEqual((alert.raised_count, alert.message), (2, "storm later"))

    def test_an_oom_exit_alerts(self):
        exits = self.make_exit(cause="oom_killer", evidence="cgroup", doing="idle", rss_mb=900)
        exits._raise_alerts()
        alert = self.env["memory.lifecycle.alert"].search([("key", "=", "oom_killer:http")])
        self.assertIn("OOM-killed", alert.message)
        self.assertIn("limit_memory_hard", alert.advice)

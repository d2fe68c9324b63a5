import os
from datetime import timedelta
from unittest.mock import patch

from prometheus_client.parser import text_string_to_metric_families

from odoo import fields
from odoo.exceptions import ValidationError
from odoo.tests import HttpCase, TransactionCase, new_test_user, tagged
from odoo.tools import config

from .. import compat, odoo_runtime
from ..core.common import params
from ..core.common.units import MIB
from ..core.host import machine
from ..core.snapshot import rollup
from .test_endpoints import CALM, TOKEN

#: Roll everything due up in one call (the scheduled action takes a few buckets at a time).
ALL = {rollup.HOUR: 24 * 60, rollup.DAY: 60}
HOST = "mh-history-host"


class HistoryMixin:
    def empty_history(self):
        # The watermarks of the tiers are global: start from an empty history (rolled back).
        self.env.cr.execute("DELETE FROM memory_snapshot; DELETE FROM memory_snapshot_rollup")
        self.env.invalidate_all()

    def raw(self, date, pid, rss, host=HOST, **vals):
        return self.env["memory.snapshot"].create(
            {
                "date": date,
                "host": host,
                "pid": pid,
                "process_kind": vals.pop("kind", "http"),
                "trigger": "schedule",
                "rss_mb": rss,
                "vms_mb": rss * 4,
                "soft_limit_pct": rss / 10,
                **vals,
            }
        )

    def series(self, hours, pids=(11, 12), host=HOST, every=5, start=None):
        """Snapshots every ``every`` minutes over the ``hours`` before ``start`` (now), RSS up and down."""
        start = start or fields.Datetime.now()
        vals_list = [
            {
                "date": start - timedelta(minutes=step * every),
                "host": host,
                "pid": pid,
                "process_kind": "http",
                "trigger": "schedule",
                "rss_mb": 100.0 + (step * 7 + pid * 13) % 50,
                "vms_mb": 400.0 + (step * 11 + pid) % 90,
                "soft_limit_pct": 10.0 + step % 9,
            }
            for step in range(hours * 60 // every, 0, -1)
            for pid in pids
        ]
        return self.env["memory.snapshot"].create(vals_list)

    def housekeep(self, **kwargs):
        Rollup = self.env["memory.snapshot.rollup"]
        runs = 1
        while Rollup._housekeep(max_buckets=ALL, **kwargs):
            runs += 1
            self.assertLess(runs, 1000, "housekeeping must end")
        return runs

    def rollups(self, tier, host=HOST):
        return self.env["memory.snapshot.rollup"].search(
            [("tier", "=", tier), ("host", "=", host)], order="date"
        )


@tagged("post_install", "-at_install")
class TestSnapshotHistory(HistoryMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = new_test_user(cls.env, login="mh_history_admin", groups="base.group_system")
        cls.icp = cls.env["ir.config_parameter"].sudo()

    def setUp(self):
        super().setUp()
        self.empty_history()

    def test_hours_roll_up_min_max_last_and_recycles(self):
        t = fields.Datetime.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
        samples = [
            (t + timedelta(minutes=1), 7, 300.0, 0),
            (t + timedelta(minutes=6), 7, 120.0, 0),
            (t + timedelta(minutes=11), 7, 250.0, 0),
            (t + timedelta(minutes=16), 8, 90.0, 7),  # 8 replaced 7: a recycle
            (t + timedelta(minutes=61), 8, 95.0, 0),
        ]
        for date, pid, rss, replaced in samples:
            self.raw(date, pid, rss, recycled_pid=replaced, kind="cron")
        self.env["memory.snapshot.rollup"]._housekeep(max_buckets=ALL)
        hours = self.rollups(rollup.HOUR)
        self.assertEqual(
            [
                (h.date, h.pid, h.samples, h.rss_min_mb, h.rss_max_mb, h.rss_mb, h.vms_max_mb, h.recycles)
                for h in hours
            ],
            [
                (t, 7, 3, 120.0, 300.0, 250.0, 1200.0, 0),
                (t, 8, 1, 90.0, 90.0, 90.0, 360.0, 1),
                (t + timedelta(hours=1), 8, 1, 95.0, 95.0, 95.0, 380.0, 0),
            ],
        )
        self.assertEqual(hours.mapped("process_kind"), ["cron"] * 3)
        # The SQL roll-up gives what the Odoo-free one (core.snapshot.rollup) does.
        odoo_free = rollup.roll_up(
            [
                {
                    "date": d,
                    "host": HOST,
                    "pid": p,
                    "kind": "cron",
                    "rss_mb": r,
                    "vms_mb": r * 4,
                    "soft_limit_pct": r / 10,
                    "recycled": bool(x),
                }
                for d, p, r, x in samples
            ],
            rollup.HOUR,
        )
        fields_ = (
            "date",
            "pid",
            "samples",
            "rss_min_mb",
            "rss_max_mb",
            "rss_mb",
            "vms_min_mb",
            "vms_max_mb",
            "vms_mb",
            "soft_limit_pct",
            "recycles",
            "last_date",
        )
        self.assertEqual(
            [tuple(h[f] for f in fields_) for h in hours], [tuple(b[f] for f in fields_) for b in odoo_free]
        )
        # Full-resolution snapshots stay within their retention.
        self.assertEqual(self.env["memory.snapshot"].search_count([("host", "=", HOST)]), 5)

    def test_the_current_hour_waits_for_its_end(self):
        now = fields.Datetime.now()
        hour = now.replace(minute=0, second=0, microsecond=0)
        self.raw(hour + timedelta(seconds=1), 5, 100.0)
        self.raw(hour - timedelta(hours=2), 5, 200.0)
        self.env["memory.snapshot.rollup"]._housekeep(max_buckets=ALL)
        self.assertEqual(self.rollups(rollup.HOUR).mapped("date"), [hour - timedelta(hours=2)])
        self.assertEqual(self.env["memory.snapshot"].search_count([("host", "=", HOST)]), 2)

    def test_each_tier_kept_for_its_retention(self):
        self.icp.set_param(params.SNAPSHOT_RAW_HOURS, "24")
        self.icp.set_param(params.SNAPSHOT_HOUR_DAYS, "7")
        self.icp.set_param(params.SNAPSHOT_RETENTION_DAYS, "30")
        now = fields.Datetime.now()
        noon = {
            days: rollup.floor(now - timedelta(days=days), rollup.DAY) + timedelta(hours=12)
            for days in (40, 20, 3)
        }
        for start in noon.values():
            self.series(2, start=start, every=30)  # 10:00 to 11:30 of that day
        self.series(3, every=30)  # the last three hours
        self.housekeep()
        cut = rollup.purge_before(now, 24, 7, 30)
        raw = self.env["memory.snapshot"].search([("host", "=", HOST)])
        self.assertEqual(len(raw), 2 * 6, "the last three hours at full resolution, nothing older")
        hours = self.rollups(rollup.HOUR)
        self.assertGreaterEqual(min(hours.mapped("date")), cut[rollup.HOUR])
        self.assertIn(noon[3] - timedelta(hours=2), hours.mapped("date"))
        days = self.rollups(rollup.DAY)
        day_dates = set(days.mapped("date"))
        self.assertIn(noon[20] - timedelta(hours=12), day_dates, "past the hours' retention: a day")
        self.assertIn(noon[3] - timedelta(hours=12), day_dates)
        self.assertNotIn(noon[40] - timedelta(hours=12), day_dates, "past the daily retention")
        twenty = days.filtered(lambda d: d.pid == 11 and d.date == noon[20] - timedelta(hours=12))
        self.assertEqual(twenty.samples, 4)

    def test_purge_in_bounded_chunks_and_the_autovacuum_runs_again(self):
        self.icp.set_param(params.SNAPSHOT_RAW_HOURS, "2")
        hour = rollup.floor(fields.Datetime.now(), rollup.HOUR)
        old = self.env["memory.snapshot"]
        for minutes in (300, 240, 180, 150):  # older than 2 hours, in hours that are over
            old |= self.raw(hour - timedelta(minutes=minutes), 1, 100.0)
        kept = self.raw(hour - timedelta(minutes=30), 1, 100.0)
        Rollup = self.env["memory.snapshot.rollup"]
        self.assertTrue(
            Rollup._housekeep(purge_limit=2, max_buckets=ALL), "more may be left after a chunk of 2"
        )
        self.assertEqual(len(old.exists()), 2)
        cron_class = type(self.env["ir.cron"])
        with patch.object(compat, "GC_UNLINK_LIMIT", 2), patch.object(cron_class, "_trigger") as trigger:
            self.env["memory.snapshot"]._gc_snapshots()
            self.assertFalse(old.exists())
            trigger.assert_called_once()
            self.env["memory.snapshot"]._gc_snapshots()
            self.assertEqual(trigger.call_count, 1, "nothing more left: no new trigger")
        self.assertTrue(kept.exists(), "the snapshot of the last 2 hours stays")
        older = self.rollups(rollup.HOUR).filtered(lambda h: h.date <= hour - timedelta(hours=3))
        self.assertEqual(sum(older.mapped("samples")), 4, "every snapshot rolled up before its purge")

    def test_the_scheduled_action_rolls_up_and_survives_a_failure(self):
        self.series(3, pids=(1,))
        self.env["memory.snapshot"]._cron_sample()
        self.assertTrue(self.rollups(rollup.HOUR))
        with (
            patch.object(
                type(self.env["memory.snapshot.rollup"]), "_housekeep", side_effect=RuntimeError("x")
            ),
            self.assertLogs("odoo.addons.memory_hygiene.models.memory_snapshot", "ERROR"),
        ):
            self.assertTrue(self.env["memory.snapshot"]._cron_sample(), "the round is recorded all the same")

    def test_recycles_and_graph_read_the_same_across_tiers(self):
        now = fields.Datetime.now()
        self.series(30, pids=(21, 22))
        self.series(30, pids=(21,), start=now - timedelta(days=10))
        self.series(30, pids=(31,), host="mh-history-other")
        for hours_ago, replaced in ((1, 20), (12, 21), (28, 22), (10 * 24 + 3, 19)):
            self.raw(now - timedelta(hours=hours_ago, minutes=2), 23, 120.0, recycled_pid=replaced)
        # Days in UTC, as the daily roll-ups (a user's time zone shifts where old days start).
        Snapshot, History = (
            self.env["memory.snapshot"],
            self.env["memory.snapshot.history"].with_context(tz="UTC"),
        )
        since = now - timedelta(hours=24)
        recycles = Snapshot._recycles_per_host()
        recent = Snapshot._recycles_per_host(since)
        self.assertEqual(recycles[HOST], 4)
        self.assertEqual(recent[HOST], 2)

        def graph():
            return History._read_group(
                [("period", "=", "30d"), ("host_gone", "=", False)],
                ["date:day", "host"],
                ["rss_max_mb:max", "rss_min_mb:min", "recycles:sum"],
            )

        before = graph()
        self.assertEqual(set(History.search([]).mapped("tier")), {rollup.RAW}, "nothing rolled up yet")
        self.icp.set_param(params.SNAPSHOT_RAW_HOURS, "2")
        self.icp.set_param(params.SNAPSHOT_HOUR_DAYS, "1")
        self.housekeep()
        self.assertEqual(graph(), before, "peaks, lows and recycles per day and host read the same")
        self.assertEqual(
            set(History.search([]).mapped("tier")),
            {rollup.RAW, rollup.HOUR, rollup.DAY},
            "the graph read all tiers",
        )
        self.assertEqual(Snapshot._recycles_per_host(), recycles)
        self.assertEqual(Snapshot._recycles_per_host(rollup.floor(since, rollup.HOUR)), recent)

    def test_gone_hosts_leave_the_history(self):
        self.series(1, pids=(1,))
        self.raw(fields.Datetime.now() - timedelta(days=3), 2, 100.0, host="mh-history-gone")
        History = self.env["memory.snapshot.history"]
        self.assertEqual(set(History.search([("host_gone", "=", False)]).mapped("host")), {HOST})
        self.assertEqual(set(History.search([("host_gone", "=", True)]).mapped("host")), {"mh-history-gone"})

    def test_retentions_are_validated_together(self):
        Settings = self.env["res.config.settings"].with_user(self.admin)
        with self.assertRaisesRegex(ValidationError, r"Keep daily history \(days\) must be at least"):
            Settings.create({"memory_snapshot_hour_days": 10, "memory_snapshot_retention_days": 5})
        with self.assertRaisesRegex(ValidationError, "must cover the leak-suspect span"):
            Settings.create({"memory_snapshot_raw_hours": 1, "memory_growth_min_span": 120})
        with self.assertRaisesRegex(
            ValidationError, r"Keep full-resolution snapshots \(hours\) must be at least 1"
        ):
            Settings.create({"memory_snapshot_raw_hours": 0})
        Settings.create({"memory_snapshot_raw_hours": 6, "memory_snapshot_hour_days": 3}).execute()
        self.assertEqual(self.icp.get_param(params.SNAPSHOT_RAW_HOURS), "6")
        self.assertEqual(self.icp.get_param(params.SNAPSHOT_HOUR_DAYS), "3")


@tagged("post_install", "-at_install")
class TestSnapshotHistoryEndpoints(HistoryMixin, HttpCase):
    def setUp(self):
        super().setUp()
        self.empty_history()
        self.env["ir.config_parameter"].sudo().set_param(params.ENDPOINT_TOKEN, TOKEN)
        self.startPatcher(patch.dict(config.options, {"limit_memory_soft": 64 * 1024 * MIB}))
        self.startPatcher(patch.object(machine, "read", return_value=CALM))

    def scrape(self):
        response = self.url_open("/memory_hygiene/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual(response.status_code, 200)
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        return {
            name: sorted((s.labels.get("pid"), s.value) for s in families[name].samples)
            for name in ("memory_hygiene_recycles", "memory_hygiene_process_leak_suspect")
        }

    def health(self):
        response = self.url_open("/memory_hygiene/health", headers={"Authorization": f"Bearer {TOKEN}"})
        body = response.json()
        return response.status_code, body["status"], body["problems"]

    def test_scrape_and_health_read_the_same_after_the_roll_up(self):
        host, now = odoo_runtime.host_name(), fields.Datetime.now()
        self.series(30, pids=(os.getpid(), 4), host=host)
        self.raw(now - timedelta(minutes=20), os.getpid(), 150.0, host=host, leak_suspect=True)
        for hours_ago in (2, 20, 29):
            self.raw(now - timedelta(hours=hours_ago), 5, 100.0, host=host, recycled_pid=4)
        before, health = self.scrape(), self.health()
        self.assertEqual(before["memory_hygiene_recycles"], [(None, 3.0)])
        self.assertIn((str(os.getpid()), 1.0), before["memory_hygiene_process_leak_suspect"])
        self.env["ir.config_parameter"].sudo().set_param(params.SNAPSHOT_RAW_HOURS, "2")
        self.housekeep()
        self.assertLess(
            self.env["memory.snapshot"].search_count([("host", "=", host)]), 30 * 12, "older snapshots purged"
        )
        self.assertEqual(self.scrape(), before)
        self.assertEqual(self.health(), health)

import contextlib
import json
import os
import socket
from datetime import timedelta
from unittest.mock import patch

import psutil
import psycopg2

import odoo
from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import config

from .. import compat, odoo_runtime
from ..core.common import params
from ..core.common.units import MIB, naive_utc
from ..core.snapshot import sampler
from ..models.memory_host import LOCK_NAMESPACE, lock_key


@tagged("post_install", "-at_install")
class TestMemorySnapshot(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = new_test_user(cls.env, login="mh_snapshot_admin", groups="base.group_system")
        cls.user = new_test_user(cls.env, login="mh_snapshot_user", groups="base.group_user")
        cls.Snapshot = cls.env["memory.snapshot"].with_user(cls.admin)
        cls.icp = cls.env["ir.config_parameter"].sudo()

    def fake_snapshot(self, minutes_ago, **vals):
        return self.env["memory.snapshot"].create(
            {
                "date": fields.Datetime.now() - timedelta(minutes=minutes_ago),
                "host": "elsewhere",
                "pid": 1,
                "process_kind": "http",
                "trigger": "schedule",
                **vals,
            }
        )

    def test_sample_now_records_this_process_with_odoo_figures(self):
        self.Snapshot.action_sample_now()
        snapshot = self.Snapshot.search([("pid", "=", os.getpid()), ("trigger", "=", "manual")])
        self.assertEqual(len(snapshot), 1)
        self.assertEqual(snapshot.process_kind, "threaded", "the test runner is a threaded server")
        self.assertTrue(snapshot.round_key)
        rss = psutil.Process().memory_info().rss / MIB
        self.assertAlmostEqual(snapshot.rss_mb, rss, delta=rss * 0.3)
        self.assertGreater(snapshot.vms_mb, snapshot.rss_mb)
        soft = config["limit_memory_soft"]
        self.assertAlmostEqual(snapshot.soft_limit_mb, soft / MIB)
        self.assertAlmostEqual(snapshot.soft_limit_pct, snapshot.vms_mb * MIB * 100 / soft, places=1)
        self.assertGreater(snapshot.num_fds, 0)
        self.assertGreater(snapshot.ormcache_entries, 0)
        self.assertRegex(snapshot.gc_counts, r"^\d+/\d+/\d+$")
        top = json.loads(snapshot.top_types)
        self.assertEqual(len(top), 20, "pympler's top types, on demand")
        self.assertIn("MiB", snapshot.top_types_display)

    def test_uss_only_when_enabled(self):
        self.Snapshot._cron_sample()
        self.assertFalse(self.Snapshot.search([("trigger", "=", "schedule")], limit=1).uss_mb)
        self.icp.set_param(params.SNAPSHOT_USS, "True")
        self.Snapshot._cron_sample()
        self.assertGreater(self.Snapshot.search([("trigger", "=", "schedule")], limit=1).uss_mb, 0)

    def test_scheduled_action_samples_every_interval_of_the_settings(self):
        cron = self.env.ref("memory_hygiene.ir_cron_memory_snapshot")
        self.assertTrue(cron.active)
        self.assertEqual((cron.interval_number, cron.interval_type), (5, "minutes"))
        settings = (
            self.env["res.config.settings"].with_user(self.admin).create({"memory_snapshot_interval": 12})
        )
        settings.execute()
        self.assertEqual((cron.interval_number, cron.interval_type), (12, "minutes"))
        before = self.Snapshot.search_count([])
        cron.ir_actions_server_id.with_user(cron.user_id).run()  # what the cron worker runs
        self.assertGreater(self.Snapshot.search_count([("trigger", "=", "schedule")]), 0)
        self.assertGreater(self.Snapshot.search_count([]), before)

    def test_growth_and_leak_suspect_from_earlier_snapshots(self):
        process = psutil.Process()
        started = naive_utc(int(process.create_time()))
        rss = process.memory_info().rss / MIB
        for minutes_ago in range(90, 0, -5):  # +200 MiB/h for 90 minutes
            self.fake_snapshot(
                minutes_ago,
                host=_host(),
                pid=os.getpid(),
                started_at=started,
                rss_mb=rss - 200 * minutes_ago / 60,
            )
        self.fake_snapshot(
            30, host=_host(), pid=os.getpid(), rss_mb=1.0
        )  # same pid, another process: ignored
        snapshot = self.Snapshot._cron_sample().filtered(lambda s: s.pid == os.getpid())
        self.assertAlmostEqual(snapshot.growth_mb_per_hour, 200, delta=20)
        self.assertTrue(snapshot.leak_suspect)
        self.assertIn(snapshot, self.Snapshot.search([("leak_suspect", "=", True)]))

    def test_steady_process_is_no_leak_suspect(self):
        process = psutil.Process()
        started = naive_utc(int(process.create_time()))
        rss = process.memory_info().rss / MIB
        for minutes_ago in range(90, 0, -5):
            self.fake_snapshot(minutes_ago, host=_host(), pid=os.getpid(), started_at=started, rss_mb=rss)
        snapshot = self.Snapshot._cron_sample().filtered(lambda s: s.pid == os.getpid())
        self.assertLess(abs(snapshot.growth_mb_per_hour), 20)
        self.assertFalse(snapshot.leak_suspect)

    def test_recycle_recorded_when_a_worker_is_replaced(self):
        def tree(*pids):
            kinds = {10: "master", 20: "gevent"}
            return [
                {**sampler.sample(psutil.Process()), "pid": pid, "kind": kinds.get(pid, "http")}
                for pid in pids
            ]

        prefork = {"mode": "prefork", "root_pid": 10}
        with (
            patch.object(odoo_runtime, "server_info", return_value=prefork),
            patch.object(sampler, "sample_tree") as tree_of,
        ):
            tree_of.return_value = tree(10, 11, 12, 20)
            first = self.Snapshot._cron_sample()
            tree_of.return_value = tree(10, 11, 13, 20)
            second = self.Snapshot._cron_sample()
        self.assertFalse(first.filtered("recycled_pid"))
        recycled = second.filtered("recycled_pid")
        self.assertEqual((recycled.pid, recycled.recycled_pid), (13, 12))
        self.assertEqual(self.Snapshot._recycles_per_host(), {_host(): 1})
        self.assertEqual(self.Snapshot.search([("recycled_pid", "!=", 0)]), recycled)

    def test_search_filters(self):
        recent = self.fake_snapshot(10, soft_limit_pct=95)
        old = self.fake_snapshot(60 * 5, soft_limit_pct=40)
        self.assertEqual(self.Snapshot.search([("host", "=", "elsewhere"), ("recent", "=", "1h")]), recent)
        self.assertEqual(
            self.Snapshot.search([("host", "=", "elsewhere"), ("recent", "=", "24h")]), recent | old
        )
        self.assertEqual(
            self.Snapshot.search([("host", "=", "elsewhere"), ("above_warn", "=", True)]), recent
        )
        self.assertEqual(self.Snapshot.search([("host", "=", "elsewhere"), ("above_warn", "=", False)]), old)
        self.icp.set_param(params.WARN_SHARE, "30")
        self.assertEqual(
            self.Snapshot.search([("host", "=", "elsewhere"), ("above_warn", "=", True)]), recent | old
        )
        self.assertTrue(old.with_user(self.admin).above_warn)

    def test_autovacuum_purges_old_snapshots_in_bounded_chunks(self):
        self.icp.set_param(params.SNAPSHOT_RETENTION_DAYS, "10")
        old = (
            self.fake_snapshot(60 * 24 * 11)
            | self.fake_snapshot(60 * 24 * 12)
            | self.fake_snapshot(60 * 24 * 30)
        )
        kept = self.fake_snapshot(60 * 24 * 9)
        cron_class = type(self.env["ir.cron"])
        with patch.object(compat, "GC_UNLINK_LIMIT", 2), patch.object(cron_class, "_trigger") as trigger:
            self.env["memory.snapshot"]._gc_snapshots()
            self.assertEqual(len(old.exists()), 1, "one chunk of 2")
            trigger.assert_called_once()
            self.env["memory.snapshot"]._gc_snapshots()
            self.assertFalse(old.exists())
            self.assertEqual(trigger.call_count, 1, "nothing more left: no new trigger")
        self.assertTrue(kept.exists())

    def test_the_host_is_named_by_the_server_option_or_the_environment(self):
        """Containers get a new hostname at each deploy: a server option names the host."""
        self.assertEqual(_host(), socket.gethostname(), "unnamed: the hostname")
        with patch.dict(config.options, {odoo_runtime.HOST_NAME_OPTION: "odoo-green"}):
            self.assertEqual({s.host for s in self.Snapshot._cron_sample()}, {"odoo-green"})
            with patch.dict(os.environ, {odoo_runtime.HOST_NAME_ENV: "odoo-blue"}):
                self.assertEqual({s.host for s in self.Snapshot._cron_sample()}, {"odoo-blue"}, "env wins")
                page = self.env["memory.diagnostics"].create({})
                page.action_refresh()
                self.assertEqual(page.host, "odoo-blue")

    def test_hosts_their_rounds_and_gone_hosts(self):
        self.fake_snapshot(60, host="old-host", recycled_pid=7, round_key="r-old")  # 4 intervals of 5 min
        self.fake_snapshot(3, host="near-host")
        self.Snapshot._cron_sample()
        hosts = {h.name: h for h in self.env["memory.host"].search([])}
        self.assertLessEqual({"old-host", "near-host", _host()}, set(hosts))
        self.assertEqual(hosts["old-host"].state, "gone")
        self.assertEqual(hosts["near-host"].state, "live")
        self.assertFalse(hosts["near-host"].last_round_at, "no round, a self-sample")
        self.assertEqual(hosts[_host()].state, "live")
        self.assertTrue(hosts[_host()].last_round_at)
        self.assertEqual(self.env["memory.host"]._gone_names(), ["old-host"])
        self.assertEqual(
            self.env["memory.host"].search([("state", "=", "live")]).mapped("name"),
            sorted(name for name in hosts if name != "old-host"),
        )
        # Gone hosts leave the trends and the leak report.
        self.assertFalse(self.Snapshot.search([("host_gone", "=", False), ("host", "=", "old-host")]))
        self.assertTrue(self.Snapshot.search([("host_gone", "=", True), ("host", "=", "old-host")]))
        self.assertNotIn("old-host", self.Snapshot._recycles_per_host())
        figures = self.env["memory.leak.report"]._snapshot_figures(fields.Datetime.now(), 90)
        self.assertNotIn("old-host", {p["host"] for p in figures["processes"]} | set(figures["recycles"]))

    def test_one_process_per_host_takes_its_round(self):
        Host = self.env["memory.host"]
        self.assertTrue(Host._claim_round("fresh-host"), "never sampled: due")
        self.Snapshot._cron_sample()
        self.assertFalse(Host._claim_round(_host()), "a round was taken within the interval")
        self.fake_snapshot(10, host="late-host", round_key="r-late")
        self.assertTrue(Host._claim_round("late-host"), "its last round is 2 intervals old")
        # Another process (another connection) taking a host's round holds it until its transaction ends.
        with db_connection(self.env.cr.dbname) as other:
            other.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, lock_key("busy-host")])
            self.assertTrue(other.fetchone()[0])
            self.assertFalse(Host._claim_round("busy-host"))
            with patch.object(odoo_runtime, "host_name", return_value="busy-host"):
                self.assertFalse(self.Snapshot._cron_sample(), "the scheduled round is left to the other")
                self.assertTrue(self.Snapshot._sample_round("manual"), "Sample now samples all the same")

    def test_internal_user_cannot_read_snapshots(self):
        self.fake_snapshot(1)
        with self.assertRaises(AccessError):
            self.env["memory.snapshot"].with_user(self.user).search([])
        with self.assertRaises(AccessError):
            self.env["memory.snapshot"].with_user(self.user).action_sample_now()
        self.assertTrue(self.Snapshot.search([]))


def _host():
    return odoo_runtime.host_name()


@contextlib.contextmanager
def db_connection(dbname):
    """A cursor of another connection to the database, in a transaction rolled back at the end."""
    _name, info = odoo.sql_db.connection_info_for(dbname)
    connection = psycopg2.connect(**info)
    try:
        with connection.cursor() as cr:
            yield cr
    finally:
        connection.rollback()
        connection.close()

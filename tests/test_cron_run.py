from datetime import datetime, timedelta
from unittest.mock import patch

from odoo.exceptions import AccessError, ValidationError
from odoo.tests import tagged

from .. import compat, odoo_runtime
from ..core.common import params
from .common import CronRunCase


@tagged("post_install", "-at_install")
class TestCronRun(CronRunCase):
    def test_record_keeps_the_structured_top_allocations(self):
        run = self.make_run(traced_mb=1.0, state="failed", error="ValueError: boom", record_cache_size=12)
        self.assertEqual(run.top_site, "/srv/addons/partner_sync/models/sync.py:42")
        self.assertEqual(len(run.line_ids), 1)
        line = run.line_ids
        self.assertEqual((line.rank, line.file, line.line, line.count_diff), (1, run.top_site[:-3], 42, 1))
        self.assertEqual(line.site, run.top_site)
        self.assertEqual(line.size_diff_kb, 1024)
        self.assertEqual(line.cron_id, self.cron)
        self.assertEqual(
            run.top_text, "/srv/addons/partner_sync/models/sync.py:42: size=5.0 MiB (+1.0 MiB), count=5 (+1)"
        )
        self.assertAlmostEqual(run.rss_growth_mb, 1.0, places=3)
        self.assertEqual((run.state, run.error, run.record_cache_size), ("failed", "ValueError: boom", 12))
        self.assertEqual(self.cron.memory_run_count, 1)

    def test_lean_log_model(self):
        Run = self.env["memory.cron.run"]
        self.assertFalse(Run._log_access)
        self.assertNotIn("create_uid", Run._fields)
        self.assertFalse(Run._fields["error"].prefetch)
        self.assertFalse(Run._fields["top_text"].prefetch)

    def test_runs_go_with_their_cron(self):
        run = self.make_run()
        self.cron.unlink()
        self.assertFalse(run.exists())

    def test_autovacuum_keeps_the_verdict_window_and_recent_runs(self):
        window = params.PARAMS[params.PROFILE_WINDOW].default
        old = datetime.now() - timedelta(days=40)
        old_runs = [self.make_run(start=old + timedelta(minutes=i)) for i in range(window + 3)]
        other = self.cron.copy({"name": "other"})
        other_old = [self.make_run(cron=other, start=old + timedelta(minutes=i)) for i in range(2)]
        recent = self.make_run(cron=other, start=datetime.now() - timedelta(days=1))
        self.env["memory.cron.run"]._gc_runs()
        Run = self.env["memory.cron.run"]
        self.assertEqual(Run.search([("cron_id", "=", self.cron.id)]).ids[::-1], [r.id for r in old_runs[3:]])
        self.assertTrue(all(r.exists() for r in other_old), "within the window of their cron")
        self.assertTrue(recent.exists())

    def test_autovacuum_keeps_the_charged_runs_of_the_verdict(self):
        """A healthy action charges one run in N: the verdict's K charged runs stay, behind uncharged ones."""
        window = params.PARAMS[params.PROFILE_WINDOW].default
        old = (datetime.now() - timedelta(days=40)).replace(microsecond=0)
        self.env["memory.cron.run"]._insert_accounted(
            [
                {
                    "cron_id": self.cron.id,
                    "start": old + timedelta(minutes=minute),
                    "state": "ok",
                    "trace": "no",
                    "growth_mb": 0.01 if minute < window + 2 else None,
                }
                for minute in range(2 * window + 4)
            ]
        )
        self.env["memory.cron.run"]._gc_runs()
        kept = self.env["memory.cron.run"].search([("cron_id", "=", self.cron.id)], order="start, id")
        self.assertEqual(
            [run.start for run in kept],
            [old + timedelta(minutes=m) for m in range(2, window + 2)]
            + [old + timedelta(minutes=m) for m in range(window + 4, 2 * window + 4)],
        )
        self.assertEqual(kept.mapped("charged"), [True] * window + [False] * window)

    def test_runs_stored_before_the_charged_column_are_marked_by_their_growth(self):
        """Upgrading: a row with a growth and no ``charged`` value was charged; one without was not."""
        Run = self.env["memory.cron.run"]
        run = {"cron_id": self.cron.id, "start": datetime(2026, 1, 1), "state": "ok", "trace": "no"}
        Run._insert_accounted([{**run, "growth_mb": 0.25}, {**run, "growth_mb": None}])
        self.env.cr.execute("UPDATE memory_cron_run SET charged = NULL WHERE cron_id = %s", [self.cron.id])
        Run.init()
        self.env.cr.execute(
            "SELECT growth_mb IS NOT NULL, charged FROM memory_cron_run WHERE cron_id = %s ORDER BY id",
            [self.cron.id],
        )
        self.assertEqual(self.env.cr.fetchall(), [(True, True), (False, None)])

    def test_autovacuum_is_bounded(self):
        old = datetime.now() - timedelta(days=40)
        for i in range(8):
            self.make_run(start=old + timedelta(minutes=i))
        self.icp.set_param(params.PROFILE_WINDOW, "2")
        triggers_before = self.env["ir.cron.trigger"].search_count([])
        with patch.object(compat, "GC_UNLINK_LIMIT", 4):
            result = self.env["memory.cron.run"]._gc_runs()
        self.assertEqual(self.env["memory.cron.run"].search_count([("cron_id", "=", self.cron.id)]), 4)
        if compat.AUTOVACUUM_REPEATS:
            self.assertEqual(result, (4, True), "19.0 calls it again in the same run")
        else:
            self.assertEqual(result, 4)
            self.assertEqual(
                self.env["ir.cron.trigger"].search_count([]), triggers_before + 1, "18.0: re-triggered"
            )
        self.icp.set_param(params.PROFILE_RETENTION_DAYS, "60")
        self.env["memory.cron.run"]._gc_runs()
        self.assertEqual(self.env["memory.cron.run"].search_count([("cron_id", "=", self.cron.id)]), 4)

    def test_admins_read_and_delete_runs_users_do_not_see_them(self):
        run = self.make_run()
        as_admin = run.with_user(self.admin)
        self.assertEqual(as_admin.read(["top_site"])[0]["top_site"], run.top_site)
        with self.assertRaises(AccessError):
            as_admin.write({"duration": 1})
        with self.assertRaises(AccessError):
            self.env["memory.cron.run"].with_user(self.admin).create({"cron_id": self.cron.id})
        for model in ("memory.cron.run", "memory.cron.run.line"):
            with self.assertRaises(AccessError):
                self.env[model].with_user(self.user).search([])
        as_admin.unlink()
        self.assertFalse(run.exists())

    def test_profile_switch_on_the_form_for_admins(self):
        self.cron.with_user(self.admin).write({"memory_profile": True, "memory_profile_every": 4})
        self.assertEqual(self.cron.memory_leak_state, "unknown")
        with self.assertRaisesRegex(ValidationError, "at least 1"):
            self.cron.with_user(self.admin).memory_profile_every = -2
        with self.assertRaises(AccessError):
            self.cron.with_user(self.user).memory_profile = False

    def test_retention_setting_is_validated(self):
        settings = self.env["res.config.settings"].with_user(self.admin)
        self.assertEqual(settings.create({}).memory_profile_retention_days, 30)
        # The message names the setting by its label on the page.
        with self.assertRaisesRegex(ValidationError, r"Keep profiled runs \(days\) must be at least 1"):
            settings.create({"memory_profile_retention_days": 0})


@tagged("post_install", "-at_install")
class TestIndependentCursor(CronRunCase):
    def test_without_registry_test_mode_a_savepoint_of_the_test_transaction(self):
        with odoo_runtime.independent_cursor(self.env) as cr:
            self.assertIs(cr, self.env.cr, "no real transaction escapes the test")
            cr.execute("UPDATE ir_cron SET priority = 42 WHERE id = %s", [self.cron.id])
        self.cron.invalidate_recordset(["priority"])
        self.assertEqual(self.cron.priority, 42)
        with self.assertRaises(ZeroDivisionError), odoo_runtime.independent_cursor(self.env) as cr:
            cr.execute("UPDATE ir_cron SET priority = 7 WHERE id = %s", [self.cron.id])
            _ = 1 / 0
        self.cron.invalidate_recordset(["priority"])
        self.assertEqual(self.cron.priority, 42, "the block alone is rolled back")

    def test_with_registry_test_mode_a_test_cursor(self):
        with compat.registry_test_mode(self), odoo_runtime.independent_cursor(self.env) as cr:
            self.assertTrue(compat.is_test_cursor(cr))
            self.assertIsNot(cr, self.env.cr)
            cr.execute("UPDATE ir_cron SET priority = 43 WHERE id = %s", [self.cron.id])
        self.cron.invalidate_recordset(["priority"])
        self.assertEqual(self.cron.priority, 43, "committed into the test's transaction")


@tagged("post_install", "-at_install")
class TestViews(CronRunCase):
    def test_views_load_for_admins(self):
        cron_views = self.env["ir.cron"].with_user(self.admin).get_views([(False, "form"), (False, "list")])
        form = cron_views["views"]["form"]["arch"]
        for name in ("memory_profile", "memory_profile_every", "memory_leak_state", "memory_run_count"):
            self.assertIn(f'name="{name}"', form)
        self.assertIn('name="action_memory_open_runs"', form)
        self.assertIn('name="memory_leak_state"', cron_views["views"]["list"]["arch"])
        modes = [(False, mode) for mode in ("list", "form", "graph", "pivot", "search")]
        run_views = self.env["memory.cron.run"].with_user(self.admin).get_views(modes)
        self.assertEqual(set(run_views["views"]), {"list", "form", "graph", "pivot", "search"})
        menu = self.env.ref("memory_hygiene.memory_cron_run_menu")
        self.assertEqual(menu.parent_id, self.env.ref("memory_hygiene.memory_hygiene_menu"))
        self.assertEqual(menu.action, self.env.ref("memory_hygiene.memory_cron_run_action"))


@tagged("post_install", "-at_install")
class TestAfterRunTransaction(CronRunCase):
    def test_called_once_when_a_real_transaction_ends(self):
        """18.0 defers to the end of the run's transaction; 19.0 has committed already."""
        for ending in ("commit", "rollback", "close"):
            calls = []
            # A real cursor, on which nothing is written: its commit has nothing to make durable.
            cr = self.registry.cursor()
            try:
                deferred = compat.after_run_transaction(cr, lambda calls=calls: calls.append(1))
                self.assertEqual(calls, [], "not before the transaction ends")
                if ending != "close":
                    getattr(cr, ending)()
            finally:
                cr.close()
            with self.subTest(ending=ending):
                self.assertEqual(deferred, not compat.CALLBACK_COMMITS)
                self.assertEqual(calls, [1] if deferred else [], "exactly once")

    def test_not_deferred_on_test_cursors(self):
        with compat.registry_test_mode(self), self.registry.cursor() as cr:
            self.assertTrue(compat.is_test_cursor(cr))
            self.assertFalse(
                compat.after_run_transaction(cr, lambda: None), "test cursors skip post-commit hooks"
            )

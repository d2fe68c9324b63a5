from datetime import timedelta

from odoo import fields
from odoo.tests.common import TransactionCase, new_test_user

from odoo.addons.memory_hygiene import compat
from odoo.addons.memory_hygiene.core.batch import batching

#: The modules of a real server that runs this test addon's crons and routes.
USER_ADDON = ("memory_hygiene", "test_memory_hygiene")


class BatchCase(TransactionCase):
    """Records of the user's model, handled by an internal user (no admin rights)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = new_test_user(cls.env, login="mh_batch_user", groups="base.group_user")
        cls.Record = cls.env["test.memory.batch.record"].with_user(cls.user)

    def make_records(self, count, **vals):
        # No tracking noise from the fixtures themselves.
        return self.Record.with_context(tracking_disable=True).create(
            [{"name": f"record {i}", **vals} for i in range(count)]
        )

    def make_cron(self, code, user=None):
        # 18.0's job machinery creates its progress records as the cron's user,
        # which only works for admins: crons that go through it run as root there.
        return self.env["ir.cron"].create(
            {
                "name": f"memory_hygiene test: {code}",
                "model_id": self.env["ir.model"]._get_id("test.memory.batch.record"),
                "state": "code",
                "code": code,
                "user_id": (user or self.user).id,
                "interval_number": 1,
                "interval_type": "days",
                "nextcall": fields.Datetime.now() - timedelta(minutes=1),
            }
        )

    def cron_env_record(self, cron):
        """The test model as a scheduled run of ``cron`` sees it (context, progress, job marker).

        For the rest of the test, calls on this cursor are the run of ``cron``,
        as ``ir.cron._callback`` marks them.
        """
        _cron, progress = cron.sudo().with_context(cron_id=cron.id)._add_progress()
        marker = batching.running_job(cron_id=cron.id, cursor=self.env.cr, manual=False)
        marker.__enter__()
        self.addCleanup(marker.__exit__, None, None, None)
        return self.Record.with_context(cron_id=cron.id, ir_cron_progress_id=progress.id), progress

    def make_job_cron(self, method, **vals):
        """A scheduled action calling ``test.memory.leak.job.<method>()``, run as root (see make_cron)."""
        return self.env["ir.cron"].create(
            {
                "name": f"memory_hygiene test: {method}",
                "model_id": self.env["ir.model"]._get_id("test.memory.leak.job"),
                "state": "code",
                "code": f"model.{method}()",
                "user_id": self.env.ref("base.user_root").id,
                "interval_number": 1,
                "interval_type": "days",
                "nextcall": fields.Datetime.now() - timedelta(minutes=1),
                **vals,
            }
        )

    def run_manually(self, cron):
        """Press "Run Manually" (``method_direct_trigger``) as the current user.

        In 19.0 it runs the job on a new cursor, as a scheduled run does: the
        registry is put in test mode so that the cursor is the test's. In 18.0
        the job runs on the caller's cursor; test mode makes the profiler's own
        transaction a test cursor there too, as it would be a new cursor in a request.
        """
        with compat.registry_test_mode(self):
            result = cron.method_direct_trigger()
        self.env.invalidate_all()
        return result

    def run_cron_job(self, cron):
        """Run ``cron`` through Odoo's own job machinery (``ir.cron._process_job``).

        Its cursors are the test cursor in disguise (registry test mode), so the
        job's commits are savepoints and everything is rolled back after the test.
        """
        job = {**cron.read(load=None)[0], "done": 0, "remaining": 0, "timed_out_counter": 0}
        registry = self.registry
        with compat.registry_test_mode(self), registry.cursor() as cr:
            compat.process_job(registry, cr, job)
        self.env.invalidate_all()

from datetime import datetime

from odoo.tests import TransactionCase, new_test_user

from ..core.common.units import MIB
from ..core.profiler.leakprof import ProfileResult


class CronRunCase(TransactionCase):
    """A scheduled action of the product addon's own kind, and profiled runs made by hand."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = new_test_user(
            cls.env, login="mh_runs_admin", groups="base.group_system", email="mh.admin@example.com"
        )
        cls.user = new_test_user(cls.env, login="mh_runs_user", groups="base.group_user")
        cls.icp = cls.env["ir.config_parameter"].sudo()
        cls.cron = cls.env["ir.cron"].create(
            {
                "name": "Partner sync (memory_hygiene test)",
                "model_id": cls.env["ir.model"]._get_id("res.partner"),
                "state": "code",
                "code": "model.browse()",
                "interval_number": 1,
                "interval_type": "days",
            }
        )

    def make_run(self, cron=None, start=None, traced_mb=1.0, rss_mb=300.0, top=None, **record_kwargs):
        if top is None:
            top = [
                {
                    "file": "/srv/addons/partner_sync/models/sync.py",
                    "line": 42,
                    "size_diff": int(traced_mb * MIB),
                    "count_diff": 1,
                    "size": int(5 * MIB),
                    "count": 5,
                }
            ]
        result = ProfileResult(
            started_at=start or datetime(2026, 1, 1, 6, 0),
            duration=0.5,
            rss_before=int((rss_mb - traced_mb) * MIB),
            rss_after=int(rss_mb * MIB),
            rss_after_gc=int(rss_mb * MIB),
            fds_before=10,
            fds_after=10,
            traced_growth=int(traced_mb * MIB),
            traced_peak=int(2 * traced_mb * MIB),
            frames=1,
            top=top,
        )
        return self.env["memory.cron.run"]._record((cron or self.cron).id, result, **record_kwargs)

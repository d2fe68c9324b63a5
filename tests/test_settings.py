from odoo.exceptions import AccessError, ValidationError
from odoo.tests import TransactionCase, new_test_user, tagged

from ..core.common import params


@tagged("post_install", "-at_install")
class TestSettings(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = new_test_user(cls.env, login="mh_settings_admin", groups="base.group_system")
        cls.user = new_test_user(cls.env, login="mh_settings_user", groups="base.group_user")
        cls.icp = cls.env["ir.config_parameter"].sudo()

    def settings(self, **vals):
        return self.env["res.config.settings"].with_user(self.admin).create(vals)

    def test_defaults_and_save(self):
        settings = self.settings()
        self.assertEqual(settings.memory_snapshot_interval, 5)
        self.assertEqual(settings.memory_warn_share, 90)
        settings.memory_snapshot_interval = 7
        settings.memory_report_webhook_url = "https://hooks.example.com/x"
        settings.memory_report_recipient_ids = self.admin
        settings.execute()
        self.assertEqual(self.icp.get_param(params.SNAPSHOT_INTERVAL), "7")
        self.assertEqual(self.icp.get_param(params.REPORT_RECIPIENT_IDS), str(self.admin.id))
        again = self.settings()
        self.assertEqual(again.memory_report_recipient_ids, self.admin)
        self.assertEqual(params.read(self.icp.get_param, params.SNAPSHOT_INTERVAL), 7)

    def test_nonsense_is_rejected_with_what_to_fix(self):
        cases = {
            "memory_snapshot_interval": (0, "Sampling interval"),
            "memory_snapshot_retention_days": (-1, "retention"),
            "memory_warn_share": (101, "at most 100"),
            "memory_batch_memory_share": (0, "at least 1"),
            "memory_profile_window": (1, "window"),
            "memory_report_webhook_url": ("ftp://example.com/hook", "http"),
            "memory_endpoint_token": ("x" * 31, "at least 32 characters long, got 31 characters"),
        }
        self.icp.set_param(params.SNAPSHOT_INTERVAL, "9")
        for field, (value, words) in cases.items():
            with self.subTest(field=field), self.assertRaisesRegex(ValidationError, words):
                self.settings(**{field: value})
        self.assertEqual(self.icp.get_param(params.SNAPSHOT_INTERVAL), "9", "nothing lost")

    def test_rotate_token(self):
        settings = self.settings()
        settings.action_memory_rotate_token()
        first = self.icp.get_param(params.ENDPOINT_TOKEN)
        settings.action_memory_rotate_token()
        second = self.icp.get_param(params.ENDPOINT_TOKEN)
        self.assertGreaterEqual(len(first), 32)
        self.assertNotEqual(first, second)

    def test_internal_user_cannot_change_settings(self):
        with self.assertRaises(AccessError):
            self.env["res.config.settings"].with_user(self.user).create({"memory_snapshot_interval": 3})

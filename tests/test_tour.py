from odoo.tests import HttpCase, new_test_user, tagged

from ..core.common import params


@tagged("post_install", "-at_install")
class TestTour(HttpCase):
    def test_diagnostics_and_settings_in_a_browser(self):
        """Diagnostics from the menu, a stack dump in the page, then a setting changed and saved."""
        admin = new_test_user(self.env, login="mh_tour_admin", groups="base.group_system")
        self.start_tour("/odoo/settings?debug=1", "memory_hygiene_diagnostics_tour", login=admin.login)
        icp = self.env["ir.config_parameter"].sudo()
        self.assertEqual(params.read(icp.get_param, params.SNAPSHOT_INTERVAL), 7)

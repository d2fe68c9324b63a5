"""``odoo_runtime.in_test_mode()``: the test runner of this process, never the server's config."""

import threading
from unittest.mock import patch

import odoo
from odoo.tests import TransactionCase, tagged
from odoo.tools import config

from .. import odoo_runtime


@tagged("post_install", "-at_install")
class TestTestMode(TransactionCase):
    def in_other_thread(self, func):
        """``func()`` run in a thread of its own (no ``testing`` attribute), as a server's thread would."""
        result = []
        thread = threading.Thread(target=lambda: result.append(func()))
        thread.start()
        thread.join()
        return result[0]

    def test_the_test_runner_is_seen(self):
        self.assertTrue(odoo_runtime.in_test_mode())
        # HttpCase's server thread has no "testing" attribute: the runner's current test is enough.
        self.assertTrue(self.in_other_thread(odoo_runtime.in_test_mode))

    def test_a_server_started_with_test_enable_is_not_under_test(self):
        """Outside a test run, --test-enable / --test-file in the config change nothing."""
        with (
            patch.object(odoo.modules.module, "current_test", None),
            patch.dict(config.options, {"test_enable": True, "test_file": "/tmp/test_x.py"}),
        ):
            self.assertFalse(self.in_other_thread(odoo_runtime.in_test_mode))

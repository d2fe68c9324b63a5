import psutil
import requests

from odoo.tests import TransactionCase, tagged

from . import harness
from .harness import OdooServer, server_database, wait_until


@tagged("post_install", "-at_install", "memory_hygiene_server")
class TestHarness(TransactionCase):
    def test_real_server_with_workers_starts_and_stops_whole(self):
        server = OdooServer(server_database(), workers=2, max_cron_threads=1)
        self.addCleanup(server.stop)
        server.start()
        self.assertEqual(server.get("/web/login").status_code, 200)

        # The gevent process serves too (it crash-loops when gevent cannot load its plugins).
        # It starts a moment after the HTTP workers serve: wait for it, bounded.
        def gevent_login():
            try:
                return requests.get(
                    f"http://127.0.0.1:{server.gevent_port}/web/login", timeout=10
                ).status_code
            except requests.ConnectionError:
                return None

        self.assertEqual(wait_until(gevent_login, 60, message="the gevent process serves /web/login"), 200)

        expected = {"master": 1, "http": 2, "cron": 1, "gevent": 1}

        def counts():
            return {kind: len(pids) for kind, pids in server.pids().items()}

        wait_until(lambda: counts() == expected, 60, message=f"processes {expected}")
        pids = server.pids()
        self.assertEqual(pids["master"], [server.process.pid])
        processes = [psutil.Process(pid) for kind_pids in pids.values() for pid in kind_pids]

        server.stop()
        self.assertIsNone(server.process)
        left = [p.pid for p in processes if harness._alive(p)]  # a zombie reaped meanwhile is gone
        self.assertEqual(left, [], "no process of the server is left")
        self.assertIn(f"127.0.0.1:{server.port}", server.log())
        server.stop()  # idempotent

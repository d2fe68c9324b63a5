import requests

from odoo.tests import TransactionCase, tagged

from ..core import stacks
from .harness import OdooServer, server_database, wait_until


class RpcError(Exception):
    pass


class AdminClient:
    """JSON-RPC as the admin of the harness database, the way the web client calls buttons."""

    def __init__(self, server):
        self.server = server
        self.session = requests.Session()
        self._post("/web/session/authenticate", {"db": server.db, "login": "admin", "password": "admin"})

    def _post(self, path, params):
        answer = self.session.post(
            self.server.url(path), json={"jsonrpc": "2.0", "method": "call", "params": params}, timeout=90
        ).json()
        if "error" in answer:
            raise RpcError(answer["error"]["data"]["message"])
        return answer.get("result")  # absent when the method returns None

    def call(self, model, method, *args, **kwargs):
        params = {"model": model, "method": method, "args": list(args), "kwargs": kwargs}
        return self._post("/web/dataset/call_kw", params)


@tagged("post_install", "-at_install", "memory_hygiene_server")
class TestDiagnosticsServer(TransactionCase):
    """The diagnostics page of a real prefork server: signals to sibling workers."""

    def setUp(self):
        super().setUp()
        self.server = OdooServer(server_database(), workers=2, max_cron_threads=1)
        self.addCleanup(self.server.stop)
        self.server.start()
        wait_until(
            lambda: (
                len(self.server.pids().get("http", ())) == 2 and len(self.server.pids().get("cron", ())) == 1
            ),
            60,
            message="2 HTTP workers and 1 cron worker",
        )
        self.client = AdminClient(self.server)

    def open_page(self):
        page_id = self.client.call("memory.diagnostics", "action_open")["res_id"]
        lines = self.client.call(
            "memory.diagnostics.process",
            "search_read",
            [("diagnostics_id", "=", page_id)],
            ["pid", "kind", "is_current"],
        )
        return page_id, {(line["kind"], line["pid"]): line["id"] for line in lines}

    def output(self, page_id):
        return self.client.call("memory.diagnostics", "read", [page_id], ["output_title", "output"])[0]

    def test_sigquit_to_a_sibling_worker_shows_its_stack_dump(self):
        page_id, lines = self.open_page()
        pids = self.server.pids()
        self.assertEqual({kind for kind, _pid in lines}, set(pids), "every kind of process is listed")
        cron_pid = pids["cron"][0]  # never the worker that answers an HTTP request: a sibling
        self.client.call("memory.diagnostics.process", "action_signal_stacks", [lines["cron", cron_pid]])
        # In the server log, written by the cron worker itself...
        dump = stacks.find_record(self.server.log(), cron_pid, "odoo.tools.misc", "# Thread:")
        self.assertTrue(dump, "the cron worker logged its stack dump")
        self.assertIn(f"WorkerCron ({cron_pid})", dump)
        # ... and in the page, read back from that log.
        shown = self.output(page_id)
        self.assertIn(f"Thread stacks of pid {cron_pid} (cron)", shown["output_title"])
        self.assertIn(f"WorkerCron ({cron_pid})", shown["output"])
        self.assertIn("(db:", shown["output"])

        self.client.call("memory.diagnostics.process", "action_signal_orm_stats", [lines["cron", cron_pid]])
        self.assertIn("Caches stats:", self.output(page_id)["output"])
        self.assertTrue(stacks.find_record(self.server.log(), cron_pid, "odoo.tools.cache", "Caches stats:"))
        self.assertEqual(self.server.pids()["cron"], [cron_pid], "neither signal stopped the worker")

    def test_recycle_replaces_the_worker_and_never_the_master(self):
        page_id, lines = self.open_page()
        for kind in ("http", "cron"):
            before = self.server.pids()[kind]
            old = before[0]
            self.client.call("memory.diagnostics.process", "action_recycle", [lines[kind, old]])
            self.assertIn(f"Recycle pid {old}", self.output(page_id)["output_title"])

            def replaced(kind=kind, old=old, before=before):
                now = self.server.pids().get(kind, [])
                count = len(before)
                return now if old not in now and len(now) == count else None

            new = wait_until(replaced, 60, message=f"{kind} worker {old} replaced by a new one")
            self.assertTrue(set(new) - set(before), f"a new {kind} pid appeared")
            self.assertIn(f"Worker ({old}) exiting", self.server.log(), "it stopped gracefully, not killed")
        master = self.server.pids()["master"][0]
        with self.assertRaisesRegex(RpcError, "is the master"):
            self.client.call("memory.diagnostics.process", "action_recycle", [lines["master", master]])
        forged = self.client.call(
            "memory.diagnostics.process", "create", {"diagnostics_id": page_id, "pid": 1}
        )
        with self.assertRaisesRegex(RpcError, "init process"):
            self.client.call("memory.diagnostics.process", "action_signal_stacks", [forged])
        self.assertEqual(self.server.pids()["master"], [master])

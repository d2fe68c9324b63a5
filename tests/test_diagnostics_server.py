import json

import requests

from odoo.tests import TransactionCase, tagged

from ..core.diagnostics import stack_dumps
from .harness import OdooServer, copy_database, server_database, wait_until

PROCESS_ACTIONS = ("action_signal_stacks", "action_signal_orm_stats", "action_recycle")
SHARED_WORKER_ACTIONS = ("action_heap_summary", "action_tracemalloc_start", "action_tracemalloc_snapshot")


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
        allowed = self.client.call("memory.diagnostics", "read", [page_id], ["server_wide_allowed"])[0]
        self.assertTrue(allowed["server_wide_allowed"], "a server of one database: its admin may act on it")
        pids = self.server.pids()
        self.assertEqual({kind for kind, _pid in lines}, set(pids), "every kind of process is listed")
        cron_pid = pids["cron"][0]  # never the worker that answers an HTTP request: a sibling
        self.client.call("memory.diagnostics.process", "action_signal_stacks", [lines["cron", cron_pid]])
        # In the server log, written by the cron worker itself...
        dump = stack_dumps.find_record(self.server.log(), cron_pid, "odoo.tools.misc", "# Thread:")
        self.assertTrue(dump, "the cron worker logged its stack dump")
        self.assertIn(f"WorkerCron ({cron_pid})", dump)
        # ... and in the page, read back from that log.
        shown = self.output(page_id)
        self.assertIn(f"Thread stacks of pid {cron_pid} (cron)", shown["output_title"])
        self.assertIn(f"WorkerCron ({cron_pid})", shown["output"])
        self.assertIn("(db:", shown["output"])

        self.assertEqual(self.server.pids()["cron"], [cron_pid], "the signal did not stop the worker")

        # ORM statistics of an HTTP worker: Odoo's SIGUSR1 handler walks the ORM caches without a lock,
        # so in a cron worker busy with the server's first jobs it can meet a cache that changes size.
        # An HTTP worker is idle, or serves this very call (which only waits for the answer).
        http_pid = pids["http"][0]
        self.client.call("memory.diagnostics.process", "action_signal_orm_stats", [lines["http", http_pid]])
        self.assertIn("Caches stats:", self.output(page_id)["output"], self.server.log()[-6000:])
        self.assertTrue(
            stack_dumps.find_record(self.server.log(), http_pid, "odoo.tools.cache", "Caches stats:")
        )
        self.assertIn(http_pid, self.server.pids()["http"], "the signal did not stop the worker")

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


def start_server(testcase, databases, **options):
    """A prefork server of ``databases`` (2 HTTP workers, 1 cron worker) and an admin client of the first."""
    server = OdooServer(databases[0], databases=databases, workers=2, max_cron_threads=1, **options)
    testcase.addCleanup(server.stop)
    server.start()
    wait_until(
        lambda: len(server.pids().get("http", ())) == 2 and len(server.pids().get("cron", ())) == 1,
        60,
        message="2 HTTP workers and 1 cron worker",
    )
    return server, AdminClient(server)


def open_page(client):
    page_id = client.call("memory.diagnostics", "action_open")["res_id"]
    lines = client.call(
        "memory.diagnostics.process", "search_read", [("diagnostics_id", "=", page_id)], ["pid", "kind"]
    )
    return page_id, {(line["kind"], line["pid"]): line["id"] for line in lines}


@tagged("post_install", "-at_install", "memory_hygiene_server")
class TestDiagnosticsTwoDatabases(TransactionCase):
    """A server of two databases: the admin of one acts on it only, unless the operator allows more."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db = server_database()
        cls.other = copy_database(cls.db, f"{cls.db}_twin")

    def test_admin_of_one_database_cannot_act_beyond_it(self):
        server, client = start_server(self, (self.db, self.other))
        page_id, lines = open_page(client)
        page = client.call(
            "memory.diagnostics", "read", [page_id], ["server_wide_allowed", "server_wide_note"]
        )[0]
        self.assertFalse(page["server_wide_allowed"])
        self.assertIn("This server serves 2 databases.", page["server_wide_note"])
        self.assertIn("memory_hygiene_server_wide = True", page["server_wide_note"], "says how to enable")
        before = server.pids()
        log_size = len(server.log())
        for kind in ("cron", "http", "master"):
            for method in PROCESS_ACTIONS:
                with (
                    self.subTest(kind=kind, method=method),
                    self.assertRaisesRegex(RpcError, "serves 2 databases"),
                ):
                    client.call("memory.diagnostics.process", method, [lines[kind, before[kind][0]]])
        for method in SHARED_WORKER_ACTIONS:
            with self.subTest(method=method), self.assertRaisesRegex(RpcError, "memory_hygiene_server_wide"):
                client.call("memory.diagnostics", method, [page_id])
        self.assertEqual(server.pids(), before, "no worker was recycled")
        logged = server.log()[log_size:]
        self.assertNotIn("# Thread:", logged, "no process was asked for its stacks")
        self.assertNotIn("Caches stats:", logged)
        # What stays allowed: this worker's own stacks, its ORM caches of this database, PostgreSQL.
        client.call("memory.diagnostics", "action_dump_stacks", [page_id])
        client.call("memory.diagnostics", "action_refresh_postgres", [page_id])
        shown = client.call("memory.diagnostics", "read", [page_id], [])
        figures = client.call(
            "memory.diagnostics.pg.figure", "search_read", [("diagnostics_id", "=", page_id)], []
        )
        queries = client.call(
            "memory.diagnostics.pg.query", "search_read", [("diagnostics_id", "=", page_id)], []
        )
        self.assertIn("# Thread:", shown[0]["output"])
        self.assertIn(self.db, [fig["name"] for fig in figures if fig["section"] == "temp"])
        self.assertNotIn(
            self.other, json.dumps([shown, figures, queries], default=str), "no other database named"
        )

    def test_operator_allows_server_wide_actions_in_the_configuration(self):
        server, client = start_server(
            self, (self.db, self.other), config_options={"memory_hygiene_server_wide": "True"}
        )
        page_id, lines = open_page(client)
        page = client.call(
            "memory.diagnostics", "read", [page_id], ["server_wide_allowed", "server_wide_note"]
        )[0]
        self.assertEqual((page["server_wide_allowed"], page["server_wide_note"]), (True, False))
        cron_pid = server.pids()["cron"][0]
        client.call("memory.diagnostics.process", "action_signal_stacks", [lines["cron", cron_pid]])
        output = client.call("memory.diagnostics", "read", [page_id], ["output"])[0]["output"]
        self.assertIn(f"WorkerCron ({cron_pid})", output)
        client.call("memory.diagnostics.process", "action_signal_orm_stats", [lines["cron", cron_pid]])
        output = client.call("memory.diagnostics", "read", [page_id], ["output"])[0]["output"]
        self.assertIn("Caches stats:", output)
        self.assertNotIn(
            self.other, output, "the cron worker's statistics of the other database are left out"
        )

"""Worker lifecycle against a real prefork ``odoo-bin``: what each worker does now, why each one ended."""

import json
import os
import shutil
import signal
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import psutil
import requests

from odoo.tests import TransactionCase, tagged

from odoo.addons.memory_hygiene.tests.harness import (
    MIB,
    OdooServer,
    db_cursor,
    server_database,
    wait_until,
    wake_cron_workers,
)
from odoo.addons.memory_hygiene.tests.test_diagnostics_server import AdminClient

from .common import USER_ADDON

SOFT_MB = 1024
LIMIT_REQUEST = 12
LIMIT_TIME_REAL = 20  # far above what LIMIT_TIME_CPU takes on a loaded host: the CPU limit comes first
LIMIT_TIME_CPU = 2
TOKEN = "lifecycle-server-token-0123456789abcdef"


class _Hook(BaseHTTPRequestHandler):
    """The webhook: keeps each alert it receives."""

    received = []

    def do_POST(self):  # noqa: N802 - http.server's name
        type(self).received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _execute(db, sql):
    with db_cursor(db) as cr:
        cr.execute(sql)


def _query(db, sql, args=()):
    with db_cursor(db) as cr:
        cr.execute(sql, args)
        return cr.fetchall()


def _ps(pid):
    """What ``ps -o args`` shows of ``pid``: its ``/proc/<pid>/cmdline`` ('' once it is gone)."""
    try:
        return " ".join(part for part in psutil.Process(pid).cmdline() if part)
    except psutil.Error:
        return ""


@tagged("post_install", "-at_install", "memory_hygiene_server")
class TestLifecycleServer(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db = server_database(USER_ADDON)
        _Hook.received = []
        hook = HTTPServer(("127.0.0.1", 0), _Hook)
        threading.Thread(target=hook.serve_forever, daemon=True).start()
        cls.addClassCleanup(hook.server_close)
        cls.addClassCleanup(hook.shutdown)
        with db_cursor(cls.db) as cr:
            cr.execute("DELETE FROM memory_worker_exit")  # left by other tests of this process
            cr.execute("DELETE FROM memory_lifecycle_alert")
            for key, value in (
                ("memory_hygiene.endpoint_token", TOKEN),
                ("memory_hygiene.health_min_available", "0"),  # health answers for the workers alone
                ("memory_hygiene.health_max_pressure", "0"),
                ("memory_hygiene.storm_requests", str(LIMIT_REQUEST + 1)),
                ("memory_hygiene.storm_minutes", "0"),
                ("memory_hygiene.report_webhook_url", f"http://127.0.0.1:{hook.server_port}/alerts"),
            ):
                cr.execute(
                    "INSERT INTO ir_config_parameter (key, value) VALUES (%s, %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    [key, value],
                )
            cr.execute("SELECT id FROM ir_model WHERE model = 'test.memory.leak.job'")
            cls.job_model_id = cr.fetchone()[0]
        cls.tmp = tempfile.mkdtemp(prefix="memory_hygiene_lifecycle_")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.server = OdooServer(
            cls.db,
            workers=2,
            max_cron_threads=1,
            limit_memory_soft=SOFT_MB * MIB,
            limit_memory_hard=4096 * MIB,
            limit_time_real=LIMIT_TIME_REAL,
            extra_args=(
                "--load=base,web,memory_hygiene",  # the master hears how each worker ends
                "--limit-time-real-cron=600",
                f"--limit-time-cpu={LIMIT_TIME_CPU}",
                f"--limit-request={LIMIT_REQUEST}",
            ),
        )
        # The recycles and settings of this class would be a storm for the next tests of the database.
        cls.addClassCleanup(
            _execute,
            cls.db,
            "DELETE FROM memory_worker_exit; DELETE FROM memory_lifecycle_alert;"
            " DELETE FROM ir_config_parameter WHERE key IN ('memory_hygiene.storm_requests',"
            " 'memory_hygiene.storm_minutes', 'memory_hygiene.report_webhook_url')",
        )
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        wait_until(lambda: len(cls.server.pids().get("http", ())) == 2 and cls.server.pids().get("cron"), 60)

    def server_log_tail(self):
        """The server's log without its access lines: what to read when a test fails."""
        return "\n".join([line for line in self.server.log().splitlines() if "werkzeug" not in line][-120:])

    def wait(self, check, timeout, interval, message):
        try:
            return wait_until(check, timeout, interval, message)
        except TimeoutError as exc:
            self.fail(f"{exc}\nServer log:\n{self.server_log_tail()}")

    def setUp(self):
        super().setUp()
        self.client = AdminClient(self.server)

    # ------------------------------------------------------------------ helpers

    def page_lines(self):
        page_id = self.client.call("memory.diagnostics", "action_open")["res_id"]
        return self.client.call(
            "memory.diagnostics.process",
            "search_read",
            [("diagnostics_id", "=", page_id)],
            ["pid", "kind", "doing", "doing_for"],
        )

    def exits(self, domain):
        self.client.call("memory.worker.exit", "action_collect", [])
        return self.client.call(
            "memory.worker.exit",
            "search_read",
            domain,
            ["pid", "kind", "cause", "evidence", "doing", "rss_mb", "vms_mb", "age_seconds", "requests"],
        )

    def serving_wait(self):
        """The HTTP worker that ``ps`` shows serving ``/test_memory_hygiene/wait``, or None."""
        for pid in self.server.pids().get("http", ()):
            if f"| doing http {self.db} /test_memory_hygiene/wait since" in _ps(pid):
                return pid
        return None

    def wait_exit(self, domain, what):
        return self.wait(lambda: self.exits(domain), 120, 1, what)[0]

    def release(self, name):
        with open(os.path.join(self.tmp, name), "w", encoding="utf-8"):
            pass

    # ------------------------------------------------------------------ doing now

    def test_doing_now_of_a_slow_cron_and_a_slow_route(self):
        path = os.path.join(self.tmp, "cron_done")
        [cron_id] = self.client.call(
            "ir.cron",
            "create",
            [
                {
                    "name": "lifecycle slow job",
                    "model_id": self.job_model_id,
                    "state": "code",
                    "code": f"model._job_wait_for_file({path!r})",
                    "interval_number": 1,
                    "interval_type": "days",
                    "user_id": 1,  # the superuser, as the test addon's own jobs
                    "priority": 0,  # before the jobs the database's earlier tests left ready
                }
            ],
        )
        self.addCleanup(self.release, "cron_done")
        with db_cursor(self.db) as cr:
            cr.execute("UPDATE ir_cron SET nextcall = (now() AT TIME ZONE 'UTC') WHERE id = %s", [cron_id])

        def cron_busy():
            wake_cron_workers(self.db)
            # Whichever cron worker runs it: limit_request recycles cron workers too.
            for pid in self.server.pids().get("cron", ()):
                if f"| doing cron {self.db} #{cron_id} lifecycle slow job since" in _ps(pid):
                    return pid
            return None

        try:
            cron_pid = wait_until(cron_busy, 120, 1, "ps shows a cron worker running the slow job")
        except TimeoutError as exc:
            seen = {pid: _ps(pid) for pid in self.server.pids().get("cron", ())}
            self.fail(f"{exc}: cron {cron_id} of {self.db}, cron workers {seen}\n{self.server_log_tail()}")
        self.assertTrue(_ps(cron_pid).startswith(f"odoo: WorkerCron {cron_pid}"), "Odoo's title stays first")

        def page_shows_cron():
            line = next(line for line in self.page_lines() if line["pid"] == cron_pid)
            # "N s" once at least two seconds went by: the duration grows with the job.
            return line if line["doing_for"] not in (False, "0 s", "1 s") else None

        line = self.wait(page_shows_cron, 60, 1, "the page shows the cron job with its duration")
        self.assertEqual(line["doing"], f"cron {self.db}: #{cron_id} lifecycle slow job")
        self.release("cron_done")
        self.wait(lambda: "| doing" not in _ps(cron_pid), 60, 0.5, "the cron worker is idle again")

        # A slow route: its path is shown, never its query string.
        route = f"/test_memory_hygiene/wait?path={os.path.join(self.tmp, 'route_done')}&secret=s3cr3t"
        answer = {}
        thread = threading.Thread(target=lambda: answer.update(r=self.server.get(route, timeout=120)))
        thread.start()
        self.addCleanup(thread.join, 120)
        self.addCleanup(self.release, "route_done")

        http_pid = self.wait(self.serving_wait, 60, 0.5, "ps shows an HTTP worker serving the slow route")
        self.assertNotIn("s3cr3t", _ps(http_pid))
        line = next(line for line in self.page_lines() if line["pid"] == http_pid)
        self.assertEqual(line["doing"], f"http {self.db}: /test_memory_hygiene/wait")
        self.release("route_done")
        thread.join(120)
        self.assertEqual(answer["r"].status_code, 200)

    # ------------------------------------------------------------------ exits

    def test_exits_are_recorded_with_their_cause_and_what_each_was_doing(self):
        # Soft limit: a route pushes its worker past limit_memory_soft; it is recycled after it.
        pid = self.server.get(f"/test_memory_hygiene/allocate?target_mb={SOFT_MB + 100}").json()["pid"]
        soft = self.wait_exit([("pid", "=", pid), ("cause", "=", "soft_limit")], "soft-limit exit")
        self.assertEqual(soft["evidence"], "worker")
        self.assertEqual(soft["doing"], f"http {self.db}: /test_memory_hygiene/allocate")
        self.assertGreater(soft["vms_mb"], SOFT_MB)
        self.assertGreater(soft["rss_mb"], 0)

        # limit_request: workers that served that many requests are replaced.
        for _i in range(2 * LIMIT_REQUEST + 2):
            self.server.get("/test_memory_hygiene/pid")
        request = self.wait_exit(
            [("cause", "=", "request_limit"), ("kind", "=", "http")], "limit_request exit"
        )
        self.assertEqual(request["evidence"], "worker")
        self.assertEqual(request["requests"], LIMIT_REQUEST)
        self.assertIn(f"http {self.db}: ", request["doing"])

        # Real-time limit: the master kills a worker whose request outlasts limit_time_real.
        never = os.path.join(self.tmp, "never")
        with self.assertRaises(requests.RequestException):
            self.server.get(f"/test_memory_hygiene/wait?path={never}", timeout=LIMIT_TIME_REAL * 6)
        real = self.wait_exit([("cause", "=", "real_time_limit")], "real-time exit")
        self.assertEqual(real["evidence"], "master")
        self.assertEqual(real["doing"], f"http {self.db}: /test_memory_hygiene/wait")

        # CPU limit: SIGXCPU once a request used limit_time_cpu seconds of CPU.
        with self.assertRaises(requests.RequestException):
            self.server.get(f"/test_memory_hygiene/burn?seconds={LIMIT_TIME_CPU * 6}", timeout=300)
        cpu = self.wait_exit([("cause", "=", "cpu_limit")], "CPU-limit exit")
        self.assertEqual(cpu["evidence"], "worker")
        self.assertEqual(cpu["doing"], f"http {self.db}: /test_memory_hygiene/burn")

        # SIGKILL from outside, standing in for the OOM killer, to a worker inside a request: an idle
        # one may have served its limit_request-th request already, said so, and be about to exit.
        killed_route = f"/test_memory_hygiene/wait?path={os.path.join(self.tmp, 'never_killed')}"
        failed = []

        def request_killed():
            try:
                self.server.get(killed_route, timeout=LIMIT_TIME_REAL * 6)
            except requests.RequestException as exc:
                failed.append(exc)

        thread = threading.Thread(target=request_killed)
        thread.start()
        self.addCleanup(thread.join, LIMIT_TIME_REAL * 6)
        victim = self.wait(
            self.serving_wait,
            60,  # workers may be respawning after the kills above; limit_time_real counts once one serves it
            0.2,
            "ps shows an HTTP worker inside the request to kill",
        )
        os.kill(victim, signal.SIGKILL)
        thread.join(LIMIT_TIME_REAL * 6)
        self.assertTrue(failed, "the request of the killed worker got no answer")
        killed = self.wait_exit([("pid", "=", victim)], "SIGKILL exit")
        self.assertIn(killed["cause"], ("signal", "oom_killer"))
        self.assertEqual(killed["evidence"], "master" if killed["cause"] == "signal" else "cgroup")
        self.assertEqual(killed["doing"], f"http {self.db}: /test_memory_hygiene/wait")
        self.assertTrue(killed["age_seconds"] >= 0 and killed["vms_mb"] > 0)

    # ------------------------------------------------------------------ storms

    def test_workers_recycling_after_a_few_requests_raise_the_storm_flag(self):
        # Whatever ran before: the exits of other tests (soft limit, real time, CPU, SIGKILL, a few
        # limit_request) may have raised this alert already, with the advice of their most common
        # cause, and it is raised once per period. Their exits and alerts go, once none is being sent.
        self.exits([])
        self.wait(
            lambda: not _query(self.db, "SELECT id FROM memory_lifecycle_alert WHERE pending"),
            120,
            0.5,
            "no alert waiting to be sent",
        )
        _execute(self.db, "DELETE FROM memory_worker_exit; DELETE FROM memory_lifecycle_alert")
        _Hook.received = []

        def storm():
            # Each HTTP worker lives limit_request requests: fewer than the storm's threshold.
            for _i in range(LIMIT_REQUEST):
                self.server.get("/test_memory_hygiene/pid")
            answer = self.server.get("/memory_hygiene/health", headers={"Authorization": f"Bearer {TOKEN}"})
            # (A 503 response is falsy: its body is what wait() gets.)
            return (
                answer.json() if answer.status_code == 503 and "limit_request is low" in answer.text else None
            )

        body = self.wait(storm, 180, 0.1, "/health reports the recycle storm")
        self.assertEqual(body["status"], "warn")
        reasons = [p["reason"] for p in body["problems"] if p["kind"] == "http"]
        self.assertTrue(any("limit_request is low" in reason for reason in reasons), reasons)

        metrics = self.server.get(
            "/memory_hygiene/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        ).text
        self.assertRegex(metrics, r'memory_hygiene_recycle_storm\{host="[^"]+",kind="http"\} 1\.0')
        self.assertRegex(
            metrics,
            r'memory_hygiene_worker_exits_total\{cause="request_limit",host="[^"]+",kind="http"\} [1-9]',
        )

        page_id = self.client.call("memory.diagnostics", "action_open")["res_id"]
        alerts = self.client.call("memory.diagnostics", "read", [page_id], ["lifecycle_alerts"])[0]
        self.assertIn("recycle storm", alerts["lifecycle_alerts"])

        # The alert: sent once by its scheduled action, with the advice...
        def storm_alerts():
            return [alert for alert in _Hook.received if alert["key"] == "storm:http"]

        [alert] = self.wait(storm_alerts, 120, 0.5, "the storm's alert reaches the webhook")
        self.assertEqual(alert["database"], self.db)
        self.assertIn("limit_request", alert["advice"])
        # ... and not at each recycle: the storm goes on, its exits are collected, no second alert.
        exits = _query(self.db, "SELECT count(*) FROM memory_worker_exit WHERE kind = 'http'")[0][0]

        def more_recycles():
            for _i in range(LIMIT_REQUEST):
                self.server.get("/test_memory_hygiene/pid")
            self.exits([])  # collects
            return (
                _query(self.db, "SELECT count(*) FROM memory_worker_exit WHERE kind = 'http'")[0][0]
                >= exits + 2
            )

        self.wait(more_recycles, 120, 0.1, "two more HTTP workers recycled and recorded")
        [(count, pending)] = _query(
            self.db, "SELECT raised_count, pending FROM memory_lifecycle_alert WHERE key = 'storm:http'"
        )
        self.assertEqual((count, pending), (1, False))
        self.assertEqual(len(storm_alerts()), 1)

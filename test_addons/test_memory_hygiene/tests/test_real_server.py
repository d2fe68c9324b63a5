"""memory_hygiene against a real ``odoo-bin``: prefork (2 HTTP workers, a cron worker, gevent),
threaded (workers = 0) and ``odoo-bin shell``."""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
from prometheus_client.parser import text_string_to_metric_families

from odoo.tests import TransactionCase, tagged

from odoo.addons.memory_hygiene import compat, odoo_runtime
from odoo.addons.memory_hygiene.tests import harness
from odoo.addons.memory_hygiene.tests.harness import MIB, OdooServer, db_cursor, server_database, wait_until
from odoo.addons.memory_hygiene.tests.test_diagnostics_server import AdminClient

from .common import USER_ADDON

TOKEN = "real-server-token-0123456789abcdef"
#: What a production server started with --test-enable has in its config, with no test to run.
TEST_ENABLE_ARGS = ("--test-enable", "--test-tags=/mh_no_such_module")
SOFT_MB = 1024  # low enough to reach with one allocation, far above an idle worker
HARD_MB = 4096


@tagged("post_install", "-at_install", "memory_hygiene_server")
class TestRealServer(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db = server_database(USER_ADDON)
        with db_cursor(cls.db) as cr:
            cr.execute("DELETE FROM memory_snapshot")  # left by other tests of this process
            for key, value in (
                ("memory_hygiene.endpoint_token", TOKEN),
                ("memory_hygiene.snapshot_interval", "1"),
                # This host's memory belongs to whoever else runs on it: the machine checks are tested on
                # fixtures (TestEndpoints); here health answers for Odoo's processes alone.
                ("memory_hygiene.health_min_available", "0"),
                ("memory_hygiene.health_max_pressure", "0"),
            ):
                cr.execute(
                    "INSERT INTO ir_config_parameter (key, value) VALUES (%s, %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    [key, value],
                )
            cr.execute(
                "SELECT res_id FROM ir_model_data"
                " WHERE module = 'memory_hygiene' AND name = 'ir_cron_memory_snapshot'"
            )
            cls.cron_id = cr.fetchone()[0]
            cr.execute(
                "UPDATE ir_cron SET interval_number = 1, interval_type = 'minutes',"
                " nextcall = (now() AT TIME ZONE 'UTC') WHERE id = %s",
                [cls.cron_id],
            )
        cls.server = OdooServer(
            cls.db,
            workers=2,
            max_cron_threads=1,
            limit_memory_soft=SOFT_MB * MIB,
            limit_memory_hard=HARD_MB * MIB,
        )
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        wait_until(lambda: len(cls.server.pids().get("http", ())) == 2 and cls.server.pids().get("cron"), 60)

    # ------------------------------------------------------------------ helpers

    def query(self, sql, args=()):
        return _query(self.db, sql, args)

    def run_cron_round(self):
        """Make the cron worker run the sampling action now; ``{pid: kind}`` of its round."""
        rounds = self.query("SELECT count(DISTINCT round_key) FROM memory_snapshot")[0][0]
        self.query("UPDATE ir_cron SET nextcall = (now() AT TIME ZONE 'UTC') WHERE id = %s", [self.cron_id])

        def new_round():
            harness.wake_cron_workers(self.db)
            return self.query("SELECT count(DISTINCT round_key) FROM memory_snapshot")[0][0] > rounds

        wait_until(new_round, 120, 2, "a new sampling round of the cron worker")
        [(key,)] = self.query(
            "SELECT round_key FROM memory_snapshot WHERE round_key IS NOT NULL ORDER BY id DESC LIMIT 1"
        )
        return dict(self.query("SELECT pid, process_kind FROM memory_snapshot WHERE round_key = %s", [key]))

    def token(self, path):
        return self.server.get(path, headers={"Authorization": f"Bearer {TOKEN}"})

    def vms_mb(self, pid):
        return psutil.Process(pid).memory_info().vms / MIB

    # ------------------------------------------------------------------ tests

    def test_snapshots_of_both_http_workers_and_of_the_cron_worker(self):
        http_pids = set(self.server.pids()["http"])
        # Two slow requests at once: each HTTP worker serves one, then samples itself.
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(lambda _i: self.server.get("/test_memory_hygiene/pid?sleep=2").json(), range(2))
            )
        self.assertEqual({a["pid"] for a in answers}, http_pids)
        sampled = wait_until(
            lambda: (
                {row[0] for row in self.query("SELECT pid FROM memory_snapshot WHERE trigger = 'request'")}
                >= http_pids
                and self.query(
                    "SELECT pid, process_kind, requests_count FROM memory_snapshot WHERE trigger = 'request'"
                )
            ),
            60,
            message="HTTP workers sampling themselves after a request",
        )
        self.assertEqual({kind for _pid, kind, _count in sampled}, {"http"})
        self.assertTrue(all(count >= 1 for _pid, _kind, count in sampled), "the request just served counts")

        round_ = self.run_cron_round()
        pids = self.server.pids()
        self.assertEqual(
            round_,
            {pid: kind for kind, kind_pids in pids.items() for pid in kind_pids},
            "the cron worker samples itself and every sibling, each with its kind",
        )
        cron_pid = pids["cron"][0]
        [(rss, vms, soft, pct)] = self.query(
            "SELECT rss_mb, vms_mb, soft_limit_mb, soft_limit_pct FROM memory_snapshot"
            " WHERE pid = %s AND trigger = 'schedule' ORDER BY id DESC LIMIT 1",
            [cron_pid],
        )
        self.assertGreater(vms, rss)
        self.assertEqual(soft, SOFT_MB)
        self.assertAlmostEqual(pct, vms * 100 / SOFT_MB, delta=5)
        errors = [line for line in self.server.log().splitlines() if " ERROR " in line or "Traceback" in line]
        self.assertEqual(errors, [], "sampling never fails silently")

    def test_allocating_past_the_soft_limit_recycles_the_worker_and_the_recycle_is_recorded(self):
        self.run_cron_round()
        before = set(self.server.pids()["http"])
        pid = self.allocate_to(SOFT_MB * 1.1)
        self.assertIn(pid, before)
        self.wait_for_two_http_workers_without(pid)
        self.assertIn(f"Worker ({pid}) virtual memory limit", self.server.log())
        [new_pid] = set(self.server.pids()["http"]) - before
        round_ = self.run_cron_round()
        self.assertEqual(round_[new_pid], "http")
        recycled = self.query(
            "SELECT pid, recycled_pid, process_kind FROM memory_snapshot"
            " WHERE recycled_pid != 0 AND pid = %s",
            [new_pid],
        )
        self.assertEqual(recycled, [(new_pid, pid, "http")])

    def test_health_turns_503_while_a_process_is_above_the_warn_share(self):
        response = self.token("/memory_hygiene/health")
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.json()["status"], "ok")
        pid = self.allocate_to(SOFT_MB * 0.95)  # above the 90 % warn share, below the soft limit
        self.assertGreater(self.vms_mb(pid), SOFT_MB * 0.9)
        response = self.token("/memory_hygiene/health")
        self.assertEqual(response.status_code, 503, response.text)
        body = response.json()
        self.assertEqual(body["status"], "warn")
        self.assertEqual([(p["pid"], p["kind"]) for p in body["problems"]], [(pid, "http")])
        self.assertIn("soft limit of 1024 MiB", body["problems"][0]["reason"])
        self.allocate_to(SOFT_MB * 1.1, pid)  # recycled: the next tests find workers at rest
        self.wait_for_two_http_workers_without(pid)

    def test_metrics_parse_as_prometheus_text_and_list_every_worker(self):
        response = self.token("/memory_hygiene/metrics")
        self.assertEqual(response.status_code, 200)
        families = {family.name: family for family in text_string_to_metric_families(response.text)}
        listed = {
            (s.labels["kind"], int(s.labels["pid"]))
            for s in families["memory_hygiene_process_rss_bytes"].samples
        }
        expected = {(kind, pid) for kind, pids in self.server.pids().items() for pid in pids}
        self.assertEqual(listed, expected)
        self.assertEqual({kind for kind, _pid in listed}, {"master", "http", "cron", "gevent"})
        soft = {s.value for s in families["memory_hygiene_process_soft_limit_bytes"].samples}
        self.assertEqual(soft, {SOFT_MB * MIB})

    def test_a_helper_program_of_a_worker_is_no_worker(self):
        """A worker starts a program (what wkhtmltopdf is to a PDF report) of 2 GiB of virtual size,
        twice the soft limit: health stays ok, Diagnostics list it as that worker's helper, and its
        exit is no recycle."""
        self.run_cron_round()  # the previous round holds whatever other tests recycled
        recycles = self.query("SELECT count(*) FROM memory_snapshot WHERE recycled_pid != 0")[0][0]
        answer = self.server.get("/test_memory_hygiene/helper?vsize_mb=2048").json()
        worker, helper = answer["pid"], answer["helper"]
        self.addCleanup(_end, helper)
        self.assertGreater(self.vms_mb(helper), 2 * SOFT_MB)
        self.assertIn(worker, self.server.pids()["http"])
        self.assertNotIn(helper, [pid for pids in self.server.pids().values() for pid in pids])

        response = self.token("/memory_hygiene/health")
        self.assertEqual(response.status_code, 200, response.text)
        body = response.json()
        self.assertEqual(body["problems"], [])
        self.assertTrue(body["machine"]["memory_source"])
        self.assertNotIn(helper, [proc["pid"] for proc in body["processes"]])
        [shown] = [h for h in body["helpers"] if h["pid"] == helper]
        self.assertEqual(shown["owner_pid"], worker)
        self.assertGreater(shown["vms_mb"], 2 * SOFT_MB)

        client = AdminClient(self.server)
        page_id = client.call("memory.diagnostics", "action_open")["res_id"]
        lines = client.call(
            "memory.diagnostics.process",
            "search_read",
            [("diagnostics_id", "=", page_id), ("pid", "=", helper)],
            ["kind", "owner_pid", "command", "soft_limit_pct"],
        )
        self.assertEqual(
            [(line["kind"], line["owner_pid"], line["soft_limit_pct"]) for line in lines],
            [("helper", worker, False)],
        )
        self.assertIn("mmap", lines[0]["command"])

        self.assertNotIn(helper, self.run_cron_round(), "no snapshot of a helper")
        metrics = self.token("/memory_hygiene/metrics").text
        self.assertNotIn(f'pid="{helper}"', metrics)
        self.assertIn("memory_hygiene_helpers{", metrics)
        _end(helper)
        round_ = self.run_cron_round()
        self.assertEqual(round_, {pid: kind for kind, pids in self.server.pids().items() for pid in pids})
        self.assertEqual(
            self.query("SELECT count(*) FROM memory_snapshot WHERE recycled_pid != 0")[0][0],
            recycles,
            "the helper's exit is no recycle",
        )

    def test_endpoints_without_token_answer_403_and_nothing_else(self):
        for path in (
            "/memory_hygiene/health",
            "/memory_hygiene/metrics",
            f"/memory_hygiene/metrics?token={TOKEN}",  # a query string lands in access logs: refused
        ):
            response = self.server.get(path)
            self.assertEqual((response.status_code, response.content), (403, b""), path)

    # ------------------------------------------------------------------ allocation

    def allocate_to(self, target_mb, pid=None):
        """Make an HTTP worker (``pid`` when given) hold memory until its virtual size is ``target_mb``."""
        url = f"/test_memory_hygiene/allocate?target_mb={target_mb}" + (f"&pid={pid}" if pid else "")
        for attempt in range(20):
            # Requests go to whichever worker is free. Which one takes a request when
            # both are idle depends on the kernel: every other attempt, keep one busy.
            with ThreadPoolExecutor(1) as pool:
                busy = (
                    pool.submit(self.server.get, "/test_memory_hygiene/pid?sleep=1") if attempt % 2 else None
                )
                time.sleep(0.2)
                response = self.server.get(url)
                if busy:
                    busy.result()
            if response.status_code == 200:
                return response.json()["pid"]
        raise AssertionError(f"no HTTP worker {pid or ''} took the allocation")

    def wait_for_two_http_workers_without(self, pid):
        wait_until(
            lambda: (
                pid not in self.server.pids().get("http", ()) and len(self.server.pids().get("http", ())) == 2
            ),
            60,
            message=f"worker {pid} replaced",
        )


def _query(db, sql, args=()):
    """Rows of ``sql`` on ``db``, in a connection of its own (autocommit)."""
    with db_cursor(db) as cr:
        cr.execute(sql, args)
        return cr.fetchall() if cr.description else None


def _end(pid):
    """End a helper the test made a worker start (its worker reaps it)."""
    try:
        proc = psutil.Process(pid)
        proc.terminate()
    except psutil.NoSuchProcess:
        return
    # Gone, or a zombie until its worker reaps it: ended all the same.
    wait_until(lambda: not harness._alive(proc), 30, 0.1, f"helper {pid} ended")


@tagged("post_install", "-at_install", "memory_hygiene_server")
class TestTwoHosts(TransactionCase):
    """Two servers on one database, each a real ``odoo-bin`` with its own workers, naming their hosts."""

    HOSTS = ("mh-host-a", "mh-host-b")

    def query(self, sql, args=()):
        return _query(self.db, sql, args)

    def test_every_host_is_sampled_whole_by_one_of_its_processes(self):
        """The scheduled action is off, as on a host whose cron worker never takes it: each host's
        master, HTTP, cron and gevent processes are sampled all the same, by one of its HTTP workers."""
        self.db = server_database(USER_ADDON)
        [(cron_id,)] = self.query(
            "SELECT res_id FROM ir_model_data"
            " WHERE module = 'memory_hygiene' AND name = 'ir_cron_memory_snapshot'"
        )
        self.query("UPDATE ir_cron SET active = false WHERE id = %s", [cron_id])
        self.addCleanup(self.query, "UPDATE ir_cron SET active = true WHERE id = %s", [cron_id])
        self.addCleanup(self.query, "DELETE FROM memory_snapshot WHERE host IN %s", [self.HOSTS])
        self.query(
            "INSERT INTO ir_config_parameter (key, value) VALUES ('memory_hygiene.snapshot_interval', '1')"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )
        servers = {}
        for host in self.HOSTS:
            server = OdooServer(
                self.db, workers=2, max_cron_threads=1, env={odoo_runtime.HOST_NAME_ENV: host}
            )
            self.addCleanup(server.stop)
            server.start()
            servers[host] = server
        for server in servers.values():
            wait_until(lambda s=server: len(s.pids().get("http", ())) == 2 and s.pids().get("cron"), 60)
            server.get("/test_memory_hygiene/pid")  # served, then the worker samples itself and its host

        def sampled(host):
            return dict(
                self.query(
                    "SELECT pid, process_kind FROM memory_snapshot WHERE host = %s AND trigger = 'schedule'",
                    [host],
                )
            )

        def covered():
            return all(
                {pid for pids in server.pids().values() for pid in pids} <= set(sampled(host))
                for host, server in servers.items()
            )

        wait_until(covered, 120, 2, "every process of both hosts sampled")  # two sampling intervals
        for host, server in servers.items():
            expected = {pid: kind for kind, pids in server.pids().items() for pid in pids}
            self.assertEqual({kind for kind in expected.values()}, {"master", "http", "cron", "gevent"})
            self.assertEqual({pid: kind for pid, kind in sampled(host).items() if pid in expected}, expected)
            # One process of a host takes its round, at most once per interval (0.9 of it).
            dates = [
                row[0]
                for row in self.query(
                    "SELECT min(date) FROM memory_snapshot WHERE host = %s AND round_key IS NOT NULL"
                    " GROUP BY round_key ORDER BY 1",
                    [host],
                )
            ]
            gaps = [
                (later - earlier).total_seconds() for earlier, later in zip(dates, dates[1:], strict=False)
            ]
            self.assertTrue(all(gap >= 54 for gap in gaps), gaps)
            errors = [line for line in server.log().splitlines() if " ERROR " in line or "Traceback" in line]
            self.assertEqual(errors, [], host)
        hosts = dict(
            self.query(
                "SELECT name, last_round_at IS NOT NULL FROM memory_host WHERE name IN %s", [self.HOSTS]
            )
        )
        self.assertEqual(hosts, dict.fromkeys(self.HOSTS, True))


@tagged("post_install", "-at_install", "memory_hygiene_server")
class TestOtherModes(TransactionCase):
    def odoo_shell(self, db, code, *args):
        """Run ``code`` in ``odoo-bin shell`` on ``db``; the finished process (it exited with 0).

        On a port of its own: with ``--test-enable`` the shell starts Odoo's HTTP
        server too, and the default port may be taken (a running Odoo, another test run).
        """
        done = subprocess.run(
            [sys.executable, harness.odoo_bin(), "shell", *harness.child_server_args(), "-d", db, *args]
            + ["--http-interface=127.0.0.1", f"--http-port={harness.free_port()}", "--log-level=warn"],
            input=code,
            capture_output=True,
            text=True,
            env=harness._child_env(),
            timeout=300,
            check=False,
        )
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        return done

    def test_threaded_server_samples_itself_after_requests_and_from_its_cron_thread(self):
        db = server_database(USER_ADDON)
        with db_cursor(db) as cr:
            cr.execute(
                "UPDATE ir_cron SET nextcall = (now() AT TIME ZONE 'UTC') WHERE id = ("
                "SELECT res_id FROM ir_model_data"
                " WHERE module = 'memory_hygiene' AND name = 'ir_cron_memory_snapshot')"
            )
        server = OdooServer(db, workers=0, max_cron_threads=1)
        self.addCleanup(server.stop)
        server.start()
        [pid] = server.pids()["threaded"]
        self.assertEqual(server.get("/test_memory_hygiene/pid").json()["pid"], pid)

        def triggers():
            harness.wake_cron_workers(db)  # the cron thread of a threaded server too
            with db_cursor(db) as cr:
                cr.execute("SELECT DISTINCT trigger, process_kind FROM memory_snapshot WHERE pid = %s", [pid])
                found = set(cr.fetchall())
            return found if {"request", "schedule"} <= {trigger for trigger, _kind in found} else None

        found = wait_until(triggers, 120, 2, "snapshots of the threaded server")
        self.assertEqual(found, {("request", "threaded"), ("schedule", "threaded")})

    def test_a_server_started_with_test_enable_samples_itself(self):
        """--test-enable in production's config: once its tests ran, the server is not under test."""
        if compat.TEST_ENABLE_STOPS_AFTER_INIT:
            self.skipTest("Odoo 19.0 stops a server started with --test-enable after its tests")
        db = server_database(USER_ADDON)
        # --test-enable alone would run every installed module's tests first (these included):
        # a tag that matches no test keeps the run empty, as on a server whose tests passed.
        server = OdooServer(db, workers=0, max_cron_threads=0, extra_args=TEST_ENABLE_ARGS)
        self.addCleanup(server.stop)
        server.start()
        [pid] = server.pids()["threaded"]
        self.assertEqual(server.get("/test_memory_hygiene/pid").json()["pid"], pid)

        def request_snapshot():
            with db_cursor(db) as cr:
                cr.execute(
                    "SELECT count(*) FROM memory_snapshot WHERE pid = %s AND trigger = 'request'", [pid]
                )
                return cr.fetchone()[0]

        wait_until(request_snapshot, 60, message="the server sampling itself after a request")

    def test_a_process_started_with_test_enable_commits_per_batch(self):
        """The batched mixin in odoo-bin shell with --test-enable: each batch is committed.

        A second connection sees the first batch done while the second one runs.
        """
        code = (
            "Rec = env['test.memory.batch.record']\n"
            "recs = Rec.create([{'name': 'test-enable %s' % i} for i in range(4)])\n"
            "env.cr.commit()\n"
            "seen = []\n"
            "def close(batch):\n"
            "    with env.registry.cursor() as other:\n"
            '        other.execute("SELECT count(*) FROM test_memory_batch_record"\n'
            "                      \" WHERE id IN %s AND state = 'done'\", [tuple(recs.ids)])\n"
            "        seen.append(other.fetchone()[0])\n"
            "    batch.write({'state': 'done'})\n"
            "Rec._batch_process([('id', 'in', recs.ids)], close, batch_size=2)\n"
            "env.cr.commit()\n"
            "print('SEEN', seen)\n"
        )
        done = self.odoo_shell(server_database(USER_ADDON), code, *TEST_ENABLE_ARGS)
        self.assertIn("SEEN [0, 2]", done.stdout, done.stderr[-3000:])

    def test_odoo_bin_shell_samples_itself_as_other(self):
        db = server_database(USER_ADDON)
        code = (
            "snapshots = env['memory.snapshot']._sample_round('manual')\n"
            "print('SAMPLED', __import__('json').dumps([[s.pid, s.process_kind] for s in snapshots]))\n"
            "env.cr.commit()\n"
        )
        done = self.odoo_shell(db, code)
        line = next(line for line in done.stdout.splitlines() if line.startswith("SAMPLED"))
        [(pid, kind)] = json.loads(line.removeprefix("SAMPLED "))
        self.assertEqual(kind, "other")
        with db_cursor(db) as cr:
            cr.execute("SELECT process_kind, trigger FROM memory_snapshot WHERE pid = %s", [pid])
            self.assertEqual(cr.fetchall(), [("other", "manual")])

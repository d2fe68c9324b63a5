import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from unittest.mock import patch

import psutil
import psycopg2
import psycopg2.errors

import odoo
from odoo.exceptions import AccessError, UserError
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools.misc import dumpstacks

from .. import compat, odoo_runtime
from ..core.common import params
from ..core.diagnostics import heap
from ..core.host import machine

DIAGNOSTICS_LOGGER = "odoo.addons.memory_hygiene.models.memory_diagnostics"
LINE_MODELS = (
    "memory.diagnostics.process",
    "memory.diagnostics.finding",
    "memory.diagnostics.pg.figure",
    "memory.diagnostics.pg.query",
)
PAGE_ACTIONS = (
    "action_refresh",
    "action_refresh_postgres",
    "action_dump_stacks",
    "action_orm_stats",
    "action_heap_summary",
    "action_collect",
    "action_clear_caches",
    "action_tracemalloc_start",
    "action_tracemalloc_snapshot",
    "action_tracemalloc_stop",
)
PROCESS_ACTIONS = ("action_signal_stacks", "action_signal_orm_stats", "action_recycle")


def _headers(text):
    """Thread headers without the timings, which move between two dumps."""
    return {re.sub(r" \(qc:.*\)$", "", line) for line in text.splitlines() if line.startswith("# Thread:")}


@tagged("post_install", "-at_install")
class TestDiagnostics(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = new_test_user(cls.env, login="mh_diag_admin", groups="base.group_system")
        cls.user = new_test_user(cls.env, login="mh_diag_user", groups="base.group_user")
        cls.Diagnostics = cls.env["memory.diagnostics"].with_user(cls.admin)

    def open_page(self):
        action = self.Diagnostics.action_open()
        self.assertEqual(action["res_model"], "memory.diagnostics")
        return self.Diagnostics.browse(action["res_id"])

    def sleeper(self):
        """A child process that is not Odoo."""
        proc = subprocess.Popen(["sleep", "30"])
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        return proc

    def process_line(self, page, pid, kind="worker", create_time=None):
        # A line as an admin could forge it through RPC: the policy must still refuse.
        # By default with the start time the page would show (that of the process with that pid now).
        if create_time is None:
            try:
                create_time = psutil.Process(pid).create_time()
            except psutil.Error:
                create_time = 0.0
        return (
            self.env["memory.diagnostics.process"]
            .with_user(self.admin)
            .create({"diagnostics_id": page.id, "pid": pid, "kind": kind, "create_time": create_time})
        )

    # ------------------------------------------------------------------
    # Access
    # ------------------------------------------------------------------
    def test_internal_user_gets_access_error_on_every_model_and_action(self):
        page = self.open_page()
        with self.assertRaises(AccessError):
            self.env["memory.diagnostics"].with_user(self.user).action_open()
        for model in ("memory.diagnostics", *LINE_MODELS):
            with self.subTest(model=model), self.assertRaises(AccessError):
                self.env[model].with_user(self.user).search([])
            with self.subTest(model=model), self.assertRaises(AccessError):
                self.env[model].with_user(self.user).create({"diagnostics_id": page.id})
        for method in PAGE_ACTIONS:
            with self.subTest(method=method), self.assertRaises(AccessError):
                getattr(page.with_user(self.user), method)()
        proc = self.sleeper()
        line = self.process_line(page, proc.pid)
        for method in PROCESS_ACTIONS:
            with self.subTest(method=method), self.assertRaises(AccessError):
                getattr(line.with_user(self.user), method)()
        query = (
            self.env["memory.diagnostics.pg.query"]
            .with_user(self.admin)
            .create({"diagnostics_id": page.id, "backend_pid": 1})
        )
        with self.assertRaises(AccessError):
            query.with_user(self.user).action_cancel()
        self.assertIsNone(proc.poll(), "the child was not signalled")

    # ------------------------------------------------------------------
    # The page
    # ------------------------------------------------------------------
    def test_admin_gets_processes_advisor_and_postgres(self):
        page = self.open_page()
        info = odoo_runtime.server_info()
        self.assertTrue(page.host)
        self.assertEqual(page.root_pid, info["root_pid"])
        self.assertEqual(page.worker_pid, os.getpid())
        current = page.process_ids.filtered("is_current")
        self.assertEqual(current.pid, os.getpid())
        self.assertGreater(current.rss_mb, 1)
        self.assertGreater(current.vms_mb, current.rss_mb, "the address space is bigger than RSS")
        self.assertGreater(current.num_threads, 0)
        self.assertTrue(current.age)
        if odoo_runtime.server_options()["limit_memory_soft"]:
            self.assertGreater(current.soft_limit_pct, 0)
        self.assertTrue(page.finding_ids, "the advisor always says something")
        self.assertTrue(
            page.finding_ids.filtered(lambda f: f.code.startswith("gap_")), "live vms-rss gap shown"
        )
        settings = page.pg_setting_ids.mapped("name")
        for name in (
            "shared_buffers",
            "work_mem",
            "maintenance_work_mem",
            "max_connections",
            "effective_cache_size",
        ):
            self.assertIn(name, settings)
        self.assertIn("active", page.pg_session_ids.mapped("name"))
        self.assertTrue(page.pg_temp_ids.filtered("is_current"), "this database's temp files")
        page.action_refresh()
        self.assertEqual(len(page.process_ids.filtered("is_current")), 1, "lines are rebuilt, not added")

    def test_requests_served_from_the_latest_snapshot(self):
        page = self.open_page()
        current = page.process_ids.filtered("is_current")
        if current.requests:
            self.skipTest("this process counts its own requests (a prefork worker)")
        # Snapshots are written by the sampler, never by users.
        self.env["memory.snapshot"].sudo().create(
            {
                "host": page.host,
                "pid": os.getpid(),
                "process_kind": current.kind,
                "trigger": "request",
                "requests_count": 12,
            }
        )
        page.action_refresh()
        self.assertRegex(page.process_ids.filtered("is_current").requests, r"^12 \(snapshot .* ago\)$")

    def _long_query_line(self, page, backend, tag):
        """The line of ``page`` showing the query tagged ``tag`` of ``backend``, once it runs."""
        page.long_query_seconds = 0
        deadline = time.monotonic() + 20

        def shown():
            return page.pg_query_ids.filtered(lambda q: q.backend_pid == backend and tag in (q.query or ""))

        while not shown() and time.monotonic() < deadline:
            time.sleep(0.1)
            page.action_refresh_postgres()
        self.assertTrue(shown(), f"the query {tag} is listed")
        return shown()

    def test_long_query_of_this_database_is_listed_and_cancelled(self):
        page = self.open_page()
        # Slow queries of this database, one after the other on a connection of its own (not the test's
        # cursor): the first ends (cancelled by the test itself), then the same backend runs the second.
        _name, params_ = odoo.sql_db.connection_info_for(self.env.cr.dbname)
        connection = psycopg2.connect(**params_)
        connection.autocommit = True
        self.addCleanup(connection.close)
        outcome = {}

        def slow_queries():
            for tag in ("first", "second"):
                try:
                    with connection.cursor() as cr:
                        cr.execute(f"SELECT pg_sleep(30) /* memory_hygiene {tag} */")
                    outcome[tag] = "done"
                except psycopg2.errors.QueryCanceled:
                    outcome[tag] = "cancelled"

        thread = threading.Thread(target=slow_queries)
        thread.start()
        self.addCleanup(thread.join, 70)
        self.addCleanup(connection.cancel)
        backend = connection.info.backend_pid
        first = self._long_query_line(page, backend, "first")
        self.assertIn("pg_sleep(30)", first.query)
        self.assertTrue(first.backend_start and first.query_start)
        connection.cancel()  # the first query ends; the connection moves on to the second one
        second_page = self.open_page()
        second = self._long_query_line(second_page, backend, "second")
        self.assertEqual(outcome, {"first": "cancelled"})
        with self.assertRaisesRegex(UserError, "no longer runs the query shown on this page"):
            first.action_cancel()  # same backend, same pid: another query now
        self.assertFalse(first.cancelled)
        self.env.cr.execute("SELECT pg_stat_clear_snapshot()")
        self.env.cr.execute("SELECT state, query FROM pg_stat_activity WHERE pid = %s", [backend])
        state, query = self.env.cr.fetchone()
        self.assertEqual(state, "active")
        self.assertIn("memory_hygiene second", query, "the second query was left alone")
        second.action_cancel()
        thread.join(30)
        self.assertEqual(
            outcome, {"first": "cancelled", "second": "cancelled"}, "pg_cancel_backend stopped it"
        )
        self.assertTrue(second.cancelled)
        self.assertIn("pg_cancel_backend", second_page.output)
        self.assertFalse(connection.closed, "cancelled, never terminated: the session is still there")

    def test_cancel_refuses_other_backends(self):
        page = self.open_page()
        query = (
            self.env["memory.diagnostics.pg.query"]
            .with_user(self.admin)
            .create({"diagnostics_id": page.id, "backend_pid": 1, "query": "select pg_sleep(60)"})
        )
        with self.assertRaisesRegex(UserError, "no longer runs the query shown"):
            query.action_cancel()
        self.env.cr.execute(
            "SELECT pg_backend_pid(), backend_start::text, query_start::text FROM pg_stat_activity"
            " WHERE pid = pg_backend_pid()"
        )
        pid, backend_start, query_start = self.env.cr.fetchone()
        query.write({"backend_pid": pid, "backend_start": backend_start, "query_start": query_start})
        with self.assertRaisesRegex(UserError, "no longer runs the query shown"):
            query.action_cancel()  # never this page's own backend

    def test_temp_files_name_this_database_only(self):
        page = self.open_page()
        self.assertEqual(page.pg_temp_ids.mapped("name"), [self.env.cr.dbname])
        self.assertTrue(page.pg_temp_ids.is_current)

    def test_config_advisor_flags_a_bad_configuration_and_passes_a_sound_one(self):
        gib = 1024**3
        vms = psutil.Process().memory_info().vms
        soft = max(4 * gib, 2 * vms)  # above what this process already takes in virtual size
        sound = {
            "workers": 5,
            "max_cron_threads": 1,
            "limit_memory_soft": soft,
            "limit_memory_hard": int(soft * 1.25),
            "limit_memory_soft_gevent": None,
            "limit_memory_hard_gevent": None,
            "limit_time_cpu": 60,
            "limit_time_real": 120,
            "limit_time_real_cron": -1,
            "limit_request": 65536,
            "db_maxconn": 8,  # (5 + 1) x 8 + 8 for the gevent process: within PostgreSQL's default 100
            "proxy_mode": True,
        }
        # Hard below soft, and 62 processes x (soft - the live vms-rss gap, at most vms) > 16 x soft of RAM.
        bad = dict(sound, workers=60, limit_memory_hard=int(soft * 0.9))
        host = machine.Machine(
            machine.Figure(4, machine.HOST_CPUS, "cpus"),
            machine.Figure(16 * soft, machine.HOST_RAM),
            machine.Figure(8 * soft, machine.HOST_AVAILABLE),
            machine.Figure(None, machine.NO_PRESSURE, "pct"),
        )
        page = self.open_page()
        with patch.object(machine, "read", return_value=host):
            with patch.object(odoo_runtime, "server_options", return_value=bad):
                page.action_refresh()
            critical = set(page.finding_ids.filtered(lambda f: f.level == "critical").mapped("code"))
            # (and 61 workers x 2 connections may be more than PostgreSQL accepts)
            self.assertEqual(critical - {"connections"}, {"hard_not_above_soft", "limits_vs_ram"})
            self.assertIn("workers_vs_cpu", page.finding_ids.mapped("code"))
            self.assertEqual(page.finding_ids[0].level, "critical", "worst first")
            with patch.object(odoo_runtime, "server_options", return_value=sound):
                page.action_refresh()
        levels = set(page.finding_ids.mapped("level"))
        self.assertNotIn("critical", levels)
        self.assertNotIn("warning", levels)
        self.assertIn("ok", levels)

    def test_a_4_gib_2_cpu_container_on_a_large_host(self):
        """cgroup v2 fixture folders: 4 GiB and 2 CPUs for a container on a 32-CPU, 64 GiB host."""
        root = tempfile.mkdtemp(prefix="memory_hygiene_cgroup_")
        self.addCleanup(shutil.rmtree, root, ignore_errors=True)
        gib = 1024**3
        for path, text in (
            ("proc/meminfo", f"MemTotal: {64 * 1024 * 1024} kB\nMemAvailable: {60 * 1024 * 1024} kB\n"),
            ("proc/self/cgroup", "0::/\n"),
            ("sys/fs/cgroup/cgroup.controllers", "cpu memory\n"),
            ("sys/fs/cgroup/memory.max", f"{4 * gib}\n"),
            ("sys/fs/cgroup/memory.current", f"{gib}\n"),
            ("sys/fs/cgroup/cpu.max", "200000 100000\n"),
        ):
            os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
            with open(os.path.join(root, path), "w", encoding="ascii") as file:
                file.write(text)
        # What a configuration sized for the host looks like: 2 x 32 + 1 workers.
        for_the_host = dict(odoo_runtime.server_options(), workers=65, max_cron_threads=2, proxy_mode=True)
        read = machine.read
        page = self.open_page()
        with (
            patch.object(machine, "read", lambda *a, **kw: read(root, affinity=32, host_cpus=32)),
            patch.object(odoo_runtime, "server_options", return_value=for_the_host),
        ):
            page.action_refresh()
        self.assertEqual(page.ram_text, "4.0 GiB (container limit)")
        self.assertEqual(page.cpu_text, "2 CPUs (container CPU quota)")
        self.assertEqual(page.available_text, "3.0 GiB (container limit minus its working set)")
        self.assertEqual((page.cpu_count, page.ram_mb), (2, 4096))
        cpu = page.finding_ids.filtered(lambda f: f.code == "workers_vs_cpu")
        self.assertIn("Set workers = 5", cpu.advice)
        ram = page.finding_ids.filtered(lambda f: f.code == "limits_vs_ram")
        self.assertIn("4.0 GiB (container limit)", ram.advice)
        advised = {key: int(value) for key, value in re.findall(r"(\w+) = (\d+)", ram.advice)}
        self.assertLessEqual(advised["workers"], 5)
        # The advised processes at their soft limit fit the container, with room for PostgreSQL.
        self.assertLessEqual((advised["workers"] + 2 + 1) * advised["limit_memory_soft"], 4 * gib)

    # ------------------------------------------------------------------
    # This worker
    # ------------------------------------------------------------------
    def test_stack_dump_is_odoo_dumpstacks_shown_and_logged(self):
        page = self.open_page()
        # logging.INFO, not "INFO": Odoo gives that name to its RUNBOT level (25).
        with self.assertLogs(DIAGNOSTICS_LOGGER, logging.INFO) as logged:
            page.action_dump_stacks()
        self.assertIn("Thread stacks", page.output_title)
        self.assertIn(str(os.getpid()), page.output_title)
        self.assertIn("test_stack_dump_is_odoo_dumpstacks_shown_and_logged", page.output)
        self.assertIn("# Thread:", logged.output[0])
        with self.assertLogs("odoo.tools.misc", logging.INFO) as odoo_dump:
            dumpstacks()
        self.assertEqual(_headers(page.output), _headers(odoo_dump.records[0].getMessage()))

    def test_orm_cache_statistics_and_record_cache(self):
        page = self.open_page()
        self.env["ir.model"]._get_id("res.partner")
        self.env["res.partner"].search([], limit=5).mapped("name")
        page.action_orm_stats()
        self.assertIn("Caches stats:", page.output)
        self.assertIn("_get_id", page.output)
        self.assertIn("Record cache:", page.output)
        self.assertIn("res.partner", page.output)
        if compat.ormcache_sizes():
            self.assertIn("TX Hit Ratio", page.output)
            self.assertIn("Memory SUM", page.output)

    def test_heap_gc_and_clear_caches(self):
        page = self.open_page()
        page.action_heap_summary()
        self.assertIn("pympler", page.output_title)
        self.assertRegex(page.output, r"\bdict\b")
        page.action_collect()
        self.assertIn("RSS after trim", page.output)
        self.env["ir.model"]._get_id("res.partner")
        page.action_clear_caches()
        self.assertIn("cleared", page.output)
        self.assertRegex(page.output, r"default: +\d+ -> +0 entries")

    def test_tracemalloc_start_snapshot_compare_stop(self):
        page = self.open_page()
        self.addCleanup(heap.TRACER.stop)
        page.action_tracemalloc_snapshot()
        self.assertIn("not tracing", page.output)
        page.action_tracemalloc_start()
        self.assertIn("stops by itself after 30 min", page.output, "the default time limit")
        self.assertIn("tracing", page.tracemalloc_state)
        page.action_refresh()
        self.assertIn(
            "stops by itself at", page.process_ids.filtered("is_current").tracing, "shown per worker"
        )
        page.action_tracemalloc_snapshot()
        self.assertIn("First snapshot", page.output)
        kept = [bytearray(2048) for _ in range(500)]
        page.action_tracemalloc_snapshot()
        self.assertIn("Compared with the previous snapshot", page.output)
        self.assertTrue(kept)
        page.action_tracemalloc_stop()
        self.assertIn("stopped", page.output)
        page.invalidate_recordset(["tracemalloc_state"])
        self.assertIn("off", page.tracemalloc_state)

    def test_tracemalloc_stops_by_itself_at_its_traced_size(self):
        page = self.open_page()
        self.addCleanup(heap.TRACER.stop)
        self.env["ir.config_parameter"].sudo().set_param(params.TRACEMALLOC_MAX_MB, "1")
        page.action_tracemalloc_start()
        self.assertIn("when it traces 1.0 MiB", page.output)
        kept = [bytearray(4096) for _ in range(1024)]  # 4 MiB traced: above the limit
        deadline = time.monotonic() + 30
        while heap.TRACER.tracing and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertFalse(heap.TRACER.tracing, "its watchdog stopped it")
        self.assertTrue(kept)
        page.invalidate_recordset(["tracemalloc_state"])
        self.assertIn("stopped by itself: it traced", page.tracemalloc_state)
        page.action_refresh()
        self.assertFalse(page.process_ids.filtered("is_current").tracing, "no worker shown as tracing")

    # ------------------------------------------------------------------
    # Another process: the signal policy
    # ------------------------------------------------------------------
    def test_signalling_a_non_odoo_process_is_refused(self):
        page = self.open_page()
        proc = self.sleeper()
        self.env.cr.execute("SELECT pg_backend_pid()")
        postgres = self.env.cr.fetchone()[0]
        cases = {
            proc.pid: "not an Odoo process",  # a helper: a program this process started
            1: "init process",
            postgres: "PostgreSQL",
        }
        for pid, reason in cases.items():
            line = self.process_line(page, pid)
            for method in PROCESS_ACTIONS:
                with self.subTest(pid=pid, method=method), self.assertRaisesRegex(UserError, reason):
                    getattr(line, method)()
        self.assertIsNone(proc.poll(), "the child is still running: nothing was sent")

    def test_a_replaced_process_or_another_host_is_refused(self):
        page = self.open_page()
        if page.server_mode not in ("threaded", "prefork"):
            self.skipTest("no server around this test run")
        started = psutil.Process(page.root_pid).create_time()
        # The pid shown, but a process started at another time: the one shown was replaced since.
        stale = self.process_line(page, page.root_pid, "master", create_time=started - 60)
        with (
            patch.object(signal, "pidfd_send_signal", side_effect=AssertionError("sent")),
            patch.object(os, "kill", side_effect=AssertionError("sent")),
        ):
            for method in PROCESS_ACTIONS:
                with (
                    self.subTest(method=method),
                    self.assertRaisesRegex(UserError, "no longer the process shown"),
                ):
                    getattr(stale, method)()
            line = self.process_line(page, page.root_pid, "master")
            page.host = "another-host"
            with self.assertRaisesRegex(UserError, "drawn on host another-host"):
                line.action_signal_stacks()

    def test_a_program_this_process_started_is_listed_as_its_helper(self):
        proc = self.sleeper()
        page = self.open_page()
        [line] = page.process_ids.filtered(lambda line: line.pid == proc.pid)
        self.assertEqual((line.kind, line.owner_pid, line.soft_limit_pct), ("helper", os.getpid(), 0))
        self.assertEqual(line.command, "sleep 30")
        own = page.process_ids.filtered(lambda line: line.pid == os.getpid())
        self.assertNotEqual(own.kind, "helper")
        self.assertFalse(own.owner_pid)

    def test_threaded_server_is_never_recycled(self):
        page = self.open_page()
        if page.server_mode not in ("threaded", "prefork"):
            self.skipTest("no server around this test run")
        root = self.process_line(page, page.root_pid)
        with self.assertRaisesRegex(UserError, "threaded|master"):
            root.action_recycle()

    def test_stack_dump_of_a_process_is_read_back_from_the_log_file(self):
        """SIGQUIT to an Odoo process of this server; its dump, logged to --logfile, is shown."""
        page = self.open_page()
        info = odoo_runtime.server_info()
        if info["mode"] != "threaded" or not callable(signal.getsignal(signal.SIGQUIT)):
            self.skipTest("needs the test runner's threaded server, with Odoo's SIGQUIT handler")
        # The server logs to a file here as with --logfile, in Odoo's format (pid, db, logger).
        path = tempfile.mkstemp(prefix="memory_hygiene_log_", suffix=".log")[1]
        self.addCleanup(os.unlink, path)
        handler = logging.FileHandler(path)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(process)d %(levelname)s ? %(name)s: %(message)s")
        )
        odoo_misc = logging.getLogger("odoo.tools.misc")
        self.addCleanup(odoo_misc.setLevel, odoo_misc.level)
        odoo_misc.setLevel(logging.INFO)
        odoo_misc.addHandler(handler)
        self.addCleanup(odoo_misc.removeHandler, handler)
        self.addCleanup(handler.close)
        line = self.process_line(page, os.getpid(), "threaded")
        with patch.object(odoo_runtime, "server_logfile", return_value=path):
            line.action_signal_stacks()
        self.assertIn(f"Thread stacks of pid {os.getpid()}", page.output_title)
        self.assertIn("# Thread:", page.output)
        self.assertIn("in _signal", page.output, "the stack of the request that sent it")

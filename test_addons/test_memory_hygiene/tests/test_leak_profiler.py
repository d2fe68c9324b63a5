import logging
import os
import pathlib
import tracemalloc
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import new_test_user, tagged

from odoo.addons.memory_hygiene import compat, odoo_runtime
from odoo.addons.memory_hygiene.core.common import params
from odoo.addons.memory_hygiene.core.profiler import accounting, deferred, leakprof
from odoo.addons.memory_hygiene.models import ir_cron as profiler
from odoo.addons.memory_hygiene.models import memory_cron_run

from ..models import test_memory_leak_job as jobs
from .common import BatchCase

PROFILER_LOGGER = profiler.__name__
ODOO_CRON_LOGGER = "odoo.addons.base.models.ir_cron"


def _line_of(text):
    """File and line number of the first line of the test jobs' module containing ``text``."""
    path = pathlib.Path(jobs.__file__)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return str(path), number
    raise AssertionError(f"{text!r} not in {path}")


class ProfilerCase(BatchCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.icp = cls.env["ir.config_parameter"].sudo()
        cls.window = params.PARAMS[params.PROFILE_WINDOW].default

    def setUp(self):
        super().setUp()
        self.addCleanup(jobs.LEAK.clear)
        self.addCleanup(jobs.TRACING_SEEN.clear)
        self.assertFalse(tracemalloc.is_tracing(), "nothing traces before the test")

    def runs(self, cron, traced=True):
        """The cron's traced runs (``traced=False``: every accounted run), oldest first."""
        domain = [("cron_id", "=", cron.id)] + ([("trace", "!=", "no")] if traced else [])
        return self.env["memory.cron.run"].search(domain, order="start, id")

    def run_job(self, cron, times=1):
        for _ in range(times):
            self.run_cron_job(cron)
        self.assertFalse(tracemalloc.is_tracing(), "the profiler stops the tracing it started")


@tagged("post_install", "-at_install")
class TestLeakProfiler(ProfilerCase):
    def test_appending_cron_is_leaking_and_names_the_line(self):
        cron = self.make_job_cron("_job_leak", memory_profile=True)
        leak_file, leak_line = _line_of("LEAK.append(")
        with self.assertLogs(PROFILER_LOGGER, logging.INFO) as logs:
            for run in range(1, self.window + 1):
                self.run_job(cron)
                expected = "leaking" if run == self.window else "unknown"
                self.assertEqual(cron.memory_leak_state, expected, f"after {run} runs")
        runs = self.runs(cron)
        self.assertEqual(len(runs), self.window)
        self.assertEqual(cron.memory_profile_runs, self.window)
        for run in runs:
            self.assertEqual(run.state, "ok")
            self.assertEqual(
                run.top_site, f"{leak_file}:{leak_line}", "the top allocation is the appending line"
            )
            top = run.line_ids.sorted("rank")[0]
            self.assertEqual((top.file, top.line), (leak_file, leak_line))
            self.assertAlmostEqual(top.size_diff_kb, 1024, delta=16)
            self.assertGreaterEqual(top.count_diff, 1)
            self.assertAlmostEqual(run.traced_growth_mb, 1, delta=0.25)
            self.assertGreater(run.rss_before_mb, 0)
            self.assertGreater(run.rss_after_gc_mb, 0)
            self.assertGreater(run.fds_after, 0)
            self.assertEqual(run.frames, 1)
        # The article's log line, for each run.
        article_line = f"{leak_file}:{leak_line}: size="
        self.assertEqual(sum(article_line in out for out in logs.output), self.window)
        self.assertTrue(any(" (+1.0 MiB), count=" in out for out in logs.output))
        self.assertIn("leaking", logs.output[-1], "the verdict is logged when it turns to leaking")
        self.assertIn("the traced run keeps Python memory", cron.memory_leak_reason)
        self.assertTrue(all(run.growth_mb >= 0.9 for run in runs), "each run is charged what it kept")
        self.assertIn(f"{jobs.__name__}.LEAK (list, +1 entry)", runs[-1].holder)

    def test_freeing_cron_stays_healthy(self):
        cron = self.make_job_cron("_job_churn", memory_profile=True)
        self.run_job(cron, self.window)
        self.assertEqual(cron.memory_leak_state, "healthy", cron.memory_leak_reason)
        runs = self.runs(cron)
        self.assertEqual(len(runs), self.window)
        self.assertTrue(all(abs(run.traced_growth_mb) < 0.25 for run in runs))
        self.assertTrue(all(run.traced_peak_mb >= 8 for run in runs), "the peak shows the 8 MiB it freed")

    def test_the_record_cache_of_the_run_is_not_kept_memory(self):
        """What the run cached goes with its transaction (18.0 empties it before Odoo's commit does)."""
        cron = self.make_job_cron("_job_fill_cache", memory_profile=True)
        with self.assertLogs(PROFILER_LOGGER, logging.INFO):
            self.run_job(cron)
        run = self.runs(cron)
        self.assertGreater(run.record_cache_size, 2000 * 3, "the cache was full when the action returned")
        self.assertGreater(run.traced_peak_mb, 1, "and big")
        self.assertLess(run.traced_growth_mb, 0.25, "but it is not what the run keeps")

    def test_raising_cron_behaves_as_unprofiled_and_its_profile_is_stored(self):
        cron = self.make_job_cron("_job_fail")
        outcomes = []
        for profiled in (False, True):
            cron.memory_profile = profiled
            with self.assertLogs(ODOO_CRON_LOGGER, logging.ERROR) as logs:
                self.run_job(cron)
            failures = [r for r in logs.records if r.exc_info]
            self.assertEqual(len(failures), 1)
            outcomes.append(
                (
                    failures[0].getMessage(),
                    repr(failures[0].exc_info[1]),
                    cron.failure_count,
                    self.icp.get_param("test_memory_hygiene.fail_marker"),
                )
            )
        unprofiled, profiled = outcomes
        self.assertEqual(unprofiled[:2], profiled[:2], "the same exception, logged the same way")
        self.assertEqual((unprofiled[2], profiled[2]), (1, 2), "each run counts as a failure")
        self.assertEqual((unprofiled[3], profiled[3]), (False, False), "the job's writes are rolled back")
        self.assertEqual(len(self.runs(cron, traced=False)), 2, "both runs are accounted")
        run = self.runs(cron)
        self.assertEqual(len(run), 1, "only the profiled run is traced")
        self.assertEqual(run.state, "failed")
        self.assertIn("ValueError: the test job fails", run.error)
        self.assertIn("_job_fail", run.error, "with the traceback")

    def test_run_manually_is_profiled(self):
        cron = self.make_job_cron("_job_leak", memory_profile=True)
        leak_file, leak_line = _line_of("LEAK.append(")
        with self.assertLogs(PROFILER_LOGGER, logging.INFO):
            for _ in range(self.window):
                self.assertIs(self.run_manually(cron), True)
        self.assertFalse(tracemalloc.is_tracing())
        runs = self.runs(cron)
        self.assertEqual(len(runs), self.window)
        self.assertEqual(set(runs.mapped("top_site")), {f"{leak_file}:{leak_line}"})
        self.assertEqual(cron.memory_leak_state, "leaking")
        self.assertEqual(cron.memory_profile_runs, self.window)

    def test_run_manually_of_a_raising_cron(self):
        cron = self.make_job_cron("_job_fail", memory_profile=True)
        if compat.RUN_MANUALLY_SKIPS_CALLBACK:
            # 18.0: the exception reaches the caller, as without the profiler.
            with self.assertRaisesRegex(ValueError, "the test job fails"):
                self.run_manually(cron)
        else:
            # 19.0: the job runs in its own transaction; the button shows the error.
            with self.assertLogs(ODOO_CRON_LOGGER, logging.ERROR):
                result = self.run_manually(cron)
            self.assertEqual(result["tag"], "display_exception")
        run = self.runs(cron)
        self.assertEqual(run.state, "failed")
        self.assertIn("ValueError: the test job fails", run.error)

    def test_profiling_off_does_not_trace(self):
        cron = self.make_job_cron("_job_probe")
        self.run_job(cron)
        self.assertEqual(jobs.TRACING_SEEN, [False], "not profiled: tracemalloc is not started")
        self.assertFalse(self.runs(cron))
        self.assertEqual(len(self.runs(cron, traced=False)), 1, "but the run is accounted")

        cron.memory_profile = True
        self.run_job(cron)
        self.assertEqual(jobs.TRACING_SEEN, [False, True])
        self.assertEqual(len(self.runs(cron)), 1)

        cron.memory_profile = False
        self.run_job(cron)
        self.assertEqual(jobs.TRACING_SEEN, [False, True, False])

    def test_global_switch_profiles_every_cron_until_it_expires(self):
        cron = self.make_job_cron("_job_probe")
        now = fields.Datetime.now()
        self.icp.set_param(params.PROFILE_UNTIL, fields.Datetime.to_string(now + timedelta(hours=1)))
        self.run_job(cron)
        self.icp.set_param(params.PROFILE_UNTIL, fields.Datetime.to_string(now - timedelta(seconds=1)))
        self.run_job(cron)
        self.assertEqual(jobs.TRACING_SEEN, [True, False], "the switch ends by itself")
        self.assertEqual(len(self.runs(cron)), 1)
        self.assertEqual(cron.memory_profile_runs, 0, "the counter is the per-action switch's")

    def test_every_nth_run(self):
        cron = self.make_job_cron("_job_probe", memory_profile=True, memory_profile_every=3)
        self.run_job(cron, 7)
        self.assertEqual(jobs.TRACING_SEEN, [True, False, False, True, False, False, True])
        self.assertEqual(len(self.runs(cron)), 3)
        self.assertEqual(cron.memory_profile_runs, 7)
        with self.assertRaisesRegex(ValidationError, "at least 1"):
            cron.memory_profile_every = 0

    def test_settings_frames_and_top_n(self):
        self.icp.set_param(params.PROFILE_FRAMES, "5")
        self.icp.set_param(params.PROFILE_TOP_N, "1")
        cron = self.make_job_cron("_job_leak", memory_profile=True)
        with self.assertLogs(PROFILER_LOGGER, logging.INFO):
            self.run_job(cron)
        run = self.runs(cron)
        self.assertEqual(run.frames, 5)
        self.assertEqual(len(run.line_ids), 1)

    def test_record_cache_size_when_the_action_returned(self):
        cron = self.make_job_cron("_job_probe", memory_profile=True)
        self.run_job(cron)
        self.assertGreater(self.runs(cron).record_cache_size, 0, "the probe job reads users")

    def test_profiler_failures_never_reach_the_job(self):
        traced = self.make_job_cron("_job_probe", memory_profile=True)
        accounted = self.make_job_cron("_job_probe")
        Run = type(self.env["memory.cron.run"])
        breakdowns = [
            (traced, leakprof.ProfileSession, "start", "cannot start"),
            (traced, leakprof.ProfileSession, "stop", "cannot measure"),
            (traced, Run, "_record", "cannot store"),
            (traced, Run, "_verdict_inputs_parse", "cannot store"),
            (accounted, accounting, "read", "cannot read before"),
            (accounted, Run, "_insert_accounted_query", "cannot store"),
            (accounted, Run, "_verdict_inputs_parse", "cannot store"),
        ]
        for cron, owner, method, message in breakdowns:
            with self.subTest(method=method, traced=cron.memory_profile):
                jobs.TRACING_SEEN.clear()
                cron.lastcall = False
                with (
                    patch.object(owner, method, side_effect=RuntimeError("profiler broken")),
                    self.assertLogs(PROFILER_LOGGER, logging.ERROR) as logs,
                ):
                    self.run_job(cron)
                self.assertEqual(len(jobs.TRACING_SEEN), 1, "the job ran")
                self.assertEqual(cron.failure_count, 0, "and succeeded")
                self.assertTrue(cron.lastcall, "and was rescheduled")
                self.assertIn(message, logs.output[0])
                self.assertIn("profiler broken", logs.output[0])

    def test_leak_fields_are_for_admins(self):
        admin = new_test_user(self.env, login="mh_profiler_admin", groups="base.group_system")
        cron = self.make_job_cron("_job_probe", memory_profile=True)
        self.run_job(cron)
        cron_as_admin = cron.with_user(admin)
        self.assertEqual(cron_as_admin.memory_run_count, 1)
        self.assertGreaterEqual(cron_as_admin.memory_growth_share, 0)
        action = cron_as_admin.action_memory_open_runs()
        self.assertEqual(
            self.env[action["res_model"]].with_user(admin).search(action["domain"]),
            self.runs(cron, traced=False),
        )
        self.assertEqual(cron_as_admin.action_memory_open_graph()["views"][0][1], "graph")
        with self.assertRaises(AccessError):
            self.env["memory.cron.run"].with_user(self.user).search([])
        with self.assertRaises(AccessError):
            self.runs(cron).with_user(admin).write({"duration": 0})


@tagged("post_install", "-at_install")
class TestLeakDetection(ProfilerCase):
    """Default settings: every run accounted, suspects traced by themselves, growth charged to its cron."""

    #: The verdict tests run this many times in a row (issue 11: they never flake).
    REPEAT = 20

    def test_interleaved_crons_blame_the_leaking_one_only(self):
        leak_file, leak_line = _line_of("LEAK.append(bytearray(MIB))  # the appending line")
        for attempt in range(self.REPEAT):
            with self.subTest(attempt=attempt):
                leaking = self.make_job_cron("_job_leak")
                freeing = self.make_job_cron("_job_churn_3mib")
                for _ in range(2 * self.window):
                    self.run_job(leaking)
                    self.run_job(freeing)
                self.assertEqual(leaking.memory_leak_state, "leaking", leaking.memory_leak_reason)
                self.assertEqual(freeing.memory_leak_state, "healthy", freeing.memory_leak_reason)
                traced = self.runs(leaking)
                self.assertEqual(len(traced), 1, "traced by itself, once in the trace period")
                self.assertTrue(traced.auto_traced)
                self.assertEqual(traced.top_site, f"{leak_file}:{leak_line}", "the appending line")
                self.assertIn(f"{jobs.__name__}.LEAK (list, +1 entry)", traced.holder, "and its holder")
                self.assertEqual(len(self.runs(leaking, traced=False)), 2 * self.window)
                self.assertEqual(len(self.runs(freeing, traced=False)), 2 * self.window)
                self.assertGreaterEqual(leaking.memory_growth_share, 90.0)
                self.assertGreater(leaking.memory_growth_day_mb, 1.5 * self.window)
                self.assertLess(abs(freeing.memory_growth_day_mb), 1)
                # The next iteration is another worker's day: its own crons, its own runs.
                (leaking | freeing).unlink()
                jobs.LEAK.clear()

    def test_no_trace_while_someone_else_traces(self):
        cron = self.make_job_cron("_job_leak")
        self.run_job(cron, self.window)
        self.assertEqual(cron.memory_leak_state, "suspect")
        tracemalloc.start()
        try:
            self.run_cron_job(cron)
            self.assertTrue(tracemalloc.is_tracing(), "someone else's trace is left on")
        finally:
            tracemalloc.stop()
        self.assertFalse(self.runs(cron), "no trace under someone else's")
        self.assertEqual(cron.memory_leak_state, "suspect")
        self.run_job(cron)
        self.assertEqual(len(self.runs(cron)), 1)
        self.assertEqual(cron.memory_leak_state, "leaking")
        self.run_job(cron)
        self.assertEqual(len(self.runs(cron)), 1, "at most one automatic trace per period")

    def test_a_trace_stopped_by_someone_else_is_interrupted(self):
        cron = self.make_job_cron("_job_stop_tracing", memory_profile=True)
        with self.assertLogs(PROFILER_LOGGER, logging.WARNING) as logs:
            self.run_job(cron)
        run = self.runs(cron)
        self.assertEqual(run.trace, "interrupted")
        self.assertFalse(run.line_ids)
        self.assertIn("stopped or restarted by someone else", logs.output[0])
        self.assertEqual(cron.memory_leak_state, "unknown")

    def test_the_diagnostics_tracer_never_stops_a_traced_run(self):
        cron = self.make_job_cron("_job_uses_diagnostics_tracer", memory_profile=True)
        with self.assertLogs(PROFILER_LOGGER, logging.INFO):
            self.run_job(cron)
        run = self.runs(cron)
        self.assertEqual(run.trace, "traced")
        self.assertAlmostEqual(run.traced_growth_mb, 1, delta=0.25)


@tagged("post_install", "-at_install")
class TestChargedRuns(ProfilerCase):
    """Every run is accounted; charging it reads the C heap: every run until healthy, then one in N."""

    def setUp(self):
        super().setUp()
        # Growth of an uncharged run charges the next one: 64 MiB keeps a churning job's RSS out of it.
        self.icp.set_param(params.LEAK_THRESHOLD, "64")

    def healthy_cron(self, method="_job_churn"):
        cron = self.make_job_cron(method)
        self.run_job(cron, self.window)
        self.assertEqual(cron.memory_leak_state, "healthy", cron.memory_leak_reason)
        self.assertTrue(all(self.runs(cron, traced=False).mapped("charged")), "every run until settled")
        return cron

    def growth_column(self, runs):
        """``growth_mb`` as stored (``None`` where the run was not charged; the ORM reads 0.0)."""
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT growth_mb FROM memory_cron_run WHERE id IN %s ORDER BY id", [tuple(runs.ids)]
        )
        return [growth for (growth,) in self.env.cr.fetchall()]

    def test_a_healthy_action_is_charged_one_run_in_n(self):
        self.icp.set_param(params.HEAP_EVERY, "3")
        cron = self.healthy_cron()
        self.run_job(cron, 6)
        later = self.runs(cron, traced=False)[self.window :]
        # The first run of a healthy action in a process is charged (a worker recycled early charges some).
        self.assertEqual(later.mapped("charged"), [True, False, False, True, False, False])
        growth = self.growth_column(later)
        self.assertEqual([g is None for g in growth], [False, True, True, False, True, True])
        for run in later:
            self.assertGreater(run.duration, 0, "accounted all the same")
            self.assertGreater(run.rss_after_mb, 0)
            self.assertGreater(run.fds_after, 0)
        self.assertEqual(cron.memory_leak_state, "healthy")
        self.assertAlmostEqual(cron.memory_growth_run_mb, 0, delta=0.5, msg="the charged runs' mean")

    def test_every_run_charged_with_n_1(self):
        self.icp.set_param(params.HEAP_EVERY, "1")
        cron = self.healthy_cron()
        self.run_job(cron, 3)
        self.assertTrue(all(self.runs(cron, traced=False).mapped("charged")))

    def test_an_uncharged_run_whose_python_blocks_grew_charges_the_next(self):
        self.icp.set_param(params.HEAP_EVERY, "1000")
        self.icp.set_param(params.LEAK_THRESHOLD, "0.5")
        cron = self.healthy_cron("_job_churn_3mib")
        self.run_job(cron)  # the first run of a healthy action in this process: charged
        cron.ir_actions_server_id.code = "model._job_keep_small_objects()"
        self.run_job(cron, 2)
        later = self.runs(cron, traced=False)[self.window + 1 :]
        self.assertEqual(later.mapped("charged"), [False, True], "40 000 Python objects kept: measure")
        self.assertGreater(later[0].blocks_growth, 10_000)
        self.assertGreater(later[1].growth_mb, 1, "the charged run is charged what it kept")

    def test_a_leak_that_starts_in_a_healthy_action_is_found(self):
        """A healthy action that starts keeping 1 MiB per run: its charged runs see it, then every run."""
        self.icp.set_param(params.HEAP_EVERY, "2")
        self.icp.set_param(params.LEAK_THRESHOLD, "0.5")
        cron = self.healthy_cron("_job_churn_3mib")
        cron.ir_actions_server_id.code = "model._job_leak()"
        for _run in range(4 * self.window):
            self.run_job(cron)
            if cron.memory_leak_state == "leaking":
                break
        self.assertEqual(cron.memory_leak_state, "leaking", cron.memory_leak_reason)
        traced = self.runs(cron)
        self.assertEqual(len(traced), 1)
        self.assertTrue(traced.auto_traced)
        leak_file, leak_line = _line_of("LEAK.append(bytearray(MIB))  # the appending line")
        self.assertEqual(traced.top_site, f"{leak_file}:{leak_line}")

    def test_run_manually_is_always_charged(self):
        self.icp.set_param(params.HEAP_EVERY, "1000")
        cron = self.healthy_cron()
        self.run_job(cron)  # the first run of a healthy action in this process: charged
        self.run_job(cron)
        self.assertFalse(self.runs(cron, traced=False)[-1].charged, "its turn is far")
        self.run_manually(cron)
        self.assertTrue(self.runs(cron, traced=False)[-1].charged, "Run Manually reads the heap")

    def defer_rows(self, max_rows=deferred.MAX_ROWS):
        """Rows of uncharged runs wait as on a server (under the test runner each job writes its own)."""
        self.patch(profiler, "DEFER_ROWS", True)
        self.patch(profiler, "DEFERRED", deferred.DeferredRows(max_rows=max_rows))
        return profiler.DEFERRED

    def test_uncharged_rows_wait_for_the_next_store_that_writes(self):
        self.icp.set_param(params.HEAP_EVERY, "1000")
        cron = self.healthy_cron()
        other = self.make_job_cron("_job_churn")  # unknown: every run charged, its store writes
        waiting = self.defer_rows()
        db = self.env.cr.dbname
        self.run_job(cron, 3)  # the first in this process charged, then two not
        self.assertEqual(self.runs(cron, traced=False)[self.window :].mapped("charged"), [True])
        kept = waiting.waiting(db)
        self.assertEqual(len(kept), 2, "no round trip of their own")
        self.run_job(other)
        later = self.runs(cron, traced=False)[self.window :]
        self.assertEqual(later.mapped("charged"), [True, False, False], "written with the other's run")
        self.assertEqual(waiting.waiting(db), [])
        self.assertEqual(later.ids, sorted(later.ids), "in the order they ran")
        # Every column as it was measured (JSON on the way, typed by the table's columns).
        columns = memory_cron_run.ACCOUNTED_COLUMNS
        self.env.cr.execute(
            f"SELECT {', '.join(columns)}, charged IS FALSE FROM memory_cron_run WHERE id IN %s ORDER BY id",
            [tuple(later[1:].ids)],
        )
        for stored, measured in zip(self.env.cr.fetchall(), kept, strict=True):
            self.assertIs(stored[-1], True, "charged is false, not NULL")
            for column, value in zip(columns, stored, strict=False):
                expected = memory_cron_run._column_value(measured, column)
                if isinstance(expected, float):
                    self.assertAlmostEqual(float(value), expected, places=9, msg=column)
                else:
                    self.assertEqual(value, expected, column)
        self.assertGreater(later[1].duration, 0)
        self.assertGreater(later[1].rss_after_mb, 0)

    def test_uncharged_rows_are_written_once_max_rows_wait(self):
        self.icp.set_param(params.HEAP_EVERY, "1000")
        cron = self.healthy_cron()
        waiting = self.defer_rows(max_rows=2)
        self.run_job(cron, 3)
        self.assertEqual(len(waiting.waiting(self.env.cr.dbname)), 2)
        self.assertEqual(len(self.runs(cron, traced=False)[self.window :]), 1)
        self.run_job(cron)  # a third would wait: this store writes the three
        self.assertEqual(self.runs(cron, traced=False)[self.window :].mapped("charged"), [True] + [False] * 3)
        self.assertEqual(waiting.waiting(self.env.cr.dbname), [])

    def test_a_failed_run_is_written_at_once_with_those_waiting(self):
        self.icp.set_param(params.HEAP_EVERY, "1000")
        cron = self.healthy_cron()
        waiting = self.defer_rows()
        self.run_job(cron, 2)
        self.assertEqual(len(waiting.waiting(self.env.cr.dbname)), 1)
        cron.ir_actions_server_id.code = "model._job_fail()"
        with self.assertLogs(ODOO_CRON_LOGGER, logging.ERROR):
            self.run_job(cron)
        runs = self.runs(cron, traced=False)[self.window :]
        self.assertEqual(runs.mapped("state"), ["ok", "ok", "failed"], "the failure is seen at once")
        self.assertEqual(waiting.waiting(self.env.cr.dbname), [])

    def test_rows_of_a_deleted_action_are_left_out_and_the_others_written(self):
        self.icp.set_param(params.HEAP_EVERY, "1000")
        doomed, survivor = self.healthy_cron(), self.healthy_cron()
        other = self.make_job_cron("_job_churn")
        waiting = self.defer_rows()
        self.run_job(survivor)  # the first run of each in this process is charged: it writes
        self.run_job(doomed, 2)
        self.run_job(survivor)
        self.assertEqual(len(waiting.waiting(self.env.cr.dbname)), 2)
        action = doomed.ir_actions_server_id
        doomed.unlink()
        action.unlink()
        with self.assertNoLogs(PROFILER_LOGGER, logging.WARNING):  # no failed store, no retry
            self.run_job(other)
        self.assertEqual(len(self.runs(other, traced=False)), 1, "the job's own run is stored")
        self.assertEqual(self.runs(survivor, traced=False)[self.window :].mapped("charged"), [True, False])
        self.assertEqual(other.failure_count, 0)
        self.assertEqual(waiting.waiting(self.env.cr.dbname), [])

    def test_rows_waiting_are_kept_when_a_store_fails_for_another_reason(self):
        self.icp.set_param(params.HEAP_EVERY, "1000")
        cron = self.healthy_cron()
        other = self.make_job_cron("_job_churn")
        waiting = self.defer_rows()
        self.run_job(cron, 2)
        kept = waiting.waiting(self.env.cr.dbname)
        Run = type(self.env["memory.cron.run"])
        with (
            patch.object(Run, "_verdict_inputs_parse", side_effect=RuntimeError("verdict broken")),
            self.assertLogs(PROFILER_LOGGER, logging.ERROR),
        ):
            self.run_job(other)
        self.assertEqual(waiting.waiting(self.env.cr.dbname), kept, "not theirs to blame: still waiting")
        self.assertFalse(self.runs(other, traced=False), "the failed store wrote nothing")
        self.run_job(other)
        self.assertEqual(self.runs(cron, traced=False)[self.window :].mapped("charged"), [True, False])
        self.assertEqual(waiting.waiting(self.env.cr.dbname), [])

    def test_an_uncharged_run_that_grew_is_written_at_once(self):
        self.icp.set_param(params.HEAP_EVERY, "1000")
        self.icp.set_param(params.LEAK_THRESHOLD, "0.5")
        cron = self.healthy_cron("_job_churn_3mib")
        waiting = self.defer_rows()
        self.run_job(cron)  # the first of a healthy action in this process: charged
        cron.ir_actions_server_id.code = "model._job_keep_small_objects()"
        self.run_job(cron)
        self.assertEqual(waiting.waiting(self.env.cr.dbname), [], "the row that shows the growth")
        grown = self.runs(cron, traced=False)[-1]
        self.assertFalse(grown.charged)
        self.assertGreater(grown.blocks_growth, 10_000)

    def test_rows_wait_in_prefork_workers_only(self):
        self.patch(profiler, "DEFER_ROWS", None)
        self.assertFalse(profiler._defers_rows(), "under the test runner each job writes its own")

    def test_rows_are_not_written_at_exit_under_the_test_runner(self):
        self.icp.set_param(params.HEAP_EVERY, "1000")
        cron = self.healthy_cron()
        waiting = self.defer_rows()
        self.run_job(cron, 2)
        with self.assertLogs(PROFILER_LOGGER, logging.WARNING) as logs:
            profiler._write_deferred_at_exit()
        self.assertIn("not written at exit", logs.output[0])
        self.assertEqual(waiting.waiting(self.env.cr.dbname), [])

    def test_an_accounted_run_names_its_host_as_the_snapshots_do(self):
        cron = self.make_job_cron("_job_churn")
        with patch.dict(os.environ, {odoo_runtime.HOST_NAME_ENV: "odoo-blue"}):
            self.run_job(cron)
        self.assertEqual(self.runs(cron, traced=False).host, "odoo-blue")

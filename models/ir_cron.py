import contextvars
import logging
import os
import traceback

from odoo import SUPERUSER_ID, api, fields, models
from odoo.exceptions import AccessError, ValidationError

from .. import compat
from ..core import batching, leakprof, params
from ..core import verdict as verdicts
from ..core.leakprof import MIB

_logger = logging.getLogger(__name__)

_ADDON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The profiler's own frames: left out of every diff (the test addon and the
#: user's code live elsewhere, so a pattern on the whole addon folder would do,
#: but a checkout may hold test_addons/ inside it).
OWN_PATTERNS = leakprof.own_patterns(
    os.path.join(_ADDON_DIR, "core"),
    os.path.join(_ADDON_DIR, "models"),
    os.path.join(_ADDON_DIR, "compat.py"),
)

#: The profiled run under way in this thread: ``{"action_id", "cache_size"}``.
#: ``ir.actions.server.run`` fills in the record cache size when the cron's
#: server action returns, before the commit that ends the run clears the cache.
ACTIVE_PROFILE = contextvars.ContextVar("memory_hygiene_active_profile", default=None)

LEAK_STATES = [
    (verdicts.UNKNOWN, "Unknown"),
    (verdicts.HEALTHY, "Healthy"),
    (verdicts.SUSPECT, "Suspect"),
    (verdicts.LEAKING, "Leaking"),
]

#: Longest error text stored on a run.
MAX_ERROR_CHARS = 10_000


class IrCron(models.Model):
    _inherit = "ir.cron"

    memory_profile = fields.Boolean(
        string="Profile memory",
        copy=False,
        help="Run tracemalloc around each run of this action (every Nth run), store what it kept in "
        "memory, and judge from the last runs whether it leaks.",
    )
    memory_profile_every = fields.Integer(
        string="Profile every Nth run",
        default=1,
        help="1: every run. The global switch in Settings profiles every run of every action.",
    )
    memory_profile_runs = fields.Integer(
        string="Runs counted by the profiler",
        default=0,
        readonly=True,
        copy=False,
        help="Runs of this action since profiling was switched on: every Nth one is profiled.",
    )
    memory_leak_state = fields.Selection(
        LEAK_STATES,
        string="Memory leak",
        default=verdicts.UNKNOWN,
        required=True,
        readonly=True,
        copy=False,
        index=True,
        help="From the last profiled runs: leaking when every run keeps memory and RSS after gc never "
        "falls back, healthy when memory plateaus or bounces, suspect in between.",
    )
    memory_leak_reason = fields.Char(string="Memory verdict", readonly=True, copy=False)
    memory_run_ids = fields.One2many("memory.cron.run", "cron_id", string="Profiled runs", readonly=True)
    memory_run_count = fields.Integer(string="Memory runs", compute="_compute_memory_run_count")
    memory_failure_count = fields.Integer(
        string="Failed records", compute="_compute_memory_failure_count", groups="base.group_system"
    )

    @api.depends("memory_run_ids")
    def _compute_memory_run_count(self):
        counts = dict(
            self.env["memory.cron.run"]._read_group([("cron_id", "in", self.ids)], ["cron_id"], ["__count"])
        )
        for cron in self:
            cron.memory_run_count = counts.get(cron, 0)

    def _compute_memory_failure_count(self):
        counts = dict(
            self.env["memory.batch.failure"]._read_group(
                [("cron_id", "in", self.ids)], ["cron_id"], ["__count"]
            )
        )
        for cron in self:
            cron.memory_failure_count = counts.get(cron, 0)

    @api.constrains("memory_profile_every")
    def _check_memory_profile_every(self):
        for cron in self:
            if cron.memory_profile_every < 1:
                raise ValidationError(
                    self.env._(
                        "Profile every Nth run must be at least 1 (1 profiles every run), got %s.",
                        cron.memory_profile_every,
                    )
                )

    # ------------------------------------------------------------------
    # Profiled runs
    # ------------------------------------------------------------------

    def _callback(self, cron_name, server_action_id):
        """Every run of a scheduled action (both series; 19.0's "Run Manually" too)."""
        with self._memory_running_job():
            plan = self._memory_profile_plan()
            if plan is None:
                return super()._callback(cron_name, server_action_id)
            # What the run's transaction holds until it ends is not what the run keeps: measure after it.
            plan["after_transaction"] = True
            return self._memory_profiled(
                plan, server_action_id, super()._callback, cron_name, server_action_id
            )

    def _memory_running_job(self, manual=False):
        """Mark what runs in the block as this job's run, on this cursor (read by memory.batch.mixin).

        The job machinery's own values (cursor, start, 19.0's end of the job's
        loop): a caller's context cannot make a call a scheduled run.
        """
        self.ensure_one()
        return batching.running_job(
            compat.job_info(self.env.cr, self.id),
            cron_id=self.id,
            cursor=self.env.cr,
            manual=manual,
            end_time=compat.job_end_time(self.env),
        )

    def method_direct_trigger(self):
        """18.0's "Run Manually" runs the server action without ``_callback``: profile it here."""
        if not compat.RUN_MANUALLY_SKIPS_CALLBACK:
            return super().method_direct_trigger()
        self.ensure_one()
        plan = self._memory_profile_plan()
        with self._memory_running_job(manual=True):
            if plan is None:
                result = super().method_direct_trigger()
            else:
                result = self._memory_profiled(
                    plan, self.ir_actions_server_id.id, super().method_direct_trigger
                )
        # This cursor holds the job's lock (_try_lock): the place to count the run.
        self._memory_after_job()
        return result

    def _update_failure_count(self, job, status):
        """After each job, in the transaction that holds its lock: count the run, refresh the verdict.

        The job's row in ``ir_cron`` is locked (``FOR NO KEY UPDATE``) by the
        cron worker's cursor for the whole job: neither the job's cursor nor
        the profiler's own transaction may write it without waiting on that
        lock forever. Odoo writes the job's own row here, on both series.
        """
        result = super()._update_failure_count(job, status)
        self.browse(job["id"])._memory_after_job()
        return result

    def _memory_profile_plan(self):
        """The profiler's settings for a run of this action now, or ``None``: run unprofiled.

        Never raises: a profiler that cannot decide lets the job run as usual.
        """
        try:
            self.ensure_one()
            cron = self.sudo()  # profiler bookkeeping, whichever user the action runs as
            icp = self.env["ir.config_parameter"].sudo()  # the addon's own settings
            globally = _profile_everything(icp)
            if not globally:
                if not cron.memory_profile:
                    return None
                if cron.memory_profile_runs % max(cron.memory_profile_every, 1):
                    return None
            return {
                "cron_id": cron.id,
                "name": cron.cron_name or cron.name,
                "frames": params.read(icp.get_param, params.PROFILE_FRAMES),
                "top_n": params.read(icp.get_param, params.PROFILE_TOP_N),
            }
        except Exception:
            _logger.exception(
                "Memory profiler: cannot tell whether to profile cron %s; it runs unprofiled", self.ids
            )
            return None

    def _memory_profiled(self, plan, server_action_id, run, *args):
        """Run ``run(*args)`` under the profiler; its result or exception is the job's, unchanged."""
        try:
            profile = leakprof.LeakProfile(plan["frames"], plan["top_n"], OWN_PATTERNS).start()
        except Exception:
            _logger.exception(
                "Memory profiler: cannot start for cron %s; it runs unprofiled", plan["cron_id"]
            )
            return run(*args)
        probe = {"action_id": server_action_id, "cache_size": None}
        token = ACTIVE_PROFILE.set(probe)
        error = None
        try:
            return run(*args)
        except Exception as exc:
            error = exc
            raise
        finally:
            ACTIVE_PROFILE.reset(token)
            self._memory_profile_finish(plan, profile, probe, error)

    def _memory_profile_finish(self, plan, profile, probe, error):
        """Store the profile now, or once the run's transaction has ended (18.0 scheduled runs)."""
        try:
            if plan.get("after_transaction") and compat.after_run_transaction(
                self.env.cr, lambda: self._memory_profile_store(plan, profile, probe, error)
            ):
                return
        except Exception:
            _logger.exception("Memory profiler: cannot wait for the end of cron %s's run", plan["cron_id"])
        self._memory_profile_store(plan, profile, probe, error)

    def _memory_profile_store(self, plan, profile, probe, error):
        """Measure, log and store the run in its own transaction. Never raises."""
        try:
            if error is None:  # a failed run's transaction is rolled back: nothing to release
                compat.release_run_cache(self.env)
        except Exception:
            _logger.exception(
                "Memory profiler: cannot empty the record cache of cron %s's run", plan["cron_id"]
            )
        try:
            result = profile.stop()
        except Exception:
            _logger.exception("Memory profiler: cannot measure the run of cron %s", plan["cron_id"])
            profile.close()
            return
        try:
            _logger.info(
                "Job %r (%s) memory: RSS %.1f -> %.1f MiB, %.1f MiB after gc; traced %+.2f MiB; fds %s -> %s",
                plan["name"],
                plan["cron_id"],
                result.rss_before / MIB,
                result.rss_after / MIB,
                result.rss_after_gc / MIB,
                result.traced_growth / MIB,
                result.fds_before,
                result.fds_after,
            )
            for line in result.log_lines():
                _logger.info("%s", line)
            error_text = None
            if error is not None:
                error_text = "".join(traceback.format_exception(error))[-MAX_ERROR_CHARS:]
            with compat.independent_cursor(self.env) as cr:
                # The profile is the profiler's own record, whoever the action runs as.
                env = api.Environment(cr, SUPERUSER_ID, {})
                env["memory.cron.run"]._record(
                    plan["cron_id"],
                    result,
                    state="failed" if error is not None else "ok",
                    error=error_text,
                    record_cache_size=probe["cache_size"],
                )
        except Exception:
            _logger.exception("Memory profiler: cannot store the run of cron %s", plan["cron_id"])

    def _memory_after_job(self):
        """Count the run and refresh the leak verdict of this cron. Never raises.

        Called on the cursor that holds the job's lock. The runs were committed
        by their own transactions, after this one began: they are read through
        a new cursor (this transaction's snapshot does not show them).
        """
        try:
            self.ensure_one()
            cron = self.sudo()  # profiler bookkeeping, whichever user the action runs as
            icp = self.env["ir.config_parameter"].sudo()  # the addon's own settings
            globally = _profile_everything(icp)
            if not (cron.memory_profile or globally):
                return
            previous = cron.memory_leak_state
            window = params.read(icp.get_param, params.PROFILE_WINDOW)
            threshold = params.read(icp.get_param, params.LEAK_THRESHOLD)
            with compat.independent_cursor(self.env) as cr:
                runs = api.Environment(cr, SUPERUSER_ID, {})["memory.cron.run"]._last_runs(cron.id, window)
            verdict = verdicts.leak_verdict(runs, window, threshold)
            with self.env.cr.savepoint(flush=False):
                # SQL: no write_date, and no ir.cron.write() lock dance on a row this transaction holds.
                self.env.cr.execute(
                    """
                    UPDATE ir_cron
                       SET memory_leak_state = %s,
                           memory_leak_reason = %s,
                           memory_profile_runs = COALESCE(memory_profile_runs, 0)
                                                + (CASE WHEN memory_profile THEN 1 ELSE 0 END)
                     WHERE id = %s
                    """,
                    [verdict.state, verdict.reason, cron.id],
                )
            self.invalidate_recordset(["memory_leak_state", "memory_leak_reason", "memory_profile_runs"])
            if verdict.state != previous and verdict.state in (verdicts.SUSPECT, verdicts.LEAKING):
                _logger.warning(
                    "Cron %r (%s) memory: %s, %s", cron.cron_name, cron.id, verdict.state, verdict.reason
                )
        except Exception:
            _logger.exception("Memory profiler: cannot update the verdict of cron %s", self.ids)

    # ------------------------------------------------------------------
    # Buttons
    # ------------------------------------------------------------------

    def action_memory_open_runs(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("memory_hygiene.memory_cron_run_action")
        action["domain"] = [("cron_id", "=", self.id)]
        action["context"] = {"default_cron_id": self.id, "search_default_cron_id": self.id}
        action["display_name"] = self.env._("Profiled runs of %s", self.cron_name or self.name)
        return action

    def action_memory_open_failures(self):
        """The records that failed in this action's batched runs (Settings admins only)."""
        if not self.env.is_system():
            raise AccessError(self.env._("Failed batch records are for Settings administrators only."))
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("memory_hygiene.memory_batch_failure_action")
        action["domain"] = [("cron_id", "=", self.id)]
        action["display_name"] = self.env._("Failed records of %s", self.cron_name or self.name)
        return action

    def action_memory_open_graph(self):
        action = self.action_memory_open_runs()
        action["view_mode"] = "graph,list,form,pivot"
        action["views"] = [(False, "graph"), (False, "list"), (False, "form"), (False, "pivot")]
        return action


def _profile_everything(icp):
    """True while the global switch (``memory_hygiene.profile_until``) has not expired."""
    return leakprof.switch_active(params.read(icp.get_param, params.PROFILE_UNTIL), fields.Datetime.now())

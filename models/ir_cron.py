import atexit
import contextvars
import logging
import os
import threading
import traceback
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from .. import access, compat, messages, odoo_runtime, worker_lifecycle
from ..core.batch import batching
from ..core.common import params
from ..core.common.say import as_codes
from ..core.common.units import MIB
from ..core.profiler import accounting, deferred, leakprof
from ..core.profiler import verdict as verdicts
from . import memory_cron_run

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

#: True while "Run Manually" runs in this thread: such a run is always charged.
MANUAL_RUN = contextvars.ContextVar("memory_hygiene_manual_run", default=False)
#: The job under way in this thread: its ``ir_cron`` row as ``_acquire_one_job`` read it.
RUNNING_JOB = contextvars.ContextVar("memory_hygiene_running_job", default=None)
#: The columns of that row a run's plan reads.
JOB_COLUMNS = (
    "memory_profile",
    "memory_profile_every",
    "memory_profile_runs",
    "memory_leak_state",
    "memory_last_trace",
)

#: Longest error text stored on a run.
MAX_ERROR_CHARS = 10_000
#: Runs measured and not yet stored, per thread (a job makes at most 10 calls).
MAX_PENDING_RUNS = 100

_pending = threading.local()

#: Per process: runs of each healthy action since its last charged one, ``{(db, cron_id): runs}``.
#: An action not in it has its next run charged: the first in each process (a worker recycled
#: before N runs still charges some).
_uncharged_runs = {}
#: Per process: the actions whose next run is charged, whatever their turn ``{(db, cron_id)}``:
#: an uncharged run of theirs grew RSS or Python's blocks by the leak threshold.
_charge_next = set()


#: Per process: rows of uncharged runs waiting to ride on another store of their database
#: (``core/profiler/deferred.py``): the round trip of their own is most of such a run's cost.
DEFERRED = deferred.DeferredRows()
#: Whether rows of uncharged runs wait: ``None`` decides by the process (:func:`_defers_rows`);
#: True or False force it (tests of the waiting, and benchmarks of a prefork cron worker's cost).
DEFER_ROWS = None


def _defers_rows():
    """True when rows of uncharged runs may wait in this process: a prefork worker's, not under tests.

    A threaded server (``workers = 0``) reloads by ``exec`` (``SIGHUP``,
    ``limit_memory_soft``), never running the process's exit, and closes its
    connections while its cron threads still run: each job writes its rows.
    Under Odoo's test runner tests read the rows right after their job.
    """
    if DEFER_ROWS is not None:
        return DEFER_ROWS
    return not odoo_runtime.in_test_mode() and odoo_runtime.server_info()["mode"] == "prefork"


def _write_deferred_at_exit():
    """At the process's exit: write the rows still waiting, each database in a transaction of its own.

    Never raises: a database that cannot take them (dropped, addon uninstalled,
    the CPU limit striking again while the job's thread still runs) loses them,
    logged.
    """
    try:
        for db, rows in DEFERRED.drain().items():
            try:
                odoo_runtime.execute_committed(db, *memory_cron_run.insert_waiting_query(rows))
            except Exception:
                _logger.warning(
                    "Memory accounting: %s runs of database %s not written at exit", len(rows), db
                )
    except Exception:
        _logger.warning("Memory accounting: the runs waiting at exit were not all written", exc_info=True)


# A forked child starts with none waiting (its parent writes its own); a process that exits writes its.
os.register_at_fork(after_in_child=DEFERRED.clear_in_child)
atexit.register(_write_deferred_at_exit)


def _charged_turn(key, every):
    """True when the run of the healthy action ``key`` is to be charged (every ``every``-th, per process)."""
    if key in _charge_next:
        _charge_next.discard(key)
        _uncharged_runs.pop(key, None)
        return True
    runs = _uncharged_runs.get(key)
    if runs is None or runs + 1 >= every:
        _uncharged_runs[key] = 0
        return True
    _uncharged_runs[key] = runs + 1
    return False


def _pending_runs():
    """The runs measured in this thread that wait for the end of their job to be stored."""
    rows = getattr(_pending, "rows", None)
    if rows is None:
        rows = _pending.rows = []
    return rows


class IrCron(models.Model):
    _inherit = "ir.cron"

    memory_profile = fields.Boolean(
        string="Profile memory",
        copy=False,
        help="Run tracemalloc around each run of this action (every Nth run), store what it kept in memory, and judge from the last runs whether it leaks.",  # noqa: E501
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
        help="From the growth charged to the last charged runs of this action (never the process's size): suspect when every run grows (its next run is then traced by itself), leaking when a traced run shows what it keeps, healthy when what the runs take they give back.",  # noqa: E501
    )
    memory_leak_reason = fields.Char(string="Memory verdict", readonly=True, copy=False)
    memory_last_trace = fields.Datetime(
        string="Last traced run",
        readonly=True,
        copy=False,
        help="At most one automatic trace per trace period.",
    )
    memory_run_ids = fields.One2many("memory.cron.run", "cron_id", string="Accounted runs", readonly=True)
    memory_run_count = fields.Integer(string="Memory runs", compute="_compute_memory_run_count")
    memory_growth_day_mb = fields.Float(
        string="Growth per day (MiB)",
        digits=(16, 2),
        compute="_compute_memory_growth",
        help="Growth charged to this action's runs over the last 24 hours: the mean of its charged runs times its runs (a healthy action has one run in N charged).",  # noqa: E501
    )
    memory_growth_run_mb = fields.Float(
        string="Growth per run (MiB)", digits=(16, 3), compute="_compute_memory_growth"
    )
    memory_growth_share = fields.Float(
        string="Share of growth (%)",
        digits=(16, 1),
        compute="_compute_memory_growth",
        help="This action's share of the growth charged to all scheduled actions over the last 24 hours.",
    )
    memory_fds_kept = fields.Integer(
        string="Files kept open", compute="_compute_memory_growth", help="Over the last 24 hours."
    )
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

    def _compute_memory_growth(self):
        since = fields.Datetime.now() - timedelta(days=1)
        by_cron = self.env["memory.cron.run"].sudo()._growth_by_cron(since)  # figures, not records
        shares = accounting.growth_shares({c: f["growth_mb"] for c, f in by_cron.items()})
        for cron in self:
            figures = by_cron.get(cron.id) or {"growth_mb": 0.0, "runs": 0, "fds_kept": 0}
            cron.memory_growth_day_mb = figures["growth_mb"]
            cron.memory_growth_run_mb = figures["growth_mb"] / figures["runs"] if figures["runs"] else 0.0
            cron.memory_growth_share = shares.get(cron.id, 0.0)
            cron.memory_fds_kept = figures["fds_kept"]

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
    # Accounted (and traced) runs
    # ------------------------------------------------------------------

    def _callback(self, cron_name, server_action_id):
        """Every run of a scheduled action (both series; 19.0's "Run Manually" too; each of a job's calls)."""
        with (
            self._memory_running_job(),
            worker_lifecycle.doing_cron(self.env.cr.dbname, self.id, cron_name),
        ):
            plan = self._memory_run_plan(server_action_id)
            if plan is None:
                return super()._callback(cron_name, server_action_id)
            # What the run's transaction holds until it ends is not what the run keeps: measure after it.
            plan["after_transaction"] = True
            return self._memory_run(plan, super()._callback, cron_name, server_action_id)

    def _memory_running_job(self, manual=False):
        """Mark what runs in the block as this job's run, on this cursor (read by memory.batch.mixin).

        The job machinery's own values (cursor, start, 19.0's end of the job's
        loop): a caller's context cannot make a call a scheduled run.
        """
        self.ensure_one()
        return batching.running_job(
            odoo_runtime.job_info(self.env.cr, self.id),
            cron_id=self.id,
            cursor=self.env.cr,
            manual=manual,
            end_time=compat.job_end_time(self.env),
        )

    def method_direct_trigger(self):
        """Run Manually: a run that is always charged (an admin who presses it wants the figure).

        18.0's runs the server action without ``_callback``: it is accounted in
        :meth:`_memory_direct_trigger`. Settings admins only, like Odoo's own
        (which needs write access to ``ir.cron``, granted to Settings admins
        alone): checked on both series, before the accounting reads its
        settings or counts the run.
        """
        access.check_admin(self.env)
        token = MANUAL_RUN.set(True)
        try:
            return self._memory_direct_trigger()
        finally:
            MANUAL_RUN.reset(token)

    def _memory_direct_trigger(self):
        """Odoo's "Run Manually", accounted where ``_callback`` does not do it (18.0)."""
        if not compat.RUN_MANUALLY_SKIPS_CALLBACK:
            return super().method_direct_trigger()
        self.ensure_one()
        plan = self._memory_run_plan(self.ir_actions_server_id.id)
        with self._memory_running_job(manual=True):
            if plan is None:
                return super().method_direct_trigger()
            try:
                result = self._memory_run(plan, super().method_direct_trigger)
            except Exception:
                # The request's transaction is rolled back: the run is stored in one of its own.
                self._memory_after_job(independent=True)
                raise
        # This cursor holds the job's lock (_try_lock): the place to store the run.
        self._memory_after_job()
        return result

    @classmethod
    def _run_job(cls, job):
        """Every job: its ``ir_cron`` row (``SELECT *`` under its lock) tells each run how to be watched.

        The plan of a run then costs no query: the addon's columns are in the row.
        """
        token = RUNNING_JOB.set(job)
        try:
            return super()._run_job(job)
        finally:
            RUNNING_JOB.reset(token)

    def _update_failure_count(self, job, status):
        """After each job, in the transaction that holds its lock: store its runs, refresh the verdict.

        The job's row in ``ir_cron`` is locked (``FOR NO KEY UPDATE``) by the
        cron worker's cursor for the whole job: neither the job's cursor nor
        another transaction may write it without waiting on that lock forever.
        Odoo writes the job's own row here and commits right after, on both
        series, whatever the job did: the runs' rows ride on that commit (no
        transaction of their own: one round trip per job at most, none when
        its rows wait), and a failed run, whose own transaction was rolled
        back, is stored too.
        """
        result = super()._update_failure_count(job, status)
        self.browse(job["id"])._memory_after_job()
        return result

    def _memory_run_plan(self, server_action_id):
        """How to watch a run of this action now: a dict, or ``None``: run it as if the addon were not there.

        Every run is accounted unless ``memory_hygiene.accounting`` is off;
        it is traced when switched on by hand (this action every Nth run, or
        every action until a date), or by itself when the action is suspect
        and was not traced within the trace period. Never raises: a profiler
        that cannot decide lets the job run as usual.
        """
        try:
            self.ensure_one()
            job = RUNNING_JOB.get()
            if job is None or job.get("id") != self.id:
                # 18.0's Run Manually: no job row; read the same columns from the record.
                cron = self.sudo()  # profiler bookkeeping, whichever user the action runs as
                job = {name: cron[name] for name in JOB_COLUMNS}
                job["cron_name"] = cron.cron_name or cron.name
            trace = _profile_everything(self.env) or (
                job["memory_profile"]
                and not (job["memory_profile_runs"] or 0) % max(job["memory_profile_every"] or 1, 1)
            )
            auto = False
            if (
                not trace
                and job["memory_leak_state"] == verdicts.SUSPECT
                and odoo_runtime.setting(self.env, params.AUTO_TRACE)
            ):
                period = timedelta(hours=odoo_runtime.setting(self.env, params.TRACE_PERIOD_HOURS))
                last = job["memory_last_trace"]
                auto = trace = not last or last <= fields.Datetime.now() - period
            if not trace and not odoo_runtime.setting(self.env, params.ACCOUNTING):
                return None
            # Charging reads the C heap (milliseconds): every run until the verdict is settled
            # healthy, then one in N, the run after an uncharged one that grew, and Run Manually.
            heap = (
                trace
                or MANUAL_RUN.get()
                or job["memory_leak_state"] != verdicts.HEALTHY
                or _charged_turn(
                    (self.env.cr.dbname, self.id), odoo_runtime.setting(self.env, params.HEAP_EVERY)
                )
            )
            plan = {
                "cron_id": self.id,
                "name": job.get("cron_name") or self.sudo().cron_name,
                "action_id": server_action_id,
                "trace": bool(trace),
                "auto": auto,
                "state_before": job["memory_leak_state"],
                # The per-action switch counts the runs (every Nth is traced).
                "counted": bool(job["memory_profile"]),
                "heap": bool(heap),
            }
            if not heap:  # read now: the run is measured after its commit on 18.0 (no query there)
                plan["threshold"] = odoo_runtime.setting(self.env, params.LEAK_THRESHOLD) * MIB
            if trace:
                plan["frames"] = odoo_runtime.setting(self.env, params.PROFILE_FRAMES)
                plan["top_n"] = odoo_runtime.setting(self.env, params.PROFILE_TOP_N)
                plan["holders_min"] = int(odoo_runtime.setting(self.env, params.LEAK_THRESHOLD) * MIB)
            return plan
        except Exception:
            _logger.exception(
                "Memory accounting: cannot tell how to watch cron %s; it runs unwatched", self.ids
            )
            return None

    def _memory_run(self, plan, run, *args):
        """Run ``run(*args)``, accounted (and traced); its result or exception is the job's, unchanged."""
        profile = None
        if plan["trace"]:
            try:
                profile = leakprof.ProfileSession(
                    plan["frames"],
                    plan["top_n"],
                    OWN_PATTERNS,
                    holders=(plan["holders_min"], lambda: odoo_runtime.registry_roots(self.env.registry)),
                ).start()
            except leakprof.TracingBusy:
                _logger.info(
                    "Memory profiler: tracemalloc is busy; cron %s's run is only accounted", plan["cron_id"]
                )
            except Exception:
                _logger.exception(
                    "Memory profiler: cannot start for cron %s; it runs untraced", plan["cron_id"]
                )
        try:
            before = accounting.read(heap=plan["heap"])
        except Exception:
            _logger.exception("Memory accounting: cannot read before cron %s's run", plan["cron_id"])
            before = None
        probe = {"action_id": plan["action_id"], "cache_size": None}
        token = ACTIVE_PROFILE.set(probe)
        error = None
        try:
            return run(*args)
        except Exception as exc:
            error = exc
            raise
        finally:
            ACTIVE_PROFILE.reset(token)
            self._memory_run_finish(plan, before, profile, probe, error)

    def _memory_run_finish(self, plan, before, profile, probe, error):
        """Measure now, or once the run's transaction has ended (18.0 scheduled runs)."""
        try:
            if plan.get("after_transaction") and compat.after_run_transaction(
                self.env.cr, lambda: self._memory_run_measure(plan, before, profile, probe, error)
            ):
                return
        except Exception:
            _logger.exception("Memory accounting: cannot wait for the end of cron %s's run", plan["cron_id"])
        self._memory_run_measure(plan, before, profile, probe, error)

    def _memory_run_measure(self, plan, before, profile, probe, error):
        """Read the run's figures and keep them for :meth:`_memory_after_job`. Never raises."""
        try:
            if error is None:  # a failed run's transaction is rolled back: nothing to release
                compat.release_run_cache(self.env)
        except Exception:
            _logger.exception(
                "Memory accounting: cannot empty the record cache of cron %s's run", plan["cron_id"]
            )
        charge = None
        grew = False
        try:
            if before is not None:
                # Before the profile stops: its gc.collect() would credit the run with others' garbage.
                charge = accounting.charge(before, accounting.read(heap=plan["heap"]))
                if charge["growth"] is None:
                    grew = self._memory_charge_next_if_grown(charge, plan["threshold"])
        except Exception:
            _logger.exception("Memory accounting: cannot read after cron %s's run", plan["cron_id"])
        result = None
        if profile is not None:
            try:
                result = profile.stop()
            except Exception:
                _logger.exception("Memory profiler: cannot measure the run of cron %s", plan["cron_id"])
                profile.close()
        if charge is None and result is None:
            return
        error_text = None
        if error is not None:
            error_text = "".join(traceback.format_exception(error))[-MAX_ERROR_CHARS:]
        rows = _pending_runs()
        if len(rows) >= MAX_PENDING_RUNS:
            _logger.warning("Memory accounting: %s runs never reached the end of a job; dropped", len(rows))
            rows.clear()
        rows.append(
            {
                "cron_id": plan["cron_id"],
                "name": plan["name"],
                "started_at": fields.Datetime.now(),
                "charge": charge,
                "profile": result,
                "auto": plan["auto"],
                "state_before": plan["state_before"],
                "counted": plan["counted"],
                "cache_size": probe["cache_size"],
                "error": error_text,
                # An uncharged run that grew nothing and kept no file: its row may wait (DEFERRED).
                "may_wait": (
                    charge is not None
                    and charge["growth"] is None
                    and not grew
                    and (charge["fds_after"] or 0) <= (charge["fds_before"] or 0)
                    and error is None
                    and result is None
                ),
            }
        )
        if result is not None:
            self._memory_log_trace(plan, result)

    def _memory_charge_next_if_grown(self, charge, threshold):
        """An uncharged run whose RSS or Python blocks grew by ``threshold`` bytes: charge the next one.

        Returns True when it grew so (the next run of this action is then charged).
        """
        grew = max(
            charge["rss_after"] - charge["rss_before"], charge["blocks_growth"] * accounting.BLOCK_BYTES
        )
        if grew >= threshold:
            _charge_next.add((self.env.cr.dbname, self.id))
            return True
        return False

    def _memory_log_trace(self, plan, result):
        try:
            if result.interrupted:
                _logger.warning(
                    "Job %r (%s) memory: the trace was stopped or restarted by someone else during the run;"
                    " stored as interrupted",
                    plan["name"],
                    plan["cron_id"],
                )
                return
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
            for holder in result.holders:
                _logger.info("held by %s", holder["path"])
        except Exception:
            _logger.exception("Memory profiler: cannot log the run of cron %s", plan["cron_id"])

    def _memory_after_job(self, independent=False):
        """Store the job's runs of this action, then refresh its verdict. Never raises.

        :param independent: store in a transaction of its own (the caller's is rolled back).
        """
        try:
            rows = _pending_runs()
            mine = [row for row in rows if row["cron_id"] in self.ids]
            if not mine:
                return
            rows[:] = [row for row in rows if row["cron_id"] not in self.ids]
            if independent:
                with odoo_runtime.independent_cursor(self.env) as cr:
                    self.with_env(self.env(cr=cr))._memory_store_or_defer(mine)
            else:
                self._memory_store_or_defer(mine)
        except Exception:
            _logger.exception("Memory accounting: cannot store the runs of cron %s", self.ids)

    def _memory_store_or_defer(self, rows):
        """Store the job's runs of this action and refresh the verdict, or keep the rows waiting.

        :param rows: the job's runs of this action, as :meth:`_memory_run_measure` keeps them.

        When every run may wait (uncharged, grew nothing, kept no file, failed
        not, traced not) and no switch counts them, they cannot change the
        verdict: their rows wait in :data:`DEFERRED` (in a prefork worker) for
        the next store of this database that writes, whichever action's, and
        ride in its round trip. Otherwise they are written now, with the rows
        waiting. Raises what the store raised (the caller logs it).
        """
        db = self.env.cr.dbname
        traced = any(row["profile"] is not None for row in rows)
        judged = (
            traced
            or rows[0]["counted"]
            or any(row["charge"] and row["charge"]["growth"] is not None for row in rows)
        )
        # Built before anything is sent: a failure here leaves the transaction untouched.
        accounted = self._memory_accounted_values([row for row in rows if row["profile"] is None])
        if (
            not judged
            and all(row["may_wait"] for row in rows)
            and _defers_rows()
            and DEFERRED.defer(db, accounted)
        ):
            return
        waiting = DEFERRED.take(db)
        try:
            self._memory_store_now(rows, accounted, traced, judged, waiting)
        except Exception:
            if not waiting:
                raise
            failure = traceback.format_exc()
            try:
                self._memory_store_now(rows, accounted, traced, judged, [])
            except Exception:
                DEFERRED.put_back(db, waiting)  # not theirs to blame: they wait for the next store
                raise
            # Without them the store went through: they made it fail.
            _logger.warning(
                "Memory accounting: %s runs waiting in database %s could not be written; dropped:\n%s",
                len(waiting),
                db,
                failure,
            )

    def _memory_store_now(self, rows, accounted, traced, judged, waiting):
        """Insert the runs, refresh the verdict; in a savepoint: a failure never aborts the job's transaction.

        :param rows: the job's runs of this action (:meth:`_memory_run_measure`).
        :param accounted: the ``memory.cron.run`` values of its runs that were not traced.
        :param traced: a run was traced: its row is written through the ORM.
        :param judged: the verdict's inputs are read and the verdict refreshed.
        :param waiting: values of rows that waited (:data:`DEFERRED`), written first.
        :raises Exception: what failed, after rolling back to the savepoint.

        This runs after many jobs of every scheduled action, so the cheap path
        is one round trip: the savepoint, the ``INSERT`` of the rows
        ``waiting`` (their action may be gone since:
        :func:`memory_cron_run.insert_waiting_query`), the ``INSERT`` of this
        job's accounted runs (``accounted``: values of ``memory.cron.run``)
        and, when a run was charged, the query of the verdict's inputs are sent
        together. The savepoint is not released (the job's commit does it:
        PostgreSQL keeps it until then), and ``ir_cron`` is written only
        when something changed there.
        """
        cr = self.env.cr
        Run = self.env["memory.cron.run"].sudo()  # profiler bookkeeping, whichever user the action runs as
        queries = [] if traced else [("SAVEPOINT memory_hygiene_runs", [])]
        if waiting:
            queries.append(memory_cron_run.insert_waiting_query(waiting))
        if accounted:
            queries.append(Run._insert_accounted_query(accounted))
        if judged:
            queries.append(
                Run._verdict_inputs_query(self.id, odoo_runtime.setting(self.env, params.PROFILE_WINDOW))
            )
        if traced:
            cr.execute("SAVEPOINT memory_hygiene_runs")
        try:
            if traced:
                self._memory_record_traced([row for row in rows if row["profile"] is not None])
                self.env.flush_all()  # the ORM's rows before the SQL that reads them
            cr.execute("; ".join(sql for sql, _params in queries), [p for _sql, ps in queries for p in ps])
            if judged:
                inputs = Run._verdict_inputs_parse(cr.fetchall())
                self._memory_update_verdict(inputs, rows[0], traced)
        except Exception:
            cr.execute("ROLLBACK TO SAVEPOINT memory_hygiene_runs")
            raise

    def _memory_record_traced(self, rows):
        Run = self.env["memory.cron.run"].sudo()  # profiler bookkeeping, whichever user the action runs as
        for row in rows:
            Run._record(
                row["cron_id"],
                row["profile"],
                state="failed" if row["error"] else "ok",
                error=row["error"],
                record_cache_size=row["cache_size"],
                charge=row["charge"],
                auto=row["auto"],
            )

    def _memory_accounted_values(self, rows):
        # The host name the snapshots and traced runs use (MEMORY_HYGIENE_HOST_NAME, odoo.conf, hostname).
        host, pid = odoo_runtime.host_name(), os.getpid()
        return [
            {
                **memory_cron_run.accounted_values(row["charge"]),
                "cron_id": row["cron_id"],
                "start": row["started_at"],
                "state": "failed" if row["error"] else "ok",
                "host": host,
                "pid": pid,
                "record_cache_size": row["cache_size"] or 0,
                "trace": "no",
                "error": row["error"],
            }
            for row in rows
        ]

    def _memory_update_verdict(self, inputs, job_row, traced):
        """Judge from ``inputs`` (``memory.cron.run._verdict_inputs``); write ``ir_cron`` if it changed."""
        window = odoo_runtime.setting(self.env, params.PROFILE_WINDOW)
        threshold = odoo_runtime.setting(self.env, params.LEAK_THRESHOLD)
        period = timedelta(hours=odoo_runtime.setting(self.env, params.TRACE_PERIOD_HOURS))
        ids, growth, trace = inputs
        traced_mb = None
        # A trace is evidence while it is among the window's runs or younger than the trace period.
        if trace and ((ids and trace[0] >= ids[0]) or trace[1] >= fields.Datetime.now() - period):
            traced_mb = trace[2]
        verdict = verdicts.leak_verdict(growth, window, threshold, traced_mb=traced_mb)
        previous = job_row["state_before"]
        if verdict.state == previous and not traced and not job_row["counted"]:
            return  # the reason keeps the figures of the last change
        # SQL: no write_date, and no ir.cron.write() lock dance on a row this transaction holds.
        self.env.cr.execute(
            """
            UPDATE ir_cron
               SET memory_leak_state = %s,
                   memory_leak_reason = %s,
                   memory_profile_runs = COALESCE(memory_profile_runs, 0)
                                        + (CASE WHEN memory_profile THEN 1 ELSE 0 END),
                   memory_last_trace = CASE WHEN %s THEN (now() AT TIME ZONE 'UTC') ELSE memory_last_trace END
             WHERE id = %s
            """,
            # Said in the language of whoever runs the action (the scheduler's: en_US).
            [verdict.state, messages.verdict_reason(self.env, verdict.reason), traced, self.id],
        )
        self.invalidate_recordset(
            ["memory_leak_state", "memory_leak_reason", "memory_profile_runs", "memory_last_trace"]
        )
        if verdict.state != previous and verdict.state in (verdicts.SUSPECT, verdicts.LEAKING):
            _logger.warning(
                "Cron %r (%s) memory: %s, %s",
                job_row["name"],
                self.id,
                verdict.state,
                as_codes(*verdict.reason),
            )
        if verdict.state != previous and verdict.state == verdicts.LEAKING:
            self.env["memory.lifecycle.alert"]._raise_leaking(self, verdict.reason)

    # ------------------------------------------------------------------
    # Buttons
    # ------------------------------------------------------------------

    def action_memory_open_runs(self):
        """The profiled runs of this scheduled action (an ``ir.actions.act_window`` dict)."""
        access.check_admin(self.env)
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("memory_hygiene.memory_cron_run_action")
        action["domain"] = [("cron_id", "=", self.id)]
        action["context"] = {"default_cron_id": self.id, "search_default_cron_id": self.id}
        action["display_name"] = self.env._("Profiled runs of %s", self.cron_name or self.name)
        return action

    def action_memory_open_failures(self):
        """The records that failed in this action's batched runs (Settings admins only)."""
        access.check_admin(self.env)
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("memory_hygiene.memory_batch_failure_action")
        action["domain"] = [("cron_id", "=", self.id)]
        action["display_name"] = self.env._("Failed records of %s", self.cron_name or self.name)
        return action

    def action_memory_open_graph(self):
        """The profiled runs of this scheduled action, as a graph first."""
        access.check_admin(self.env)
        action = self.action_memory_open_runs()
        action["view_mode"] = "graph,list,form,pivot"
        action["views"] = [(False, "graph"), (False, "list"), (False, "form"), (False, "pivot")]
        return action


def _profile_everything(env):
    """True while the global switch (``memory_hygiene.profile_until``) has not expired."""
    return leakprof.switch_active(odoo_runtime.setting(env, params.PROFILE_UNTIL), fields.Datetime.now())

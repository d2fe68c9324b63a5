import gc
import hashlib
import inspect
import logging
import time

from odoo import api, models
from odoo.exceptions import UserError
from odoo.tools import config

from .. import compat, odoo_runtime
from ..core.batch.batching import (
    RUNNING_JOB,
    STOP_DONE,
    Budget,
    KeysetBatcher,
    SystematicFailure,
    is_batch_size,
)
from ..core.common import params
from ..core.common.throttle import Throttle
from ..core.common.units import MIB
from ..core.process import limits

_logger = logging.getLogger(__name__)

#: Context keys that keep mail.thread from writing tracking messages, followers
#: and "created" notes for every record of a batch.
NO_TRACKING_CONTEXT = {
    "tracking_disable": True,
    "mail_notrack": True,
    "mail_create_nolog": True,
    "mail_create_nosubscribe": True,
}

#: Seconds between two INFO progress lines of one run.
PROGRESS_LOG_INTERVAL = 10.0

#: Seconds to wait before retrying a batch that met a concurrent transaction, times the attempt.
CONFLICT_BACKOFF = 0.2

#: Share of ``limit_time_cpu`` (percent, at least CPU_MARGIN_MIN seconds) kept free after a cron
#: run's last batch: Odoo's work after the job, and batches that cost more than the dearest so far
#: (on a loaded host a batch's system time varies).
CPU_MARGIN_SHARE = 10
CPU_MARGIN_MIN = 2.0

#: The most expensive batch seen per resume key in this process (a new job's first prediction).
_COST_FIELDS = ("max_batch_seconds", "max_batch_cpu", "max_batch_mb", "batches_seen")
_KEY_COSTS = {}
MAX_KEY_COSTS = 1000

#: ``stop_reason`` of 18.0's Run Manually, which runs one batch (see _batch_process).
STOP_RUN_MANUALLY = "run_manually"


class MemoryBatchMixin(models.AbstractModel):
    """Process every record of a domain in committed, memory-bounded batches.

    Inherit it next to your model's other parents and call
    :meth:`_batch_process` from a scheduled action. See readme/USAGE.md.
    """

    _name = "memory.batch.mixin"
    _description = "Memory-safe batched processing"

    @api.model
    def _batch_process(  # noqa: PLR0913 - the documented keyword options of the mixin
        self,
        domain,
        callback,
        batch_size=1000,
        *,
        max_seconds=None,
        memory_limit_mb=None,
        tracking=False,
        gc_collect=False,
        resume_key=None,
        after_commit=None,
    ):
        """Hand every record matching ``domain`` to ``callback``, batch by batch, and commit each batch.

        :param domain: a domain (list of conditions; on 19.0 a ``Domain`` too).
        :param callback: ``(records) -> None``, called with a batch (a recordset
            of this model, without tracking unless ``tracking``). It must not call
            ``cr.commit()`` or ``cr.rollback()``: the mixin commits after each batch,
            and a batch runs in a savepoint that a commit would destroy (raises
            :class:`~odoo.exceptions.UserError` naming the callback, nothing is
            marked failed). Its database work is undone when it raises.
        :param batch_size: records per batch (a whole number >= 1).
        :param max_seconds: wall-time budget in seconds; inside a scheduled run
            it defaults to a share of the real-time limit Odoo applies there.
        :param memory_limit_mb: memory budget in MiB of what Odoo compares with its
            limits (the virtual size on Linux); inside a scheduled run, a share of
            ``limit_memory_soft``. The run also keeps 64 MiB away from
            ``limit_memory_hard`` (``RLIMIT_AS``) and stops before ``RLIMIT_CPU``.
        :param resume_key: where the position of a run that stopped early is kept;
            default inside a scheduled run: the cron, this model, the calling
            method and a hash of the domain.
        :param after_commit: ``(records) -> None``, called once per batch with the
            records whose work was committed, after the commit: the place for
            external side effects (mails, API calls, files). ``cr.postcommit``
            hooks added by the callback run too, but also for attempts that were
            rolled back to isolate a failing record.

        Budgets are checked before each batch and before each record retried
        alone: a batch that would not fit (predicted from the most expensive one
        so far) is not started, and a run whose budget is spent on entry starts
        none. Inside a scheduled run a run that stops early re-triggers its cron.

        Delivery: the work of each record is committed exactly once. A batch whose
        callback raises is rolled back and its records are handed again one by
        one, each in its own savepoint: a record is handed at most twice when its
        batch holds a failing record. Those that fail alone are logged and
        returned in ``failed_ids``. Faults that are not bad records are not
        isolated: ``MemoryError`` rolls the batch back and stops
        (``stop_reason = "memory"``); a serialization failure, deadlock or lock
        timeout retries the batch in a new transaction (3 times), then stops
        (``"conflict"``) and leaves it for the next run; a lost connection or a
        cancelled query is raised. When 5 records of a batch in a row fail alone
        with the batch's exception type and none succeeds, the run fails
        (:class:`~odoo.addons.memory_hygiene.core.batch.batching.SystematicFailure`),
        so that Odoo counts a failure of the scheduled action.

        :returns: dict with ``processed``, ``failed_ids``, ``batches``,
            ``stop_reason`` (``"done"``, ``"time"``, ``"cpu"``, ``"memory"``,
            ``"conflict"``, or ``"run_manually"`` for 18.0's Run Manually, which
            runs one batch and leaves the rest to the cron worker), ``remaining``,
            ``last_id``, ``elapsed`` (seconds) and ``calls`` (callback calls).
        """
        self._batch_check_arguments(domain, callback, batch_size, max_seconds, memory_limit_mb, resume_key)
        domain = list(domain)
        job = self._batch_running_job()
        cron = self.env["ir.cron"].sudo().browse(job["cron_id"]).exists() if job else self.env["ir.cron"]
        manual_18 = bool(job and job.get("manual"))
        # Under the test runner a batch is a released savepoint. 18.0's Run Manually
        # holds the job's lock in the request's transaction: committing would release it.
        commit = not odoo_runtime.in_test_mode() and not manual_18
        name = getattr(callback, "__qualname__", repr(callback))
        key = resume_key or (self._batch_default_key(cron, domain) if cron else None)
        positions = self.env["memory.batch.position"].sudo()  # technical bookkeeping, whoever runs the cron
        start_after = positions._last_id(key) if key else 0
        budget = self._batch_budget(job, cron, max_seconds, memory_limit_mb, key)
        progress = odoo_runtime.job_progress(self.env, cron)

        run = _BatchRun(
            self,
            domain,
            callback,
            records=self.with_context(**({} if tracking else NO_TRACKING_CONTEXT)),
            key=key,
            cron=cron,
            progress=progress,
            commit=commit,
            one_batch=manual_18,
            start_after=start_after,
            after_commit=after_commit,
            gc_collect=gc_collect,
        )
        try:
            result = KeysetBatcher(
                run.fetch_ids,
                run.process,
                batch_size,
                isolate=self.env.cr.savepoint,
                after_batch=run.after_batch,
                on_failure=run.on_failure,
                count_remaining=run.count_remaining,
                budget=budget,
                start_after=start_after,
                classify=odoo_runtime.classify_batch_fault,
                new_transaction=run.new_transaction,
            ).run()
        except SystematicFailure as failure:
            _logger.error(
                "%s %s: stopped, %s records in a row failed alone with %s (%s): a bug or an unavailable "
                "service, not bad records; the run fails so that Odoo counts it",
                self._name,
                name,
                failure.count,
                type(failure.exc).__name__,
                failure.exc,
            )
            raise
        except odoo_runtime.SAVEPOINT_LOST as exc:
            raise UserError(
                self.env._(
                    "The batch callback %(callback)s called cr.commit() or cr.rollback(). "
                    "memory.batch.mixin commits after each batch, and each batch runs in a savepoint "
                    "that a commit or rollback destroys: remove the call (use after_commit for side "
                    "effects).",
                    callback=name,
                )
            ) from exc
        _remember_costs(job, key, budget)
        if manual_18 and result.stop_reason == STOP_DONE and result.batches and result.remaining == 0:
            result.remaining = run.count_remaining(result.last_id)
        if manual_18 and result.remaining:
            result.stop_reason = STOP_RUN_MANUALLY

        if not result.batches and progress and result.remaining:
            # Nothing done in this call: say what is left, so Odoo's loop knows the job is not finished.
            compat.report_cron_progress(progress, 0, result.remaining)
        if result.stop_reason == STOP_DONE:
            if key:
                positions._clear(key)
        elif cron:
            # Stopped early to stay inside the worker's limits: a fresh run goes on.
            cron._trigger()
        self._batch_commit_step(commit and bool(key or cron))
        _logger.info(
            "%s %s: %s after %s batches, %s processed, %s failed, %s remaining in %.1fs",
            self._name,
            name,
            result.stop_reason,
            result.batches,
            result.processed,
            len(result.failed_ids),
            result.remaining,
            result.elapsed,
        )
        return result.as_dict()

    @api.model
    def _batch_commit_step(self, commit):
        """A batch (or the run's bookkeeping) is done: make it durable when ``commit``."""
        if commit:
            # One commit per batch: what is done survives a worker killed later, locks and
            # the snapshot are released (never under the test runner: see _batch_process).
            self.env.cr.commit()  # pylint: disable=invalid-commit

    @api.model
    def _batch_running_job(self):
        """The scheduled run this call belongs to, as the job machinery marked it, or ``None``.

        Set by ``ir.cron`` around each run on the job's own cursor: never from
        ``env.context``, which an RPC caller controls, so a user who reaches a
        ``_batch_process`` call from a button moves no cron's position or progress.
        """
        job = RUNNING_JOB.get()
        if job and job.get("cursor") is self.env.cr:
            return job
        return None

    @api.model
    def _batch_default_key(self, cron, domain):
        """``cron:<id>:<model>:<calling method>:<domain hash>``: two calls in one cron keep their own."""
        frame = inspect.currentframe()
        caller = "?"
        # Up from here: _batch_process, then its caller (past api wrappers of this module).
        while frame is not None:
            code = frame.f_code
            if code.co_filename != __file__ and code.co_name not in ("_batch_process",):
                caller = f"{frame.f_globals.get('__name__', '?')}.{code.co_name}"
                break
            frame = frame.f_back
        digest = hashlib.sha256(repr(domain).encode()).hexdigest()[:12]
        return f"cron:{cron.id}:{self._name}:{caller}:{digest}"

    @api.model
    def _batch_budget(self, job, cron, max_seconds, memory_limit_mb, key=None):
        """What this call may spend: the caller's budgets, else those of the run's process and mode."""
        hard = limits.address_space_limit_mb()
        budget = Budget(
            max_seconds=max_seconds,
            memory_limit_mb=memory_limit_mb,
            memory_fn=limits.odoo_memory,
            hard_limit_mb=hard,
            cpu_fn=limits.cpu_time,
            cpu_left_fn=limits.cpu_seconds_left,
        )
        if not cron:
            return budget.start()
        mode = odoo_runtime.run_mode(manual=bool(job.get("manual")))
        max_seconds, memory_limit_mb = self._batch_cron_defaults(max_seconds, memory_limit_mb, mode)
        budget.max_seconds = max_seconds
        budget.memory_limit_mb = memory_limit_mb
        soft = config.get("limit_memory_soft") or 0
        if soft > 0:
            budget.entry_memory_limit_mb = soft / MIB
        # The real-time limit covers the whole job (Odoo calls the action up to 10 times):
        # count from when the job (or the threaded cron thread's round) began, and predict
        # from the most expensive batch of the job's earlier calls too.
        budget.started = job.setdefault("started", time.monotonic())
        # A new job of the same run in this process predicts its first batch from the last job's.
        for name, value in (job.get("costs") or _KEY_COSTS.get(key) or {}).items():
            setattr(budget, name, value)
        cpu_limit = config.get("limit_time_cpu") or 0
        if cpu_limit > 0:
            budget.cpu_margin = max(CPU_MARGIN_MIN, cpu_limit * CPU_MARGIN_SHARE / 100)
            # Odoo sets RLIMIT_CPU to int(CPU used + limit_time_cpu) before each round.
            budget.cpu_fresh = cpu_limit - 1.5
        if job.get("end_time"):
            # 19.0: the cron loop's own time for this job (what _commit_progress returns).
            budget.time_left_fn = lambda: job["end_time"] - time.monotonic()
        return budget

    @api.model
    def _batch_cron_defaults(self, max_seconds, memory_limit_mb, mode=limits.PREFORK_CRON):
        """Fill the budgets the caller left open from the server's limits."""
        memory_share = odoo_runtime.setting(self.env, params.BATCH_MEMORY_SHARE)
        time_share = odoo_runtime.setting(self.env, params.BATCH_TIME_SHARE)
        default_seconds, default_mb = limits.cron_budget(
            config, memory_share=memory_share, time_share=time_share, mode=mode
        )
        return (
            default_seconds if max_seconds is None else max_seconds,
            default_mb if memory_limit_mb is None else memory_limit_mb,
        )

    @api.model
    def _batch_check_arguments(self, domain, callback, batch_size, max_seconds, memory_limit_mb, resume_key):
        if not isinstance(domain, list | tuple) and not compat.is_domain(domain):
            raise UserError(self.env._("The batch domain must be a list of conditions, got %r.", domain))
        if not callable(callback):
            raise UserError(self.env._("The batch callback must be callable, got %r.", callback))
        if not is_batch_size(batch_size):
            raise UserError(
                self.env._("batch_size must be a whole number of at least 1, got %r.", batch_size)
            )
        for label, value in (("max_seconds", max_seconds), ("memory_limit_mb", memory_limit_mb)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise UserError(
                    self.env._(
                        "%(label)s must be a positive number or None, got %(value)r.",
                        label=label,
                        value=value,
                    )
                )
        if resume_key is not None and (not isinstance(resume_key, str) or not resume_key.strip()):
            raise UserError(self.env._("resume_key must be a non-empty string, got %r.", resume_key))


def _remember_costs(job, key, budget):
    """Keep the most expensive batch for the job's next call, and for the next job of ``key``."""
    if not job:
        return
    job["costs"] = costs = {field: getattr(budget, field) for field in _COST_FIELDS}
    if key:
        if len(_KEY_COSTS) > MAX_KEY_COSTS:
            _KEY_COSTS.clear()
        _KEY_COSTS[key] = {field: costs[field] for field in _COST_FIELDS[:3]}


class _BatchRun:
    """The ORM side of one ``_batch_process`` call: what the engine calls back (plain Python)."""

    def __init__(self, model, domain, callback, **options):
        self.model = model
        self.env = model.env
        self.domain = domain
        self.callback = callback
        self.name = getattr(callback, "__qualname__", repr(callback))
        self.records = options["records"]
        self.key = options["key"]
        self.cron = options["cron"]
        self.progress = options["progress"]
        self.commit = options["commit"]
        self.one_batch = options["one_batch"]
        self.start_after = options["start_after"]
        self.after_commit = options["after_commit"]
        self.gc_collect = options["gc_collect"]
        # Technical bookkeeping, whoever runs the cron.
        self.positions = model.env["memory.batch.position"].sudo()
        self.failures = model.env["memory.batch.failure"].sudo()
        self.pending = []  # (record id, exception) isolated in the current batch
        if self.key and (skipped := self.failures._failed_ids(self.key)):
            # Failed before in this run: not handed again (nor bisected) until an admin retries them.
            self.domain = domain = [*domain, ("id", "not in", skipped)]
        self.total = model.search_count(domain + [("id", ">", self.start_after)])
        self.progress_log = Throttle(PROGRESS_LOG_INTERVAL)
        self.started = time.monotonic()
        self.traced = set()  # exception types whose traceback was logged in this run

    def fetch_ids(self, after_id, limit):
        if self.one_batch and after_id != self.start_after:
            return []  # 18.0's Run Manually: one batch, see _batch_process
        return self.model.search(self.domain + [("id", ">", after_id)], order="id", limit=limit).ids

    def count_remaining(self, after_id):
        return self.model.search_count(self.domain + [("id", ">", after_id)])

    def process(self, ids):
        self.callback(self.records.browse(ids))

    def on_failure(self, record_id, exc):
        """One line per failed record; the traceback once per exception type and run."""
        first = type(exc) not in self.traced
        self.traced.add(type(exc))
        self.pending.append((record_id, exc))
        _logger.error(
            "%s(%s) failed in batch callback %s: %s: %s",
            self.model._name,
            record_id,
            self.name,
            type(exc).__name__,
            exc,
            exc_info=exc if first else None,
        )

    def new_transaction(self, attempt):
        """After a concurrency error: a new transaction (and snapshot) for attempt ``attempt``."""
        if not self.commit:
            return False  # no new snapshot inside the test's (or the request's) transaction
        # The batches before are committed; this one was rolled back by its savepoint. A new
        # transaction sees the concurrent writer's commit.
        self.env.cr.rollback()
        time.sleep(CONFLICT_BACKOFF * attempt)
        return True

    def after_batch(self, result, ids):
        """Once per batch: position, progress, the commit, side effects, hygiene, a progress line."""
        self.env.cr.flush()
        if self.key:
            self.positions._save(self.key, result.last_id, self.model._name, self.cron)
            if self.pending:
                self.failures._record(self.key, self.model._name, self.cron, self.pending)
        self.pending = []
        handed = result.processed + len(result.failed_ids)
        remaining = max(self.total - handed, 0)
        if self.progress:
            compat.report_cron_progress(self.progress, len(ids), remaining)
        self.model._batch_commit_step(self.commit)
        if self.after_commit is not None:
            failed = set(result.failed_ids)
            self.after_commit(self.records.browse([i for i in ids if i not in failed]))
        self.env.invalidate_all()
        if self.gc_collect:
            gc.collect()
        if self.progress_log.take():
            elapsed = max(time.monotonic() - self.started, 1e-6)
            _logger.info(
                "%s %s: batch %s, %s done, %s remaining, %.0f records/s, RSS %.0f MiB",
                self.model._name,
                self.name,
                result.batches,
                handed,
                remaining,
                handed / elapsed,
                limits.rss() / MIB,
            )

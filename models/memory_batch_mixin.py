import gc
import logging
import time
import weakref

from odoo import api, models
from odoo.exceptions import UserError
from odoo.tools import config

from .. import compat
from ..core import params, procmem
from ..core.batching import STOP_DONE, Budget, KeysetBatcher, RateLimitedLog

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

# When each cron job started: {job cursor: {cron id: monotonic start}}. Odoo
# runs a job's server action several times in one job (18.0: up to 10 times,
# 19.0: for at least 10 runs or 10 s) on the job's own cursor, and the real-time
# limit covers all of them: the time budget counts from the first call, it does
# not restart with every call. The cursor dies with the job, and so does this.
_JOB_STARTS = weakref.WeakKeyDictionary()


class MemoryBatchMixin(models.AbstractModel):
    """Process every record of a domain in committed, memory-bounded batches.

    Inherit it next to your model's other parents and call
    :meth:`_batch_process` from a scheduled action. See readme/USAGE.md.
    """

    _name = "memory.batch.mixin"
    _description = "Memory-safe batched processing"

    @api.model
    def _batch_process(
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
    ):
        """Hand every record matching ``domain`` to ``callback``, once, batch by batch.

        Batches are keyset pages (``id > last id seen``, by id), so records the
        callback removes from the domain do not shift the next page. After each
        batch: flush, commit (a released savepoint under the test runner),
        ``invalidate_all()``, and ``gc.collect()`` when asked. A batch whose
        callback raises is rolled back alone and bisected until the failing
        records are isolated; they are logged and returned in ``failed_ids``.

        The run stops after the batch in which ``max_seconds`` passed or the
        process's memory (as Odoo measures it: the virtual size on Linux) passed
        ``memory_limit_mb``. Inside a cron run both default to a share of the
        server's limits, progress goes to Odoo's cron progress API, and a run
        that stops early re-triggers the cron and resumes where it stopped.

        :returns: dict with ``processed``, ``failed_ids``, ``batches``,
            ``stop_reason`` (``"done"``, ``"time"`` or ``"memory"``), ``remaining``,
            ``last_id`` and ``elapsed``.
        """
        self._batch_check_arguments(domain, callback, batch_size, max_seconds, memory_limit_mb, resume_key)
        domain = list(domain)
        cron = compat.current_cron(self.env)
        commit = not compat.in_test_mode()
        key = resume_key or (f"cron:{cron.id}:{self._name}" if cron else None)
        positions = self.env["memory.batch.position"].sudo()  # technical bookkeeping, whoever runs the cron
        start_after = positions._last_id(key) if key else 0

        started = time.monotonic()
        if cron:
            started = _JOB_STARTS.setdefault(self.env.cr, {}).setdefault(cron.id, started)
            max_seconds, memory_limit_mb = self._batch_cron_defaults(max_seconds, memory_limit_mb)
        budget = Budget(
            max_seconds=max_seconds,
            memory_limit_mb=memory_limit_mb,
            memory_fn=procmem.odoo_memory,
            started=started,
        )

        records = self.with_context(**({} if tracking else NO_TRACKING_CONTEXT))
        total = self.search_count(domain + [("id", ">", start_after)])
        progress_log = RateLimitedLog(PROGRESS_LOG_INTERVAL)
        run_started = time.monotonic()
        name = getattr(callback, "__qualname__", repr(callback))

        def fetch_ids(after_id, limit):
            return self.search(domain + [("id", ">", after_id)], order="id", limit=limit).ids

        def process(ids):
            callback(records.browse(ids))

        def on_failure(record_id, exc):
            _logger.error(
                "%s(%s) failed in batch callback %s: %s", self._name, record_id, name, exc, exc_info=exc
            )

        def after_batch(result, ids):
            self.env.cr.flush()
            if key:
                positions._save(key, result.last_id, self._name, cron)
            handed = result.processed + len(result.failed_ids)
            remaining = max(total - handed, 0)
            compat.report_cron_progress(self.env, len(ids), remaining, commit=commit)
            self.env.invalidate_all()
            if gc_collect:
                gc.collect()
            if progress_log.due():
                elapsed = max(time.monotonic() - run_started, 1e-6)
                _logger.info(
                    "%s %s: batch %s, %s done, %s remaining, %.0f records/s, RSS %.0f MiB",
                    self._name,
                    name,
                    result.batches,
                    handed,
                    remaining,
                    handed / elapsed,
                    procmem.rss() / procmem.MIB,
                )

        result = KeysetBatcher(
            fetch_ids,
            process,
            batch_size,
            isolate=self.env.cr.savepoint,
            after_batch=after_batch,
            on_failure=on_failure,
            count_remaining=lambda after_id: self.search_count(domain + [("id", ">", after_id)]),
            budget=budget,
            start_after=start_after,
        ).run()

        if result.stop_reason == STOP_DONE:
            if key:
                positions._clear(key)
        elif cron:
            # Stopped early to stay inside the worker's limits: a fresh run goes on.
            cron._trigger()
        if commit and (key or cron):
            # Make the cleared position or the new trigger durable (never under tests).
            self.env.cr.commit()  # pylint: disable=invalid-commit
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
    def _batch_cron_defaults(self, max_seconds, memory_limit_mb):
        """Fill the budgets the caller left open from the server's limits."""
        icp = self.env["ir.config_parameter"].sudo()  # reading the addon's own settings
        memory_share = params.read(icp.get_param, params.BATCH_MEMORY_SHARE)
        time_share = params.read(icp.get_param, params.BATCH_TIME_SHARE)
        default_seconds, default_mb = procmem.cron_budget(
            config, memory_share=memory_share, time_share=time_share
        )
        return (
            default_seconds if max_seconds is None else max_seconds,
            default_mb if memory_limit_mb is None else memory_limit_mb,
        )

    @api.model
    def _batch_check_arguments(self, domain, callback, batch_size, max_seconds, memory_limit_mb, resume_key):
        if not isinstance(domain, list | tuple):
            raise UserError(self.env._("The batch domain must be a list of conditions, got %r.", domain))
        if not callable(callback):
            raise UserError(self.env._("The batch callback must be callable, got %r.", callback))
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
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

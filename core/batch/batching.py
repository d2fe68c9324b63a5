"""Keyset batching with poison isolation, fault handling and budgets, without the ORM.

The engine walks the ids matching a domain in ascending order, ``id > last``
each time, so a record that the processing removes from the domain never
shifts the window (the classic ``offset += batch`` loop skips records then).
Everything that touches a database is handed in as a callable, so that the
Odoo mixin (``models/memory_batch_mixin.py``) stays thin and this module is
tested with plain pytest::

    >>> done = []
    >>> ids = list(range(1, 8))
    >>> runner = KeysetBatcher(
    ...     fetch_ids=lambda after, limit: [i for i in ids if i > after][:limit],
    ...     process=done.extend,
    ...     batch_size=3,
    ... )
    >>> result = runner.run()
    >>> done, result.batches, result.stop_reason
    ([1, 2, 3, 4, 5, 6, 7], 3, 'done')

**Delivery guarantee.** Each id is handed to ``process`` in one batch. When that
attempt raises a *record* fault (see :func:`default_classify`), the batch is
undone (``isolate``) and every id of it is handed again alone, each in its own
``isolate()``: an id whose work is kept was handed at most twice (its batch's
failed attempt, then its own), and its work is kept exactly once.
"""

import contextlib
import contextvars
import logging
import time
from dataclasses import dataclass, field

from ..common.units import MIB

_logger = logging.getLogger(__name__)

STOP_DONE = "done"
STOP_TIME = "time"
STOP_CPU = "cpu"
STOP_MEMORY = "memory"
#: A batch kept meeting concurrent writers: left for the next run.
STOP_CONFLICT = "conflict"


#: Kinds of fault :meth:`KeysetBatcher.classify` tells apart.
FAULT_RECORD = "record"  # something about these records: isolate them
FAULT_MEMORY = "memory"  # the process is out of memory: stop, nothing is a bad record
FAULT_CONFLICT = "conflict"  # a concurrent transaction: retry in a new transaction
FAULT_FATAL = "fatal"  # lost connection, cancelled query, broken transaction: stop, re-raise

#: Records failing alike, with none succeeding, after which a batch is a systematic failure.
SYSTEMATIC_AFTER = 5


def default_classify(exc):
    """``MemoryError`` is :data:`FAULT_MEMORY`; anything else is a bad record."""
    return FAULT_MEMORY if isinstance(exc, MemoryError) else FAULT_RECORD


class SystematicFailure(Exception):
    """Every record tried alone failed with the same exception type: a bug or a dead service.

    ``count`` records failed, ``exc`` is the last of their exceptions.
    """

    def __init__(self, count, exc):
        super().__init__(f"{count} records in a row failed with {type(exc).__name__}: {exc}")
        self.count = count
        self.exc = exc


@dataclass
class Budget:
    """What a run may still spend, checked before each batch.

    Each limit is optional. Before a batch, the next one is predicted to cost
    as much as the most expensive one so far (time, CPU time, memory growth):
    if that would pass a limit, the run stops now. A limit already reached
    stops the run before its first batch.

    ``memory_fn`` returns the figure Odoo compares with its own limits, in bytes
    (the virtual size on Linux, see :func:`core.process.limits.odoo_memory`);
    ``memory_limit_mb`` is a soft share of it, ``hard_limit_mb`` the address-space
    limit (``RLIMIT_AS``) that must stay ``hard_margin_mb`` away.
    ``cpu_left_fn`` returns the CPU seconds left before ``RLIMIT_CPU`` (``None``:
    no limit); ``time_left_fn`` seconds left by another measure (19.0's cron loop).

    >>> now = [0.0]
    >>> budget = Budget(max_seconds=10, clock=lambda: now[0]).start()
    >>> budget.spent() is None  # nothing run yet, time left
    True
    >>> mark = budget.measure(); now[0] = 4.0; budget.record(mark)  # a batch of 4 s
    >>> budget.spent() is None  # 4 s used: 4 s more still fit in 10
    True
    >>> now[0] = 6.5; budget.spent()  # 6.5 + 4 would pass 10: stop before the batch
    'time'
    """

    max_seconds: float | None = None
    memory_limit_mb: float | None = None
    memory_fn: object = None
    #: Before the first batch of a run, memory is compared with this instead of
    #: ``memory_limit_mb`` when set: the soft limit itself, above which Odoo
    #: replaces the worker after the job. Between the share and it, each call
    #: still runs a batch, so that a worker Odoo will not replace makes progress.
    entry_memory_limit_mb: float | None = None
    hard_limit_mb: float | None = None
    hard_margin_mb: float = 64.0
    cpu_left_fn: object = None
    cpu_fn: object = None
    #: CPU seconds kept free after the last batch: Odoo's own work after the job
    #: (progress, rescheduling, the next jobs of the round) runs under the same limit.
    cpu_margin: float = 0.0
    #: CPU seconds left that mean a fresh allotment (the worker just set its
    #: limit): then a first batch runs even if predicted not to fit, since no
    #: later run would have more (without this, a batch costlier than the whole
    #: limit would never start again; with it, the worker is killed as before).
    cpu_fresh: float | None = None
    time_left_fn: object = None
    #: ``() -> seconds``; default: ``time.monotonic``, looked up at each call so
    #: that freezegun's clock is seen in tests.
    clock: object = None
    #: When the budget's time began; ``None``: when :meth:`start` is called.
    started: float | None = None
    # The most expensive batch so far: seconds, CPU seconds, MiB of growth.
    max_batch_seconds: float = 0.0
    max_batch_cpu: float = 0.0
    max_batch_mb: float = 0.0
    batches_seen: int = 0

    def now(self):
        return (self.clock or time.monotonic)()

    def start(self):
        if self.started is None:
            self.started = self.now()
        return self

    def elapsed(self):
        return self.now() - self.started

    def measure(self):
        """A mark to hand to :meth:`record` once the batch is over."""
        return (
            self.now(),
            self.cpu_fn() if self.cpu_fn else 0.0,
            self.memory_fn() / MIB if self.memory_fn else 0.0,
        )

    def record(self, mark):
        """Note what the batch begun at ``mark`` cost."""
        now, cpu, mb = self.measure()
        self.batches_seen += 1
        self.max_batch_seconds = max(self.max_batch_seconds, now - mark[0])
        self.max_batch_cpu = max(self.max_batch_cpu, cpu - mark[1])
        self.max_batch_mb = max(self.max_batch_mb, mb - mark[2])

    def spent(self, predict=True):
        """``"time"``, ``"cpu"``, ``"memory"`` when the next batch would not fit, else ``None``."""
        seconds = self.max_batch_seconds if predict else 0.0
        if self.max_seconds is not None and self.elapsed() + seconds >= self.max_seconds:
            return STOP_TIME
        if self.time_left_fn is not None:
            left = self.time_left_fn()
            if left is not None and left <= seconds:
                return STOP_TIME
        if self.cpu_left_fn is not None:
            left = self.cpu_left_fn()
            need = (self.max_batch_cpu + self.cpu_margin) if predict else 0.0
            fresh = not self.batches_seen and self.cpu_fresh is not None and left is not None
            if left is not None and left <= need and not (fresh and left >= self.cpu_fresh):
                return STOP_CPU
        if self.memory_fn is not None and (
            self.memory_limit_mb is not None or self.hard_limit_mb is not None
        ):
            mb = self.memory_fn() / MIB + (self.max_batch_mb if predict else 0.0)
            soft = self.memory_limit_mb
            if not self.batches_seen and self.entry_memory_limit_mb is not None:
                soft = self.entry_memory_limit_mb
            if soft is not None and mb >= soft:
                return STOP_MEMORY
            if self.hard_limit_mb is not None and mb >= self.hard_limit_mb - self.hard_margin_mb:
                return STOP_MEMORY
        return None

    # Before the batch-wide prediction existed, the mixin asked this after each batch.
    def exceeded(self):
        """``"time"``, ``"cpu"``, ``"memory"`` or ``None``: a limit already reached."""
        return self.spent(predict=False)


@dataclass
class BatchResult:
    processed: int = 0
    failed_ids: list = field(default_factory=list)
    batches: int = 0
    stop_reason: str = STOP_DONE
    remaining: int = 0
    last_id: int = 0
    elapsed: float = 0.0
    #: Times ``process`` was called (batches, records retried alone, conflict retries).
    calls: int = 0

    def as_dict(self):
        return {
            "processed": self.processed,
            "failed_ids": list(self.failed_ids),
            "batches": self.batches,
            "stop_reason": self.stop_reason,
            "remaining": self.remaining,
            "last_id": self.last_id,
            "elapsed": round(self.elapsed, 3),
            "calls": self.calls,
        }


class _Stop(Exception):
    """Stop the run with ``reason`` after ``handled`` ids of the current batch."""

    def __init__(self, reason, handled=0, failed=()):
        super().__init__(reason)
        self.reason = reason
        self.handled = handled
        self.failed = list(failed)


def is_batch_size(value):
    """True for a valid ``batch_size``: a whole number (not a bool) of at least 1.

    >>> [is_batch_size(v) for v in (1, 1000, 0, -1, 1.5, True, "10")]
    [True, True, False, False, False, False, False]
    """
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class KeysetBatcher:
    """Run ``process`` over every id that ``fetch_ids`` yields, batch by batch.

    :param fetch_ids: ``(after_id, limit) -> [ids]``, ascending, all ``> after_id``.
    :param process: ``(ids) -> None``; may raise. Called inside ``isolate()``.
    :param isolate: ``() -> context manager`` that undoes what ``process`` did
        when it raises (a savepoint). Default: nothing to undo.
    :param after_batch: ``(result, batch_ids) -> None``, once per batch, after the
        batch and its retries: flush, commit or release, invalidate, progress.
    :param on_failure: ``(record_id, exception) -> None`` for each isolated bad id.
    :param count_remaining: ``(after_id) -> int``, called when the run stops
        early to say how many matching records it did not reach.
    :param budget: a :class:`Budget`, checked before each batch and each retry.
    :param start_after: resume after this id.
    :param classify: ``(exception) -> FAULT_*``; default :func:`default_classify`.
        A :data:`FAULT_FATAL` exception is raised again at once, unchanged.
    :param new_transaction: ``(attempt) -> bool``: after a :data:`FAULT_CONFLICT`,
        end the transaction (what is done is kept) and wait a little before
        attempt ``attempt`` (1, 2, ...); False: no new transaction is possible
        (tests), the batch is left for the next run.
    :param conflict_retries: attempts after the first one that met a conflict.
    :param systematic_after: records of one batch failing alone with the same
        exception type, none succeeding, after which :class:`SystematicFailure`
        is raised (what was done before that batch is kept).
    """

    def __init__(  # noqa: PLR0913 - every collaborator is a plain callable, named
        self,
        fetch_ids,
        process,
        batch_size=1000,
        *,
        isolate=None,
        after_batch=None,
        on_failure=None,
        count_remaining=None,
        budget=None,
        start_after=0,
        classify=None,
        new_transaction=None,
        conflict_retries=3,
        systematic_after=SYSTEMATIC_AFTER,
    ):
        if not is_batch_size(batch_size):
            raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}.")
        self.fetch_ids = fetch_ids
        self.process = process
        self.batch_size = batch_size
        self.isolate = isolate or contextlib.nullcontext
        self.after_batch = after_batch
        self.on_failure = on_failure or _log_failure
        self.count_remaining = count_remaining
        self.budget = budget or Budget()
        self.start_after = start_after or 0
        self.classify = classify or default_classify
        self.new_transaction = new_transaction or (lambda attempt: False)
        self.conflict_retries = conflict_retries
        self.systematic_after = systematic_after

    def run(self):
        budget = self.budget.start()
        run_started = budget.now()
        result = BatchResult(last_id=self.start_after)
        while True:
            reason = budget.spent()
            if reason:
                result.stop_reason = reason
                break
            ids = list(self.fetch_ids(result.last_id, self.batch_size))
            if not ids:
                result.stop_reason = STOP_DONE
                break
            mark = budget.measure()
            try:
                failed = self._run_batch(ids, result)
                handled = ids
            except _Stop as stop:
                result.stop_reason = stop.reason
                handled = ids[: stop.handled]
                if handled:
                    self._account(result, handled, stop.failed)
                break
            budget.record(mark)
            self._account(result, handled, failed)
            if len(ids) < self.batch_size:
                # A short batch is the last one: saves the empty query.
                result.stop_reason = STOP_DONE
                break
        if result.stop_reason != STOP_DONE and self.count_remaining is not None:
            result.remaining = self.count_remaining(result.last_id)
            if not result.remaining:
                # The budget ran out exactly with the last batch: nothing is left.
                result.stop_reason = STOP_DONE
        result.elapsed = budget.now() - run_started
        return result

    def _account(self, result, handled, failed):
        result.batches += 1
        result.processed += len(handled) - len(failed)
        result.failed_ids.extend(failed)
        result.last_id = handled[-1]
        if self.after_batch is not None:
            self.after_batch(result, handled)

    def _attempt(self, ids, result):
        """Process ``ids`` in one ``isolate()``; the exception and its kind, or ``(None, None)``."""
        for attempt in range(self.conflict_retries + 1):
            result.calls += 1
            try:
                with self.isolate():
                    self.process(ids)
                return None, None
            except Exception as exc:  # noqa: BLE001 - every failure is classified below (MemoryError too)
                error = exc
            kind = self.classify(error)
            if kind == FAULT_FATAL:
                raise error
            if kind != FAULT_CONFLICT:
                return error, kind
            if attempt == self.conflict_retries or not self.new_transaction(attempt + 1):
                break
        return error, FAULT_CONFLICT

    def _run_batch(self, ids, result):
        """Process ``ids``; on a bad record, each id alone. Returns the ids that failed alone."""
        error, kind = self._attempt(ids, result)
        if error is None:
            return []
        if kind == FAULT_MEMORY:
            raise _Stop(STOP_MEMORY, 0)
        if kind == FAULT_CONFLICT:
            raise _Stop(STOP_CONFLICT, 0)
        if len(ids) == 1:
            self.on_failure(ids[0], error)
            return list(ids)
        failures, same_kind, succeeded = [], 0, False
        try:
            for index, record_id in enumerate(ids):
                reason = self.budget.spent(predict=False)
                if reason:
                    raise _Stop(reason, index)
                error_alone, kind = self._attempt([record_id], result)
                if error_alone is None:
                    succeeded = True
                    continue
                if kind == FAULT_MEMORY:
                    raise _Stop(STOP_MEMORY, index)
                if kind == FAULT_CONFLICT:
                    raise _Stop(STOP_CONFLICT, index)
                same_kind = same_kind + 1 if type(error_alone) is type(error) else 0
                if not succeeded and same_kind >= self.systematic_after:
                    # Nothing is wrong with these records: nothing is marked failed.
                    raise SystematicFailure(same_kind, error_alone) from error_alone
                failures.append((record_id, error_alone))
        except _Stop as stop:
            stop.failed = self._report(failures)
            raise
        return self._report(failures)

    def _report(self, failures):
        for record_id, exc in failures:
            self.on_failure(record_id, exc)
        return [record_id for record_id, _exc in failures]


def _log_failure(record_id, exc):
    _logger.error("record %s failed: %s", record_id, exc, exc_info=exc)


#: The scheduled run under way in this thread or task: ``{"cron_id", "cursor", ...}``,
#: set by the job machinery's hooks (``ir.cron._callback``), never by a caller's
#: context: only code the job itself runs sees it.
RUNNING_JOB = contextvars.ContextVar("memory_hygiene_running_job", default=None)


@contextlib.contextmanager
def running_job(info=None, **values):
    """Mark the code run inside the block as the scheduled run described by ``info`` (a dict).

    The same dict for every call of one job keeps what the calls learn
    (``started``, ``costs``) across them.
    """
    info = info if info is not None else {}
    info.update(values)
    token = RUNNING_JOB.set(info)
    try:
        yield info
    finally:
        RUNNING_JOB.reset(token)

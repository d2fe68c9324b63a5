"""Keyset batching with poison isolation and budgets, without the ORM.

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
"""

import contextlib
import logging
import time
from dataclasses import dataclass, field

_logger = logging.getLogger(__name__)

STOP_DONE = "done"
STOP_TIME = "time"
STOP_MEMORY = "memory"

MIB = 1024 * 1024


@dataclass
class Budget:
    """When a run must stop: after the batch in which a limit was passed.

    ``memory_fn`` returns the figure Odoo compares with its own limits, in bytes
    (the virtual size on Linux, see :func:`core.procmem.odoo_memory`).
    """

    max_seconds: float | None = None
    memory_limit_mb: float | None = None
    memory_fn: object = None
    #: ``() -> seconds``; default: ``time.monotonic``, looked up at each call so
    #: that freezegun's clock is seen in tests.
    clock: object = None
    #: When the budget's time began; ``None``: when :meth:`start` is called.
    started: float | None = None

    def now(self):
        return (self.clock or time.monotonic)()

    def start(self):
        if self.started is None:
            self.started = self.now()
        return self

    def elapsed(self):
        return self.now() - self.started

    def exceeded(self):
        """Return ``"time"``, ``"memory"`` or ``None``."""
        if self.max_seconds is not None and self.elapsed() >= self.max_seconds:
            return STOP_TIME
        if self.memory_limit_mb is not None and self.memory_fn is not None:
            if self.memory_fn() / MIB >= self.memory_limit_mb:
                return STOP_MEMORY
        return None


@dataclass
class BatchResult:
    processed: int = 0
    failed_ids: list = field(default_factory=list)
    batches: int = 0
    stop_reason: str = STOP_DONE
    remaining: int = 0
    last_id: int = 0
    elapsed: float = 0.0

    def as_dict(self):
        return {
            "processed": self.processed,
            "failed_ids": list(self.failed_ids),
            "batches": self.batches,
            "stop_reason": self.stop_reason,
            "remaining": self.remaining,
            "last_id": self.last_id,
            "elapsed": round(self.elapsed, 3),
        }


class KeysetBatcher:
    """Run ``process`` over every id that ``fetch_ids`` yields, batch by batch.

    :param fetch_ids: ``(after_id, limit) -> [ids]``, ascending, all ``> after_id``.
    :param process: ``(ids) -> None``; may raise. Called inside ``isolate()``.
    :param isolate: ``() -> context manager`` that undoes what ``process`` did
        when it raises (a savepoint). Default: nothing to undo.
    :param after_batch: ``(result, batch_ids) -> None``, once per batch, after the
        batch and its retries: flush, commit or release, invalidate, progress.
    :param on_failure: ``(record_id, exception) -> None`` for each isolated poison id.
    :param count_remaining: ``(after_id) -> int``, called when the run stops
        early to say how many matching records it did not reach.
    :param budget: a :class:`Budget`, checked after each batch.
    :param start_after: resume after this id.
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
    ):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
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

    def run(self):
        budget = self.budget.start()
        run_started = budget.now()
        result = BatchResult(last_id=self.start_after)
        while True:
            ids = list(self.fetch_ids(result.last_id, self.batch_size))
            if not ids:
                result.stop_reason = STOP_DONE
                break
            failed = self._run_isolated(ids)
            result.batches += 1
            result.processed += len(ids) - len(failed)
            result.failed_ids.extend(failed)
            result.last_id = ids[-1]
            if self.after_batch is not None:
                self.after_batch(result, ids)
            if len(ids) < self.batch_size:
                # A short batch is the last one: saves the empty query.
                result.stop_reason = STOP_DONE
                break
            reason = budget.exceeded()
            if reason:
                result.stop_reason = reason
                break
        if result.stop_reason != STOP_DONE and self.count_remaining is not None:
            result.remaining = self.count_remaining(result.last_id)
            if not result.remaining:
                # The budget ran out exactly with the last batch: nothing is left.
                result.stop_reason = STOP_DONE
        result.elapsed = budget.now() - run_started
        return result

    def _run_isolated(self, ids):
        """Process ``ids``; on failure split in halves until the poison is alone.

        Returns the ids that failed on their own. What succeeded is kept.
        """
        try:
            with self.isolate():
                self.process(ids)
            return []
        except Exception as exc:  # noqa: BLE001 - any failure of the callback is a poison candidate
            if len(ids) == 1:
                self.on_failure(ids[0], exc)
                return list(ids)
        middle = len(ids) // 2
        return self._run_isolated(ids[:middle]) + self._run_isolated(ids[middle:])


def _log_failure(record_id, exc):
    _logger.error("record %s failed: %s", record_id, exc, exc_info=exc)


class RateLimitedLog:
    """Say something at most once per ``interval`` seconds (plus the last word)."""

    def __init__(self, interval=10.0, clock=None):
        self.interval = interval
        self.clock = clock
        self._next = None

    def due(self):
        now = (self.clock or time.monotonic)()
        if self._next is None or now >= self._next:
            self._next = now + self.interval
            return True
        return False

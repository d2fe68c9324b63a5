import pytest

from core.batching import Budget, KeysetBatcher, RateLimitedLog


class Table:
    """A list of rows standing for a database table: ids and a state."""

    def __init__(self, count):
        self.state = {i: "todo" for i in range(1, count + 1)}
        self.commits = []

    def fetch(self, after, limit):
        return [i for i in sorted(self.state) if i > after and self.state[i] == "todo"][:limit]

    def count(self, after):
        return len(self.fetch(after, 10**9))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_every_id_once_while_the_domain_shrinks():
    table = Table(95)
    seen = []

    def close(ids):
        seen.extend(ids)
        for i in ids:
            table.state[i] = "done"

    result = KeysetBatcher(table.fetch, close, 10).run()
    assert seen == list(range(1, 96))
    assert (result.processed, result.batches, result.stop_reason, result.remaining) == (95, 10, "done", 0)


def test_offset_paging_over_a_shrinking_domain_skips_records():
    """What the engine avoids: the offset recipe on the same table."""
    table = Table(100)
    offset, seen = 0, []
    while True:
        ids = [i for i in sorted(table.state) if table.state[i] == "todo"][offset : offset + 10]
        if not ids:
            break
        seen += ids
        for i in ids:
            table.state[i] = "done"
        offset += 10
    assert len(seen) == 50


def test_poison_ids_are_bisected_out_and_the_rest_kept():
    table = Table(64)
    poison = {5, 6, 40}
    calls, failures = [], []

    def close(ids):
        calls.append(list(ids))
        if poison & set(ids):
            raise ValueError("poison")
        for i in ids:
            table.state[i] = "done"

    result = KeysetBatcher(table.fetch, close, 16, on_failure=lambda i, e: failures.append((i, str(e)))).run()
    assert sorted(result.failed_ids) == sorted(poison)
    assert [i for i, _ in failures] == sorted(poison)
    assert result.processed == 61
    assert {i for i, s in table.state.items() if s == "todo"} == poison
    # bisection: about 2 log2(16) extra calls per poisoned batch, not 16
    assert len(calls) < 4 + 2 * 2 * 4 + 4


class Savepoints:
    """isolate(): undo the writes of a failed attempt, like a SQL savepoint."""

    def __init__(self, table):
        self.table = table

    def __call__(self):
        table = self.table

        class _Ctx:
            def __enter__(self):
                self.saved = dict(table.state)

            def __exit__(self, exc_type, exc, tb):
                if exc_type is not None:
                    table.state = self.saved
                return False

        return _Ctx()


def test_failed_attempt_is_rolled_back_alone():
    table = Table(8)

    def close(ids):
        for i in ids:
            table.state[i] = "done"
        if 3 in ids:
            raise RuntimeError("boom")

    result = KeysetBatcher(
        table.fetch, close, 4, isolate=Savepoints(table), on_failure=lambda i, e: None
    ).run()
    assert result.failed_ids == [3]
    assert table.state[3] == "todo"
    assert all(table.state[i] == "done" for i in (1, 2, 4, 5, 6, 7, 8))


def test_after_batch_runs_once_per_batch_with_the_position():
    table = Table(7)
    seen = []
    KeysetBatcher(
        table.fetch, lambda ids: None, 3, after_batch=lambda r, ids: seen.append((r.last_id, ids))
    ).run()
    assert seen == [(3, [1, 2, 3]), (6, [4, 5, 6]), (7, [7])]


def test_time_budget_stops_after_the_batch_that_passed_it():
    table = Table(50)
    clock = Clock()

    def slow(ids):
        clock.now += 4

    result = KeysetBatcher(
        table.fetch, slow, 5, budget=Budget(max_seconds=10, clock=clock), count_remaining=table.count
    ).run()
    assert (result.stop_reason, result.batches, result.last_id) == ("time", 3, 15)
    assert result.remaining == 35
    assert result.elapsed == 12


def test_memory_budget_uses_the_given_measure():
    table = Table(30)
    sizes = iter([10, 20, 300, 400])
    budget = Budget(memory_limit_mb=100, memory_fn=lambda: next(sizes) * 1024 * 1024)
    result = KeysetBatcher(table.fetch, lambda ids: None, 5, budget=budget, count_remaining=table.count).run()
    assert (result.stop_reason, result.batches, result.remaining) == ("memory", 3, 15)


def test_budget_passed_on_the_last_full_batch_is_done():
    table = Table(10)
    clock = Clock()

    def slow(ids):
        clock.now += 100
        for i in ids:
            table.state[i] = "done"

    result = KeysetBatcher(
        table.fetch, slow, 5, budget=Budget(max_seconds=1, clock=clock), count_remaining=table.count
    ).run()
    assert (result.stop_reason, result.remaining, result.processed) == ("time", 5, 5)
    result = KeysetBatcher(
        table.fetch, slow, 5, budget=Budget(max_seconds=1, clock=clock), count_remaining=table.count
    ).run()
    assert (result.stop_reason, result.remaining, result.processed) == ("done", 0, 5)


def test_resume_after_a_position():
    table = Table(10)
    seen = []
    result = KeysetBatcher(table.fetch, seen.extend, 4, start_after=6).run()
    assert seen == [7, 8, 9, 10]
    assert result.last_id == 10


def test_budget_started_earlier_counts_from_then():
    clock = Clock()
    clock.now = 50
    budget = Budget(max_seconds=60, clock=clock, started=0).start()
    assert budget.elapsed() == 50
    clock.now = 61
    assert budget.exceeded() == "time"


@pytest.mark.parametrize("size", [0, -1, 1.5, True, "10"])
def test_bad_batch_size(size):
    with pytest.raises(ValueError, match="batch_size"):
        KeysetBatcher(lambda a, b: [], lambda ids: None, size)


def test_rate_limited_log():
    clock = Clock()
    log = RateLimitedLog(10, clock=clock)
    assert log.due()
    clock.now = 5
    assert not log.due()
    clock.now = 10
    assert log.due()

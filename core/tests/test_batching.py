import pytest

from core.batch.batching import Budget, KeysetBatcher
from core.common.throttle import Throttle


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
    # A poisoned batch is tried once whole, then record by record: no id is handed more than twice.
    handed = {}
    for ids in calls:
        for i in ids:
            handed[i] = handed.get(i, 0) + 1
    assert max(count for i, count in handed.items() if i not in poison) == 2
    assert len(calls) == 4 + 2 * 16
    assert result.calls == len(calls)


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


def test_time_budget_stops_before_the_batch_that_would_pass_it():
    table = Table(50)
    clock = Clock()

    def slow(ids):
        clock.now += 4

    result = KeysetBatcher(
        table.fetch, slow, 5, budget=Budget(max_seconds=10, clock=clock), count_remaining=table.count
    ).run()
    # 4 s per batch: a third one would end at 12 s, past 10 s.
    assert (result.stop_reason, result.batches, result.last_id) == ("time", 2, 10)
    assert result.remaining == 40
    assert result.elapsed == 8


def test_memory_budget_predicts_the_growth_of_the_next_batch():
    table = Table(30)
    size = [10.0]

    def grow(ids):
        size[0] += 30  # MiB per batch

    budget = Budget(memory_limit_mb=100, memory_fn=lambda: size[0] * 1024 * 1024)
    result = KeysetBatcher(table.fetch, grow, 5, budget=budget, count_remaining=table.count).run()
    # 10 -> 40 -> 70: a third batch would reach 100.
    assert (result.stop_reason, result.batches, result.remaining) == ("memory", 2, 20)


def test_memory_keeps_a_margin_to_the_hard_limit():
    table = Table(30)
    size = [100.0]

    def grow(ids):
        size[0] += 50

    budget = Budget(hard_limit_mb=400, hard_margin_mb=64, memory_fn=lambda: size[0] * 1024 * 1024)
    result = KeysetBatcher(table.fetch, grow, 5, budget=budget).run()
    # 100 -> 150 -> 200 -> 250 -> 300: 350 would be within 64 MiB of 400.
    assert (result.stop_reason, result.batches) == ("memory", 4)


def test_cpu_budget_from_what_is_left_before_the_limit():
    table = Table(50)
    cpu = [0.0]

    def burn(ids):
        cpu[0] += 3

    budget = Budget(cpu_fn=lambda: cpu[0], cpu_left_fn=lambda: 10 - cpu[0])
    result = KeysetBatcher(table.fetch, burn, 5, budget=budget).run()
    # 3 s of CPU per batch, 10 s allowed: the fourth would reach 12.
    assert (result.stop_reason, result.batches) == ("cpu", 3)


@pytest.mark.parametrize(
    "budget",
    [
        Budget(max_seconds=5, started=-10.0),
        Budget(time_left_fn=lambda: 0.0),
        Budget(cpu_left_fn=lambda: 0.0),
        Budget(memory_limit_mb=1, memory_fn=lambda: 2 * 1024 * 1024),
    ],
    ids=["time", "loop-time", "cpu", "memory"],
)
def test_spent_budget_starts_no_batch(budget):
    calls = []
    fetched = []
    result = KeysetBatcher(lambda a, n: fetched.append(a) or [1, 2], calls.append, 5, budget=budget).run()
    assert (result.batches, calls, fetched) == (0, [], [])
    assert result.stop_reason in ("time", "cpu", "memory")


def test_memory_error_stops_without_isolating():
    table = Table(20)

    def close(ids):
        if 8 in ids:
            raise MemoryError()
        for i in ids:
            table.state[i] = "done"

    failures = []
    result = KeysetBatcher(
        table.fetch, close, 5, isolate=Savepoints(table), on_failure=lambda i, e: failures.append(i)
    ).run()
    assert (result.stop_reason, result.failed_ids, result.last_id, result.calls) == ("memory", [], 5, 2)
    assert failures == []
    assert [i for i, s in table.state.items() if s == "done"] == [1, 2, 3, 4, 5]


class Conflict(Exception):
    pass


def classify(exc):
    return (
        "conflict" if isinstance(exc, Conflict) else "fatal" if isinstance(exc, ConnectionError) else "record"
    )


def test_conflict_retried_in_a_new_transaction_then_left_for_next_run():
    table = Table(10)
    conflicts = [2]  # the batch of 6..10 meets two concurrent writers, then none
    transactions = []

    def close(ids):
        if 6 in ids and conflicts[0]:
            conflicts[0] -= 1
            raise Conflict()
        for i in ids:
            table.state[i] = "done"

    result = KeysetBatcher(
        table.fetch, close, 5, classify=classify, new_transaction=lambda n: transactions.append(n) or True
    ).run()
    assert (result.stop_reason, result.processed, result.failed_ids, transactions) == ("done", 10, [], [1, 2])

    table = Table(10)
    result = KeysetBatcher(
        table.fetch,
        lambda ids: (_ for _ in ()).throw(Conflict()) if 6 in ids else None,
        5,
        classify=classify,
        new_transaction=lambda n: True,
        conflict_retries=2,
    ).run()
    # Always a conflict: left for the next run, not a failed record.
    assert (result.stop_reason, result.failed_ids, result.last_id, result.calls) == ("conflict", [], 5, 4)


def test_fatal_fault_is_raised_and_nothing_marked_failed():
    failures = []
    runner = KeysetBatcher(
        lambda a, n: [i for i in range(1, 6) if i > a][:n],
        lambda ids: (_ for _ in ()).throw(ConnectionError("server closed the connection")),
        5,
        classify=classify,
        on_failure=lambda i, e: failures.append(i),
    )
    with pytest.raises(ConnectionError):
        runner.run()
    assert failures == []


def test_systematic_failure_stops_after_a_few_records():
    from core.batch.batching import SystematicFailure

    calls, failures = [], []

    def broken(ids):
        calls.append(list(ids))
        raise KeyError("the external service is down")

    runner = KeysetBatcher(
        lambda a, n: [i for i in range(1, 101) if i > a][:n],
        broken,
        50,
        on_failure=lambda i, e: failures.append(i),
        systematic_after=5,
    )
    with pytest.raises(SystematicFailure) as raised:
        runner.run()
    assert raised.value.count == 5
    assert len(calls) == 1 + 5, "the batch, then five records alone, not fifty"
    assert failures == [], "nothing is wrong with the records"


def test_poison_among_good_records_is_not_systematic():
    def close(ids):
        if {1, 2, 3} & set(ids):
            raise ValueError("bad")

    failures = []
    result = KeysetBatcher(
        lambda a, n: [i for i in range(1, 11) if i > a][:n],
        close,
        10,
        on_failure=lambda i, e: failures.append(i),
        systematic_after=5,
    ).run()
    assert (result.failed_ids, failures, result.processed) == ([1, 2, 3], [1, 2, 3], 7)


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


def test_progress_log_throttle():
    clock = Clock()
    log = Throttle(10, clock=clock)
    assert log.take()
    clock.now = 5
    assert not log.take()
    clock.now = 10
    assert log.take()


def test_cpu_margin_is_kept_free_after_the_last_batch():
    table = Table(50)
    cpu = [0.0]

    def burn(ids):
        cpu[0] += 1

    budget = Budget(cpu_fn=lambda: cpu[0], cpu_left_fn=lambda: 3 - cpu[0], cpu_margin=1.0)
    result = KeysetBatcher(table.fetch, burn, 5, budget=budget).run()
    # 1 s per batch, 3 s allowed, 1 s kept free: one batch (a second would leave 0 s... 1 s).
    assert (result.stop_reason, result.batches) == ("cpu", 1)


def test_a_fresh_cpu_allotment_runs_a_batch_whatever_the_prediction():
    """A batch predicted to cost more than a whole allotment still runs in a fresh one."""
    budget = Budget(cpu_left_fn=lambda: 2.9, cpu_margin=1.0, cpu_fresh=1.5, max_batch_cpu=5.0)
    assert budget.spent() is None
    budget = Budget(cpu_left_fn=lambda: 1.0, cpu_margin=1.0, cpu_fresh=1.5, max_batch_cpu=5.0)
    assert budget.spent() == "cpu"

import gc
from datetime import timedelta
from unittest.mock import patch

from freezegun import freeze_time

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from odoo.addons.memory_hygiene import odoo_runtime
from odoo.addons.memory_hygiene.core.batch import batching
from odoo.addons.memory_hygiene.models import memory_batch_mixin

from .common import BatchCase

MIXIN_LOGGER = memory_batch_mixin.__name__


@tagged("post_install", "-at_install")
class TestBatchMixin(BatchCase):
    def test_offset_recipe_skips_records_the_mixin_does_not(self):
        """The article's loop skips half; keyset batches hand every record on once."""
        records = self.make_records(50)
        todo = [("state", "=", "todo")]

        # The memory-leak article's recipe: search(domain, limit, offset), offset += batch.
        seen_by_recipe, offset, batch_size = [], 0, 10
        while True:
            batch = self.Record.search(todo, limit=batch_size, offset=offset)
            if not batch:
                break
            seen_by_recipe += batch.ids
            batch.write({"state": "done"})
            offset += batch_size
        self.assertLess(len(seen_by_recipe), 50, "the offset recipe should skip records")
        self.assertTrue(records.filtered(lambda r: r.state == "todo"), "records left unprocessed")

        records.write({"state": "todo"})
        seen_by_mixin = []

        def close(batch):
            seen_by_mixin.extend(batch.ids)
            batch.write({"state": "done"})

        result = self.Record._batch_process(todo, close, batch_size=batch_size)
        self.assertEqual(sorted(seen_by_mixin), sorted(records.ids), "every record exactly once")
        self.assertEqual(set(records.mapped("state")), {"done"})
        self.assertEqual(result["processed"], 50)
        self.assertEqual(result["batches"], 5)
        self.assertEqual(result["stop_reason"], "done")
        self.assertEqual(result["remaining"], 0)
        self.assertEqual(result["failed_ids"], [])

    def test_documented_example_runs_unchanged(self):
        records = self.make_records(7)
        result = self.Record._cron_close_todo()
        self.assertEqual(result["processed"], 7)
        self.assertEqual(set(records.mapped("state")), {"done"})

    def test_tracking_disabled_by_default(self):
        records = self.make_records(6)
        contexts = []

        def close(batch):
            contexts.append(dict(batch.env.context))
            batch.write({"state": "done", "value": 7})

        messages_before = self.env["mail.message"].search_count([("model", "=", records._name)])
        self.Record._batch_process([("id", "in", records.ids)], close, batch_size=4)
        for key in memory_batch_mixin.NO_TRACKING_CONTEXT:
            self.assertTrue(all(ctx.get(key) for ctx in contexts), key)
        self.assertEqual(
            self.env["mail.message"].search_count([("model", "=", records._name)]), messages_before
        )

    def test_tracking_kept_when_asked(self):
        records = self.make_records(3)
        self.Record._batch_process(
            [("id", "in", records.ids)], lambda batch: batch.write({"state": "done"}), tracking=True
        )
        for record in records.sudo():  # tracking values are for admins to read
            tracked = record.message_ids.tracking_value_ids
            self.assertEqual(len(tracked), 1, "one tracking value per record")
            self.assertEqual(tracked.field_id.name, "state")

    def test_poison_records_are_isolated(self):
        records = self.make_records(20)
        poison = records[3] | records[16]
        poison.write({"poison": True})
        calls = []

        def close(batch):
            calls.append(len(batch))
            batch.write({"state": "done"})  # rolled back when the batch fails
            bad = batch.filtered("poison")
            if bad:
                raise ValueError(f"cannot close {bad.ids}")

        with self.assertLogs(MIXIN_LOGGER, level="ERROR") as logs:
            result = self.Record._batch_process([("state", "=", "todo")], close, batch_size=8)
        self.assertEqual(sorted(result["failed_ids"]), sorted(poison.ids))
        self.assertEqual(result["processed"], 18)
        self.assertEqual(result["stop_reason"], "done")
        self.assertEqual(set((records - poison).mapped("state")), {"done"}, "every other record processed")
        self.assertEqual(set(poison.mapped("state")), {"todo"}, "the failing batches were rolled back")
        self.assertEqual(len(logs.records), 2)
        for record_id in poison.ids:
            line = next((out for out in logs.output if f"({record_id})" in out), "")
            self.assertIn("cannot close", line, f"record {record_id} and its exception are logged")
        self.assertEqual(
            [bool(r.exc_info) for r in logs.records], [True, False], "one traceback per exception type"
        )
        # Batches of 8, 8, 4; the first and the last hold a poison record: tried whole, then
        # record by record. No good record is handed more than twice.
        self.assertEqual(calls, [8, 1, 1, 1, 1, 1, 1, 1, 1, 8, 4, 1, 1, 1, 1])
        self.assertEqual(result["calls"], 15)

    def test_one_bad_record_last_in_a_batch_of_100(self):
        """The issue's case: 99 good records and one that raises, last: 199 calls, not 300."""
        records = self.make_records(100)
        records[-1].poison = True
        handed = {}

        def close(batch):
            for record in batch:
                handed[record.id] = handed.get(record.id, 0) + 1
            batch.write({"state": "done"})
            if batch.filtered("poison"):
                raise ValueError("poison")

        with self.assertLogs(MIXIN_LOGGER, level="ERROR"):
            result = self.Record._batch_process([("id", "in", records.ids)], close, batch_size=100)
        self.assertEqual(result["failed_ids"], records[-1].ids)
        self.assertEqual(result["processed"], 99)
        self.assertEqual(set(handed.values()), {2}, "each record: its batch's attempt, then its own")
        self.assertEqual(sum(handed.values()), 200)
        self.assertEqual(set(records[:-1].mapped("state")), {"done"})

    def test_memory_error_stops_without_isolating(self):
        """What limit_memory_hard raises: the batch is rolled back, nothing is marked failed."""
        records = self.make_records(12)
        calls = []

        def close(batch):
            calls.append(batch.ids)
            batch.write({"state": "done"})
            if records[6] in batch:
                raise MemoryError()

        result = self.Record._batch_process([("id", "in", records.ids)], close, batch_size=5)
        self.assertEqual((result["stop_reason"], result["failed_ids"]), ("memory", []))
        self.assertEqual((result["processed"], result["batches"], result["remaining"]), (5, 1, 7))
        self.assertEqual(len(calls), 2, "not retried in a process that is out of memory")
        self.assertEqual(set(records[:5].mapped("state")), {"done"})
        self.assertEqual(set(records[5:].mapped("state")), {"todo"}, "the batch was rolled back")

    def test_systematic_failure_fails_the_run_with_one_line(self):
        records = self.make_records(40)

        def broken(batch):
            raise KeyError("the external service is down")

        with (
            self.assertLogs(MIXIN_LOGGER, level="ERROR") as logs,
            self.assertRaises(batching.SystematicFailure),
        ):
            self.Record._batch_process([("id", "in", records.ids)], broken, batch_size=20)
        self.assertEqual(len(logs.records), 1, logs.output)
        self.assertIn("5 records in a row failed alone with KeyError", logs.output[0])

    def test_domain_objects_are_accepted(self):
        try:
            from odoo.fields import Domain
        except ImportError:
            self.skipTest("Domain objects are 19.0's")

        records = self.make_records(4)
        result = self.Record._batch_process(
            Domain("id", "in", records.ids) & Domain("state", "=", "todo"),
            lambda batch: batch.write({"state": "done"}),
            batch_size=3,
        )
        self.assertEqual((result["processed"], result["batches"]), (4, 2))

    def test_earlier_batches_survive_a_failing_one(self):
        records = self.make_records(10)
        records[-1].poison = True

        def close(batch):
            batch.write({"state": "done"})
            if batch.filtered("poison"):
                raise ValueError("poison")

        with self.assertLogs(MIXIN_LOGGER, level="ERROR"):
            result = self.Record._batch_process([("id", "in", records.ids)], close, batch_size=3)
        self.assertEqual(result["failed_ids"], records[-1].ids)
        self.assertEqual(set(records[:-1].mapped("state")), {"done"})

    def test_time_budget_stops_after_the_batch(self):
        records = self.make_records(20)
        with freeze_time("2026-01-01 00:00:00") as frozen:

            def slow_close(batch):
                batch.write({"state": "done"})
                frozen.tick(delta=timedelta(seconds=2))

            result = self.Record._batch_process(
                [("state", "=", "todo")], slow_close, batch_size=4, max_seconds=5
            )
        # 2 s per batch: a third batch would end at 6 s, past the budget of 5 s.
        self.assertEqual(result["stop_reason"], "time")
        self.assertEqual(result["batches"], 2)
        self.assertEqual(result["processed"], 8)
        self.assertEqual(result["remaining"], 12)
        self.assertEqual(len(records.filtered(lambda r: r.state == "todo")), 12)

    def test_memory_budget_spent_on_entry_starts_no_batch(self):
        self.make_records(12)
        calls = []

        def close(batch):
            calls.append(batch.ids)
            batch.write({"state": "done"})

        # Any Odoo process is far above 1 MiB of address space: no batch at all.
        result = self.Record._batch_process([("state", "=", "todo")], close, batch_size=5, memory_limit_mb=1)
        self.assertEqual(result["stop_reason"], "memory")
        self.assertEqual((result["batches"], result["processed"], result["remaining"], calls), (0, 0, 12, []))
        # A generous limit lets the run finish.
        result = self.Record._batch_process(
            [("state", "=", "todo")], close, batch_size=5, memory_limit_mb=1024 * 1024
        )
        self.assertEqual((result["stop_reason"], result["processed"]), ("done", 12))

    def test_memory_is_measured_as_odoo_measures_it(self):
        """The budget compares the figure of odoo.service.server.memory_info (vms on Linux)."""
        import psutil

        from odoo.service.server import memory_info

        self.make_records(4)
        seen = []
        real = memory_batch_mixin.limits.odoo_memory

        def spy():
            seen.append(real())
            return seen[-1]

        with patch.object(memory_batch_mixin.limits, "odoo_memory", spy):
            self.Record._batch_process([], lambda b: None, batch_size=1, memory_limit_mb=10**7)
        odoo_figure = memory_info(psutil.Process())
        self.assertGreaterEqual(len(seen), 8, "measured before and after each batch")
        self.assertAlmostEqual(seen[-1], odoo_figure, delta=64 * 1024 * 1024)
        self.assertGreater(odoo_figure, psutil.Process().memory_info().rss, "vms, not rss")

    def test_hygiene_after_each_batch(self):
        self.make_records(9)
        env_class = type(self.env)
        with (
            patch.object(
                env_class, "invalidate_all", autospec=True, side_effect=env_class.invalidate_all
            ) as inv,
            patch.object(gc, "collect", wraps=gc.collect) as collect,
        ):
            result = self.Record._batch_process([], lambda b: None, batch_size=3, gc_collect=True)
            self.assertEqual(result["batches"], 3)
            self.assertGreaterEqual(inv.call_count, 3)
            self.assertEqual(collect.call_count, 3)
            collect.reset_mock()
            self.Record._batch_process([], lambda b: None, batch_size=3)
            self.assertEqual(collect.call_count, 0, "gc only when asked")

    def test_test_mode_uses_savepoints_never_commits(self):
        """Under the test runner a batch is a released savepoint (cr.commit raises here)."""
        records = self.make_records(6)
        self.assertTrue(odoo_runtime.in_test_mode())
        with patch.object(
            type(self.env.cr), "savepoint", autospec=True, side_effect=type(self.env.cr).savepoint
        ) as sp:
            result = self.Record._batch_process([], lambda b: b.write({"state": "done"}), batch_size=2)
        self.assertEqual(result["batches"], 3)
        self.assertGreaterEqual(sp.call_count, 3)
        self.assertEqual(set(records.mapped("state")), {"done"})

    def test_commits_after_each_batch_outside_tests(self):
        self.make_records(6)
        with (
            patch.object(odoo_runtime, "in_test_mode", return_value=False),
            patch.object(self.env.cr, "commit") as commit,
        ):
            result = self.Record._batch_process([], lambda b: b.write({"state": "done"}), batch_size=2)
        self.assertEqual(result["batches"], 3)
        self.assertEqual(commit.call_count, 3, "one commit per batch")

    def test_resume_key_keeps_the_position_until_done(self):
        records = self.make_records(10)
        touched = []

        def touch(batch):
            touched.extend(batch.ids)  # leaves every record in the domain

        with freeze_time("2026-01-01 00:00:00") as frozen:

            def slow_touch(batch):
                touch(batch)
                frozen.tick(delta=timedelta(seconds=2))

            # 2 s per batch, 3 s of budget: one batch.
            first = self.Record._batch_process(
                [("state", "=", "todo")], slow_touch, batch_size=4, max_seconds=3, resume_key="mh-test"
            )
        position = self.env["memory.batch.position"].search([("key", "=", "mh-test")])
        self.assertEqual(first["stop_reason"], "time")
        self.assertEqual(position.last_id, records[3].id)
        second = self.Record._batch_process(
            [("state", "=", "todo")], touch, batch_size=4, resume_key="mh-test"
        )
        self.assertEqual(second["stop_reason"], "done")
        self.assertEqual(touched, records.ids, "resumed after the last record, none twice")
        self.assertFalse(position.exists(), "cleared when the run completes")

    def test_bad_arguments_say_what_to_fix(self):
        cases = [
            ({"domain": "state = todo"}, "domain"),
            ({"callback": None}, "callback"),
            ({"batch_size": 0}, "batch_size"),
            ({"batch_size": 2.5}, "batch_size"),
            ({"max_seconds": -1}, "max_seconds"),
            ({"memory_limit_mb": 0}, "memory_limit_mb"),
            ({"resume_key": ""}, "resume_key"),
        ]
        records = self.make_records(2)
        for override, word in cases:
            kwargs = {"domain": [], "callback": lambda b: b.write({"state": "done"}), **override}
            with self.subTest(word=word), self.assertRaisesRegex(UserError, word):
                self.Record._batch_process(kwargs.pop("domain"), kwargs.pop("callback"), **kwargs)
        self.assertEqual(set(records.mapped("state")), {"todo"}, "nothing touched")

    def test_positions_are_for_admins_only(self):
        with self.assertRaises(AccessError):
            self.env["memory.batch.position"].with_user(self.user).search([])

    def test_lost_connection_or_cancelled_query_stops_the_run(self):
        """Not a bad record: raised at once, nothing logged as failed, nothing kept as failed."""
        import psycopg2.errors

        records = self.make_records(6)
        for error in (
            psycopg2.OperationalError("server closed the connection unexpectedly"),
            psycopg2.errors.QueryCanceled("canceling statement due to user request"),
        ):
            calls = []
            with (
                self.subTest(error=type(error).__name__),
                self.assertRaises(type(error)),
                self.assertNoLogs(MIXIN_LOGGER, "ERROR"),
            ):
                self.Record._batch_process(
                    [("id", "in", records.ids)], _raiser(error, calls), batch_size=3, resume_key="mh-lost"
                )
            self.assertEqual(calls, [records[:3].ids], "no record retried alone")
        self.assertFalse(self.env["memory.batch.failure"].sudo().search([("key", "=", "mh-lost")]))


def _raiser(error, calls):
    """A batch callback that notes its batch in ``calls`` and raises ``error``."""

    def close(batch):
        calls.append(batch.ids)
        raise error

    return close

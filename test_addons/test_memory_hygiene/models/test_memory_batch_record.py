import logging
import time

from odoo import api, fields, models

from odoo.addons.memory_hygiene.core.process import limits

_logger = logging.getLogger(__name__)


class TestMemoryBatchRecord(models.Model):
    """A model of a user's addon: it only inherits the mixin, as README shows."""

    _name = "test.memory.batch.record"
    _description = "Memory Hygiene test record"
    _inherit = ["mail.thread", "memory.batch.mixin"]

    name = fields.Char(tracking=True)
    state = fields.Selection([("todo", "To do"), ("done", "Done")], default="todo", tracking=True)
    value = fields.Integer(tracking=True)
    poison = fields.Boolean()

    # The README's example, unchanged.
    @api.model
    def _cron_close_todo(self):
        return self._batch_process(
            [("state", "=", "todo")],
            lambda batch: batch.write({"state": "done"}),
            batch_size=500,
        )

    # Used by the tests' scheduled actions: a callback that leaves every record
    # in the domain, so only the saved position keeps the run from looping.
    @api.model
    def _cron_touch_todo(self, batch_size=5):
        return self._batch_process(
            [("state", "=", "todo")], lambda batch: batch._touch(), batch_size=batch_size
        )

    def _touch(self):
        for record in self:
            record.value += 1

    # The benchmark's "realistic cron" (benchmarks/bench_profiler.py): create,
    # read and write ``count`` records, tracking and chatter on, as crons often do.
    @api.model
    def _cron_bench_realistic(self, count=5000):
        records = self.create([{"name": f"bench {i}", "value": i} for i in range(count)])
        total = sum(record.value for record in self.search([("id", "in", records.ids)]))
        for record in records:
            record.value += 1
            record.state = "done"
        self.env.flush_all()
        return total

    # A scheduled action whose every record fails alike: the external service it calls is down.
    @api.model
    def _cron_call_dead_service(self, batch_size=10):
        def call(batch):
            raise ConnectionRefusedError("the external service is down")

        return self._batch_process([("state", "=", "todo")], call, batch_size=batch_size)

    # A CPU-bound scheduled action: 0.1 s of CPU per record, batches of 5 (the case, smaller).
    @api.model
    def _cron_burn_cpu(self, seconds_per_record=0.1, batch_size=5):
        def burn(batch):
            _logger.info("burn: batch of %s, CPU left %s s", len(batch), limits.cpu_seconds_left())
            for record in batch:
                started = time.process_time()
                while time.process_time() - started < seconds_per_record:
                    pass
                record.write({"state": "done", "value": record.value + 1})

        return self._batch_process([("state", "=", "todo")], burn, batch_size=batch_size)

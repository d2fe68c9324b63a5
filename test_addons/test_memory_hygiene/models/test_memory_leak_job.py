import os
import time
import tracemalloc

from odoo import api, models

MIB = 1024 * 1024

#: What the leaking job keeps, run after run: module-level state, the
#: memory-leak article's culprit. Tests empty it when they are done.
LEAK = []
#: ``tracemalloc.is_tracing()`` as each run of the probe job saw it.
TRACING_SEEN = []


class TestMemoryLeakJob(models.AbstractModel):
    """Scheduled-action bodies with known memory behaviour, for the profiler's tests."""

    _name = "test.memory.leak.job"
    _description = "Memory Hygiene test jobs"

    @api.model
    def _job_wait_for_file(self, path, timeout=120):
        """A slow job: runs until ``path`` exists (bounded by ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.2)

    @api.model
    def _job_leak(self):
        LEAK.append(bytearray(MIB))  # the appending line: about 1 MiB kept per run

    @api.model
    def _job_keep_small_objects(self):
        LEAK.append([(number,) for number in range(20_000)])  # 40 000 small objects kept per run

    @api.model
    def _job_churn(self):
        chunks = [bytearray(MIB) for _ in range(8)]  # 8 MiB allocated, all freed on return
        return len(chunks)

    @api.model
    def _job_churn_3mib(self):
        data = bytearray(3 * MIB)  # 3 MiB allocated and freed on return
        return len(data)

    @api.model
    def _job_stop_tracing(self):
        """What Odoo 19's profiler does when it ends: stop tracemalloc, whoever started it."""
        LEAK.append(bytearray(MIB))
        tracemalloc.stop()

    @api.model
    def _job_uses_diagnostics_tracer(self):
        """Keeps 1 MiB while someone starts and stops the diagnostics tracer in the same process."""
        from odoo.addons.memory_hygiene.core.diagnostics import heap

        heap.TRACER.start()
        LEAK.append(bytearray(MIB))
        heap.TRACER.stop()

    @api.model
    def _job_fill_cache(self):
        """Creates and reads 2 000 records: a full record cache, released when the run commits."""
        records = self.env["test.memory.batch.record"].with_context(tracking_disable=True)
        records = records.create([{"name": f"cached {i}", "value": i} for i in range(2000)])
        return sum(records.mapped("value"))

    @api.model
    def _job_tracked_writes(self):
        """Tracked writes on 1 000 records: their tracking values wait in the transaction until it commits."""
        records = self.env["test.memory.batch.record"].create([{"name": f"tracked {i}"} for i in range(1000)])
        for record in records:
            record.value += 1
        return len(records)

    @api.model
    def _job_fail(self):
        self.env["ir.config_parameter"].sudo().set_param("test_memory_hygiene.fail_marker", "written")
        raise ValueError("the test job fails")

    @api.model
    def _job_probe(self):
        TRACING_SEEN.append(tracemalloc.is_tracing())
        return self.env["res.users"].search([], limit=50).mapped("login")  # fills the record cache

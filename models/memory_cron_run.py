import os
from datetime import timedelta

from odoo import api, fields, models

from .. import access, compat
from ..core import params
from ..core.leakprof import MIB


class MemoryCronRun(models.Model):
    """One profiled run of a scheduled action: what it left behind in memory.

    Written by the profiler (``models/ir_cron.py``) in a transaction of its
    own, so a run that failed and rolled back still leaves its profile. Lean
    like Odoo's own log models: no access log columns, big texts not prefetched.
    """

    _name = "memory.cron.run"
    _description = "Profiled scheduled-action run"
    _log_access = False
    _order = "start desc, id desc"
    _rec_name = "cron_id"

    cron_id = fields.Many2one(
        "ir.cron", string="Scheduled Action", required=True, ondelete="cascade", index=True, readonly=True
    )
    start = fields.Datetime(required=True, index=True, readonly=True, default=fields.Datetime.now)
    duration = fields.Float(string="Duration (s)", digits=(16, 3), readonly=True, aggregator="avg")
    state = fields.Selection(
        [("ok", "Done"), ("failed", "Failed")], required=True, default="ok", readonly=True
    )
    host = fields.Char(readonly=True)
    pid = fields.Integer(string="PID", readonly=True, aggregator=None)
    rss_before_mb = fields.Float(string="RSS before (MiB)", digits=(16, 1), readonly=True, aggregator="avg")
    rss_after_mb = fields.Float(string="RSS after (MiB)", digits=(16, 1), readonly=True, aggregator="avg")
    rss_after_gc_mb = fields.Float(
        string="RSS after gc (MiB)",
        digits=(16, 1),
        readonly=True,
        aggregator="max",
        help="RSS once the run ended and gc.collect() ran: what the run left to the operating system's eyes.",
    )
    rss_growth_mb = fields.Float(
        string="RSS growth (MiB)",
        digits=(16, 2),
        readonly=True,
        help="RSS after gc minus RSS before the run.",
    )
    traced_growth_mb = fields.Float(
        string="Traced growth (MiB)",
        digits=(16, 3),
        readonly=True,
        help="What tracemalloc saw the run allocate and still hold after gc.collect(): "
        "what Python code kept.",
    )
    traced_peak_mb = fields.Float(
        string="Traced peak (MiB)",
        digits=(16, 1),
        readonly=True,
        aggregator="max",
        help="The most memory traced at once during the run.",
    )
    fds_before = fields.Integer(string="Open files before", readonly=True, aggregator="avg")
    fds_after = fields.Integer(string="Open files after", readonly=True, aggregator="avg")
    record_cache_size = fields.Integer(
        string="Record cache",
        readonly=True,
        aggregator="max",
        help="Field values in the record cache when the server action returned "
        "(before Odoo's commit clears it).",
    )
    frames = fields.Integer(string="Frames traced", readonly=True, aggregator=None)
    top_site = fields.Char(string="Top allocation site", readonly=True, index=True)
    line_ids = fields.One2many("memory.cron.run.line", "run_id", string="Top allocations", readonly=True)
    top_text = fields.Text(string="Top allocations (log)", readonly=True, prefetch=False)
    error = fields.Text(readonly=True, prefetch=False)

    @api.model
    def _record(self, cron_id, result, *, state="ok", error=None, record_cache_size=0):
        """Store a :class:`core.leakprof.ProfileResult` of a run of ``cron_id``."""
        top = result.top
        run = self.create(
            {
                "cron_id": cron_id,
                "start": result.started_at.replace(microsecond=0),
                "duration": result.duration,
                "state": state,
                "host": compat.host_name(),
                "pid": os.getpid(),
                "rss_before_mb": result.rss_before / MIB,
                "rss_after_mb": result.rss_after / MIB,
                "rss_after_gc_mb": result.rss_after_gc / MIB,
                "rss_growth_mb": (result.rss_after_gc - result.rss_before) / MIB,
                "traced_growth_mb": result.traced_growth / MIB,
                "traced_peak_mb": result.traced_peak / MIB,
                "fds_before": result.fds_before or 0,
                "fds_after": result.fds_after or 0,
                "record_cache_size": record_cache_size or 0,
                "frames": result.frames,
                "top_site": f"{top[0]['file']}:{top[0]['line']}" if top else False,
                "top_text": "\n".join(result.log_lines()),
                "error": error or False,
                "line_ids": [
                    fields.Command.create(
                        {
                            "rank": rank,
                            "file": alloc["file"],
                            "line": alloc["line"],
                            "size_diff_kb": alloc["size_diff"] / 1024,
                            "count_diff": alloc["count_diff"],
                            "size_kb": alloc["size"] / 1024,
                            "count": alloc["count"],
                        }
                    )
                    for rank, alloc in enumerate(top, start=1)
                ],
            }
        )
        return run

    @api.model
    def _last_runs(self, cron_id, limit):
        """``(rss_after_gc_mb, traced_growth_mb)`` of the last ``limit`` runs of a cron, oldest first."""
        self.env.cr.execute(
            """
            SELECT rss_after_gc_mb, traced_growth_mb
              FROM memory_cron_run
             WHERE cron_id = %s
          ORDER BY start DESC, id DESC
             LIMIT %s
            """,
            [cron_id, limit],
        )
        return self.env.cr.fetchall()[::-1]

    @api.autovacuum
    def _gc_runs(self):
        """Remove runs older than the retention, in bounded chunks; the newest K of each cron stay.

        The last ``profile_window`` runs of every scheduled action are what its
        verdict is made of, so they are kept however old they are.
        """
        icp = self.env["ir.config_parameter"].sudo()  # the addon's own settings
        days = params.read(icp.get_param, params.PROFILE_RETENTION_DAYS)
        window = params.read(icp.get_param, params.PROFILE_WINDOW)
        self.env.cr.execute(
            """
            SELECT id FROM (
                SELECT id, start,
                       row_number() OVER (PARTITION BY cron_id ORDER BY start DESC, id DESC) AS age
                  FROM memory_cron_run
            ) runs
             WHERE start < %s AND age > %s
             LIMIT %s
            """,
            [fields.Datetime.now() - timedelta(days=days), window, compat.GC_UNLINK_LIMIT],
        )
        ids = [row[0] for row in self.env.cr.fetchall()]
        self.browse(ids).unlink()
        return compat.autovacuum_result(self.env, len(ids), len(ids) >= compat.GC_UNLINK_LIMIT)

    def action_send_leak_report(self):
        """The "Send report now" button of the runs list."""
        access.check_admin(self.env)
        return self.env["memory.leak.report"].action_send_now()

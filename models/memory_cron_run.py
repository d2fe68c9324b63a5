import json
import os
from datetime import timedelta

from odoo import api, fields, models

from .. import access, compat, odoo_runtime
from ..core.common import params
from ..core.common.units import MIB

#: Columns of an accounted run, in the order of :meth:`MemoryCronRun._insert_accounted`.
ACCOUNTED_COLUMNS = (
    "cron_id",
    "start",
    "duration",
    "cpu_time",
    "state",
    "host",
    "pid",
    "rss_before_mb",
    "rss_after_mb",
    "rss_growth_mb",
    "vms_before_mb",
    "vms_after_mb",
    "heap_growth_mb",
    "blocks_growth",
    "growth_mb",
    "charged",
    "fds_before",
    "fds_after",
    "fds_kept",
    "record_cache_size",
    "trace",
    "error",
)


class MemoryCronRun(models.Model):
    """One run of a scheduled action: what it was charged with, and when traced, what it kept.

    Every run is accounted (``models/ir_cron.py``); one compact row each,
    written in the transaction that ends the job (see ``_memory_after_job``),
    or, for a run that cannot change a verdict, in that of a later job
    (``core/profiler/deferred.py``).
    Lean like Odoo's own log models: no access log columns, big texts not
    prefetched, purged by the autovacuum in bounded chunks.
    """

    _name = "memory.cron.run"
    _description = "Scheduled-action run (memory)"
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
    trace = fields.Selection(
        [("no", "Accounted"), ("traced", "Traced"), ("interrupted", "Trace interrupted")],
        required=True,
        default="no",
        readonly=True,
        index=True,
        help="Traced: tracemalloc ran around the run (sites and holders below). Interrupted: someone else stopped or restarted tracemalloc during the run, so its trace is no data.",  # noqa: E501
    )
    auto_traced = fields.Boolean(
        string="Traced by itself", readonly=True, help="Traced because the action was suspect."
    )
    cpu_time = fields.Float(string="CPU (s)", digits=(16, 3), readonly=True, aggregator="avg")
    growth_mb = fields.Float(
        string="Charged growth (MiB)",
        digits=(16, 3),
        readonly=True,
        help="What grew during the run (after minus before): bytes in use in the C heap plus Python's small-object blocks, or RSS where the C library cannot tell. The verdict is made of it.",  # noqa: E501
    )
    charged = fields.Boolean(
        readonly=True,
        help="The run's growth was measured (the C heap read before and after it). Charged: every run of an action whose verdict is not settled, traced runs, Run Manually, one run in N of a healthy action (Settings), and the run after one whose RSS or Python blocks grew by the leak threshold.",  # noqa: E501
    )
    heap_growth_mb = fields.Float(string="Heap growth (MiB)", digits=(16, 3), readonly=True)
    blocks_growth = fields.Integer(string="Python blocks kept", readonly=True)
    vms_before_mb = fields.Float(string="VMS before (MiB)", digits=(16, 1), readonly=True, aggregator="avg")
    vms_after_mb = fields.Float(string="VMS after (MiB)", digits=(16, 1), readonly=True, aggregator="avg")
    fds_kept = fields.Integer(string="Files kept open", readonly=True)
    holder = fields.Char(
        string="Held by",
        readonly=True,
        help="What keeps the kept memory alive: a module global, class attribute or registry-level object.",
    )
    holders_text = fields.Text(string="Holders", readonly=True, prefetch=False)
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
        help="RSS after the run minus RSS before it: what the operating system saw (the allocator reuses freed memory, so this may be another run's growth).",  # noqa: E501
    )
    traced_growth_mb = fields.Float(
        string="Traced growth (MiB)",
        digits=(16, 3),
        readonly=True,
        help="What tracemalloc saw the run allocate and still hold after gc.collect(): what Python code kept.",  # noqa: E501
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
        help="Field values in the record cache when the server action returned (before Odoo's commit clears it).",  # noqa: E501
    )
    frames = fields.Integer(string="Frames traced", readonly=True, aggregator=None)
    top_site = fields.Char(string="Top allocation site", readonly=True, index=True)
    line_ids = fields.One2many("memory.cron.run.line", "run_id", string="Top allocations", readonly=True)
    top_text = fields.Text(string="Top allocations (log)", readonly=True, prefetch=False)
    error = fields.Text(readonly=True, prefetch=False)

    def init(self):
        # Rows stored before runs could go uncharged were all charged: their growth says so.
        self.env.cr.execute(
            "UPDATE memory_cron_run SET charged = TRUE WHERE charged IS NOT TRUE AND growth_mb IS NOT NULL"
        )

    @api.model
    def _insert_accounted(self, rows):
        """Insert accounted runs (dicts with :data:`ACCOUNTED_COLUMNS`) in one statement: the cheap path."""
        if rows:
            self.env.cr.execute(*self._insert_accounted_query(rows))

    @api.model
    def _insert_accounted_query(self, rows):
        """``(sql, params)`` of :meth:`_insert_accounted`, for a caller that sends it with more."""
        return insert_accounted_query(rows)

    @api.model
    def _record(
        self, cron_id, result, *, state="ok", error=None, record_cache_size=0, charge=None, auto=False
    ):
        """Store a traced run: a :class:`core.profiler.leakprof.ProfileResult` of ``cron_id``.

        :param charge: the run's accounting (``core.profiler.accounting.charge``), or None.
        """
        top = result.top
        charge = charge or {}
        run = self.create(
            {
                **accounted_values(charge),
                "cron_id": cron_id,
                "start": result.started_at.replace(microsecond=0),
                "duration": result.duration,
                "state": state,
                "charged": charge.get("growth") is not None,
                "trace": "interrupted" if result.interrupted else "traced",
                "auto_traced": auto,
                "host": odoo_runtime.host_name(),
                "pid": os.getpid(),
                "rss_before_mb": (charge.get("rss_before") or result.rss_before) / MIB,
                "rss_after_mb": (charge.get("rss_after") or result.rss_after) / MIB,
                "rss_after_gc_mb": result.rss_after_gc / MIB,
                "rss_growth_mb": (
                    (charge["rss_after"] - charge["rss_before"]) / MIB
                    if charge
                    else (result.rss_after_gc - result.rss_before) / MIB
                ),
                "traced_growth_mb": result.traced_growth / MIB,
                "traced_peak_mb": result.traced_peak / MIB,
                "fds_before": result.fds_before or 0,
                "fds_after": result.fds_after or 0,
                "fds_kept": (result.fds_after or 0) - (result.fds_before or 0),
                "record_cache_size": record_cache_size or 0,
                "frames": result.frames,
                "top_site": f"{top[0]['file']}:{top[0]['line']}" if top else False,
                "top_text": "\n".join(result.log_lines()),
                "holder": result.holders[0]["path"] if result.holders else False,
                "holders_text": "\n".join(h["path"] for h in result.holders) or False,
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
    def _verdict_inputs(self, cron_id, limit):
        """What a verdict is made of, in one query: ``(ids, growth_mb, trace)``.

        ``ids`` and ``growth_mb``: the last ``limit`` runs of the cron, oldest
        first; ``trace``: ``(id, start, traced_growth_mb)`` of its latest traced
        run that is data (not interrupted), or None.
        """
        self.env.cr.execute(*self._verdict_inputs_query(cron_id, limit))
        return self._verdict_inputs_parse(self.env.cr.fetchall())

    @api.model
    def _verdict_inputs_query(self, cron_id, limit):
        """``(sql, params)`` of :meth:`_verdict_inputs`, for a caller that sends it with more."""
        return (
            """
            (SELECT 'run', id, start, growth_mb
               FROM memory_cron_run
              WHERE cron_id = %s AND growth_mb IS NOT NULL
           ORDER BY start DESC, id DESC
              LIMIT %s)
            UNION ALL
            (SELECT 'trace', id, start, traced_growth_mb
               FROM memory_cron_run
              WHERE cron_id = %s AND trace = 'traced'
           ORDER BY start DESC, id DESC
              LIMIT 1)
            """,
            [cron_id, limit, cron_id],
        )

    @api.model
    def _verdict_inputs_parse(self, fetched):
        runs, trace = [], None
        for kind, run_id, start, figure in fetched:
            if kind == "run":
                runs.append((run_id, figure or 0.0))
            else:
                trace = (run_id, start, figure or 0.0)
        runs.reverse()
        return [run[0] for run in runs], [run[1] for run in runs], trace

    @api.model
    def _growth_by_cron(self, since):
        """``{cron_id: {"growth_mb", "runs", "charged", "fds_kept"}}``: each action's, since ``since``.

        ``growth_mb`` (MiB): the growth charged to the action's runs since
        ``since``, estimated: a healthy action has one run in N charged (the
        others are accounted, not charged), so its growth is the mean of its
        charged runs times its runs; with no charged run since ``since``, the
        mean of its last K charged runs (K: the verdict window), whatever their
        age. ``runs``: runs since ``since``; ``charged``: of which charged.
        """
        self.env.cr.execute(
            """
            SELECT runs.cron_id, runs.growth, runs.charged, runs.runs, runs.fds,
                   CASE WHEN runs.charged = 0 THEN (
                       SELECT AVG(last.growth_mb) FROM (
                           SELECT growth_mb FROM memory_cron_run
                            WHERE cron_id = runs.cron_id AND growth_mb IS NOT NULL
                         ORDER BY start DESC, id DESC
                            LIMIT %s
                       ) last
                   ) END
              FROM (
                SELECT cron_id, SUM(growth_mb) AS growth, COUNT(growth_mb) AS charged, COUNT(*) AS runs,
                       SUM(fds_kept) AS fds
                  FROM memory_cron_run
                 WHERE start >= %s
              GROUP BY cron_id
              ) runs
            """,
            [odoo_runtime.setting(self.env, params.PROFILE_WINDOW), since],
        )
        figures = {}
        for cron_id, growth, charged, runs, fds, recent_mean in self.env.cr.fetchall():
            mean = growth / charged if charged else recent_mean
            figures[cron_id] = {
                "growth_mb": (mean or 0.0) * runs,
                "runs": runs,
                "charged": charged,
                "fds_kept": fds or 0,
            }
        return figures

    @api.autovacuum
    def _gc_runs(self):
        """Remove runs older than the retention, in bounded chunks; the newest K of each cron stay.

        The last ``profile_window`` charged runs of every scheduled action are
        what its verdict is made of, so they are kept however old they are, and
        so are its last ``profile_window`` runs.
        """
        days = odoo_runtime.setting(self.env, params.PROFILE_RETENTION_DAYS)
        window = odoo_runtime.setting(self.env, params.PROFILE_WINDOW)
        self.env.cr.execute(
            """
            SELECT id FROM (
                SELECT id, start, growth_mb IS NOT NULL AS charged,
                       row_number() OVER newest_first AS age,
                       count(growth_mb) OVER newest_first AS charged_age
                  FROM memory_cron_run
                WINDOW newest_first AS (
                           PARTITION BY cron_id ORDER BY start DESC, id DESC ROWS UNBOUNDED PRECEDING
                       )
            ) runs
             WHERE start < %s AND age > %s AND NOT (charged AND charged_age <= %s)
             LIMIT %s
            """,
            [fields.Datetime.now() - timedelta(days=days), window, window, compat.GC_UNLINK_LIMIT],
        )
        ids = [row[0] for row in self.env.cr.fetchall()]
        self.browse(ids).unlink()
        return compat.autovacuum_result(self.env, len(ids), len(ids) >= compat.GC_UNLINK_LIMIT)

    def action_send_leak_report(self):
        """The "Send report now" button of the runs list."""
        access.check_admin(self.env)
        return self.env["memory.leak.report"].action_send_now()


def insert_accounted_query(rows):
    """``(sql, params)``: one ``INSERT`` of accounted runs (dicts with :data:`ACCOUNTED_COLUMNS`)."""
    values = ", ".join(["(" + ", ".join(["%s"] * len(ACCOUNTED_COLUMNS)) + ")"] * len(rows))
    return (
        f"INSERT INTO memory_cron_run ({', '.join(ACCOUNTED_COLUMNS)}) VALUES {values}",  # noqa: S608
        [_column_value(row, column) for row in rows for column in ACCOUNTED_COLUMNS],
    )


def _column_value(row, column):
    """The value of ``column`` in accounted run ``row``: ``charged`` defaults to "has a growth"."""
    if column == "charged":
        return row.get(column, row.get("growth_mb") is not None)
    return row.get(column)


def insert_waiting_query(rows):
    """``(sql, params)``: one ``INSERT`` of accounted runs that waited, those of a deleted action left out.

    ``rows``: dicts keyed by :data:`ACCOUNTED_COLUMNS` (a missing key is
    NULL). Rows that waited in memory (``core/profiler/deferred.py``) may name
    an action deleted since: they are skipped, never failing the statement
    (nor the job's own rows sent with it). Sent as JSON, typed by the table's
    own columns; inserted in the order given.
    """
    columns = ", ".join(ACCOUNTED_COLUMNS)
    return (
        f"INSERT INTO memory_cron_run ({columns})"  # noqa: S608
        f" SELECT {columns} FROM jsonb_populate_recordset(NULL::memory_cron_run, %s::jsonb)"
        " WITH ORDINALITY AS waiting"
        " WHERE EXISTS (SELECT 1 FROM ir_cron WHERE ir_cron.id = waiting.cron_id)"
        " ORDER BY waiting.ordinality",
        [
            json.dumps(
                [{column: _column_value(row, column) for column in ACCOUNTED_COLUMNS} for row in rows],
                default=str,  # start: a naive UTC datetime, read back by PostgreSQL as a timestamp
            )
        ],
    )


def accounted_values(charge):
    """The columns of :data:`ACCOUNTED_COLUMNS` from a run's accounting (``accounting.charge``)."""
    if not charge:
        return {}
    heap = charge.get("heap_growth")
    fds_before, fds_after = charge.get("fds_before"), charge.get("fds_after")
    return {
        "duration": charge["duration"],
        "cpu_time": charge["cpu_time"],
        "rss_before_mb": charge["rss_before"] / MIB,
        "rss_after_mb": charge["rss_after"] / MIB,
        "rss_growth_mb": (charge["rss_after"] - charge["rss_before"]) / MIB,
        "vms_before_mb": charge["vms_before"] / MIB,
        "vms_after_mb": charge["vms_after"] / MIB,
        "heap_growth_mb": heap / MIB if heap is not None else None,
        "blocks_growth": charge["blocks_growth"],
        "growth_mb": charge["growth"] / MIB if charge["growth"] is not None else None,
        "charged": charge["growth"] is not None,
        "fds_before": fds_before or 0,
        "fds_after": fds_after or 0,
        "fds_kept": (fds_after or 0) - (fds_before or 0),
    }

from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import sql

from ..core.snapshot import rollup
from .memory_snapshot import KINDS, _wanted

PERIODS = [("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days")]
PERIOD_HOURS = {"24h": 24, "7d": 7 * 24, "30d": 30 * 24}

#: Where each tier takes over (initplans: one index lookup each). The hours start where the days
#: stop, and the snapshots not rolled up yet where the hours stop.
_HOURS_END = "(SELECT max(date) + interval '1 hour' FROM memory_snapshot_rollup WHERE tier = 'hour')"
_HOURS_START = "(SELECT min(date) FROM memory_snapshot_rollup WHERE tier = 'hour')"
# Ids: even for snapshots, odd for roll-ups.
_VIEW = f"""
    CREATE VIEW memory_snapshot_history AS
    SELECT s.id * 2 AS id, 'raw'::varchar AS tier, s.date, s.host, s.pid, s.process_kind,
           1 AS samples, s.rss_mb, s.rss_mb AS rss_min_mb, s.rss_mb AS rss_max_mb,
           s.vms_mb, s.vms_mb AS vms_max_mb, s.soft_limit_pct,
           (s.recycled_pid <> 0)::int AS recycles, s.leak_suspect
      FROM memory_snapshot s
     WHERE s.date >= COALESCE({_HOURS_END}, '-infinity'::timestamp)
    UNION ALL
    SELECT r.id * 2 + 1, r.tier, r.date, r.host, r.pid, r.process_kind,
           r.samples, r.rss_mb, r.rss_min_mb, r.rss_max_mb,
           r.vms_mb, r.vms_max_mb, r.soft_limit_pct, r.recycles, r.leak_suspect
      FROM memory_snapshot_rollup r
     WHERE r.tier = 'hour'
        OR (r.tier = 'day' AND r.date + interval '1 day' <= COALESCE({_HOURS_START}, 'infinity'::timestamp))
"""


class MemorySnapshotHistory(models.Model):
    """The history of worker memory across tiers, each period from the coarsest tier that holds it.

    A view: the daily roll-ups before the first hourly one, the hourly roll-ups,
    and the snapshots not rolled up yet (``core.snapshot.rollup``). A graph of 30 days
    by host reads some thousand rows per process, whatever the sampling
    interval. A snapshot reads as a bucket of one sample.
    """

    _name = "memory.snapshot.history"
    _description = "Worker Memory History"
    _auto = False
    _log_access = False
    _order = "date desc, id desc"

    tier = fields.Selection(
        [(rollup.RAW, "Snapshot"), (rollup.HOUR, "Hour"), (rollup.DAY, "Day")], readonly=True
    )
    date = fields.Datetime(string="Period start", readonly=True)
    host = fields.Char(readonly=True)
    pid = fields.Integer(string="PID", readonly=True, aggregator=False)
    process_kind = fields.Selection(KINDS, string="Kind", readonly=True)
    samples = fields.Integer(readonly=True)
    rss_mb = fields.Float(string="RSS (MiB)", readonly=True, aggregator="avg", help="Last of the period.")
    rss_min_mb = fields.Float(string="RSS min (MiB)", readonly=True, aggregator="min")
    rss_max_mb = fields.Float(string="RSS max (MiB)", readonly=True, aggregator="max")
    vms_mb = fields.Float(string="Virtual (MiB)", readonly=True, aggregator="avg", help="Last of the period.")
    vms_max_mb = fields.Float(string="Virtual max (MiB)", readonly=True, aggregator="max")
    soft_limit_pct = fields.Float(string="% of soft limit (max)", readonly=True, aggregator="max")
    recycles = fields.Integer(readonly=True)
    leak_suspect = fields.Boolean(readonly=True)
    period = fields.Selection(PERIODS, compute="_compute_period", search="_search_period")
    host_gone = fields.Boolean(
        compute="_compute_host_gone",
        search="_search_host_gone",
        help="The host has sent nothing for a few sampling intervals (Hosts).",
    )

    def init(self):
        sql.drop_view_if_exists(self.env.cr, self._table)
        self.env.cr.execute(_VIEW)

    @api.depends("host", "process_kind", "pid", "date")
    def _compute_display_name(self):
        kinds = dict(KINDS)
        for row in self:
            row.display_name = f"{row.host} {kinds.get(row.process_kind, '')} {row.pid}"

    def _compute_period(self):
        self.period = False

    def _search_period(self, operator, value):
        values = [value] if isinstance(value, str) else list(value)
        if operator not in ("=", "in") or not set(values) <= set(PERIOD_HOURS):
            raise UserError(self.env._("Search the history's period with 'is' %s.", ", ".join(PERIOD_HOURS)))
        hours = max(PERIOD_HOURS[v] for v in values)
        return [("date", ">=", fields.Datetime.now() - timedelta(hours=hours))]

    def _compute_host_gone(self):
        gone = set(self.env["memory.host"]._gone_names())
        for row in self:
            row.host_gone = row.host in gone

    def _search_host_gone(self, operator, value):
        # A host that left the snapshots long ago is in no list of hosts: "not gone" is "live".
        wanted = _wanted(operator, value, True)
        live = self.env["memory.host"]._live_names()
        return [("host", "not in" if wanted else "in", live)]

    @api.model
    def _recycles_per_host(self, hosts, since=None):
        """``{host: recycles}`` of ``hosts``: roll-ups and the snapshots not rolled up yet, as the view.

        Reads only rows that hold a recycle (partial indexes of both tables);
        ``since`` (naive UTC) counts the buckets that start from it.
        """
        if not hosts:
            return {}
        since = since or rollup.EPOCH
        self.env.cr.execute(
            f"""
            SELECT host, sum(n) FROM (
                SELECT host, count(*) AS n FROM memory_snapshot
                 WHERE recycled_pid <> 0 AND host IN %(hosts)s AND date >= %(since)s
                   AND date >= COALESCE({_HOURS_END}, '-infinity'::timestamp)
              GROUP BY host
                UNION ALL
                SELECT host, sum(recycles) FROM memory_snapshot_rollup
                 WHERE recycles > 0 AND host IN %(hosts)s AND date >= %(since)s AND (
                       tier = 'hour' OR (tier = 'day' AND date + interval '1 day'
                                         <= COALESCE({_HOURS_START}, 'infinity'::timestamp)))
              GROUP BY host
            ) counts GROUP BY host
            """,
            {"hosts": tuple(hosts), "since": since},
        )
        return {host: int(count) for host, count in self.env.cr.fetchall()}

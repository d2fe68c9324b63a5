import logging
from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import sql

from .. import compat, odoo_runtime
from ..core.common import params
from ..core.snapshot import rollup
from .memory_snapshot import KINDS

_logger = logging.getLogger(__name__)

#: Keys of the advisory lock that makes one process at a time roll up and purge ("mr").
LOCK = (0x6D72, 0)
#: Buckets one call rolls up at most, per tier (a bounded chunk).
MAX_BUCKETS = {rollup.HOUR: 6, rollup.DAY: 7}
#: A bucket waits this many sampling intervals after its end for late samples.
GRACE_INTERVALS = 2

_COLUMNS = (
    "tier, date, last_date, host, pid, process_kind, samples, rss_min_mb, rss_max_mb, rss_mb,"
    " vms_min_mb, vms_max_mb, vms_mb, soft_limit_pct, recycles, leak_suspect"
)
# A bucket rolled up twice (a late sample after its first roll-up) merges into the first one.
_MERGE = """
    ON CONFLICT (tier, host, pid, date) DO UPDATE SET
        samples = r.samples + EXCLUDED.samples,
        rss_min_mb = LEAST(r.rss_min_mb, EXCLUDED.rss_min_mb),
        rss_max_mb = GREATEST(r.rss_max_mb, EXCLUDED.rss_max_mb),
        vms_min_mb = LEAST(r.vms_min_mb, EXCLUDED.vms_min_mb),
        vms_max_mb = GREATEST(r.vms_max_mb, EXCLUDED.vms_max_mb),
        soft_limit_pct = GREATEST(r.soft_limit_pct, EXCLUDED.soft_limit_pct),
        recycles = r.recycles + EXCLUDED.recycles,
        leak_suspect = r.leak_suspect OR EXCLUDED.leak_suspect,
        rss_mb = CASE WHEN EXCLUDED.last_date >= r.last_date THEN EXCLUDED.rss_mb ELSE r.rss_mb END,
        vms_mb = CASE WHEN EXCLUDED.last_date >= r.last_date THEN EXCLUDED.vms_mb ELSE r.vms_mb END,
        process_kind = CASE WHEN EXCLUDED.last_date >= r.last_date
                            THEN EXCLUDED.process_kind ELSE r.process_kind END,
        last_date = GREATEST(r.last_date, EXCLUDED.last_date)
"""
_ROLL_HOURS = f"""
    INSERT INTO memory_snapshot_rollup AS r ({_COLUMNS})
    SELECT 'hour', date_trunc('hour', date), max(date), host, pid,
           (array_agg(process_kind ORDER BY date DESC, id DESC))[1],
           count(*), min(rss_mb), max(rss_mb), (array_agg(rss_mb ORDER BY date DESC, id DESC))[1],
           min(vms_mb), max(vms_mb), (array_agg(vms_mb ORDER BY date DESC, id DESC))[1],
           max(soft_limit_pct), count(*) FILTER (WHERE recycled_pid <> 0), bool_or(leak_suspect)
      FROM memory_snapshot
     WHERE date >= %s AND date < %s AND pid IS NOT NULL
  GROUP BY host, pid, date_trunc('hour', date)
    {_MERGE}
"""
_ROLL_DAYS = f"""
    INSERT INTO memory_snapshot_rollup AS r ({_COLUMNS})
    SELECT 'day', date_trunc('day', date), max(last_date), host, pid,
           (array_agg(process_kind ORDER BY last_date DESC))[1],
           sum(samples), min(rss_min_mb), max(rss_max_mb), (array_agg(rss_mb ORDER BY last_date DESC))[1],
           min(vms_min_mb), max(vms_max_mb), (array_agg(vms_mb ORDER BY last_date DESC))[1],
           max(soft_limit_pct), sum(recycles), bool_or(leak_suspect)
      FROM memory_snapshot_rollup
     WHERE tier = 'hour' AND date >= %s AND date < %s
  GROUP BY host, pid, date_trunc('day', date)
    {_MERGE}
"""


class MemorySnapshotRollup(models.Model):
    """Worker snapshots rolled up per process and hour, or per process and day (``core.snapshot.rollup``).

    Written only by :meth:`_housekeep` (the sampling scheduled action and the
    autovacuum), in plain SQL: one ``INSERT ... SELECT`` per chunk of buckets.
    Read through ``memory.snapshot.history``.
    """

    _name = "memory.snapshot.rollup"
    _description = "Worker Memory History (rolled up)"
    _log_access = False
    _order = "date desc, id desc"

    tier = fields.Selection([(rollup.HOUR, "Hour"), (rollup.DAY, "Day")], required=True, readonly=True)
    date = fields.Datetime(string="Period start", required=True, readonly=True)
    last_date = fields.Datetime(string="Last sample", required=True, readonly=True)
    host = fields.Char(required=True, readonly=True)
    pid = fields.Integer(string="PID", required=True, readonly=True, aggregator=False)
    process_kind = fields.Selection(KINDS, string="Kind", readonly=True)
    samples = fields.Integer(readonly=True, help="Snapshots rolled up in this period.")
    rss_min_mb = fields.Float(string="RSS min (MiB)", readonly=True, aggregator="min")
    rss_max_mb = fields.Float(string="RSS max (MiB)", readonly=True, aggregator="max")
    rss_mb = fields.Float(string="RSS last (MiB)", readonly=True, aggregator="avg")
    vms_min_mb = fields.Float(string="Virtual min (MiB)", readonly=True, aggregator="min")
    vms_max_mb = fields.Float(string="Virtual max (MiB)", readonly=True, aggregator="max")
    vms_mb = fields.Float(string="Virtual last (MiB)", readonly=True, aggregator="avg")
    soft_limit_pct = fields.Float(string="% of soft limit (max)", readonly=True, aggregator="max")
    recycles = fields.Integer(readonly=True, help="Recycles recorded in this period.")
    leak_suspect = fields.Boolean(readonly=True)

    def init(self):
        cr = self.env.cr
        # One bucket per tier, process and period: the key of the roll-up's merge.
        compat.create_unique_index(
            cr, "memory_snapshot_rollup_bucket_uniq", self._table, ["tier", "host", "pid", "date"]
        )
        # Watermarks (max/min date of a tier), purges and period filters.
        sql.create_index(cr, "memory_snapshot_rollup_tier_date_index", self._table, ["tier", "date"])
        # Recycles per host: only the buckets that have some.
        sql.create_index(
            cr,
            "memory_snapshot_rollup_recycles_index",
            self._table,
            ["host", "tier", "date"],
            where="recycles > 0",
        )

    # ------------------------------------------------------------------ roll-up and purge

    @api.model
    def _housekeep(self, purge_limit=None, max_buckets=None):
        """Roll up one bounded chunk of each tier, then purge one bounded chunk of each.

        Runs in the sampling scheduled action and in the autovacuum; one process
        at a time (an advisory lock of the transaction: a second caller returns
        at once). Returns True when more is left to do (a backlog: a first run
        on a long history, or a pause of the scheduler).
        """
        self.env.flush_all()  # the roll-up reads the tables in SQL
        self.env.cr.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", LOCK)
        if not self.env.cr.fetchone()[0]:
            return False
        purge_limit = purge_limit or compat.GC_UNLINK_LIMIT
        max_buckets = max_buckets or MAX_BUCKETS
        now = fields.Datetime.now()
        grace = timedelta(minutes=GRACE_INTERVALS * odoo_runtime.setting(self.env, params.SNAPSHOT_INTERVAL))
        more = False
        for tier, statement in ((rollup.HOUR, _ROLL_HOURS), (rollup.DAY, _ROLL_DAYS)):
            # A day is rolled up once all its hours are: its "now" is the end of the hours rolled up.
            until, wait = (
                (now, grace) if tier == rollup.HOUR else (self._rolled_until(rollup.HOUR), timedelta())
            )
            if until is None:
                continue
            window = rollup.next_window(
                tier, self._rolled_until(tier), self._oldest_unrolled(tier), until, wait, max_buckets[tier]
            )
            if window:
                self.env.cr.execute(statement, window)
                _logger.debug("memory_hygiene: %s buckets from %s to %s rolled up", tier, *window)
                after = rollup.next_window(tier, window[1], self._oldest_unrolled(tier), until, wait, 1)
                more = more or after is not None
        cut = rollup.purge_before(
            now,
            odoo_runtime.setting(self.env, params.SNAPSHOT_RAW_HOURS),
            odoo_runtime.setting(self.env, params.SNAPSHOT_HOUR_DAYS),
            odoo_runtime.setting(self.env, params.SNAPSHOT_RETENTION_DAYS),
        )
        # A tier is purged only once the next one holds it.
        hours_until, days_until = self._rolled_until(rollup.HOUR), self._rolled_until(rollup.DAY)
        for table, tier, before in (
            ("memory_snapshot", None, hours_until and min(cut[rollup.RAW], hours_until)),
            ("memory_snapshot_rollup", rollup.HOUR, days_until and min(cut[rollup.HOUR], days_until)),
            ("memory_snapshot_rollup", rollup.DAY, cut[rollup.DAY]),
        ):
            if before:
                more = self._purge(table, tier, before, purge_limit) or more
        self.env.invalidate_all()
        return more

    def _rolled_until(self, tier):
        """End of the last bucket of ``tier`` rolled up, or None."""
        self.env.cr.execute("SELECT max(date) FROM memory_snapshot_rollup WHERE tier = %s", [tier])
        last = self.env.cr.fetchone()[0]
        return last + rollup.BUCKET[tier] if last else None

    def _oldest_unrolled(self, tier):
        """Date of the oldest row of the tier finer than ``tier`` that ``tier`` does not hold yet, or None."""
        since = self._rolled_until(tier) or rollup.EPOCH
        if tier == rollup.HOUR:
            self.env.cr.execute("SELECT min(date) FROM memory_snapshot WHERE date >= %s", [since])
        else:
            self.env.cr.execute(
                "SELECT min(date) FROM memory_snapshot_rollup WHERE tier = 'hour' AND date >= %s", [since]
            )
        return self.env.cr.fetchone()[0]

    def _purge(self, table, tier, before, limit):
        """Delete at most ``limit`` rows of ``table`` (of ``tier``) older than ``before``; True if more."""
        where, args = ("tier = %s AND date < %s", [tier, before]) if tier else ("date < %s", [before])
        # table and where are constants of this module; the values are parameters.
        self.env.cr.execute(
            f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {where} ORDER BY date LIMIT %s)",
            [*args, limit],
        )
        return self.env.cr.rowcount >= limit

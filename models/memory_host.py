import zlib
from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import sql

from .. import odoo_runtime
from ..core.common import params

#: A host that has sent nothing for this many sampling intervals is gone.
GONE_AFTER_INTERVALS = 3
#: A round is due on a host when its last one is older than this share of the interval.
ROUND_DUE_SHARE = 0.9
#: First key of the advisory locks that make one process per host take its round ("mh").
LOCK_NAMESPACE = 0x6D68


def lock_key(host):
    """The second key of the advisory lock of ``host``'s rounds (a signed 32-bit integer)."""
    return zlib.crc32(host.encode()) - (1 << 31)


class MemoryHost(models.Model):
    """A host that sends snapshots to this database: its last snapshot, its last round, and whether
    it is gone.

    A view over ``memory_snapshot`` (bounded index lookups on ``(host, date)``,
    one per host), so that no process ever writes a shared row: two workers of a
    host that sample at once never wait for, or conflict with, each other. The
    round of a host is taken by one of its processes at a time
    (:meth:`_claim_round`, an advisory lock of the transaction).
    """

    _name = "memory.host"
    _description = "Host sampled by Memory Hygiene"
    _auto = False
    _log_access = False
    _order = "name"

    name = fields.Char(readonly=True)
    last_seen_at = fields.Datetime(string="Last snapshot", readonly=True)
    last_round_at = fields.Datetime(string="Last round", readonly=True)
    state = fields.Selection(
        [("live", "Sending"), ("gone", "Gone")],
        compute="_compute_state",
        search="_search_state",
        help=f"Gone: no snapshot for {GONE_AFTER_INTERVALS} sampling intervals. Its snapshots stay until the"
        " retention ends, but it leaves the trends and the leak report.",
    )

    def init(self):
        sql.drop_view_if_exists(self.env.cr, self._table)
        # Distinct hosts by a loose index scan (one index lookup per host, not a scan of the table).
        self.env.cr.execute(
            """
            CREATE VIEW memory_host AS
            WITH RECURSIVE hosts(host) AS (
                (SELECT host FROM memory_snapshot ORDER BY host LIMIT 1)
                UNION ALL
                SELECT (SELECT s.host FROM memory_snapshot s
                         WHERE s.host > hosts.host ORDER BY s.host LIMIT 1)
                  FROM hosts
                 WHERE hosts.host IS NOT NULL
            )
            SELECT row_number() OVER (ORDER BY hosts.host) AS id,
                   hosts.host AS name,
                   (SELECT max(s.date) FROM memory_snapshot s WHERE s.host = hosts.host) AS last_seen_at,
                   (SELECT max(s.date) FROM memory_snapshot s
                     WHERE s.host = hosts.host AND s.round_key IS NOT NULL) AS last_round_at
              FROM hosts
             WHERE hosts.host IS NOT NULL
            """
        )

    def _gone_before(self):
        # The interval is read for whoever reads the trends or the hosts.
        minutes = odoo_runtime.setting(self.env, params.SNAPSHOT_INTERVAL)
        return fields.Datetime.now() - timedelta(minutes=GONE_AFTER_INTERVALS * minutes)

    @api.depends("last_seen_at")
    def _compute_state(self):
        limit = self._gone_before()
        for host in self:
            host.state = "gone" if not host.last_seen_at or host.last_seen_at < limit else "live"

    def _search_state(self, operator, value):
        values = {value} if isinstance(value, str) else set(value)
        if operator not in ("=", "in") or not values <= {"live", "gone"}:
            raise NotImplementedError(f"Unsupported search on state: {operator!r} {value!r}")
        if values == {"live", "gone"}:
            return []
        limit = self._gone_before()
        return [("last_seen_at", ">=" if values == {"live"} else "<", limit)]

    @api.model
    def _gone_names(self):
        """Names of the hosts that are gone."""
        # Which hosts are gone is read for whoever reads the trends or sends the report.
        return self.sudo().search([("state", "=", "gone")]).mapped("name")

    @api.model
    def _lock_round(self, host):
        """Take the lock of ``host``'s rounds until the end of the transaction; False if another process
        holds it (it is taking the round now). Taken again in the same transaction, it is granted."""
        self.env.cr.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)",
            [LOCK_NAMESPACE, lock_key(host)],
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _claim_round(self, host):
        """True when the caller takes ``host``'s sampling round now: no other process of the host is
        taking it, and none was taken within the interval.

        Meant as the first statement of a transaction of its own, so that its
        snapshot sees the rounds committed before the lock was granted.
        """
        if not self._lock_round(host):
            return False
        self.env.cr.execute(
            "SELECT max(date) FROM memory_snapshot WHERE host = %s AND round_key IS NOT NULL", [host]
        )
        last = self.env.cr.fetchone()[0]
        minutes = odoo_runtime.setting(self.env, params.SNAPSHOT_INTERVAL)
        return last is None or last < fields.Datetime.now() - timedelta(minutes=ROUND_DUE_SHARE * minutes)

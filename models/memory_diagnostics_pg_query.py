import logging

from odoo import fields, models
from odoo.exceptions import UserError

from ..core.diagnostics import pgpressure

_logger = logging.getLogger(__name__)


class MemoryDiagnosticsPgQuery(models.TransientModel):  # pylint: disable=no-wizard-in-models
    """A query of this database active for longer than the threshold; it can be cancelled."""

    _name = "memory.diagnostics.pg.query"
    _inherit = "memory.diagnostics.line"
    _description = "Long PostgreSQL query"
    _order = "runtime desc"

    backend_pid = fields.Integer(string="Backend pid", readonly=True)
    usename = fields.Char(string="Role", readonly=True)
    runtime = fields.Float(string="Running for (s)", digits=(16, 1), readonly=True)
    wait_event_type = fields.Char(readonly=True)
    wait_event = fields.Char(readonly=True)
    query = fields.Char(string="Query (first 200 characters)", readonly=True)
    cancelled = fields.Boolean(readonly=True)
    # As pg_stat_activity gives them (text, to the microsecond): the cancel checks they did not change.
    backend_start = fields.Char(readonly=True)
    query_start = fields.Char(readonly=True)

    def action_cancel(self):
        """``pg_cancel_backend`` of the query shown, if that very query still runs. Never terminates.

        The backend's pid, database, session start and query start are checked
        in the statement that cancels (``pgpressure.CANCEL``); a backend that
        moved on to another query is left alone and the page says so.
        """
        self._check_admin()
        self.ensure_one()
        cr = self.env.cr
        cr.execute(pgpressure.CLEAR_SNAPSHOT)
        cr.execute(
            pgpressure.CANCEL, [self.backend_pid, self.backend_start or None, self.query_start or None]
        )
        row = cr.fetchone()
        if not row:
            raise UserError(
                self.env._(
                    "Backend %(pid)s no longer runs the query shown on this page (it ended, or its"
                    " connection moved on to another query): nothing was cancelled. Refresh the page to see"
                    " what runs now.",
                    pid=self.backend_pid,
                )
            )
        done, query = row
        _logger.info(
            "Cancelled the query of PostgreSQL backend %s (accepted: %s), asked by %s: %s",
            self.backend_pid,
            done,
            self.env.user.login,
            query,
        )
        if done:
            text = self.env._(
                "pg_cancel_backend(%(pid)s) sent: its query stops with an error.", pid=self.backend_pid
            )
        else:
            text = self.env._(
                "PostgreSQL refused pg_cancel_backend(%(pid)s): the database role of Odoo needs to be the"
                " owner of"
                " that session, or a member of pg_signal_backend.",
                pid=self.backend_pid,
            )
        self.cancelled = bool(done)
        self.diagnostics_id.write(
            {"output_title": self.env._("Cancel backend %(pid)s", pid=self.backend_pid), "output": text}
        )

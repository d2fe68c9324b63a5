import logging

from odoo import fields, models
from odoo.exceptions import UserError

from ..core import pgpressure

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

    def action_cancel(self):
        """``pg_cancel_backend``: the query stops with an error, the session stays. Never terminates."""
        self._check_admin()
        self.ensure_one()
        cr = self.env.cr
        cr.execute(pgpressure.CANCELLABLE, [self.backend_pid])
        row = cr.fetchone()
        if not row:
            raise UserError(
                self.env._(
                    "Backend %(pid)s runs no query of this database (any more): nothing was cancelled.",
                    pid=self.backend_pid,
                )
            )
        _logger.info(
            "Cancelling the query of PostgreSQL backend %s (state %s), asked by %s: %s",
            self.backend_pid,
            row[1],
            self.env.user.login,
            row[2],
        )
        cr.execute(pgpressure.CANCEL, [self.backend_pid])
        done = cr.fetchone()[0]
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

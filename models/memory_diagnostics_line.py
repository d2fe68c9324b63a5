from odoo import fields, models


class MemoryDiagnosticsLine(models.AbstractModel):
    """What every line of the diagnostics page has: its page, and admins only."""

    _name = "memory.diagnostics.line"
    _description = "Line of the memory diagnostics page"

    diagnostics_id = fields.Many2one("memory.diagnostics", required=True, ondelete="cascade", readonly=True)

    def _check_admin(self):
        self.env["memory.diagnostics"]._check_admin()

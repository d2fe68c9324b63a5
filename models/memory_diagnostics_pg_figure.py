from odoo import fields, models


class MemoryDiagnosticsPgFigure(models.TransientModel):  # pylint: disable=no-wizard-in-models
    """A figure of PostgreSQL's memory pressure: sessions by state, temp files, a memory setting."""

    _name = "memory.diagnostics.pg.figure"
    _inherit = "memory.diagnostics.line"
    _description = "PostgreSQL memory pressure figure"
    _order = "section, id"

    section = fields.Selection(
        [
            ("session", "Sessions of this database"),
            ("temp", "Temporary files of this database"),
            ("setting", "Memory settings"),
        ],
        required=True,
        readonly=True,
    )
    name = fields.Char(readonly=True)
    value = fields.Char(readonly=True)
    detail = fields.Char(readonly=True)
    is_current = fields.Boolean(string="This database", readonly=True)

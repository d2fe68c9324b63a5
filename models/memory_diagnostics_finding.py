from odoo import fields, models

from ..core.diagnostics import advisor


class MemoryDiagnosticsFinding(models.TransientModel):  # pylint: disable=no-wizard-in-models
    """One finding of the config advisor: what is wrong (or fine), and what to change."""

    _name = "memory.diagnostics.finding"
    _inherit = "memory.diagnostics.line"
    _description = "Config advisor finding"
    _order = "sequence, id"

    sequence = fields.Integer(readonly=True)
    level = fields.Selection(
        [
            (advisor.CRITICAL, "Critical"),
            (advisor.WARNING, "Warning"),
            (advisor.INFO, "Info"),
            (advisor.OK, "OK"),
        ],
        readonly=True,
    )
    code = fields.Char(readonly=True)
    title = fields.Text(string="Finding", readonly=True)  # Text: wraps in the list, Char would be cut
    advice = fields.Text(string="What to change", readonly=True)

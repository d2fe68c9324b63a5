from odoo import api, fields, models


class MemoryCronRunLine(models.Model):
    """One allocation site of a profiled run: a line of tracemalloc's ``compare_to(..., "lineno")``."""

    _name = "memory.cron.run.line"
    _description = "Allocation site of a profiled run"
    _log_access = False
    _order = "run_id desc, rank"
    _rec_name = "site"

    run_id = fields.Many2one("memory.cron.run", required=True, ondelete="cascade", index=True, readonly=True)
    cron_id = fields.Many2one(related="run_id.cron_id", store=True, index=True, string="Scheduled Action")
    start = fields.Datetime(related="run_id.start", store=True)
    rank = fields.Integer(readonly=True, aggregator=None)
    file = fields.Char(readonly=True)
    line = fields.Integer(readonly=True, aggregator=None)
    site = fields.Char(compute="_compute_site", store=True, index=True)
    size_diff_kb = fields.Float(string="Size diff (KiB)", digits=(16, 1), readonly=True)
    count_diff = fields.Integer(string="Count diff", readonly=True)
    size_kb = fields.Float(string="Size (KiB)", digits=(16, 1), readonly=True, aggregator="max")
    count = fields.Integer(readonly=True, aggregator="max")

    @api.depends("file", "line")
    def _compute_site(self):
        for alloc in self:
            alloc.site = f"{alloc.file}:{alloc.line}" if alloc.file else False

from odoo import api, fields, models

from ..compat import create_unique_index


class MemoryBatchPosition(models.Model):
    """Where a batched run that stopped early resumes: the last id it handed on.

    Written in the same transaction as each batch, so it never claims work
    that was rolled back; removed when a run completes.
    """

    _name = "memory.batch.position"
    _description = "Resume position of a batched run"
    _log_access = False
    _order = "updated_at desc, id desc"

    key = fields.Char(required=True, readonly=True, index=False)
    res_model = fields.Char(string="Model", readonly=True)
    cron_id = fields.Many2one("ir.cron", string="Scheduled Action", ondelete="cascade", readonly=True)
    last_id = fields.Integer(string="Last ID handed on", readonly=True)
    updated_at = fields.Datetime(readonly=True)

    def init(self):
        create_unique_index(self.env.cr, "memory_batch_position_key_uniq", self._table, ["key"])

    @api.model
    def _last_id(self, key):
        return self.search([("key", "=", key)], limit=1).last_id

    @api.model
    def _save(self, key, last_id, res_model, cron):
        vals = {"last_id": last_id, "updated_at": fields.Datetime.now()}
        position = self.search([("key", "=", key)], limit=1)
        if position:
            position.write(vals)
        else:
            self.create({**vals, "key": key, "res_model": res_model, "cron_id": cron.id or False})

    @api.model
    def _clear(self, key):
        self.search([("key", "=", key)]).unlink()

from odoo import api, fields, models

from .. import access
from ..compat import create_unique_index

#: Longest exception message kept per failed record.
MAX_MESSAGE_CHARS = 2000
#: Failed records a run skips at most (the oldest beyond are handed again).
MAX_SKIPPED = 10_000


class MemoryBatchFailure(models.Model):
    """A record that failed alone in a batched run, kept until an admin retries it.

    Written in the transaction of the batch that isolated it; the next runs of
    the same run (``key``) skip it instead of failing on it again.
    """

    _name = "memory.batch.failure"
    _description = "Record that failed in a batched run"
    _log_access = False
    _order = "failed_at desc, id desc"
    _rec_name = "key"

    key = fields.Char(string="Run", required=True, readonly=True, index=True)
    cron_id = fields.Many2one(
        "ir.cron", string="Scheduled Action", ondelete="cascade", readonly=True, index=True
    )
    res_model = fields.Char(string="Model", readonly=True)
    res_id = fields.Integer(string="Record ID", readonly=True)
    exception_type = fields.Char(string="Exception", readonly=True)
    message = fields.Text(readonly=True, prefetch=False)
    failed_at = fields.Datetime(readonly=True)

    def init(self):
        create_unique_index(self.env.cr, "memory_batch_failure_key_res_uniq", self._table, ["key", "res_id"])

    @api.model
    def _record(self, key, res_model, cron, failures):
        """Keep ``failures`` (``[(record id, exception)]``) of run ``key``; a repeated id is updated."""
        now = fields.Datetime.now()
        existing = {
            f.res_id: f for f in self.search([("key", "=", key), ("res_id", "in", [i for i, _e in failures])])
        }
        to_create = []
        for res_id, exc in failures:
            vals = {
                "exception_type": type(exc).__name__,
                "message": str(exc)[:MAX_MESSAGE_CHARS],
                "failed_at": now,
            }
            if res_id in existing:
                existing[res_id].write(vals)
            else:
                to_create.append(
                    {
                        **vals,
                        "key": key,
                        "res_id": res_id,
                        "res_model": res_model,
                        "cron_id": cron.id or False,
                    }
                )
        if to_create:
            self.create(to_create)

    @api.model
    def _failed_ids(self, key):
        """Ids of run ``key`` that failed before: the run skips them until they are retried."""
        return self.search([("key", "=", key)], order="id desc", limit=MAX_SKIPPED).mapped("res_id")

    def action_retry(self):
        """Forget these failures (the next runs hand the records again) and trigger their crons.

        :raises AccessError: unless the caller is a Settings admin.
        """
        access.check_admin(self.env)
        crons = self.sudo().cron_id  # to trigger them, whoever the crons run as
        self.unlink()
        for cron in crons:
            cron._trigger()
        return True

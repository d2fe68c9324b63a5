import logging

from markupsafe import Markup

from odoo import api, fields, models
from odoo.tools import html_escape

from .. import access, compat, messages, odoo_runtime
from ..core.common import params
from ..core.reporting import report as reports
from . import memory_leak_report

_logger = logging.getLogger(__name__)

#: What an immediate alert is about.
OOM = "oom_killer"
STORM = "storm"
LEAKING = "leaking"


class MemoryLifecycleAlert(models.Model):
    """An immediate notification: a worker OOM-killed, a recycle storm, a scheduled action leaking.

    One row per cause and kind (the ``key``): raising an alert whose key was
    sent within the settings' period changes nothing (one atomic UPDATE decides,
    so two workers that see the same storm at once send it once). Raised alerts
    are sent by their scheduled action, triggered at once: never in the request
    or round that noticed (a webhook can take seconds), by mail and webhook with
    the leak report's channels and rules (recipients, no redirect followed).
    """

    _name = "memory.lifecycle.alert"
    _description = "Worker lifecycle alert"
    _order = "last_raised desc"
    _log_access = False

    key = fields.Char(required=True, readonly=True, help="Cause and kind: one alert per key and period.")
    cause = fields.Selection(
        [(OOM, "Worker OOM-killed"), (STORM, "Recycle storm"), (LEAKING, "Scheduled action leaking")],
        readonly=True,
    )
    kind = fields.Char(readonly=True, help="The kind of worker, or the scheduled action.")
    message = fields.Text(readonly=True)
    advice = fields.Text(readonly=True, help="The one line of advice the report would give.")
    last_raised = fields.Datetime(readonly=True)
    raised_count = fields.Integer(readonly=True, help="Times sent.")
    pending = fields.Boolean(readonly=True, help="Raised, not sent yet.")

    def init(self):
        compat.create_unique_index(self.env.cr, "memory_lifecycle_alert_key_uniq", self._table, ["key"])

    @api.model
    def _raise(self, cause, kind, message, advice):
        """Raise the alert ``cause``/``kind`` unless sent within the period; True when raised."""
        hours = odoo_runtime.setting(self.env, params.ALERT_PERIOD_HOURS)
        key = f"{cause}:{kind}"
        try:
            with self.env.cr.savepoint():
                raised = self._claim(key, cause, kind, message, advice, hours)
        except Exception:
            _logger.exception("Memory Hygiene alert %s could not be raised", key)
            return False
        if raised:
            _logger.warning("Memory Hygiene alert %s: %s", key, message)
            cron = self.env.ref("memory_hygiene.ir_cron_memory_lifecycle_alert", raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger()  # sent by its own job: the webhook never slows who noticed
        return raised

    def _claim(self, key, cause, kind, message, advice, hours):
        # One statement: inserted, or updated only when the last one is older than the period.
        self.env.cr.execute(
            """
            INSERT INTO memory_lifecycle_alert
                   (key, cause, kind, message, advice, last_raised, raised_count, pending)
            VALUES (%s, %s, %s, %s, %s, (now() AT TIME ZONE 'UTC'), 1, TRUE)
            ON CONFLICT (key) DO UPDATE
               SET message = EXCLUDED.message, advice = EXCLUDED.advice,
                   last_raised = EXCLUDED.last_raised, pending = TRUE,
                   raised_count = memory_lifecycle_alert.raised_count + 1
             WHERE memory_lifecycle_alert.last_raised < EXCLUDED.last_raised - make_interval(hours => %s)
            RETURNING id
            """,
            [key, cause, kind, message, advice, hours],
        )
        return bool(self.env.cr.fetchone())

    @api.model
    def _raise_leaking(self, cron, reason):
        """Raise the alert of ``cron`` (``ir.cron``) becoming leaking, with the report's advice."""
        report = self.env["memory.leak.report"]
        advice = messages.report_say(self.env)(
            *reports.cron_advice(LEAKING, report._top_of(report._last_trace(cron)))
        )
        message = self.env._(
            "Scheduled action %(name)s is leaking: %(reason)s",
            name=cron.name,
            reason=messages.verdict_reason(self.env, reason),
        )
        return self._raise(LEAKING, f"cron {cron.id}", message, advice)

    @api.model
    def _cron_send_alerts(self):
        """Scheduled action: send the raised alerts (mail and webhook)."""
        access.check_admin(self.env)
        for alert in self.sudo().search([("pending", "=", True)]):
            alert._send()
            alert.pending = False

    def _send(self):
        self.ensure_one()
        subject = self.env._(
            "Memory Hygiene alert on %(host)s (%(db)s): %(message)s",
            host=odoo_runtime.host_name(),
            db=self.env.cr.dbname,
            message=self.message.splitlines()[0][:150],
        )
        report = self.env["memory.leak.report"]
        try:
            recipients = report._recipients()
            if recipients:
                # The alert is the system's own mail, as the report is.
                self.env["mail.mail"].sudo().create(
                    {
                        "subject": subject,
                        "body_html": html_escape(self.message)
                        + Markup("<br/>")
                        + html_escape(self.advice or ""),
                        "email_from": report._email_from(),
                        "recipient_ids": [fields.Command.set(recipients.partner_id.ids)],
                        "auto_delete": True,
                    }
                )
        except Exception:
            _logger.exception("Memory Hygiene alert %s: the mail could not be created", self.key)
        url = odoo_runtime.setting(self.env, params.REPORT_WEBHOOK_URL)
        if url:
            reports.post_webhook(
                url,
                {
                    "type": "memory_hygiene_alert",
                    "key": self.key,
                    "cause": self.cause,
                    "kind": self.kind,
                    "database": self.env.cr.dbname,
                    "text": f"{subject}\n{self.advice or ''}",
                    "message": self.message,
                    "advice": self.advice,
                },
                timeout=memory_leak_report.WEBHOOK_TIMEOUT,
                retries=memory_leak_report.WEBHOOK_RETRIES,
                backoff=memory_leak_report.WEBHOOK_BACKOFF,
            )

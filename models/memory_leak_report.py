import logging
from datetime import timedelta

from odoo import api, fields, models

from .. import access, compat, odoo_runtime
from ..core.common import params
from ..core.profiler import accounting
from ..core.profiler import verdict as verdicts
from ..core.reporting import report as reports

_logger = logging.getLogger(__name__)

#: How far back the report looks at snapshots (hours) and how many growing processes it names.
REPORT_HOURS = 24
TOP_PROCESSES = 5
#: A process's last snapshot counts as "now" for the soft-limit check when younger than this.
RECENT_MINUTES = 60
#: The webhook: seconds per attempt, and attempts after the first.
WEBHOOK_TIMEOUT = 10.0
WEBHOOK_RETRIES = 2
#: Seconds before the first retry; doubled for each next one.
WEBHOOK_BACKOFF = 2.0


class MemoryLeakReport(models.AbstractModel):
    """The daily leak report: growing processes, leaking crons, workers near their limits.

    Figures are gathered here; findings, advice and rendering are
    ``core/reporting/report.py``. Sent as an HTML mail and, when set, to a webhook.
    """

    _name = "memory.leak.report"
    _description = "Memory leak report"

    @api.model
    def _cron_send_report(self):
        """The scheduled action ``memory_hygiene.ir_cron_memory_leak_report``.

        Checked like a public method: its server action can be run over RPC
        (19.0's ``ir.actions.server.run`` checks write access under sudo, so
        for anyone). The scheduled action runs as the superuser and passes.
        """
        access.check_admin(self.env)
        self._send()

    @api.model
    def action_send_now(self):
        """The "Send report now" buttons (settings, profiled runs)."""
        access.check_admin(self.env)
        sent = self._send()
        message = self.env._(
            "%(findings)s finding(s); mail to %(count)s recipient(s).",
            findings=len(sent["report"].findings),
            count=len(sent["mail"].recipient_ids) if sent["mail"] else 0,
        )
        webhook = sent["webhook"]
        if webhook is not None:
            message += " " + (
                self.env._("Webhook: sent.") if webhook[0] else self.env._("Webhook failed: %s", webhook[1])
            )
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": self.env._("Memory leak report"),
                "message": message,
                "type": "success" if webhook is None or webhook[0] else "warning",
                "sticky": False,
            },
        }

    @api.model
    def _send(self):
        """Build the report, mail it, post it. The webhook's failure never stops the mail, nor the reverse.

        :returns: ``{"report", "mail" (mail.mail or None), "webhook" ((ok, message) or None)}``
        """
        report = self._build()
        mail = None
        try:
            mail = self._send_mail(report)
        except Exception:
            _logger.exception("Memory leak report: the mail could not be created")
        webhook = None
        url = odoo_runtime.setting(self.env, params.REPORT_WEBHOOK_URL)
        if url:
            webhook = reports.post_webhook(
                url,
                reports.render_json(report),
                timeout=WEBHOOK_TIMEOUT,
                retries=WEBHOOK_RETRIES,
                backoff=WEBHOOK_BACKOFF,
            )
        _logger.info(
            "Memory leak report: %s finding(s), mail %s, webhook %s",
            len(report.findings),
            mail.id if mail else None,
            "not set" if webhook is None else webhook[1],
        )
        return {"report": report, "mail": mail, "webhook": webhook}

    @api.model
    def _recipients(self):
        """Users named in the settings, else the Settings administrators; those with an email."""
        raw = odoo_runtime.setting(self.env, params.REPORT_RECIPIENT_IDS)
        Users = self.env["res.users"].sudo()  # recipients are read whoever sends the report
        ids = [int(part) for part in raw.split(",") if part.strip().isdigit()]
        users = Users.browse(ids).exists() if ids else Users.browse()
        if not users:
            users = compat.group_users(self.env.ref("base.group_system").sudo())
        return users.filtered(lambda user: user.active and user.partner_id.email)

    @api.model
    def _send_mail(self, report):
        recipients = self._recipients()
        if not recipients:
            _logger.warning("Memory leak report: no recipient with an email address; no mail sent")
            return None
        company = self.env.company
        email_from = (
            company.email_formatted
            or self.env["ir.mail_server"].sudo()._get_default_from_address()
            or self.env.ref("base.partner_root").email_formatted
        )
        # The report is the system's own mail, whichever user sends it.
        return (
            self.env["mail.mail"]
            .sudo()
            .create(
                {
                    "subject": self.env._(
                        "Memory Hygiene report for %(db)s: %(count)s finding(s)",
                        db=self.env.cr.dbname,
                        count=len(report.findings),
                    ),
                    "body_html": reports.render_html(report),
                    "email_from": email_from,
                    "recipient_ids": [fields.Command.set(recipients.partner_id.ids)],
                    "auto_delete": True,
                }
            )
        )

    @api.model
    def _build(self):
        now = fields.Datetime.now()
        warn_share = odoo_runtime.setting(self.env, params.WARN_SHARE)
        notes = []
        snapshot_figures = {}
        if "memory.snapshot" in self.env:
            try:
                snapshot_figures = self._snapshot_figures(now, warn_share)
            except Exception as exc:  # noqa: BLE001 - the report goes on without this section
                _logger.exception("Memory leak report: cannot read the worker snapshots")
                notes.append(self.env._("Worker snapshots could not be read: %s", exc))
        else:
            notes.append(self.env._("No worker snapshots (memory.snapshot is not installed)."))
        growth = self._growth_figures(now)
        return reports.build_report(
            self.env.cr.dbname,
            fields.Datetime.to_string(now),
            crons=self._cron_figures({row["id"]: row for row in growth}),
            growth=growth,
            warn_share=warn_share,
            notes=notes,
            **snapshot_figures,
        )

    @api.model
    def _growth_figures(self, now):
        """Growth charged to each scheduled action over the report's period, largest first."""
        by_cron = self.env["memory.cron.run"].sudo()._growth_by_cron(now - timedelta(hours=REPORT_HOURS))
        shares = accounting.growth_shares({cron_id: f["growth_mb"] for cron_id, f in by_cron.items()})
        crons = (
            self.env["ir.cron"].sudo().with_context(active_test=False).browse(list(by_cron)).exists()
        )  # the report covers every scheduled action, whoever sends it
        rows = [
            {
                "id": cron.id,
                "name": cron.cron_name or cron.name,
                "share": shares.get(cron.id, 0.0),
                **by_cron[cron.id],
            }
            for cron in crons
        ]
        rows.sort(key=lambda row: -row["growth_mb"])
        return rows

    @api.model
    def _cron_figures(self, growth=None):
        """Suspect and leaking scheduled actions, leaking first, with their last trace's sites and holders."""
        growth = growth or {}
        crons = (
            self.env["ir.cron"]
            .sudo()  # the report covers every scheduled action, whoever sends it
            .with_context(active_test=False)
            .search([("memory_leak_state", "in", (verdicts.LEAKING, verdicts.SUSPECT))])
        )
        Run = self.env["memory.cron.run"].sudo()  # idem
        figures = []
        for cron in crons.sorted(lambda c: (c.memory_leak_state != verdicts.LEAKING, c.cron_name or "")):
            last = Run.search([("cron_id", "=", cron.id), ("trace", "=", "traced")], limit=1)
            figures.append(
                {
                    "id": cron.id,
                    "name": cron.cron_name or cron.name,
                    "state": cron.memory_leak_state,
                    "reason": cron.memory_leak_reason,
                    "holders": (last.holders_text or "").splitlines(),
                    "growth_mb": growth.get(cron.id, {}).get("growth_mb"),
                    "share": growth.get(cron.id, {}).get("share"),
                    "top": [
                        {
                            "file": line.file,
                            "line": line.line,
                            "size_diff": int(line.size_diff_kb * 1024),
                            "count_diff": line.count_diff,
                            "size": int(line.size_kb * 1024),
                            "count": line.count,
                        }
                        for line in last.line_ids.sorted("rank")
                    ],
                }
            )
        return figures

    @api.model
    def _snapshot_figures(self, now, warn_share):
        """Growth, soft-limit share and recycles from the worker snapshots of the last day."""
        since = now - timedelta(hours=REPORT_HOURS)
        Snapshot = self.env["memory.snapshot"].sudo()  # the report covers every process, whoever sends it
        rows = Snapshot.search_read(
            [("date", ">=", since), ("host_gone", "=", False)],
            ["host", "pid", "process_kind", "rss_mb", "vms_mb", "soft_limit_pct", "date"],
            order="date, id",
        )
        by_process = {}
        for row in rows:
            by_process.setdefault((row["host"], row["pid"]), []).append(row)
        processes, near_limit = [], []
        recent = now - timedelta(minutes=RECENT_MINUTES)
        for (host, pid), samples in by_process.items():
            first, last = samples[0], samples[-1]
            hours = (last["date"] - first["date"]).total_seconds() / 3600
            growth = (last["rss_mb"] or 0.0) - (first["rss_mb"] or 0.0)
            if growth > 0 and hours > 0:
                processes.append(
                    {
                        "host": host,
                        "pid": pid,
                        "kind": last["process_kind"],
                        "growth_mb": growth,
                        "hours": hours,
                        "rss_mb": last["rss_mb"] or 0.0,
                    }
                )
            if last["date"] >= recent and (last["soft_limit_pct"] or 0.0) >= warn_share:
                near_limit.append(
                    {
                        "host": host,
                        "pid": pid,
                        "kind": last["process_kind"],
                        "soft_limit_pct": last["soft_limit_pct"],
                        "vms_mb": last["vms_mb"] or 0.0,
                        "rss_mb": last["rss_mb"] or 0.0,
                    }
                )
        processes.sort(key=lambda p: -p["growth_mb"])
        recycles = Snapshot._recycles_per_host(since)
        return {"processes": processes[:TOP_PROCESSES], "near_limit": near_limit, "recycles": recycles}

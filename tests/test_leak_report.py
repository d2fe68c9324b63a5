import json
import logging
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import tagged

from .. import messages
from ..core.common import params
from ..core.reporting import report as core_report
from ..models import memory_leak_report
from .common import CronRunCase

WEBHOOK_LOGGER = core_report.__name__


class _Hook(BaseHTTPRequestHandler):
    received = []
    #: Answers to give, first to last (then 200); ``(307, "/moved")`` redirects there.
    answers = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        status, location = type(self).answers.pop(0) if type(self).answers else (200, None)
        self.send_response(status)
        if location:
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}{location}")
        self.end_headers()

    def log_message(self, *args):
        pass


def closed_port():
    """A port on 127.0.0.1 that nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@tagged("post_install", "-at_install")
class TestLeakReport(CronRunCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cron.write({"memory_profile": True})
        # The verdict is the profiler's to write; set it as a run would.
        cls.env.cr.execute(
            "UPDATE ir_cron SET memory_leak_state = 'leaking', memory_leak_reason = %s WHERE id = %s",
            ["every run keeps memory and RSS never falls back", cls.cron.id],
        )
        cls.cron.invalidate_recordset()
        cls.Report = cls.env["memory.leak.report"]

    def setUp(self):
        super().setUp()
        self.make_run()
        # No waiting between webhook retries in tests.
        patcher = patch.object(memory_leak_report, "WEBHOOK_BACKOFF", 0.01)
        patcher.start()
        self.addCleanup(patcher.stop)

    def serve_webhook(self):
        _Hook.received, _Hook.answers = [], []
        httpd = HTTPServer(("127.0.0.1", 0), _Hook)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()

        def stop():
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)

        self.addCleanup(stop)
        return f"http://127.0.0.1:{httpd.server_port}/hooks/secret-path", _Hook.received

    def test_mail_for_the_recipients_names_the_leaking_cron(self):
        self.icp.set_param(params.REPORT_RECIPIENT_IDS, str(self.admin.id))
        sent = self.Report.with_user(self.admin)._send()
        mail = sent["mail"]
        self.assertEqual(mail.recipient_ids, self.admin.partner_id)
        self.assertIn("Partner sync (memory_hygiene test)", mail.body_html)
        self.assertIn("[leaking]", mail.body_html)
        self.assertIn("/srv/addons/partner_sync/models/sync.py:42: size=5.0 MiB (+1.0 MiB)", mail.body_html)
        self.assertIn("module-level list or dict cache", mail.body_html, "one line of advice")
        self.assertIn("1 finding(s)", mail.subject)
        self.assertIsNone(sent["webhook"], "no webhook set")

    def test_growth_shares_and_holders(self):
        """The growth charged to each action over the last day, largest first, and what holds the memory."""
        other = self.cron.copy({"name": "Mail digest (memory_hygiene test)"})
        now = fields.Datetime.now()
        self.env["memory.cron.run"]._insert_accounted(
            [
                {
                    "cron_id": cron.id,
                    "start": now - timedelta(hours=1),
                    "state": "ok",
                    "trace": "no",
                    "growth_mb": growth,
                    "fds_kept": fds,
                }
                for cron, growth, fds in ((self.cron, 5.0, 2), (self.cron, 4.0, 0), (other, 1.0, 0))
            ]
        )
        run = self.make_run()
        run.write({"holders_text": "odoo.addons.partner_sync.models.sync._cache (dict, +1 000 entries)"})
        report = self.Report._build()
        growth = [f for f in report.findings if f.kind == "growth"]
        self.assertEqual(len(growth), 1)
        self.assertEqual(growth[0].title, core_report.Say("growth", {"total_mb": 10.0}))
        self.assertEqual(
            [detail.figures for detail in growth[0].details],
            [
                {
                    "id": self.cron.id,
                    "name": "Partner sync (memory_hygiene test)",
                    "growth_mb": 9.0,
                    "share": 90.0,
                    "runs": 2,
                    "fds_kept": 2,
                },
                {
                    "id": other.id,
                    "name": "Mail digest (memory_hygiene test)",
                    "growth_mb": 1.0,
                    "share": 10.0,
                    "runs": 1,
                    "fds_kept": 0,
                },
            ],
        )
        self.assertEqual(
            messages.report_say(self.env)(*growth[0].details[0]),
            '"Partner sync (memory_hygiene test)" (id %s): +9.0 MiB, 90 %% (2 runs, 2 files kept open)'
            % self.cron.id,
        )
        cron_finding = next(f for f in report.findings if f.kind == "cron")
        self.assertIn(
            core_report.Say(
                "held_by", {"path": "odoo.addons.partner_sync.models.sync._cache (dict, +1 000 entries)"}
            ),
            cron_finding.details,
        )
        self.assertIn(core_report.Say("charged", {"growth_mb": 9.0, "share": 90.0}), cron_finding.details)
        self.assertAlmostEqual(self.cron.memory_growth_share, 90.0)
        self.assertAlmostEqual(self.cron.memory_growth_day_mb, 9.0)
        self.assertAlmostEqual(self.cron.memory_growth_run_mb, 4.5)
        self.assertEqual(self.cron.memory_fds_kept, 2)

    def test_growth_of_a_healthy_action_is_estimated_from_its_charged_runs(self):
        """One run in N charged: their mean times the runs; none charged today: the last K charged ones'."""
        now = fields.Datetime.now()
        other = self.cron.copy({"name": "Rare (memory_hygiene test)"})

        def run(cron, hours_ago, growth):
            return {
                "cron_id": cron.id,
                "start": now - timedelta(hours=hours_ago),
                "state": "ok",
                "trace": "no",
                "growth_mb": growth,
            }

        self.env["memory.cron.run"]._insert_accounted(
            [run(self.cron, 1, 0.3), run(self.cron, 2, 0.1)]
            + [run(self.cron, 3 + hour, None) for hour in range(8)]
            + [run(other, 72, 2.0), run(other, 96, 4.0)]
            + [run(other, hour, None) for hour in range(1, 6)]
        )
        (self.cron | other).invalidate_recordset()
        self.assertAlmostEqual(self.cron.memory_growth_run_mb, 0.2)
        self.assertAlmostEqual(self.cron.memory_growth_day_mb, 0.2 * 10)
        self.assertAlmostEqual(other.memory_growth_run_mb, 3.0, msg="no run charged today: the last ones")
        self.assertAlmostEqual(other.memory_growth_day_mb, 3.0 * 5)

    def test_recipients_default_to_the_settings_admins(self):
        recipients = self.Report._recipients()
        self.assertIn(self.admin, recipients)
        self.assertNotIn(self.user, recipients)
        self.assertTrue(all(user.has_group("base.group_system") for user in recipients))

    def test_webhook_receives_the_json_post(self):
        url, received = self.serve_webhook()
        self.icp.set_param(params.REPORT_WEBHOOK_URL, url)
        sent = self.Report._send()
        self.assertEqual(sent["webhook"], (True, "HTTP 200"))
        self.assertEqual(len(received), 1)
        path, content_type, payload = received[0]
        self.assertEqual((path, content_type), ("/hooks/secret-path", "application/json"))
        self.assertIn('Scheduled action "Partner sync (memory_hygiene test)"', payload["text"])
        self.assertEqual(payload["findings"][0]["severity"], "leaking")
        self.assertTrue(sent["mail"], "and the mail")

    def test_webhook_on_a_closed_port_is_logged_and_the_mail_still_sent(self):
        self.icp.set_param(params.REPORT_WEBHOOK_URL, f"http://127.0.0.1:{closed_port()}/hooks/secret-path")
        with self.assertLogs(WEBHOOK_LOGGER, logging.WARNING) as logs:
            sent = self.Report._send()
        self.assertFalse(sent["webhook"][0])
        self.assertIn("ConnectionRefusedError", sent["webhook"][1])
        self.assertEqual(
            len(logs.output), memory_leak_report.WEBHOOK_RETRIES + 1, "bounded retries, each logged"
        )
        self.assertNotIn("secret-path", "\n".join(logs.output))
        self.assertIn("Partner sync (memory_hygiene test)", sent["mail"].body_html)
        self.assertEqual(len(sent["report"].findings), 1)

    def test_webhook_redirect_to_loopback_is_not_followed(self):
        url, received = self.serve_webhook()
        _Hook.answers = [(307, "/moved")]
        self.icp.set_param(params.REPORT_WEBHOOK_URL, url)
        sent = self.Report._send()
        self.assertFalse(sent["webhook"][0])
        self.assertIn("HTTP 307", sent["webhook"][1])
        self.assertEqual([path for path, _type, _payload in received], ["/hooks/secret-path"], "posted once")
        self.assertTrue(sent["mail"], "the mail still goes")

    def test_webhook_url_secret_never_logged_nor_shown(self):
        url, received = self.serve_webhook()
        _Hook.answers = [(500, None)] * 3
        secret_url = url + "?token=qu3ry-s3cret"
        self.icp.set_param(params.REPORT_WEBHOOK_URL, secret_url)
        # Every logger from INFO up (DEBUG would add odoo.sql_db's own trace of the set_param below).
        with self.assertLogs(level=logging.INFO) as logs:
            sent = self.Report._send()
            self.icp.set_param(
                params.REPORT_WEBHOOK_URL, f"http://127.0.0.1:{closed_port()}/p?token=qu3ry-s3cret"
            )
            closed = self.Report._send()
            action = self.Report.with_user(self.admin).action_send_now()
        self.assertEqual(len(received), memory_leak_report.WEBHOOK_RETRIES + 1)
        self.assertEqual(received[0][0], "/hooks/secret-path?token=qu3ry-s3cret", "the hook got its full URL")
        shown = (
            "\n".join(logs.output) + sent["webhook"][1] + closed["webhook"][1] + action["params"]["message"]
        )
        self.assertIn("Leak report webhook http://127.0.0.1:", shown)
        self.assertNotIn("qu3ry-s3cret", shown)
        self.assertNotIn("secret-path", shown)

    def test_malformed_webhook_is_not_called(self):
        # Settings refuse it; a value stored another way is refused again here.
        self.icp.set_param(params.REPORT_WEBHOOK_URL, "file:///etc/passwd")
        with self.assertLogs(WEBHOOK_LOGGER, logging.WARNING) as logs:
            sent = self.Report._send()
        self.assertEqual(sent["webhook"][0], False)
        self.assertIn("http:// or https://", logs.output[0])
        self.assertTrue(sent["mail"])

    def test_send_now_buttons(self):
        url, received = self.serve_webhook()
        self.icp.set_param(params.REPORT_WEBHOOK_URL, url)
        settings = self.env["res.config.settings"].with_user(self.admin).create({})
        action = settings.action_memory_send_leak_report()
        self.assertEqual(action["tag"], "display_notification")
        self.assertIn("Webhook: sent.", action["params"]["message"])
        action = self.env["memory.cron.run"].with_user(self.admin).action_send_leak_report()
        self.assertEqual(action["params"]["type"], "success")
        self.assertEqual(len(received), 2)
        with self.assertRaises(AccessError):
            self.Report.with_user(self.user).action_send_now()

    def test_scheduled_report(self):
        cron = self.env.ref("memory_hygiene.ir_cron_memory_leak_report")
        self.assertEqual(cron.model_id.model, "memory.leak.report")
        self.assertEqual((cron.interval_number, cron.interval_type, cron.active), (1, "days", True))
        data = self.env["ir.model.data"].search(
            [("module", "=", "memory_hygiene"), ("name", "=", "ir_cron_memory_leak_report")]
        )
        self.assertTrue(data.noupdate, "admins may change its schedule; updates keep it")
        mails_before = self.env["mail.mail"].search_count([])
        cron.ir_actions_server_id.with_user(cron.user_id).run()
        self.assertEqual(self.env["mail.mail"].search_count([]), mails_before + 1)

    def test_healthy_crons_are_not_reported(self):
        self.env.cr.execute("UPDATE ir_cron SET memory_leak_state = 'healthy' WHERE id = %s", [self.cron.id])
        self.cron.invalidate_recordset()
        report = self.Report._build()
        self.assertFalse([f for f in report.findings if f.kind == "cron"])

    def snapshot(self, minutes_ago, pid, rss_mb, kind="cron", **vals):
        return self.env["memory.snapshot"].create(
            {
                "date": fields.Datetime.now() - timedelta(minutes=minutes_ago),
                "host": "mh-report-host",
                "pid": pid,
                "process_kind": kind,
                "trigger": "schedule",
                "rss_mb": rss_mb,
                "vms_mb": rss_mb * 2,
                **vals,
            }
        )

    def test_snapshot_findings(self):
        self.snapshot(20 * 60, 4242, 300.0, soft_limit_pct=40.0)
        self.snapshot(10, 4242, 1100.0, soft_limit_pct=95.0)  # grew 800 MiB, near its soft limit
        self.snapshot(20 * 60, 5000, 400.0, kind="http", soft_limit_pct=30.0)
        self.snapshot(5, 5000, 380.0, kind="http", soft_limit_pct=29.0)  # shrank: not a growth finding
        self.snapshot(5, 5001, 200.0, kind="http", recycled_pid=4999, soft_limit_pct=10.0)  # a recycle
        self.snapshot(30 * 60, 6000, 100.0)  # older than the report's day
        self.snapshot(5, 6000, 900.0)
        report = self.Report._build()
        ours = [f for f in report.findings if f.title.figures.get("host") == "mh-report-host"]
        self.assertEqual(
            [(f.kind, f.title.code, f.advice.code) for f in ours],
            [
                ("process", "process", "process_growth"),
                ("limit", "limit", "near_limit"),
                ("recycles", "recycles", "recycles_advice"),
            ],
        )
        process, limit, recycles = (f.title.figures for f in ours)
        self.assertEqual((process["pid"], process["kind"], process["growth_mb"]), (4242, "cron", 800.0))
        self.assertAlmostEqual(process["hours"], 19.83, places=1)
        self.assertEqual((limit["pid"], limit["soft_limit_pct"], limit["warn_share"]), (4242, 95.0, 90.0))
        self.assertEqual(recycles, {"count": 1, "host": "mh-report-host"})
        self.assertFalse(report.notes)
        text = core_report.render_text(report, messages.report_say(self.env))
        self.assertIn("cron process 4242 on mh-report-host grew +800 MiB in 19.8 h (RSS now 1100 MiB)", text)
        self.assertIn("Advice: It will be recycled after its current job", text)

    def test_unreadable_snapshots_do_not_stop_the_report(self):
        with (
            patch.object(
                type(self.env["memory.snapshot.history"]), "search_read", side_effect=RuntimeError("no table")
            ),
            self.assertLogs(memory_leak_report.__name__, logging.ERROR),
        ):
            report = self.Report._build()
        self.assertIn("Worker snapshots could not be read: no table", report.notes)
        self.assertEqual([f.kind for f in report.findings], ["cron"])

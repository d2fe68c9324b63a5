import json
import os
import re
from unittest.mock import patch

from prometheus_client.parser import text_string_to_metric_families

from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import config

from ..core.common import params
from ..core.common.units import MIB
from ..core.host import machine

GIB = 1024 * MIB
TOKEN = "s3cret-token-for-tests-0123456789"
USAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "readme", "USAGE.md")
#: The placeholder the README's recipes hold where the token goes.
PLACEHOLDERS = ("CHANGE-ME", "$TOKEN")


def readme_requests():
    """``[(recipe, path, header name, header value)]``: each request to the endpoints README shows.

    monit: ``request "<path>"`` and its ``http headers [Name: value]``; the
    watchdog: ``curl -H "Name: value" http://127.0.0.1:8069<path>``;
    Prometheus: ``metrics_path`` with ``authorization: credentials:``, which
    it sends as ``Authorization: Bearer <credentials>`` (its default type).
    """
    with open(USAGE, encoding="utf-8") as usage:
        text = usage.read()
    found = [
        ("monit", path, name, value)
        for path, name, value in re.findall(
            r'request "(/memory_hygiene/[^"]*)" status = 200\n\s*http headers \[([\w-]+): ([^\]]+)\]', text
        )
    ]
    found += [
        ("curl", path, name, value)
        for name, value, path in re.findall(
            r'-H "([\w-]+): ([^"]+)" http://127\.0\.0\.1:8069(/memory_hygiene/[\w/]+)', text
        )
    ]
    found += [
        ("prometheus", path, "Authorization", f"Bearer {credentials}")
        for path, credentials in re.findall(
            r"metrics_path: (/memory_hygiene/\S+)\n(?:.*\n)*?\s*authorization:.*\n\s*credentials: (\S+)", text
        )
    ]
    return found


def _machine(available, pressure):
    """A 4 GiB / 2 CPU container with ``available`` bytes left and ``pressure`` % of PSI some avg10."""
    return machine.Machine(
        machine.Figure(2.0, machine.CPU_QUOTA, "cpus"),
        machine.Figure(4 * GIB, machine.CONTAINER_LIMIT),
        machine.Figure(available, machine.CONTAINER_AVAILABLE),
        machine.Figure(pressure, machine.CONTAINER_PRESSURE, "pct"),
    )


#: Plenty of memory left, no pressure: the machine of these tests, whatever this host goes through.
CALM = _machine(3 * GIB, 0.0)


@tagged("post_install", "-at_install")
class TestEndpoints(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = new_test_user(cls.env, login="mh_endpoint_admin", groups="base.group_system")
        cls.user = new_test_user(cls.env, login="mh_endpoint_user", groups="base.group_user")
        cls.portal = new_test_user(cls.env, login="mh_endpoint_portal", groups="base.group_portal")
        cls.env["ir.config_parameter"].sudo().set_param(params.ENDPOINT_TOKEN, TOKEN)

    def setUp(self):
        super().setUp()
        # The test process is a single (threaded) server: give it room under its soft limit.
        self.startPatcher(patch.dict(config.options, {"limit_memory_soft": 64 * 1024 * MIB}))
        self.machine = self.startPatcher(patch.object(machine, "read", return_value=CALM))

    def get(self, path, **headers):
        return self.url_open(path, headers=headers, allow_redirects=False)

    def test_without_token_or_admin_session_403_and_nothing_else(self):
        for path in ("/memory_hygiene/health", "/memory_hygiene/metrics"):
            for response in (
                self.get(path),
                self.get(path, Authorization="Bearer wrong"),
                self.get(path, Authorization=f"Bearer {TOKEN}x"),
                self.get(path, Authorization=f"Basic {TOKEN}"),
                # In the query string the token would land in access logs: not accepted.
                self.get(f"{path}?token={TOKEN}"),
                self.get(path, **{"X-Memory-Hygiene-Token": TOKEN}),
            ):
                with self.subTest(path=path, url=response.url):
                    self.assertEqual(response.status_code, 403)
                    self.assertEqual(response.content, b"")
        for user in (self.user, self.portal):
            self.authenticate(user.login, user.login)
            for path in ("/memory_hygiene/health", "/memory_hygiene/metrics"):
                response = self.get(path)
                self.assertEqual((response.status_code, response.content), (403, b""), user.login)

    def test_empty_token_setting_opens_nothing(self):
        self.env["ir.config_parameter"].sudo().set_param(params.ENDPOINT_TOKEN, "")
        response = self.get("/memory_hygiene/health", Authorization="Bearer ")
        self.assertEqual((response.status_code, response.content), (403, b""))

    def test_a_short_token_stored_by_hand_opens_nothing(self):
        short = "x" * 31
        self.env["ir.config_parameter"].sudo().set_param(params.ENDPOINT_TOKEN, short)
        with self.assertLogs("odoo.addons.memory_hygiene.core.common.params", "WARNING") as logs:
            response = self.get("/memory_hygiene/health", Authorization=f"Bearer {short}")
        self.assertEqual((response.status_code, response.content), (403, b""))
        self.assertIn("at least 32 characters", logs.output[0])
        self.assertNotIn(short, "\n".join(logs.output))

    def test_health_with_a_bearer_token(self):
        for authorization in (f"Bearer {TOKEN}", f"bearer {TOKEN}"):
            response = self.get("/memory_hygiene/health", Authorization=authorization)
            self.assertEqual(response.status_code, 200, response.text)
            body = response.json()
            self.assertEqual(body["status"], "ok")
            self.assertEqual(body["problems"], [])
            self.assertIn(os.getpid(), [p["pid"] for p in body["processes"]])

    def test_health_503_names_the_process_above_the_warn_share(self):
        with patch.dict(config.options, {"limit_memory_soft": 64 * MIB}):
            response = self.get("/memory_hygiene/health", Authorization=f"Bearer {TOKEN}")
        self.assertEqual(response.status_code, 503)
        body = json.loads(response.content)
        self.assertEqual(body["status"], "warn")
        self.assertEqual(body["problems"][0]["pid"], os.getpid())
        self.assertIn("of its soft limit of 64 MiB (warn at 90%)", body["problems"][0]["reason"])

    def test_the_readme_recipes_work_as_written(self):
        recipes = readme_requests()
        self.assertEqual(sorted({recipe for recipe, *_rest in recipes}), ["curl", "monit", "prometheus"])
        for recipe, path, name, value in recipes:
            with self.subTest(recipe=recipe, path=path):
                placeholder = next(p for p in PLACEHOLDERS if p in value)
                response = self.get(path, **{name: value.replace(placeholder, TOKEN)})
                self.assertEqual(response.status_code, 200, response.text)
                self.assertEqual(
                    self.get(path, **{name: value}).status_code, 403, "the placeholder opens nothing"
                )
                self.assertEqual(self.get(path).status_code, 403)

    def test_health_503_when_the_container_runs_out_of_memory_or_is_under_pressure(self):
        body = self.get("/memory_hygiene/health", Authorization=f"Bearer {TOKEN}").json()
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["machine"]["memory"], "4.0 GiB (container limit)")
        self.assertEqual(
            (body["machine"]["available_bytes"], body["machine"]["pressure_some_avg10"]), (3 * GIB, 0)
        )
        self.assertEqual((body["min_available_pct"], body["max_pressure"]), (10, 20), "the defaults")
        cases = (
            (
                _machine(300 * MIB, 0.0),
                "available memory is 300.0 MiB (container limit minus its working set)",
            ),
            (_machine(3 * GIB, 42.0), "memory pressure is 42.00 % (container memory.pressure), above 20%"),
        )
        for tight, reason in cases:
            self.machine.return_value = tight
            response = self.get("/memory_hygiene/health", Authorization=f"Bearer {TOKEN}")
            self.assertEqual(response.status_code, 503, response.text)
            [problem] = response.json()["problems"]
            self.assertEqual(problem["kind"], "machine")
            self.assertIn(reason, problem["reason"])
        # Thresholds are settings; 0 turns a check off.
        icp = self.env["ir.config_parameter"].sudo()
        icp.set_param(params.HEALTH_MAX_PRESSURE, "50")
        self.assertEqual(self.get("/memory_hygiene/health", Authorization=f"Bearer {TOKEN}").status_code, 200)
        icp.set_param(params.HEALTH_MIN_AVAILABLE, "0")
        self.machine.return_value = _machine(0, 0.0)
        self.assertEqual(self.get("/memory_hygiene/health", Authorization=f"Bearer {TOKEN}").status_code, 200)
        # The metrics carry the same figures, with their sources.
        self.machine.return_value = _machine(300 * MIB, 42.0)
        families = {
            f.name: f
            for f in text_string_to_metric_families(
                self.get("/memory_hygiene/metrics", Authorization=f"Bearer {TOKEN}").text
            )
        }
        [available] = families["memory_hygiene_machine_available_bytes"].samples
        self.assertEqual(
            (available.value, available.labels["source"]), (300 * MIB, machine.CONTAINER_AVAILABLE)
        )
        [pressure] = families["memory_hygiene_machine_memory_pressure_ratio"].samples
        self.assertAlmostEqual(pressure.value, 0.42)
        [memory] = families["memory_hygiene_machine_memory_bytes"].samples
        self.assertEqual(memory.labels["source"], "container limit")

    def test_admin_session_is_enough(self):
        self.authenticate(self.admin.login, self.admin.login)
        self.assertEqual(self.get("/memory_hygiene/health").status_code, 200)
        self.assertEqual(self.get("/memory_hygiene/metrics").status_code, 200)

    def test_metrics_parse_as_prometheus_text(self):
        self.env["memory.snapshot"].sudo()._cron_sample()
        response = self.get("/memory_hygiene/metrics", Authorization=f"Bearer {TOKEN}")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.headers["Content-Type"].startswith("text/plain"))
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        rss = families["memory_hygiene_process_rss_bytes"].samples
        self.assertIn(str(os.getpid()), [s.labels["pid"] for s in rss])
        self.assertGreater(rss[0].value, 0)
        age = families["memory_hygiene_snapshot_age_seconds"].samples[0].value
        self.assertLess(age, 60)
        self.assertIn("memory_hygiene_process_leak_suspect", families)

    def test_requests_under_the_test_runner_do_not_sample(self):
        # HTTP workers sample themselves in a cursor of their own: never under the test runner.
        before = self.env["memory.snapshot"].search_count([("trigger", "=", "request")])
        self.authenticate(self.admin.login, self.admin.login)
        self.assertIn(self.get("/web/login").status_code, (200, 303))
        self.assertEqual(self.env["memory.snapshot"].search_count([("trigger", "=", "request")]), before)

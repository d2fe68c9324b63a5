"""Nothing of memory_hygiene is reachable by a non-admin over RPC, and no secret comes out.

Portal users (free sign-up on a portal or shop) and internal users can call any
public method of any model over ``/web/dataset/call_kw``: these tests do so, as
a browser would, for every public method the addon's classes define, found by
introspection (a method added later is covered without editing this file).
"""

import inspect
import json

from odoo.tests import HttpCase, new_test_user, tagged

from ..core.common import params

ADDON = "memory_hygiene"
MODELS_PACKAGE = f"odoo.addons.{ADDON}.models."
TOKEN = "t0ken-of-the-security-tests-0123456789abcdef"
WEBHOOK = "https://hooks.example.com/services/T000/B000/webhook-secret-path"

#: Public methods that non-admins may call on purpose, with the reason.
PUBLIC_ON_PURPOSE = {
    ("ir.actions.server", "run"): (
        "Odoo's entry point of every server action, run by every kind of user (Odoo checks the "
        "action's groups); the override only fills in the probe of a profiled cron run of the same "
        "thread and reads or changes nothing of the addon for its caller."
    ),
}


def addon_public_methods(registry):
    """``{(model, method): is an @api.model method}`` for each public method a class of the addon defines.

    Every model of the registry is looked at, through its classes: the addon's
    own models, the models it extends (``ir.cron``, ``res.config.settings``...)
    and any model inheriting one of its mixins. ``init`` is left out: Odoo never
    lets RPC call it (``check_method_name``), like names starting with ``_``.
    """
    found = {}
    for name in list(registry.models):
        for cls in registry[name].__mro__:
            if not cls.__module__.startswith(MODELS_PACKAGE):
                continue
            for attr, value in vars(cls).items():
                if attr.startswith("_") or attr == "init":
                    continue
                function = value.__func__ if isinstance(value, classmethod | staticmethod) else value
                if inspect.isfunction(function):
                    api_model = getattr(function, "_api", None) == "model" or getattr(
                        function, "_api_model", False
                    )
                    found[(name, attr)] = api_model
    return found


def addon_tables(env):
    """Tables of the stored models this addon defines."""
    return sorted(
        model._table
        for model in (env[name] for name in env.registry.models)
        if model._original_module == ADDON and not model._abstract and model._auto
    )


def database_state(env):
    """What a refused call must not change: the system parameters, the addon's rows, mails, crons."""
    env.flush_all()
    cr = env.cr
    state = {}
    cr.execute("SELECT key, value FROM ir_config_parameter ORDER BY key")
    state["ir_config_parameter"] = cr.fetchall()
    for table in addon_tables(env):
        cr.execute(f'SELECT * FROM "{table}" ORDER BY id')  # noqa: S608 - table names of the registry
        state[table] = cr.fetchall()
    cr.execute(
        "SELECT id, active, nextcall, interval_number, memory_profile, memory_profile_runs,"
        " memory_leak_state FROM ir_cron ORDER BY id"
    )
    state["ir_cron"] = cr.fetchall()
    cr.execute("SELECT id FROM mail_mail ORDER BY id")
    state["mail_mail"] = cr.fetchall()
    return state


class RpcCase(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = new_test_user(cls.env, login="mh_sec_admin", groups="base.group_system")
        cls.portal = new_test_user(cls.env, login="mh_sec_portal", groups="base.group_portal")
        cls.internal = new_test_user(cls.env, login="mh_sec_internal", groups="base.group_user")
        icp = cls.env["ir.config_parameter"].sudo()
        icp.set_param(params.ENDPOINT_TOKEN, TOKEN)
        icp.set_param(params.REPORT_WEBHOOK_URL, WEBHOOK)

    def rpc(self, model, method, args=(), kwargs=None):
        """``/web/dataset/call_kw`` as the web client sends it: ``(result, error name, body)``."""
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "id": 1,
            "params": {"model": model, "method": method, "args": list(args), "kwargs": kwargs or {}},
        }
        response = self.url_open(
            f"/web/dataset/call_kw/{model}.{method}",
            data=json.dumps(payload),
            headers={"Content-Type": "application/json"},
        )
        body = response.json()
        error = body.get("error")
        return body.get("result"), error and error["data"]["name"], response.text


@tagged("post_install", "-at_install")
class TestPublicMethods(RpcCase):
    def some_id(self, model):
        """An existing record of ``model`` when there is one (the check must come first), else 1."""
        Model = self.env[model].sudo()
        if Model._abstract:
            return 1
        return Model.search([], limit=1).id or 1

    def test_introspection_finds_the_methods_it_must(self):
        found = addon_public_methods(self.env.registry)
        for known in (
            ("res.config.settings", "action_memory_rotate_token"),
            ("res.config.settings", "get_values"),
            ("memory.diagnostics", "action_refresh"),
            ("memory.diagnostics.process", "action_recycle"),
            ("memory.snapshot", "action_sample_now"),
            ("ir.cron", "method_direct_trigger"),
            ("memory.leak.report", "action_send_now"),
        ):
            self.assertIn(known, found)
        self.assertTrue(set(PUBLIC_ON_PURPOSE) <= set(found), "every exception names a real method")

    def test_every_public_method_refuses_portal_and_internal_users_and_changes_nothing(self):
        # Real records to aim at: a page of the diagnostics with a line of each kind (pids that
        # no process has, so that a missing check could not signal anything), a snapshot.
        page = self.env["memory.diagnostics"].with_user(self.admin).create({})
        self.env["memory.diagnostics.process"].sudo().create({"diagnostics_id": page.id, "pid": 0})
        self.env["memory.diagnostics.pg.query"].sudo().create({"diagnostics_id": page.id, "backend_pid": 0})
        self.env["memory.snapshot"].sudo()._sample_self("manual")
        methods = addon_public_methods(self.env.registry)
        checked = [key for key in sorted(methods) if key not in PUBLIC_ON_PURPOSE]
        self.assertGreaterEqual(len(checked), 20)
        before = database_state(self.env)
        for user in (self.portal, self.internal):
            self.authenticate(user.login, user.login)
            for model, method in checked:
                args = [] if methods[(model, method)] else [[self.some_id(model)]]
                with self.subTest(user=user.login, model=model, method=method):
                    _result, error, body = self.rpc(model, method, args)
                    self.assertEqual(error, "odoo.exceptions.AccessError", body[:500])
        self.assertEqual(database_state(self.env), before, "a refused call changes nothing")

    def test_every_server_action_of_the_addon_refuses_them(self):
        """The menu's server action and those of the addon's scheduled actions, run over RPC."""
        data = self.env["ir.model.data"].sudo().search([("module", "=", ADDON)])
        actions = (
            self.env["ir.actions.server"]
            .sudo()
            .browse(data.filtered(lambda d: d.model == "ir.actions.server").mapped("res_id"))
        )
        actions |= (
            self.env["ir.cron"]
            .sudo()
            .browse(data.filtered(lambda d: d.model == "ir.cron").mapped("res_id"))
            .ir_actions_server_id
        )
        self.assertGreaterEqual(len(actions), 3, "the diagnostics menu, sampling and the leak report")
        before = database_state(self.env)
        for user in (self.portal, self.internal):
            self.authenticate(user.login, user.login)
            for action in actions:
                with self.subTest(user=user.login, action=action.name):
                    _result, error, body = self.rpc("ir.actions.server", "run", [action.ids])
                    self.assertEqual(error, "odoo.exceptions.AccessError", body[:500])
        self.assertEqual(database_state(self.env), before, "a refused call changes nothing")

    def test_the_public_user_gets_nothing_either(self):
        before = database_state(self.env)
        _result, error, _body = self.rpc("res.config.settings", "action_memory_rotate_token", [[1]])
        self.assertTrue(error, "call_kw needs a session")
        self.assertEqual(database_state(self.env), before)

    def test_an_admin_still_can(self):
        # The check refuses non-admins only: the same RPC as a Settings admin works.
        self.authenticate(self.admin.login, self.admin.login)
        result, error, body = self.rpc("res.config.settings", "action_memory_rotate_token", [[1]])
        self.assertFalse(error, body[:500])
        self.assertNotEqual(self.env["ir.config_parameter"].sudo().get_param(params.ENDPOINT_TOKEN), TOKEN)


@tagged("post_install", "-at_install")
class TestSecrets(RpcCase):
    FIELDS = ["memory_endpoint_token", "memory_report_webhook_url"]

    def read_paths(self, settings_id):
        """Every way an RPC caller reads settings values: ``{name: (model, method, args, kwargs)}``."""
        spec = {name: {} for name in self.FIELDS}
        settings = "res.config.settings"
        return {
            "default_get": (settings, "default_get", [self.FIELDS], {}),
            "get_values": (settings, "get_values", [], {}),
            "read": (settings, "read", [[settings_id], self.FIELDS], {}),
            "search_read": (settings, "search_read", [[]], {"fields": self.FIELDS}),
            "web_read": (settings, "web_read", [[settings_id]], {"specification": spec}),
            "web_search_read": (settings, "web_search_read", [[]], {"specification": spec}),
            "onchange": (settings, "onchange", [[], {}, [], spec], {}),
            "export_data": (settings, "export_data", [[settings_id], self.FIELDS], {}),
            "get_param token": ("ir.config_parameter", "get_param", [params.ENDPOINT_TOKEN], {}),
            "get_param webhook": ("ir.config_parameter", "get_param", [params.REPORT_WEBHOOK_URL], {}),
            "search_read parameters": ("ir.config_parameter", "search_read", [[]], {"fields": ["value"]}),
        }

    def test_the_token_and_the_webhook_url_come_out_of_no_read_path(self):
        # An admin's settings record holds both values in its row.
        settings = self.env["res.config.settings"].with_user(self.admin).create({})
        self.assertEqual(settings.sudo().memory_endpoint_token, TOKEN)
        for user in (self.portal, self.internal):
            self.authenticate(user.login, user.login)
            for path, (model, method, args, kwargs) in self.read_paths(settings.id).items():
                with self.subTest(user=user.login, path=path):
                    _result, error, body = self.rpc(model, method, args, kwargs)
                    self.assertNotIn(TOKEN, body)
                    self.assertNotIn("webhook-secret-path", body)
                    # Odoo refuses exports to users without the export group before any read.
                    expected = "UserError" if method == "export_data" else "AccessError"
                    self.assertEqual(error, f"odoo.exceptions.{expected}", body[:500])

    def test_an_admin_reads_them(self):
        # The same paths give the values to a Settings admin: the test above can fail.
        settings = self.env["res.config.settings"].with_user(self.admin).create({})
        self.authenticate(self.admin.login, self.admin.login)
        result, error, body = self.rpc("res.config.settings", "default_get", [self.FIELDS])
        self.assertFalse(error, body[:500])
        self.assertEqual(
            (result["memory_endpoint_token"], result["memory_report_webhook_url"]), (TOKEN, WEBHOOK)
        )
        result, error, body = self.rpc("res.config.settings", "read", [[settings.id], self.FIELDS])
        self.assertFalse(error, body[:500])
        self.assertEqual(result[0]["memory_endpoint_token"], TOKEN)

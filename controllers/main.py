import hashlib
import hmac
import json

from odoo import fields, http
from odoo.http import request
from odoo.tools import config

from .. import access, odoo_runtime
from ..core.common import params
from ..core.host import health, machine, metrics
from ..core.process import limits
from ..core.snapshot import sampler


class MemoryHygieneController(http.Controller):
    """Health and metrics of this host's Odoo processes, for monit, watchdogs and Prometheus.

    Both need the endpoint token, sent as ``Authorization: Bearer <token>``
    (what Prometheus' ``authorization`` option, monit's ``http headers`` and
    ``curl -H`` send), or a Settings admin's session; anyone else gets a bare
    403. A token in the query string is not accepted: it would land in every
    access log on the way (Odoo's, a proxy's).
    """

    @http.route("/memory_hygiene/health", type="http", auth="public", methods=["GET"], save_session=False)
    def health(self, **kwargs):
        if not _allowed():
            return _forbidden()
        warn_share = odoo_runtime.setting(request.env, params.WARN_SHARE)
        processes = _live_processes()
        problems = health.problems(processes, warn_share)
        found = machine.read()
        min_available, max_pressure = (
            odoo_runtime.setting(request.env, params.HEALTH_MIN_AVAILABLE),
            odoo_runtime.setting(request.env, params.HEALTH_MAX_PRESSURE),
        )
        problems += health.machine_problems(found, min_available, max_pressure)
        body = {
            "status": "warn" if problems else "ok",
            "host": odoo_runtime.host_name(),
            "warn_share": warn_share,
            "min_available_pct": min_available,
            "max_pressure": max_pressure,
            "machine": health.machine_figures(found),
            "problems": problems,
            "processes": [
                {
                    key: _rounded(proc[key])
                    for key in ("pid", "kind", "rss_mb", "odoo_mb", "soft_limit_mb", "soft_limit_pct")
                }
                for proc in processes
            ],
            # Programs the Odoo processes started (wkhtmltopdf...): shown, never held to Odoo's limits.
            "helpers": [{key: _rounded(value) for key, value in helper.items()} for helper in _helpers()],
        }
        return request.make_response(
            json.dumps(body),
            headers=[("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            status=503 if problems else 200,
        )

    @http.route("/memory_hygiene/metrics", type="http", auth="public", methods=["GET"], save_session=False)
    def metrics(self, **kwargs):
        if not _allowed():
            return _forbidden()
        host = odoo_runtime.host_name()
        processes = _live_processes()
        # Snapshots are read for a caller holding the token, which is no user.
        snapshots = request.env["memory.snapshot"].sudo()
        latest = snapshots.search([("host", "=", host)], limit=1)
        suspects = set(
            snapshots.search(
                [
                    ("host", "=", host),
                    ("pid", "in", [p["pid"] for p in processes]),
                    ("leak_suspect", "=", True),
                ]
            ).mapped("pid")
        )
        for proc in processes:
            proc["leak_suspect"] = proc["pid"] in suspects
        age = (fields.Datetime.now() - latest.date).total_seconds() if latest else None
        body, content_type = metrics.render(
            host,
            processes,
            snapshot_age=age,
            recycles=snapshots._recycles_per_host().get(host, 0),
            helpers=_helpers(),
            machine=machine.read(),
        )
        return request.make_response(
            body, headers=[("Content-Type", content_type), ("Cache-Control", "no-store")]
        )


def _allowed():
    """The endpoint token as a bearer token, or a Settings admin's session."""
    # A token shorter than the minimum (stored by hand) is no token: params.read refuses it.
    expected = odoo_runtime.setting(request.env, params.ENDPOINT_TOKEN)
    given = _bearer_token()
    # Digests of equal length, compared in constant time: neither the token nor its length leaks.
    if expected and given and hmac.compare_digest(_digest(given), _digest(expected)):
        return True
    return access.is_admin(request.env)


def _bearer_token():
    """The credentials of an ``Authorization: Bearer <token>`` header, or ``""``."""
    scheme, _sep, credentials = (request.httprequest.headers.get("Authorization") or "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def _digest(text):
    return hashlib.sha256(text.encode()).digest()


def _rounded(value):
    return round(value, 1) if isinstance(value, float) else value


def _forbidden():
    return request.make_response(b"", status=403)


def _live_processes():
    """Figures, with limits, of every Odoo process of this host, read now."""
    info = odoo_runtime.server_info()
    options = {option: config.get(option) for option in limits.LIMIT_OPTIONS}
    found = sampler.sample_tree(
        info["root_pid"], info["mode"], uss=odoo_runtime.setting(request.env, params.SNAPSHOT_USS)
    )
    return [sampler.with_limits(figures, options) for figures in found]


def _helpers():
    """Programs this host's Odoo processes started (wkhtmltopdf, node...), read now."""
    info = odoo_runtime.server_info()
    return sampler.sample_helpers(info["root_pid"], info["mode"])

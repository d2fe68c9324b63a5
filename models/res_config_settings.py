import secrets

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from .. import access, messages
from ..core.common import params
from ..core.reporting import report as reports
from ..core.snapshot import rollup

#: The setting that a retention check of core.snapshot.rollup names, by its code.
ROLLUP_FIELDS = {
    "shorter_than_raw": "memory_snapshot_hour_days",
    "shorter_than_hours": "memory_snapshot_retention_days",
    "shorter_than_span": "memory_snapshot_raw_hours",
}

#: Settings fields stored as plain config parameters, by field name.
PARAM_FIELDS = {
    "memory_batch_memory_share": params.BATCH_MEMORY_SHARE,
    "memory_batch_time_share": params.BATCH_TIME_SHARE,
    "memory_snapshot_interval": params.SNAPSHOT_INTERVAL,
    "memory_snapshot_uss": params.SNAPSHOT_USS,
    "memory_snapshot_retention_days": params.SNAPSHOT_RETENTION_DAYS,
    "memory_snapshot_raw_hours": params.SNAPSHOT_RAW_HOURS,
    "memory_snapshot_hour_days": params.SNAPSHOT_HOUR_DAYS,
    "memory_growth_threshold": params.GROWTH_THRESHOLD,
    "memory_growth_min_span": params.GROWTH_MIN_SPAN,
    "memory_warn_share": params.WARN_SHARE,
    "memory_health_min_available": params.HEALTH_MIN_AVAILABLE,
    "memory_storm_requests": params.STORM_REQUESTS,
    "memory_storm_minutes": params.STORM_MINUTES,
    "memory_storm_window": params.STORM_WINDOW,
    "memory_alert_period_hours": params.ALERT_PERIOD_HOURS,
    "memory_health_max_pressure": params.HEALTH_MAX_PRESSURE,
    "memory_endpoint_token": params.ENDPOINT_TOKEN,
    "memory_profile_frames": params.PROFILE_FRAMES,
    "memory_profile_top_n": params.PROFILE_TOP_N,
    "memory_profile_window": params.PROFILE_WINDOW,
    "memory_leak_threshold": params.LEAK_THRESHOLD,
    "memory_profile_retention_days": params.PROFILE_RETENTION_DAYS,
    "memory_trace_period_hours": params.TRACE_PERIOD_HOURS,
    "memory_heap_every": params.HEAP_EVERY,
    "memory_report_webhook_url": params.REPORT_WEBHOOK_URL,
}


def _default(key):
    return params.PARAMS[key].default


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    memory_batch_memory_share = fields.Float(
        string="Batch memory share (%)",
        config_parameter=params.BATCH_MEMORY_SHARE,
        default=_default(params.BATCH_MEMORY_SHARE),
        help="A batched cron stops after the batch in which the worker passed this share of limit_memory_soft.",  # noqa: E501
    )
    memory_batch_time_share = fields.Float(
        string="Batch time share (%)",
        config_parameter=params.BATCH_TIME_SHARE,
        default=_default(params.BATCH_TIME_SHARE),
        help="A batched cron stops after the batch in which this share of the cron's real-time limit passed.",
    )
    memory_snapshot_interval = fields.Integer(
        string="Sampling interval (minutes)",
        config_parameter=params.SNAPSHOT_INTERVAL,
        default=_default(params.SNAPSHOT_INTERVAL),
    )
    memory_snapshot_uss = fields.Boolean(
        string="Sample USS",
        config_parameter=params.SNAPSHOT_USS,
        help="Unique set size: the memory a worker would give back if it died. Costs a read of smaps.",
    )
    memory_snapshot_raw_hours = fields.Integer(
        string="Keep full-resolution snapshots (hours)",
        config_parameter=params.SNAPSHOT_RAW_HOURS,
        default=_default(params.SNAPSHOT_RAW_HOURS),
        help="Every snapshot is kept this long; older ones live on rolled up per process and hour.",
    )
    memory_snapshot_hour_days = fields.Integer(
        string="Keep hourly history (days)",
        config_parameter=params.SNAPSHOT_HOUR_DAYS,
        default=_default(params.SNAPSHOT_HOUR_DAYS),
        help="Per process and hour: min, max and last RSS and virtual size, recycles. Older hours live on "
        "rolled up per day.",
    )
    memory_snapshot_retention_days = fields.Integer(
        string="Keep daily history (days)",
        config_parameter=params.SNAPSHOT_RETENTION_DAYS,
        default=_default(params.SNAPSHOT_RETENTION_DAYS),
        help="Per process and day, as the hours. Older days are purged.",
    )
    memory_growth_threshold = fields.Float(
        string="Leak suspect above (MiB/hour)",
        config_parameter=params.GROWTH_THRESHOLD,
        default=_default(params.GROWTH_THRESHOLD),
    )
    memory_growth_min_span = fields.Integer(
        string="Leak suspect after (minutes)",
        config_parameter=params.GROWTH_MIN_SPAN,
        default=_default(params.GROWTH_MIN_SPAN),
    )
    memory_warn_share = fields.Float(
        string="Warn at share of the soft limit (%)",
        config_parameter=params.WARN_SHARE,
        default=_default(params.WARN_SHARE),
    )
    memory_health_min_available = fields.Float(
        string="Warn below available memory (%)",
        config_parameter=params.HEALTH_MIN_AVAILABLE,
        default=_default(params.HEALTH_MIN_AVAILABLE),
        help="Health warns when the memory still available to this server (the container's, else the host's) falls under this share of its memory. 0: never.",  # noqa: E501
    )
    memory_health_max_pressure = fields.Float(
        string="Warn above memory pressure (%)",
        config_parameter=params.HEALTH_MAX_PRESSURE,
        default=_default(params.HEALTH_MAX_PRESSURE),
        help="Health warns when PSI some avg10 (share of the last 10 s during which some task waited for memory, the container's or the host's) passes this. 0: never.",  # noqa: E501
    )
    memory_storm_requests = fields.Integer(
        string="Storm under (requests)",
        config_parameter=params.STORM_REQUESTS,
        default=_default(params.STORM_REQUESTS),
        help="A kind of worker is in a recycle storm when 3 of its workers end, within the window,"
        " after fewer requests than this, or sooner than the minutes below.",
    )
    memory_storm_minutes = fields.Integer(
        string="Storm under (minutes)",
        config_parameter=params.STORM_MINUTES,
        default=_default(params.STORM_MINUTES),
        help="Workers ending younger than this count toward a recycle storm. 0: age alone never counts.",
    )
    memory_storm_window = fields.Integer(
        string="Storm window (minutes)",
        config_parameter=params.STORM_WINDOW,
        default=_default(params.STORM_WINDOW),
        help="The worker exits a recycle storm is judged on: those of the last minutes.",
    )
    memory_alert_period_hours = fields.Integer(
        string="One alert per cause every (hours)",
        config_parameter=params.ALERT_PERIOD_HOURS,
        default=_default(params.ALERT_PERIOD_HOURS),
        help="Immediate notifications (OOM kill, recycle storm, leaking scheduled action): at most one"
        " per cause and kind of worker in this period.",
    )
    # The two secrets (the endpoint token, and the webhook URL, which is the credential of a
    # Slack, Teams or Discord webhook) are restricted to Settings admins at the field level:
    # read, search_read, web_read, onchange specs and export refuse them to anyone else. Their
    # values are read under sudo by default_get (config_parameter fields), so get_values
    # refuses non-admins too (see there). They are kept in clear in ir.config_parameter
    # (readable by Settings admins only, like every system parameter): the webhook URL must
    # be usable, and a hashed token would only hide it from those who may rotate it anyway.
    memory_endpoint_token = fields.Char(
        string="Endpoint token",
        config_parameter=params.ENDPOINT_TOKEN,
        groups=access.ADMIN_GROUP,
        help="Needed by /memory_hygiene/health and /memory_hygiene/metrics, sent as 'Authorization: Bearer <token>'. At least 32 characters.",  # noqa: E501
    )
    memory_profile_until = fields.Datetime(
        string="Profile every cron until",
        help="Every scheduled action is profiled until then; empty: only those switched on.",
    )
    memory_profile_frames = fields.Integer(
        string="Profiler frames",
        config_parameter=params.PROFILE_FRAMES,
        default=_default(params.PROFILE_FRAMES),
    )
    memory_profile_top_n = fields.Integer(
        string="Profiler top lines",
        config_parameter=params.PROFILE_TOP_N,
        default=_default(params.PROFILE_TOP_N),
    )
    memory_profile_window = fields.Integer(
        string="Leak verdict window (runs)",
        config_parameter=params.PROFILE_WINDOW,
        default=_default(params.PROFILE_WINDOW),
    )
    memory_leak_threshold = fields.Float(
        string="Leak growth per run (MiB)",
        config_parameter=params.LEAK_THRESHOLD,
        default=_default(params.LEAK_THRESHOLD),
    )
    memory_profile_retention_days = fields.Integer(
        string="Keep profiled runs (days)",
        config_parameter=params.PROFILE_RETENTION_DAYS,
        default=_default(params.PROFILE_RETENTION_DAYS),
        help="Older runs are purged by the autovacuum; the last runs of the verdict window always stay.",
    )
    memory_trace_period_hours = fields.Integer(
        string="Automatic trace at most every (hours)",
        config_parameter=params.TRACE_PERIOD_HOURS,
        default=_default(params.TRACE_PERIOD_HOURS),
        help="A suspect scheduled action has its next run traced by itself, at most once in this period.",
    )
    memory_heap_every = fields.Integer(
        string="Charge every Nth run of a healthy action",
        config_parameter=params.HEAP_EVERY,
        default=_default(params.HEAP_EVERY),
        help="Every run is accounted; charging it reads the C heap (glibc's mallinfo2, a millisecond or more). Runs of an action that is not healthy are all charged; a healthy one's every Nth run (in each worker), and the run after one whose RSS or Python blocks grew. 1: charge every run.",  # noqa: E501
    )
    memory_report_recipient_ids = fields.Many2many(
        "res.users",
        string="Leak report recipients",
        help="Empty: the Settings administrators.",
    )
    memory_report_webhook_url = fields.Char(
        string="Leak report webhook",
        config_parameter=params.REPORT_WEBHOOK_URL,
        groups=access.ADMIN_GROUP,
        help="http(s) URL that receives the report as JSON with a Slack-compatible 'text' field.",
    )

    @api.constrains(*PARAM_FIELDS)
    def _check_memory_settings(self):
        for settings in self:
            for name, key in PARAM_FIELDS.items():
                try:
                    params.check(key, settings[name])
                except params.ParamError as exc:
                    label = settings._fields[name].get_description(self.env)["string"]  # translated
                    raise ValidationError(messages.param_error(self.env, label, exc.say)) from None
            try:
                rollup.check_retention(
                    settings.memory_snapshot_raw_hours,
                    settings.memory_snapshot_hour_days,
                    settings.memory_snapshot_retention_days,
                    settings.memory_growth_min_span,
                    settings.memory_snapshot_interval,
                )
            except params.ParamError as exc:
                name = ROLLUP_FIELDS[exc.say.code]
                label = settings._fields[name].get_description(self.env)["string"]  # translated
                raise ValidationError(messages.param_error(self.env, label, exc.say)) from None
            url = settings.memory_report_webhook_url
            if url:
                try:
                    reports.check_webhook_url(url)
                except ValueError:
                    raise ValidationError(
                        self.env._("The leak report webhook must be an http:// or https:// URL, got %r.", url)
                    ) from None

    @api.model
    def get_values(self):
        # default_get reads every config_parameter field under sudo and then calls this:
        # refusing here keeps the secrets (and every other setting) from non-admins.
        access.check_admin(self.env)
        res = super().get_values()
        icp = self.env["ir.config_parameter"].sudo()  # settings are read by Settings admins only
        until = icp.get_param(params.PROFILE_UNTIL)
        ids = [int(i) for i in (icp.get_param(params.REPORT_RECIPIENT_IDS) or "").split(",") if i.isdigit()]
        res.update(
            memory_profile_until=fields.Datetime.to_datetime(until) if until else False,
            memory_report_recipient_ids=[(6, 0, self.env["res.users"].browse(ids).exists().ids)],
        )
        return res

    def set_values(self):
        access.check_admin(self.env)
        res = super().set_values()
        icp = self.env["ir.config_parameter"].sudo()  # settings are written by Settings admins only
        icp.set_param(
            params.PROFILE_UNTIL,
            fields.Datetime.to_string(self.memory_profile_until) if self.memory_profile_until else "",
        )
        icp.set_param(
            params.REPORT_RECIPIENT_IDS, ",".join(str(i) for i in self.memory_report_recipient_ids.ids)
        )
        self.env["memory.snapshot"]._sync_cron_interval()
        return res

    def action_memory_rotate_token(self):
        """Generate a new endpoint token; the old one stops working at once."""
        access.check_admin(self.env)
        self.ensure_one()
        self.env["ir.config_parameter"].sudo().set_param(params.ENDPOINT_TOKEN, secrets.token_urlsafe(32))
        return {"type": "ir.actions.client", "tag": "reload"}

    def action_memory_send_leak_report(self):
        """Send the leak report now, with the settings as saved."""
        access.check_admin(self.env)
        self.ensure_one()
        return self.env["memory.leak.report"].action_send_now()

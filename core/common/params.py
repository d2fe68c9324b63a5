"""Keys, defaults and validation of memory_hygiene's settings.

Every ``ir.config_parameter`` key the addon reads is declared here, once, with
its type, default and bounds. The settings page (``res.config.settings``)
validates with :func:`check`, and code reads values with :func:`read`, which
falls back to the default (and says so) when a stored value is nonsense::

    >>> read(lambda key: "7", SNAPSHOT_INTERVAL)
    7
    >>> read(lambda key: None, WARN_SHARE)
    90.0
    >>> try:
    ...     check(SNAPSHOT_INTERVAL, 0)
    ... except ParamError as exc:
    ...     print(exc)
    Sampling interval (minutes) must be at least 1, got 0.

A text setting's ``minimum`` is a length, and its value is never repeated in
the message (the endpoint token is a secret)::

    >>> try:
    ...     check(ENDPOINT_TOKEN, "short-secret")
    ... except ParamError as exc:
    ...     print(exc)
    Endpoint token must be empty or at least 32 characters long, got 12 characters.
"""

import logging
from dataclasses import dataclass

from .say import Say

_logger = logging.getLogger(__name__)

PREFIX = "memory_hygiene."


@dataclass(frozen=True)
class Param:
    key: str
    label: str
    kind: type  # int, float, bool or str
    default: object
    minimum: float | None = None  # for a text: its shortest length when not empty
    maximum: float | None = None


def _p(name, label, kind, default, minimum=None, maximum=None):
    return Param(PREFIX + name, label, kind, default, minimum, maximum)


# Batched-cron mixin: share of the cron's limits after which a run stops cleanly.
BATCH_MEMORY_SHARE = PREFIX + "batch_memory_share"
BATCH_TIME_SHARE = PREFIX + "batch_time_share"
# Worker memory snapshots.
SNAPSHOT_INTERVAL = PREFIX + "snapshot_interval"
SNAPSHOT_USS = PREFIX + "snapshot_uss"
SNAPSHOT_RETENTION_DAYS = PREFIX + "snapshot_retention_days"  # the daily tier (core.snapshot.rollup)
SNAPSHOT_RAW_HOURS = PREFIX + "snapshot_raw_hours"
SNAPSHOT_HOUR_DAYS = PREFIX + "snapshot_hour_days"
#: The retention of each tier of the snapshot history, finest first (core.snapshot.rollup).
HISTORY_RETENTIONS = (SNAPSHOT_RAW_HOURS, SNAPSHOT_HOUR_DAYS, SNAPSHOT_RETENTION_DAYS)
GROWTH_THRESHOLD = PREFIX + "growth_threshold"
GROWTH_MIN_SPAN = PREFIX + "growth_min_span"
WARN_SHARE = PREFIX + "warn_share"
HEALTH_MIN_AVAILABLE = PREFIX + "health_min_available"
HEALTH_MAX_PRESSURE = PREFIX + "health_max_pressure"
ENDPOINT_TOKEN = PREFIX + "endpoint_token"
ENDPOINT_TOKEN_MIN_LENGTH = 32
# Cron-leak profiler.
PROFILE_UNTIL = PREFIX + "profile_until"
PROFILE_FRAMES = PREFIX + "profile_frames"
PROFILE_TOP_N = PREFIX + "profile_top_n"
PROFILE_WINDOW = PREFIX + "profile_window"
LEAK_THRESHOLD = PREFIX + "leak_threshold"
PROFILE_RETENTION_DAYS = PREFIX + "profile_retention_days"
ACCOUNTING = PREFIX + "accounting"
AUTO_TRACE = PREFIX + "auto_trace"
TRACE_PERIOD_HOURS = PREFIX + "trace_period_hours"
HEAP_EVERY = PREFIX + "heap_every"
# Leak report.
REPORT_RECIPIENT_IDS = PREFIX + "report_recipient_ids"
REPORT_WEBHOOK_URL = PREFIX + "report_webhook_url"

TRACEMALLOC_MAX_MINUTES = PREFIX + "tracemalloc_max_minutes"
# Worker lifecycle: recycle storms and immediate alerts.
STORM_REQUESTS = PREFIX + "storm_requests"
STORM_MINUTES = PREFIX + "storm_minutes"
STORM_WINDOW = PREFIX + "storm_window"
ALERT_PERIOD_HOURS = PREFIX + "alert_period_hours"
TRACEMALLOC_MAX_MB = PREFIX + "tracemalloc_max_mb"

PARAMS = {
    p.key: p
    for p in (
        _p("batch_memory_share", "Batch stop at share of limit_memory_soft (%)", float, 80.0, 1, 100),
        _p("batch_time_share", "Batch stop at share of the cron time limit (%)", float, 80.0, 1, 100),
        _p("snapshot_interval", "Sampling interval (minutes)", int, 5, 1, 24 * 60),
        _p("snapshot_uss", "Sample USS (reads smaps)", bool, False),
        _p("snapshot_retention_days", "Keep daily history (days)", int, 30, 1, 3650),
        _p("snapshot_raw_hours", "Keep full-resolution snapshots (hours)", int, 24, 1, 24 * 90),
        _p("snapshot_hour_days", "Keep hourly history (days)", int, 3, 1, 3650),
        _p("growth_threshold", "Leak-suspect growth (MiB/hour)", float, 50.0, 0.1, 1024 * 1024),
        _p("growth_min_span", "Leak-suspect minimum span (minutes)", int, 60, 5, 30 * 24 * 60),
        _p("warn_share", "Warn at share of the soft limit (%)", float, 90.0, 1, 100),
        _p("health_min_available", "Warn below available memory (% of the machine's)", float, 10.0, 0, 100),
        _p("health_max_pressure", "Warn above memory pressure (PSI some avg10, %)", float, 20.0, 0, 100),
        # A token guessed is a host's process list and a lever on its monitors: 32 characters at least.
        _p("endpoint_token", "Endpoint token", str, "", ENDPOINT_TOKEN_MIN_LENGTH),
        _p("profile_until", "Profile every cron until", str, ""),
        _p("profile_frames", "Profiler frames", int, 1, 1, 100),
        _p("profile_top_n", "Profiler top N lines", int, 10, 1, 200),
        _p("profile_window", "Leak verdict window (runs)", int, 5, 2, 100),
        _p("leak_threshold", "Leak growth per run (MiB)", float, 0.5, 0.01, 1024 * 1024),
        _p("profile_retention_days", "Profiled run retention (days)", int, 30, 1, 3650),
        _p("accounting", "Account every scheduled-action run", bool, True),
        _p("auto_trace", "Trace suspect scheduled actions by themselves", bool, True),
        _p(
            "trace_period_hours", "At most one automatic trace per action every (hours)", int, 24, 1, 24 * 365
        ),
        _p("heap_every", "Charge every Nth run of a healthy action (C heap read)", int, 10, 1, 10_000),
        _p("report_recipient_ids", "Leak report recipients (user ids)", str, ""),
        _p("report_webhook_url", "Leak report webhook URL", str, ""),
        _p("storm_requests", "Recycle storm: workers ending under (requests)", int, 20, 1, 10**9),
        _p("storm_minutes", "Recycle storm: workers ending under (minutes)", int, 5, 0, 24 * 60),
        _p("storm_window", "Recycle storm: exits counted over (minutes)", int, 60, 1, 7 * 24 * 60),
        _p("alert_period_hours", "At most one alert per cause and kind every (hours)", int, 6, 1, 24 * 30),
        _p("tracemalloc_max_minutes", "Diagnostics tracemalloc stops after (minutes)", int, 30, 1, 24 * 60),
        _p(
            "tracemalloc_max_mb",
            "Diagnostics tracemalloc stops at traced size (MiB)",
            int,
            512,
            1,
            1024 * 1024,
        ),
    )
}


class ParamError(ValueError):
    """A setting has a value that makes no sense; the message says what to fix (in English, for the log).

    ``say`` is the same for a user (:class:`~core.common.say.Say`, the sentence is the
    model's): ``too_short`` (``minimum``, ``length``), ``not_a_whole_number`` or
    ``not_a_number`` (``value``), ``below_minimum`` (``minimum``, ``value``),
    ``above_maximum`` (``maximum``, ``value``).
    """

    def __init__(self, message, say):
        super().__init__(message)
        self.say = say


def check(key, value):
    """Return ``value`` converted to the setting's type, or raise ParamError."""
    param = PARAMS[key]
    if param.kind is bool:
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if param.kind is str:
        text = "" if value in (None, False) else str(value).strip()
        if text and param.minimum is not None and len(text) < param.minimum:
            raise ParamError(
                f"{param.label} must be empty or at least {_fmt(param.minimum)} characters long, got {len(text)} characters.",  # noqa: E501
                Say("too_short", {"minimum": _fmt(param.minimum), "length": len(text)}),
            )
        return text
    if value in (None, "", False) and not isinstance(value, int | float):
        return param.default
    try:
        number = param.kind(float(value)) if param.kind is int else float(value)
        if param.kind is int and float(value) != number:
            raise ValueError
    except (TypeError, ValueError):
        raise ParamError(
            f"{param.label} must be a {_kind_word(param.kind)}, got {value!r}.",
            Say("not_a_whole_number" if param.kind is int else "not_a_number", {"value": repr(value)}),
        ) from None
    if param.minimum is not None and number < param.minimum:
        raise ParamError(
            f"{param.label} must be at least {_fmt(param.minimum)}, got {_fmt(number)}.",
            Say("below_minimum", {"minimum": _fmt(param.minimum), "value": _fmt(number)}),
        )
    if param.maximum is not None and number > param.maximum:
        raise ParamError(
            f"{param.label} must be at most {_fmt(param.maximum)}, got {_fmt(number)}.",
            Say("above_maximum", {"maximum": _fmt(param.maximum), "value": _fmt(number)}),
        )
    return number


def read(get_param, key):
    """Read a setting through ``get_param(key) -> str | None``; the default if unset or invalid."""
    raw = get_param(key)
    if raw in (None, False, ""):
        return PARAMS[key].default
    try:
        return check(key, raw)
    except ParamError as exc:
        _logger.warning("%s Using the default %r.", exc, PARAMS[key].default)
        return PARAMS[key].default


def _kind_word(kind):
    return {int: "whole number", float: "number"}.get(kind, kind.__name__)


def _fmt(number):
    return f"{number:g}"

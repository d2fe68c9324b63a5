"""Keys, defaults and validation of memory_hygiene's settings.

Every ``ir.config_parameter`` key the addon reads is named here, once.
"""

PREFIX = "memory_hygiene."

# Batched-cron mixin: share of the cron's limits after which a run stops cleanly.
BATCH_MEMORY_SHARE = PREFIX + "batch_memory_share"
BATCH_TIME_SHARE = PREFIX + "batch_time_share"

DEFAULTS = {
    BATCH_MEMORY_SHARE: 80,
    BATCH_TIME_SHARE: 80,
}


class ParamError(ValueError):
    """A setting has a value that makes no sense; the message says what to fix."""


def parse_percent(key, raw):
    """Return ``raw`` as a share in percent (1..100) or raise ParamError."""
    if raw in (None, "", False):
        return DEFAULTS[key]
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ParamError(f"{key} must be a number of percent, got {raw!r}.") from None
    if not 0 < value <= 100:
        raise ParamError(f"{key} must be above 0 and at most 100 percent, got {raw!r}.")
    return value

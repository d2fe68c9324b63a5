"""PostgreSQL memory pressure: the OOM runbook's queries, and what their figures mean.

The ORM layer runs these statements on the database's own cursor and shows the
rows; a long query of *this* database can be cancelled (``pg_cancel_backend``:
the query stops, the session and its transaction's other work stay). Nothing
here terminates a backend: ``pg_terminate_backend`` is the runbook's last
resort, for a human at a ``psql`` prompt.
"""

from ..common.units import human_size

#: A query active for longer than this (seconds) is "long".
LONG_QUERY_SECONDS = 30
LONG_QUERY_LIMIT = 20

SETTINGS = (
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "max_connections",
    "effective_cache_size",
    "superuser_reserved_connections",
    "reserved_connections",  # PostgreSQL 16+
)

#: The statistics views are read once per transaction and then cached: start from fresh figures.
CLEAR_SNAPSHOT = "SELECT pg_stat_clear_snapshot()"

SESSIONS_BY_STATE = """
    SELECT coalesce(state, 'unknown') AS state, count(*) AS sessions
      FROM pg_stat_activity
     WHERE datname = current_database()
  GROUP BY state
  ORDER BY count(*) DESC, state
"""

# clock_timestamp(), not now(): now() is the start of the page's own transaction.
# backend_start and query_start as text (microseconds and offset kept): CANCEL compares them exactly.
LONG_QUERIES = """
    SELECT pid,
           backend_start::text,
           query_start::text,
           usename,
           extract(epoch FROM clock_timestamp() - query_start) AS runtime,
           wait_event_type,
           wait_event,
           left(query, 200) AS query
      FROM pg_stat_activity
     WHERE state = 'active'
       AND datname = current_database()
       AND pid <> pg_backend_pid()
       AND clock_timestamp() - query_start > make_interval(secs => %s)
  ORDER BY runtime DESC
     LIMIT %s
"""

#: This database only: the names of the cluster's other databases are other customers' business.
TEMP_FILES = """
    SELECT datname, temp_files, temp_bytes
      FROM pg_stat_database
     WHERE datname = current_database()
"""

MEMORY_SETTINGS = """
    SELECT name, setting, unit, current_setting(name) AS shown, short_desc
      FROM pg_settings
     WHERE name = ANY(%s)
  ORDER BY name
"""

#: Cancel the query shown on the page, and only that one: in one statement, the backend must still
#: be of this database (not ourselves), the same session (``backend_start``: a pid is reused by the
#: next connection) running the same query (``query_start``; ``state = 'active'``). A pooled
#: connection that moved on to another query is left alone: then no row comes back. The row says
#: whether PostgreSQL accepted the cancel (the role must own the session or be in pg_signal_backend).
#: Run :data:`CLEAR_SNAPSHOT` first: pg_stat_activity is read once per transaction otherwise.
CANCEL = """
    SELECT pg_cancel_backend(pid), left(query, 200)
      FROM pg_stat_activity
     WHERE pid = %s
       AND datname = current_database()
       AND pid <> pg_backend_pid()
       AND backend_start = %s::timestamptz
       AND query_start = %s::timestamptz
       AND state = 'active'
"""

_UNITS = {"B": 1, "kB": 1024, "8kB": 8192, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def setting_bytes(setting, unit):
    """A ``pg_settings`` value in bytes, ``None`` when it is not a size.

    >>> setting_bytes("16384", "8kB"), setting_bytes("4096", "kB"), setting_bytes("100", None)
    (134217728, 4194304, None)
    """
    if unit not in _UNITS:
        return None
    try:
        return int(setting) * _UNITS[unit]
    except (TypeError, ValueError):
        return None


def connection_settings(settings):
    """``{"max_connections", "superuser_reserved_connections", "reserved_connections"}`` as integers
    (``None`` when PostgreSQL has no such setting) from ``{name: (setting, unit)}``.

    >>> connection_settings({"max_connections": ("100", None), "superuser_reserved_connections": ("3", None)})
    {'max_connections': 100, 'superuser_reserved_connections': 3, 'reserved_connections': None}
    """
    found = {}
    for name in ("max_connections", "superuser_reserved_connections", "reserved_connections"):
        try:
            found[name] = int(settings[name][0])
        except (KeyError, TypeError, ValueError):
            found[name] = None
    return found


def notes(settings, active, ram_bytes, ram_source=None):
    """What the settings and the live sessions say, in sentences.

    ``settings``: ``{name: (setting, unit)}``; ``active``: sessions of this
    database in state ``active``; ``ram_bytes``: the memory of the machine,
    ``ram_source`` where that figure comes from (:mod:`core.host.machine`).

    >>> for line in notes({"work_mem": ("65536", "kB"), "max_connections": ("500", None),
    ...                    "shared_buffers": ("16384", "8kB")}, active=3, ram_bytes=8 * 1024**3):
    ...     print(line[:64])
    work_mem x max_connections = 31.2 GiB, more than the memory (8.0
    shared_buffers is 1.6 % of the memory (8.0 GiB); about 25 % is t
    """
    lines = []
    memory = f"the memory ({human_size(ram_bytes)}{', ' + ram_source if ram_source else ''})"
    work_mem = setting_bytes(*settings.get("work_mem", (None, None)))
    try:
        max_conn = int(settings.get("max_connections", (0, None))[0])
    except (TypeError, ValueError):
        max_conn = 0
    if work_mem and max_conn and ram_bytes:
        worst = work_mem * max_conn
        if worst > ram_bytes:
            lines.append(
                f"work_mem x max_connections = {human_size(worst)}, more than {memory}:"
                " many concurrent sorts or hashes can exhaust it (each query node may use work_mem)."
            )
        if active and work_mem * active * 4 > ram_bytes:
            lines.append(
                f"{active} active queries x 4 x work_mem already approach {memory}: lower work_mem for the"
                " Odoo role, or the concurrency."
            )
    shared = setting_bytes(*settings.get("shared_buffers", (None, None)))
    if shared and ram_bytes:
        share = 100 * shared / ram_bytes
        if share > 40:
            lines.append(
                f"shared_buffers is {share:.0f} % of {memory}: on a host shared with Odoo that leaves little"
                " room"
                " for the workers and the page cache."
            )
        elif share < 5:
            lines.append(
                f"shared_buffers is {share:.1f} % of {memory}; about 25 % is the usual starting point on a"
                " dedicated host."
            )
    return lines

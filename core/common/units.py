"""The units memory_hygiene counts in: bytes (``MIB``, :func:`human_size`) and Odoo's naive-UTC datetimes."""

from datetime import datetime, timezone

KIB = 1024
MIB = 1024 * KIB


def human_size(size):
    """Bytes in the biggest unit that keeps a number above 1.

    >>> human_size(512), human_size(2048), human_size(3 * MIB), human_size(-5 * MIB * 1024)
    ('512 B', '2.0 KiB', '3.0 MiB', '-5.0 GiB')
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def naive_utc(timestamp=None):
    """A POSIX timestamp (default: now) as Odoo stores datetimes: a naive ``datetime`` in UTC.

    >>> naive_utc(0)
    datetime.datetime(1970, 1, 1, 0, 0)
    >>> naive_utc().tzinfo is None
    True
    """
    moment = (
        datetime.now(timezone.utc) if timestamp is None else datetime.fromtimestamp(timestamp, timezone.utc)
    )
    return moment.replace(tzinfo=None)

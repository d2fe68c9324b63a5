"""ORM cache statistics as ``SIGUSR1`` logs them, and the record cache by model and field.

The ORM layer (``compat.ormcache_stats``, ``compat.record_cache_counts``) reads
the figures from the running registry; this module only lays them out.

Per ``@ormcache`` method: entries in the cache, hits, misses, errors, time
spent computing the misses and the hit ratio; on 19.0 also the ratio and calls
counted once per transaction, and, when asked (what ``SIGUSR2`` adds), the
memory the entries hold.
"""

from collections import defaultdict

from ..common.units import human_size


def format_ormcache(dbname, rows, usage, *, with_size=False):
    """The ORM cache report of one database.

    ``rows``: dicts with ``cache``, ``method`` (``model.method`` or the
    method's qualified name), ``entries``, ``hit``, ``miss``, ``err``,
    ``gen_time``, ``ratio`` and, where the series counts them, ``tx_ratio``
    and ``tx_calls``; with ``with_size`` also ``size_sum`` and ``size_max``.
    ``usage``: ``(cache name, entries, capacity, bytes or 0)`` per LRU.

    >>> print(format_ormcache("db", [{"cache": "default", "method": "ir.model._get", "entries": 3,
    ...     "hit": 9, "miss": 3, "err": 0, "gen_time": 0.01, "ratio": 75.0}],
    ...     [("default", 3, 8192, 0)]))
    Caches stats:
    Database db:
     * default: 3/8192
    Details:
                   Cache Name,  Entry,   Hit,  Miss,   Err, Gen Time [s], Hit Ratio,  Method
                      default,      3,     9,     3,     0,        0.010,     75.0%,  ir.model._get
    """
    has_tx = any("tx_ratio" in row for row in rows)
    lines = ["Caches stats:", f"Database {dbname}:"]
    for name, entries, capacity, size in usage:
        lines.append(f" * {name}: {entries}/{capacity}" + (f" ({human_size(size)})" if size else ""))
    lines.append("Details:")
    head = f"{'Cache Name':>25},{'Entry':>7},"
    if with_size:
        head += f"{'Memory %':>10},{'Memory SUM':>12},{'Memory MAX':>12},"
    head += f"{'Hit':>6},{'Miss':>6},{'Err':>6},{'Gen Time [s]':>13},{'Hit Ratio':>10},"
    if has_tx:
        head += f"{'TX Hit Ratio':>13},{'TX Call':>8},"
    lines.append(head + "  Method")
    total = sum(row.get("size_sum", 0) for row in rows) or 1
    key = (
        (lambda r: (-r.get("size_sum", 0), r["method"]))
        if with_size
        else (lambda r: (r["cache"], r["method"]))
    )
    for row in sorted(rows, key=key):
        line = f"{row['cache']:>25},{row['entries']:7d},"
        if with_size:
            line += f"{row.get('size_sum', 0) / total * 100:9.1f}%,"
            line += f"{human_size(row.get('size_sum', 0)):>12},{human_size(row.get('size_max', 0)):>12},"
        line += (
            f"{row['hit']:6d},{row['miss']:6d},{row['err']:6d},{row['gen_time']:13.3f},{row['ratio']:9.1f}%,"
        )
        if has_tx:
            line += f"{row.get('tx_ratio', 0.0):12.1f}%,{row.get('tx_calls', 0):8d},"
        lines.append(line + "  " + row["method"])
    return "\n".join(lines)


def format_record_cache(counts, top_fields=5, top_models=30):
    """The record cache of one environment's transaction, by model, then its biggest fields.

    ``counts``: ``(model, field, cached values)``.

    >>> print(format_record_cache([("res.partner", "name", 40), ("res.partner", "email", 38),
    ...                            ("res.users", "login", 2)]))
    Record cache: 80 values in 3 fields of 2 models
    res.partner: 78 values (name 40, email 38)
    res.users: 2 values (login 2)
    """
    by_model = defaultdict(list)
    for model, field, count in counts:
        if count:
            by_model[model].append((count, field))
    total = sum(count for fields in by_model.values() for count, _f in fields)
    nb_fields = sum(len(fields) for fields in by_model.values())
    lines = [f"Record cache: {total} values in {nb_fields} fields of {len(by_model)} models"]
    ranked = sorted(by_model.items(), key=lambda item: (-sum(c for c, _f in item[1]), item[0]))
    for model, fields in ranked[:top_models]:
        fields.sort(key=lambda cf: (-cf[0], cf[1]))
        shown = ", ".join(f"{field} {count}" for count, field in fields[:top_fields])
        more = f", {len(fields) - top_fields} more" if len(fields) > top_fields else ""
        lines.append(f"{model}: {sum(c for c, _f in fields)} values ({shown}{more})")
    if len(ranked) > top_models:
        lines.append(f"... {len(ranked) - top_models} more models")
    return "\n".join(lines)

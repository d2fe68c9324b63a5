"""Is every Odoo process of this host below the warn share of its soft limit?

The share is of the figure Odoo compares with ``limit_memory_soft`` (the
virtual size on Linux), because that is what recycles a worker.
"""


def problems(processes, warn_share):
    """``[{"pid", "kind", "soft_limit_pct", "reason"}]`` of the processes at or above ``warn_share`` %.

    ``processes`` are figures with limits (:func:`sampler.with_limits`).
    Processes without a soft limit are never a problem.

    >>> problems([{"pid": 7, "kind": "http", "odoo_mb": 1900.0, "soft_limit_mb": 2048.0,
    ...            "soft_limit_pct": 92.77}], 90)[0]["reason"]
    'http worker 7 uses 1900 MiB, 92.8% of its soft limit of 2048 MiB (warn at 90%)'
    >>> problems([{"pid": 7, "kind": "http", "odoo_mb": 900.0, "soft_limit_mb": 2048.0,
    ...            "soft_limit_pct": 43.9}], 90)
    []
    """
    found = []
    for proc in processes:
        if proc["soft_limit_mb"] and proc["soft_limit_pct"] >= warn_share:
            found.append(
                {
                    "pid": proc["pid"],
                    "kind": proc["kind"],
                    "soft_limit_pct": proc["soft_limit_pct"],
                    "reason": (
                        f"{_label(proc['kind'])} {proc['pid']} uses {proc['odoo_mb']:.0f} MiB, "
                        f"{proc['soft_limit_pct']:.1f}% of its soft limit of {proc['soft_limit_mb']:.0f} MiB "
                        f"(warn at {warn_share:g}%)"
                    ),
                }
            )
    return found


def _label(kind):
    return {"http": "http worker", "cron": "cron worker", "gevent": "gevent process"}.get(
        kind, f"{kind} process"
    )

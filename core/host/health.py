"""Is every Odoo process of this host below the warn share of its soft limit, and has the machine
memory left?

The share is of the figure Odoo compares with ``limit_memory_soft`` (the
virtual size on Linux), because that is what recycles a worker. Every process
may sit below its own limit while the container is about to be OOM-killed:
the machine's available memory and memory pressure (:mod:`core.host.machine`) are
checked too.
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


def machine_problems(found, min_available_pct, max_pressure):
    """``[{"pid": None, "kind": "machine", "reason"}]`` when the machine ``found`` (a
    :class:`machine.Machine`) has less than ``min_available_pct`` % of its memory available, or
    a memory pressure (PSI some avg10, %) above ``max_pressure``. A threshold of 0 checks nothing;
    a figure the machine does not expose is never a problem.

    >>> from importlib import import_module  # core.host.machine, however this package is named
    >>> Figure, Machine = (getattr(import_module(".machine", __package__), n) for n in ("Figure", "Machine"))
    >>> GiB = 1024 ** 3
    >>> tight = Machine(Figure(2, "container CPU quota", "cpus"), Figure(4 * GiB, "container limit"),
    ...                 Figure(GiB / 4, "container limit minus its working set"),
    ...                 Figure(35.5, "container memory.pressure", "pct"))
    >>> for problem in machine_problems(tight, 10, 20):
    ...     print(problem["reason"].replace(" (container limit minus its working set)", ""))
    available memory is 256.0 MiB, 6.2% of 4.0 GiB (container limit): under 10%
    memory pressure is 35.50 % (container memory.pressure), above 20%: tasks wait for memory
    >>> machine_problems(tight, 0, 0)
    []
    """
    found_problems = []
    total, available = found.memory.value, found.available.value
    if min_available_pct and total and available is not None:
        share = 100 * available / total
        if share < min_available_pct:
            found_problems.append(
                f"available memory is {found.available}, {share:.1f}% of {found.memory}:"
                f" under {min_available_pct:g}%"
            )
    pressure = found.pressure.value
    if max_pressure and pressure is not None and pressure > max_pressure:
        found_problems.append(
            f"memory pressure is {found.pressure}, above {max_pressure:g}%: tasks wait for memory"
        )
    return [
        {"pid": None, "kind": "machine", "soft_limit_pct": None, "reason": reason}
        for reason in found_problems
    ]


def machine_figures(found):
    """The figures of the machine ``found`` as the health endpoint reports them (bytes, %, sources)."""
    return {
        "cpus": found.cpus.value,
        "cpus_source": found.cpus.source,
        "memory_bytes": found.memory.value,
        "memory_source": found.memory.source,
        "memory": str(found.memory),
        "available_bytes": found.available.value,
        "available_source": found.available.source,
        "available": str(found.available),
        "pressure_some_avg10": found.pressure.value,
        "pressure_source": found.pressure.source,
    }


def _label(kind):
    return {"http": "http worker", "cron": "cron worker", "gevent": "gevent process"}.get(
        kind, f"{kind} process"
    )

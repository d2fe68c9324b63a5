"""Prometheus text exposition of this host's Odoo processes (``prometheus_client``).

A fresh ``CollectorRegistry`` per call: nothing is kept between scrapes, and
nothing lands in prometheus_client's global registry.
"""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from ..common.units import MIB

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LABELS = ("host", "pid", "kind")

#: metric name, help, figure key, factor
_PROCESS_GAUGES = (
    ("memory_hygiene_process_rss_bytes", "Resident set size: what the OOM killer sees.", "rss_mb", MIB),
    ("memory_hygiene_process_uss_bytes", "Unique set size (only when sampling USS is on).", "uss_mb", MIB),
    (
        "memory_hygiene_process_limit_memory_bytes",
        "The size Odoo compares with its memory limits (virtual size on Linux).",
        "odoo_mb",
        MIB,
    ),
    (
        "memory_hygiene_process_soft_limit_bytes",
        "limit_memory_soft in force (0: none).",
        "soft_limit_mb",
        MIB,
    ),
    (
        "memory_hygiene_process_hard_limit_bytes",
        "limit_memory_hard in force (0: none).",
        "hard_limit_mb",
        MIB,
    ),
    (
        "memory_hygiene_process_soft_limit_ratio",
        "Share of the soft limit used (1 = recycled).",
        "soft_limit_pct",
        0.01,
    ),
    ("memory_hygiene_process_open_fds", "Open file descriptors.", "num_fds", 1),
    ("memory_hygiene_process_threads", "Threads.", "num_threads", 1),
    ("memory_hygiene_process_leak_suspect", "1 while the process is a leak suspect.", "leak_suspect", 1),
)


def render(host, processes, *, snapshot_age=None, recycles=None, helpers=None, machine=None):
    """``(bytes, content type)`` of the metrics of ``processes`` of ``host``.

    ``processes`` are figures with limits (``sampler.with_limits``) and
    ``leak_suspect``; a figure that is ``None`` is left out. ``snapshot_age``
    is the age in seconds of the host's newest snapshot, ``recycles`` the
    number of recycles recorded for it. ``helpers`` (figures of
    ``sampler.sample_helpers``) are summed per host: a ``wkhtmltopdf`` that
    comes and goes adds no series of its own. ``machine`` (a
    ``machine.Machine``) adds the memory, available memory, pressure and CPUs
    of the machine, the first with its ``source`` label.
    """
    registry = CollectorRegistry(auto_describe=False)
    for name, doc, key, factor in _PROCESS_GAUGES:
        gauge = Gauge(name, doc, _LABELS, registry=registry)
        for proc in processes:
            value = proc.get(key)
            if value is not None:
                gauge.labels(host, str(proc["pid"]), proc["kind"]).set(float(value) * factor)
    if snapshot_age is not None:
        age = Gauge(
            "memory_hygiene_snapshot_age_seconds",
            "Age of the newest snapshot of this host.",
            ["host"],
            registry=registry,
        )
        age.labels(host).set(snapshot_age)
    if recycles is not None:
        count = Gauge(
            "memory_hygiene_recycles",
            "Worker recycles recorded for this host (kept snapshots).",
            ["host"],
            registry=registry,
        )
        count.labels(host).set(recycles)
    if helpers is not None:
        count = Gauge(
            "memory_hygiene_helpers",
            "Programs the Odoo processes started (wkhtmltopdf, node...), not held to Odoo's limits.",
            ["host"],
            registry=registry,
        )
        count.labels(host).set(len(helpers))
        rss = Gauge(
            "memory_hygiene_helpers_rss_bytes",
            "Resident set size of those programs together.",
            ["host"],
            registry=registry,
        )
        rss.labels(host).set(sum(helper["rss_mb"] for helper in helpers) * MIB)
    if machine is not None:
        _machine_gauges(registry, host, machine)
    return generate_latest(registry), CONTENT_TYPE


def _machine_gauges(registry, host, machine):
    for name, doc, figure, factor in (
        ("memory_hygiene_machine_memory_bytes", "Memory this server may use.", machine.memory, 1),
        ("memory_hygiene_machine_available_bytes", "Memory still available to it.", machine.available, 1),
        (
            "memory_hygiene_machine_memory_pressure_ratio",
            "PSI some avg10: share of the last 10 s some task waited for memory.",
            machine.pressure,
            0.01,
        ),
        ("memory_hygiene_machine_cpus", "CPUs this server may use.", machine.cpus, 1),
    ):
        if figure.value is not None:
            gauge = Gauge(name, doc, ["host", "source"], registry=registry)
            gauge.labels(host, figure.source).set(float(figure.value) * factor)

from prometheus_client.parser import text_string_to_metric_families

from core.common.units import MIB
from core.host import metrics
from core.snapshot import sampler


def parse(body):
    return {
        (sample.name, sample.labels.get("pid")): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_every_process_is_listed_with_its_figures():
    options = {"limit_memory_soft": 1024 * MIB, "limit_memory_hard": 2048 * MIB}
    processes = [
        sampler.with_limits(
            {
                "pid": pid,
                "kind": kind,
                "rss_mb": 100.0,
                "odoo_mb": 512.0,
                "uss_mb": None,
                "num_fds": 12,
                "num_threads": 3,
                "leak_suspect": pid == 12,
            },
            options,
        )
        for pid, kind in ((10, "master"), (11, "http"), (12, "http"), (13, "cron"))
    ]
    body, content_type = metrics.render("host-a", processes, snapshot_age=42.0, recycles=3)
    assert content_type.startswith("text/plain")
    samples = parse(body)
    for pid in ("10", "11", "12", "13"):
        assert samples[("memory_hygiene_process_rss_bytes", pid)] == 100 * MIB
        assert samples[("memory_hygiene_process_soft_limit_ratio", pid)] == 0.5
        assert samples[("memory_hygiene_process_hard_limit_bytes", pid)] == 2048 * MIB
        assert samples[("memory_hygiene_process_open_fds", pid)] == 12
    assert samples[("memory_hygiene_process_leak_suspect", "12")] == 1
    assert samples[("memory_hygiene_process_leak_suspect", "11")] == 0
    assert ("memory_hygiene_process_uss_bytes", "11") not in samples, "no USS when not sampled"
    assert samples[("memory_hygiene_snapshot_age_seconds", None)] == 42
    assert samples[("memory_hygiene_recycles", None)] == 3


def test_each_call_has_its_own_registry():
    first, _ = metrics.render("h", [], snapshot_age=1.0)
    second, _ = metrics.render("h", [], snapshot_age=2.0)
    assert b'snapshot_age_seconds{host="h"} 1.0' in first
    assert b'snapshot_age_seconds{host="h"} 2.0' in second


def test_helpers_are_summed_per_host_without_a_series_each():
    helpers = [
        {"pid": pid, "owner_pid": 11, "command": "wkhtmltopdf", "rss_mb": 40.0, "vms_mb": 1400.0}
        for pid in (20, 21)
    ]
    samples = parse(metrics.render("host-a", [], helpers=helpers)[0])
    assert samples[("memory_hygiene_helpers", None)] == 2
    assert samples[("memory_hygiene_helpers_rss_bytes", None)] == 80 * MIB
    assert not [key for key in samples if key[1] in ("20", "21")]


def test_machine_figures_with_their_source():
    from core.host.machine import Figure, Machine

    found = Machine(
        Figure(2.0, "container CPU quota", "cpus"),
        Figure(4096 * MIB, "container limit"),
        Figure(1024 * MIB, "container limit minus its working set"),
        Figure(None, "not exposed by this kernel (no PSI)", "pct"),
    )
    body = metrics.render("host-a", [], machine=found)[0].decode()
    assert (
        'memory_hygiene_machine_memory_bytes{host="host-a",source="container limit"} 4.294967296e+09' in body
    )
    assert "memory_hygiene_machine_cpus" in body
    assert "pressure" not in body, "a figure the kernel does not expose is left out"

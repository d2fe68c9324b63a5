from core.common.units import MIB
from core.host import health
from core.snapshot import sampler

OPTIONS = {
    "limit_memory_soft": 1000 * MIB,
    "limit_memory_hard": 2000 * MIB,
    "limit_memory_soft_gevent": 500 * MIB,
}


def proc(pid, kind, odoo_mb):
    return sampler.with_limits({"pid": pid, "kind": kind, "odoo_mb": odoo_mb, "rss_mb": odoo_mb / 2}, OPTIONS)


def test_healthy_below_the_warn_share():
    assert health.problems([proc(1, "master", 200), proc(2, "http", 899)], warn_share=90) == []


def test_the_process_at_or_above_the_warn_share_is_named():
    found = health.problems([proc(2, "http", 300), proc(3, "cron", 950), proc(4, "gevent", 460)], 90)
    assert [(p["pid"], p["kind"]) for p in found] == [(3, "cron"), (4, "gevent")]
    assert "cron worker 3" in found[0]["reason"] and "95.0%" in found[0]["reason"]
    assert "500 MiB" in found[1]["reason"], "the gevent process has limits of its own"


def test_no_soft_limit_no_problem():
    unlimited = sampler.with_limits({"pid": 5, "kind": "http", "odoo_mb": 9999.0}, {})
    assert health.problems([unlimited], 1) == []

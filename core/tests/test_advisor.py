import re

from core.diagnostics import advisor
from core.process import limits

GiB = 1024**3
MiB = 1024**2

SOUND = {
    "workers": 5,
    "max_cron_threads": 1,
    "limit_memory_soft": 2 * GiB,
    "limit_memory_hard": int(2.5 * GiB),
    "limit_memory_soft_gevent": None,
    "limit_memory_hard_gevent": None,
    "limit_time_cpu": 60,
    "limit_time_real": 120,
    "limit_time_real_cron": -1,
    "proxy_mode": True,
}


def codes(findings, *levels):
    return {f.code for f in findings if f.level in levels}


def test_sound_configuration_passes():
    findings = advisor.advise(SOUND, cpu_count=4, ram_bytes=32 * GiB)
    assert codes(findings, "critical", "warning") == set()
    assert [f.level for f in findings] == ["ok"]


def test_hard_below_soft_and_too_many_workers_for_the_ram():
    bad = dict(SOUND, workers=9, limit_memory_soft=3 * GiB, limit_memory_hard=2 * GiB)
    findings = advisor.advise(bad, cpu_count=4, ram_bytes=16 * GiB)
    assert {"hard_not_above_soft", "limits_vs_ram"} <= codes(findings, "critical")
    ram = next(f for f in findings if f.code == "limits_vs_ram")
    # 0.6 x 16 GiB / 11 processes (9 HTTP, 1 cron, the gevent process)
    assert "limit_memory_soft = %d" % int(0.6 * 16 * GiB / 11) in ram.advice
    assert findings[0].level == "critical", "worst first"


def test_workers_vs_cpu_threaded_and_proxy_mode():
    assert "workers_vs_cpu" in codes(advisor.advise(dict(SOUND, workers=6), 2, 64 * GiB), "warning")
    assert "workers_vs_cpu" not in codes(advisor.advise(dict(SOUND, workers=5), 2, 64 * GiB), "warning")
    threaded = advisor.advise(dict(SOUND, workers=0), 2, 64 * GiB)
    assert "threaded" in codes(threaded, "warning")
    assert "workers = 5" in next(f for f in threaded if f.code == "threaded").advice
    assert "proxy_mode" in codes(advisor.advise(dict(SOUND, proxy_mode=False), 4, 32 * GiB), "warning")
    assert "proxy_mode" not in codes(advisor.advise(dict(SOUND, workers=0, proxy_mode=False), 4, 32 * GiB))


def test_gevent_limits_are_checked_on_their_own():
    bad = dict(SOUND, limit_memory_soft_gevent=GiB, limit_memory_hard_gevent=512 * MiB)
    assert "hard_not_above_soft_gevent" in codes(advisor.advise(bad, 4, 32 * GiB), "critical")
    assert limits.memory_limits(advisor.with_defaults(bad), "gevent") == (GiB, 512 * MiB)
    assert limits.memory_limits(advisor.with_defaults(bad), "http") == (2 * GiB, int(2.5 * GiB))


def test_advice_is_sized_on_the_virtual_size():
    live = {"http": [(200 * MiB, 900 * MiB), (220 * MiB, 940 * MiB)], "cron": [(180 * MiB, 880 * MiB)]}
    opts = dict(SOUND, workers=9, limit_memory_hard=4 * GiB, limit_memory_soft=3 * GiB)
    findings = advisor.advise(opts, cpu_count=4, ram_bytes=16 * GiB, live=live)
    gap = next(f for f in findings if f.code == "gap_http")
    assert "gap 710.0 MiB" in gap.title
    ram = next(f for f in findings if f.code == "limits_vs_ram")
    expected = int(0.6 * 16 * GiB / 11 + 710 * MiB)
    assert f"limit_memory_soft = {expected}" in ram.advice
    # the same limits without the gap: the advice is the bare RSS budget
    bare = next(f for f in advisor.advise(opts, 4, 16 * GiB) if f.code == "limits_vs_ram")
    assert f"limit_memory_soft = {int(0.6 * 16 * GiB / 11)}" in bare.advice


def test_live_process_above_its_soft_limit():
    live = {"http": [(300 * MiB, 2100 * MiB)]}
    findings = advisor.advise(dict(SOUND, limit_memory_soft=2000 * MiB), 4, 32 * GiB, live=live)
    assert "above_soft_http" in codes(findings, "warning")


def test_time_limits():
    assert "cpu_above_real" in codes(advisor.advise(dict(SOUND, limit_time_cpu=300), 4, 32 * GiB), "warning")
    assert "no_time_real" in codes(advisor.advise(dict(SOUND, limit_time_real=0), 4, 32 * GiB), "warning")
    assert "no_time_real_cron" in codes(
        advisor.advise(dict(SOUND, limit_time_real_cron=0), 4, 32 * GiB), "info"
    )


def advice_values(finding):
    """``{option: int}`` of the ``option = number`` pairs a finding advises."""
    return {key: int(value) for key, value in re.findall(r"(\w+) = (\d+)", finding.advice)}


def assert_self_consistent(opts, *host, **kwargs):
    """Applying every advised number gives a configuration with no critical or warning finding."""
    applied = dict(opts)
    for finding in advisor.advise(opts, *host, **kwargs):
        if finding.level in ("critical", "warning"):
            applied.update(advice_values(finding))
    again = advisor.advise(applied, *host, **kwargs)
    assert codes(again, "critical", "warning") == set(), [(f.code, f.advice) for f in again]
    return applied


def test_hard_just_above_soft():
    close = dict(SOUND, limit_memory_soft=int(1.26 * GiB), limit_memory_hard=int(1.30 * GiB))
    findings = advisor.advise(close, 4, 32 * GiB)
    finding = next(f for f in findings if f.code == "hard_close_to_soft")
    assert finding.level == "warning"
    assert "MemoryError" in finding.advice
    assert advice_values(finding)["limit_memory_hard"] == int(1.26 * GiB / 0.8)
    assert_self_consistent(close, 4, 32 * GiB)
    gevent = dict(SOUND, limit_memory_soft_gevent=GiB, limit_memory_hard_gevent=int(1.05 * GiB))
    assert "hard_close_to_soft_gevent" in codes(advisor.advise(gevent, 4, 32 * GiB), "warning")


def test_hard_limit_below_what_a_pdf_report_needs():
    low = dict(SOUND, limit_memory_soft=800 * MiB, limit_memory_hard=1000 * MiB)
    finding = next(f for f in advisor.advise(low, 4, 32 * GiB) if f.code == "hard_below_report_floor")
    assert "wkhtmltopdf" in finding.advice
    # 1 CPU, 512 MiB, 2 workers: no hard limit fits, the advice is more memory, never a lower hard limit
    tiny = dict(
        SOUND, workers=2, max_cron_threads=2, limit_memory_soft=288 * MiB, limit_memory_hard=360 * MiB
    )
    findings = advisor.advise(tiny, 1, 512 * MiB)
    ram = next(f for f in findings if f.code == "limits_vs_ram")
    assert "at least 2.7 GiB of memory" in ram.advice
    assert "limit_memory_hard" not in ram.advice
    assert "hard_below_report_floor" in codes(findings, "warning")
    # ... and that much memory is enough for one worker with the floor
    assert_self_consistent(dict(tiny, workers=1), 1, int(2.74 * GiB))
    # 2.5 GiB and 4 workers: fewer workers, with a hard limit at the floor
    small = dict(SOUND, workers=4, max_cron_threads=1)
    ram = next(f for f in advisor.advise(small, 2, int(2.5 * GiB)) if f.code == "limits_vs_ram")
    values = advice_values(ram)
    assert values["workers"] < 4 and values["limit_memory_hard"] == 1536 * MiB
    assert "More workers need more memory" in ram.advice
    assert_self_consistent(small, 2, int(2.5 * GiB))


def test_a_4_gib_2_cpu_container_on_a_large_host():
    sized_for_the_host = dict(SOUND, workers=65, max_cron_threads=2, limit_memory_soft=2 * GiB)
    findings = advisor.advise(
        sized_for_the_host, 2, 4 * GiB, cpu_source="container CPU quota", ram_source="container limit"
    )
    text = " ".join(f.title + " " + f.advice for f in findings)
    assert "4.0 GiB (container limit)" in text and "2 CPUs (container CPU quota)" in text
    ram = next(f for f in findings if f.code == "limits_vs_ram")
    values = advice_values(ram)
    assert values["workers"] <= 5
    assert values["limit_memory_hard"] >= 1536 * MiB
    assert (values["workers"] + 2 + 1) * values["limit_memory_soft"] <= 0.6 * 4 * GiB + MiB
    applied = assert_self_consistent(sized_for_the_host, 2, 4 * GiB)
    assert applied["workers"] == values["workers"]


def test_gevent_process_shares_the_memory_with_its_own_limits():
    assert advisor.processes({"workers": 8, "max_cron_threads": 1}) == 10
    # 5 + 1 workers at 2 GiB fit 13 GiB; the gevent process at its own 2 GiB does not
    findings = advisor.advise(SOUND, 4, 13 * GiB)
    assert "limits_vs_ram" in codes(findings, "critical")
    small_gevent = dict(SOUND, limit_memory_soft_gevent=512 * MiB, limit_memory_hard_gevent=GiB)
    ram = [f for f in advisor.advise(small_gevent, 4, 13 * GiB) if f.code == "limits_vs_ram"]
    assert not [f for f in ram if f.level == "critical"]
    gevent_floor = next(
        f for f in advisor.advise(small_gevent, 4, 32 * GiB) if f.code == "hard_below_report_floor_gevent"
    )
    assert "limit_memory_hard_gevent" in gevent_floor.advice


def test_threaded_mode_time_limits():
    threaded = dict(SOUND, workers=0, limit_time_real=120, limit_time_real_cron=0)
    findings = advisor.advise(threaded, 4, 32 * GiB)
    cron = next(f for f in findings if f.code == "threaded_cron_time")
    assert cron.level == "warning"
    assert "limit_time_real_cron = 3600" in cron.advice
    assert "threaded_time_limits" in codes(findings, "info")
    assert "no_time_real_cron" not in codes(findings, "info"), "0 means limit_time_real for threads"
    assert "no_time_real" in codes(advisor.advise(dict(threaded, limit_time_real=0), 4, 32 * GiB), "warning")
    fixed = dict(threaded, limit_time_real_cron=3600)
    assert "threaded_cron_time" not in codes(advisor.advise(fixed, 4, 32 * GiB), "warning")
    assert "cpu_above_real" not in codes(
        advisor.advise(dict(fixed, limit_time_cpu=600), 4, 32 * GiB), "warning"
    )


def test_connections_against_postgresql():
    pg16 = {"max_connections": 100, "superuser_reserved_connections": 3, "reserved_connections": 2}
    findings = advisor.advise(dict(SOUND, db_maxconn=64), 4, 32 * GiB, postgres=pg16)
    finding = next(f for f in findings if f.code == "connections")
    assert finding.level == "warning"
    assert "(5 HTTP + 1 cron workers) x db_maxconn 64 + gevent 64" in finding.title
    assert "minus 5 reserved slot(s) = 95" in finding.title
    # (95 - 64 for the gevent process) // 6 pooled workers
    assert advice_values(finding)["db_maxconn"] == 5
    assert "Connection Pool Is Full" in finding.advice
    ok = dict(SOUND, db_maxconn=8, db_maxconn_gevent=32)
    assert "connections" not in codes(advisor.advise(ok, 4, 32 * GiB, postgres=pg16))
    crowded = dict(SOUND, workers=60, db_maxconn=64)
    tight = {"max_connections": 100, "superuser_reserved_connections": 3}
    assert "connections" in codes(advisor.advise(crowded, 40, 512 * GiB, postgres=tight), "critical")
    assert_self_consistent(dict(SOUND, db_maxconn=64, db_maxconn_gevent=16), 4, 32 * GiB, postgres=pg16)


def test_limit_time_worker_cron_of_19():
    assert not {"no_cron_worker_age", "cron_worker_age"} & codes(advisor.advise(SOUND, 4, 32 * GiB), "info")
    never = advisor.advise(dict(SOUND, limit_time_worker_cron=0), 4, 32 * GiB)
    assert "limit_time_worker_cron = 3600" in next(f for f in never if f.code == "no_cron_worker_age").advice
    assert "cron_worker_age" in codes(
        advisor.advise(dict(SOUND, limit_time_worker_cron=3600), 4, 32 * GiB), "info"
    )


def test_odoo_documented_sample_for_4_cpus():
    """The configuration sample of Odoo's deployment documentation (4 CPUs, 60 users)."""
    sample = {
        "limit_memory_hard": 2684354560,
        "limit_memory_soft": 2147483648,
        "limit_request": 8192,
        "limit_time_cpu": 600,
        "limit_time_real": 1200,
        "max_cron_threads": 1,
        "workers": 8,
        "proxy_mode": True,
    }
    findings = advisor.advise(sample, 4, 32 * GiB)
    assert codes(findings, "critical", "warning") == set(), [(f.code, f.title) for f in findings]
    # On 24 GiB it gets one warning, that says why and what to do.
    findings = advisor.advise(sample, 4, 24 * GiB)
    assert codes(findings, "critical") == set()
    [warning] = [f for f in findings if f.level == "warning"]
    assert warning.code == "limits_vs_ram"
    assert "10 processes (8 HTTP + 1 cron workers and the gevent process)" in warning.advice
    assert "limit_memory_soft =" in warning.advice

from core import advisor

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
    assert {"hard_not_above_soft", "hard_vs_ram"} <= codes(findings, "critical")
    ram = next(f for f in findings if f.code == "hard_vs_ram")
    # 0.6 x 16 GiB / 10 processes
    assert "limit_memory_hard = %d" % int(0.6 * 16 * GiB / 10) in ram.advice
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
    assert advisor.limits_for(bad, "gevent") == (GiB, 512 * MiB)
    assert advisor.limits_for(bad, "http") == (2 * GiB, int(2.5 * GiB))


def test_advice_is_sized_on_the_virtual_size():
    live = {"http": [(200 * MiB, 900 * MiB), (220 * MiB, 940 * MiB)], "cron": [(180 * MiB, 880 * MiB)]}
    opts = dict(SOUND, workers=9, limit_memory_hard=4 * GiB, limit_memory_soft=3 * GiB)
    findings = advisor.advise(opts, cpu_count=4, ram_bytes=16 * GiB, live=live)
    gap = next(f for f in findings if f.code == "gap_http")
    assert "gap 710.0 MiB" in gap.title
    ram = next(f for f in findings if f.code == "hard_vs_ram")
    expected = int(0.6 * 16 * GiB / 10 + 710 * MiB)
    assert f"limit_memory_hard = {expected}" in ram.advice
    # the same limits without the gap: the advice is the bare RSS budget
    bare = next(f for f in advisor.advise(opts, 4, 16 * GiB) if f.code == "hard_vs_ram")
    assert f"limit_memory_hard = {int(0.6 * 16 * GiB / 10)}" in bare.advice


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

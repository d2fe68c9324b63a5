import os

import psutil

from core.common.units import MIB
from core.process import limits


def test_odoo_memory_is_the_virtual_size_on_linux():
    info = psutil.Process(os.getpid()).memory_info()
    measured = limits.odoo_memory()
    assert abs(measured - info.vms) < 64 * MIB
    assert measured > limits.rss()


def test_cron_budget_from_the_server_limits():
    config = {"limit_memory_soft": 1000 * MIB, "limit_time_real_cron": 300, "limit_time_real": 60}
    assert limits.cron_budget(config) == (240.0, 800.0)
    assert limits.cron_budget(config, memory_share=50, time_share=10) == (30.0, 500.0)


def test_cron_time_limit_falls_back_to_the_request_limit():
    # limit_time_real_cron = -1 means "as limit_time_real"; 0 means no limit.
    base = {"limit_memory_soft": 0, "limit_time_real": 100}
    assert limits.cron_budget({**base, "limit_time_real_cron": -1}) == (80.0, None)
    assert limits.cron_budget({**base, "limit_time_real_cron": 0}) == (None, None)

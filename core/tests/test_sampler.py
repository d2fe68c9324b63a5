import os
import subprocess
import sys
import time

import psutil
import pytest

from core.common.units import MIB
from core.process import limits, tree
from core.snapshot import sampler


def test_sample_of_this_process():
    figures = sampler.sample(psutil.Process(), uss=True)
    info = psutil.Process().memory_info()
    assert figures["pid"] == os.getpid()
    assert figures["rss_mb"] == pytest.approx(info.rss / MIB, rel=0.2)
    assert figures["vms_mb"] >= figures["rss_mb"]
    assert figures["odoo_mb"] == pytest.approx(figures["vms_mb"]), "Linux: Odoo compares the virtual size"
    assert 0 < figures["uss_mb"] <= figures["rss_mb"]
    assert figures["num_fds"] > 0 and figures["num_threads"] >= 1
    assert figures["cpu_seconds"] > 0
    assert 0 <= figures["age_seconds"] < time.time() - psutil.boot_time() + 1


def test_uss_only_when_asked():
    assert sampler.sample(psutil.Process())["uss_mb"] is None


def test_sample_of_a_process_that_is_gone_raises():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    process = psutil.Process(child.pid)
    child.kill()
    child.wait()
    with pytest.raises(psutil.NoSuchProcess):
        sampler.sample(process)


def test_sample_tree_of_a_single_process_server():
    found = sampler.sample_tree(os.getpid(), "threaded")
    assert [(f["pid"], f["kind"]) for f in found] == [(os.getpid(), tree.THREADED)]


def test_limits_and_share():
    options = {
        "limit_memory_soft": 2048 * MIB,
        "limit_memory_hard": 2560 * MIB,
        "limit_memory_soft_gevent": False,
        "limit_memory_hard_gevent": 3072 * MIB,
    }
    assert limits.memory_limits(options, "http") == (2048 * MIB, 2560 * MIB)
    assert limits.memory_limits(options, "gevent") == (2048 * MIB, 3072 * MIB), (
        "unset gevent limit: the common one"
    )
    figures = sampler.with_limits({"kind": "cron", "odoo_mb": 512.0}, options)
    assert figures["soft_limit_pct"] == 25.0
    assert sampler.with_limits({"kind": "http", "odoo_mb": 512.0}, {})["soft_limit_pct"] == 0.0

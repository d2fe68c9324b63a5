import os
import subprocess
import sys

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


_SIGXCPU_CHILD = """
import resource, signal, sys
from core.process import limits

def handler(signum, frame):
    # What was left of the limit set below (the kernel adds a second to the soft limit when it signals).
    print(soft - limits.cpu_time(), flush=True)
    sys.exit(0)

signal.signal(signal.SIGXCPU, handler)
hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
soft = int(limits.cpu_time()) + 2
resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
assert limits.cpu_seconds_left() > 1
while True:
    left = limits.cpu_seconds_left()
    assert left is not None
"""


def test_cpu_seconds_left_is_zero_when_the_kernel_sends_sigxcpu():
    """What is "left" is left by the kernel's count: SIGXCPU never comes while seconds are said to be left.

    Odoo's cron worker dies of SIGXCPU; a batch budget read from getrusage was
    killed with seconds "left" on a loaded machine, because the kernel counts
    RLIMIT_CPU in ticks (the PROF clock), not in the scheduler's runtime.
    """
    if not hasattr(__import__("signal"), "SIGXCPU"):
        return
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run(
        [sys.executable, "-c", _SIGXCPU_CHILD],
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) <= 0.0, f"SIGXCPU came with {done.stdout.strip()} s said to be left"

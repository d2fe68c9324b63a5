"""The machine seen from fixture folders: cgroup v2, v1, none, unlimited."""

import os

import pytest

from core.host import machine

GiB = 1024**3
HOST_RAM_KB = 64 * 1024 * 1024  # a 64 GiB host


def write(root, path, text):
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(text)


def files(root, contents):
    for path, text in contents.items():
        write(root, path, text)


def host(root, available_kb=40 * 1024 * 1024, psi=None):
    write(
        root,
        "proc/meminfo",
        f"MemTotal: {HOST_RAM_KB} kB\nMemFree: 1000 kB\nMemAvailable: {available_kb} kB\n",
    )
    if psi is not None:
        write(root, "proc/pressure/memory", f"some avg10={psi} avg60=0.00 avg300=0.00 total=1\n")


@pytest.fixture
def v2(tmp_path):
    """A 4 GiB / 2 CPU container (cgroup v2, its own namespace) on a 32-CPU, 64 GiB host."""
    host(tmp_path, psi=0.5)
    files(
        tmp_path,
        {
            "proc/self/cgroup": "0::/\n",
            "sys/fs/cgroup/cgroup.controllers": "cpu memory io\n",
            "sys/fs/cgroup/memory.max": f"{4 * GiB}\n",
            "sys/fs/cgroup/memory.current": f"{3 * GiB}\n",
            "sys/fs/cgroup/memory.stat": f"anon {2 * GiB}\ninactive_file {GiB // 2}\n",
            "sys/fs/cgroup/cpu.max": "200000 100000\n",
            "sys/fs/cgroup/memory.pressure": "some avg10=12.50 avg60=3.00 avg300=1.00 total=9\n",
        },
    )
    return tmp_path


def test_cgroup_v2_container(v2):
    found = machine.read(str(v2), affinity=32, host_cpus=32)
    assert found.cpus == machine.Figure(2.0, machine.CPU_QUOTA, "cpus")
    assert found.memory == machine.Figure(4 * GiB, machine.CONTAINER_LIMIT)
    assert str(found.memory) == "4.0 GiB (container limit)"
    # 4 GiB - (3 GiB used - 0.5 GiB of inactive page cache)
    assert found.available == machine.Figure(1.5 * GiB, machine.CONTAINER_AVAILABLE)
    assert found.pressure == machine.Figure(12.5, machine.CONTAINER_PRESSURE, "pct"), "the higher one"
    assert found.in_container


def test_cgroup_v2_nested_limits_the_smallest_wins(tmp_path):
    """A host (no cgroup namespace) whose slice limits memory and whose service limits CPU."""
    host(tmp_path)
    files(
        tmp_path,
        {
            "proc/self/cgroup": "0::/system.slice/odoo.service\n",
            "sys/fs/cgroup/cgroup.controllers": "cpu memory\n",
            "sys/fs/cgroup/system.slice/memory.max": f"{8 * GiB}\n",
            "sys/fs/cgroup/system.slice/cpu.max": "max 100000\n",
            "sys/fs/cgroup/system.slice/odoo.service/memory.max": "max\n",
            "sys/fs/cgroup/system.slice/odoo.service/cpu.max": "150000 100000\n",
            "sys/fs/cgroup/system.slice/odoo.service/memory.current": f"{GiB}\n",
        },
    )
    found = machine.read(str(tmp_path), affinity=8, host_cpus=8)
    assert found.memory == machine.Figure(8 * GiB, machine.CONTAINER_LIMIT)
    assert found.cpus == machine.Figure(1.5, machine.CPU_QUOTA, "cpus")
    assert str(found.cpus) == "1.5 CPUs (container CPU quota)"
    assert found.available.value == 7 * GiB


def test_cgroup_v2_unlimited_is_the_host(tmp_path):
    host(tmp_path, available_kb=10 * 1024 * 1024)
    files(
        tmp_path,
        {
            "proc/self/cgroup": "0::/\n",
            "sys/fs/cgroup/cgroup.controllers": "cpu memory\n",
            "sys/fs/cgroup/memory.max": "max\n",
            "sys/fs/cgroup/cpu.max": "max 100000\n",
        },
    )
    found = machine.read(str(tmp_path), affinity=4, host_cpus=4)
    assert found.memory == machine.Figure(64 * GiB, machine.HOST_RAM)
    assert found.cpus == machine.Figure(4.0, machine.HOST_CPUS, "cpus")
    assert found.available == machine.Figure(10 * GiB, machine.HOST_AVAILABLE)
    assert found.pressure == machine.Figure(None, machine.NO_PRESSURE, "pct")
    assert not found.in_container


def test_cgroup_v1_container(tmp_path):
    host(tmp_path, psi=1.25)
    write(tmp_path, "proc/self/cgroup", "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n")
    # Inside the container the controllers are mounted at its own cgroup: /docker/abc is not there.
    files(
        tmp_path,
        {
            "sys/fs/cgroup/memory/memory.limit_in_bytes": f"{4 * GiB}\n",
            "sys/fs/cgroup/memory/memory.usage_in_bytes": f"{GiB}\n",
            "sys/fs/cgroup/memory/memory.stat": f"cache 100\ntotal_inactive_file {GiB // 4}\n",
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        },
    )
    found = machine.read(str(tmp_path), affinity=32, host_cpus=32)
    assert found.memory == machine.Figure(4 * GiB, machine.CONTAINER_LIMIT)
    assert found.cpus == machine.Figure(2.0, machine.CPU_QUOTA, "cpus")
    assert found.available.value == 4 * GiB - (GiB - GiB // 4)
    assert found.pressure == machine.Figure(1.25, machine.HOST_PRESSURE, "pct")


def test_cgroup_v1_unlimited(tmp_path):
    host(tmp_path)
    files(
        tmp_path,
        {
            "proc/self/cgroup": "5:memory:/\n4:cpu,cpuacct:/\n",
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        },
    )
    found = machine.read(str(tmp_path), affinity=2, host_cpus=16)
    assert found.memory.source == machine.HOST_RAM
    assert found.cpus == machine.Figure(2.0, machine.CPU_AFFINITY, "cpus"), "taskset / cpuset"


def test_no_cgroup_at_all(tmp_path):
    host(tmp_path)
    found = machine.read(str(tmp_path), affinity=4, host_cpus=4)
    assert found.memory == machine.Figure(64 * GiB, machine.HOST_RAM)
    assert found.cpus.source == machine.HOST_CPUS
    assert found.available.source == machine.HOST_AVAILABLE


def test_nothing_readable_never_raises(tmp_path):
    found = machine.read(str(tmp_path / "missing"), affinity=1, host_cpus=1)
    assert found.memory == machine.Figure(None, machine.UNKNOWN)
    assert found.available.value is None
    assert found.cpus.value == 1


def test_this_host():
    found = machine.read()
    assert found.memory.value and found.memory.value > 0
    assert found.cpus.value >= 1
    assert found.cpus.value <= os.cpu_count()

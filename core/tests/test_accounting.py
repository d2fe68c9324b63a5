"""The accounting's readings: the same figures as psutil's, and growth charged to the run that kept it."""

import tempfile

import psutil
import pytest

from core.profiler import accounting

MIB = accounting.MIB


def test_memory_and_fds_agree_with_psutil():
    process = psutil.Process()
    rss, vms = accounting.memory()
    info = process.memory_info()
    assert abs(rss - info.rss) < 16 * MIB
    assert abs(vms - info.vms) < 64 * MIB
    fds = accounting.fd_count()
    if fds is not None:
        # Both count the descriptor that lists the folder.
        assert fds == process.num_fds()


def test_an_open_file_is_counted():
    before = accounting.read()
    with tempfile.TemporaryFile() as kept:
        after = accounting.read()
        assert kept.fileno() >= 0
    if before["fds"] is None:
        pytest.skip("this OS does not tell a process's open files")
    assert accounting.charge(before, after)["fds_after"] - before["fds"] == 1


@pytest.mark.skipif(accounting.heap_in_use() is None, reason="no mallinfo2 in this C library")
def test_interleaved_runs_charge_the_one_that_keeps():
    """A run that keeps 1 MiB in memory freed by its neighbour is charged with it; the neighbour is not."""
    kept, growth = [], {"keeps": 0, "frees": 0}

    def keeps():
        kept.append(bytearray(MIB))

    def frees():
        return len(bytearray(3 * MIB))

    for _ in range(10):
        for name, run in (("keeps", keeps), ("frees", frees)):
            before = accounting.read()
            run()
            growth[name] += accounting.charge(before, accounting.read())["growth"]
    assert accounting.growth_shares(growth)["keeps"] >= 90.0
    assert growth["keeps"] >= 9 * MIB

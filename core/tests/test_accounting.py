"""The accounting's readings: the same figures as psutil's, and growth charged to the run that kept it."""

import os
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


@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.exists("/proc/self/statm"), reason="Linux only")
def test_a_forked_process_reads_its_own_size():
    """The statm descriptor is the reading process's own, never the one a forked worker inherited."""
    accounting.memory()  # the parent opens its descriptor first
    parent_rss, _vms = accounting.memory()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if not pid:  # the child: 64 MiB touched, then its own reading
        try:
            grown = bytearray(64 * MIB)
            grown[::4096] = b"x" * len(grown[::4096])
            os.write(write_end, str(accounting.memory()[0]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child_rss = int(os.read(read_end, 64))
    os.close(read_end)
    os.waitpid(pid, 0)
    assert child_rss >= parent_rss + 48 * MIB, (parent_rss, child_rss)


def test_a_reading_without_the_heap_accounts_without_charging():
    before, after = accounting.read(heap=False), accounting.read(heap=False)
    assert before["heap"] is None and before["heap_skipped"]
    run = accounting.charge(before, after)
    assert run["rss_after"] > 0 and run["blocks_growth"] is not None
    if accounting.heap_readable():
        assert run["growth"] is None and run["heap_growth"] is None
        assert accounting.charge(accounting.read(), accounting.read())["growth"] is not None

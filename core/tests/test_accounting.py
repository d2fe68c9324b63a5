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
    read_end, write_end = os.pipe()
    pid = os.fork()
    if not pid:  # the child: 64 MiB touched, then its reading next to a fresh one of its own statm
        try:
            grown = bytearray(64 * MIB)
            grown[::4096] = b"x" * len(grown[::4096])
            with open("/proc/self/statm", "rb") as statm:
                fresh = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            os.write(write_end, f"{accounting.memory()[0]} {fresh}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    read_rss, fresh_rss = (int(figure) for figure in os.read(read_end, 64).split())
    os.close(read_end)
    os.waitpid(pid, 0)
    assert abs(read_rss - fresh_rss) < 16 * MIB, (read_rss, fresh_rss)


def test_a_reading_without_the_heap_accounts_without_charging():
    before, after = accounting.read(heap=False), accounting.read(heap=False)
    assert before["heap"] is None
    run = accounting.charge(before, after)
    assert run["rss_after"] > 0 and run["blocks_growth"] is not None
    assert run["heap_growth"] is None
    if accounting.heap_readable():
        assert before["heap_skipped"] and run["growth"] is None
        assert accounting.charge(accounting.read(), accounting.read())["growth"] is not None
    else:  # no mallinfo2: RSS growth is the charge, on every run
        assert not before["heap_skipped"]
        assert run["growth"] == run["rss_after"] - run["rss_before"]


def test_without_mallinfo2_every_run_is_charged_with_rss(monkeypatch):
    monkeypatch.setattr(accounting, "_mallinfo2", None)
    run = accounting.charge(accounting.read(heap=False), accounting.read(heap=False))
    assert run["growth"] == run["rss_after"] - run["rss_before"]

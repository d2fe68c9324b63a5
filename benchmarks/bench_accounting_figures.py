"""Which memory figure can charge a run with its own growth, and what reading it costs (issue 11).

The accounting charges each run with the growth of the bytes in use in the C
heap (glibc's ``mallinfo2()``) plus Python's blocks (``core/profiler/accounting.py``).
``mallinfo2()`` walks the allocator's free lists, so it costs more the more
fragmented the heap is. This script measures the cheaper figures the kernel
gives next to it, on the case the verdict must get right: in one process, a
run that keeps 1 MiB alternates with one that allocates 3 MiB and frees it
(2 x 5 runs each, 20 times, in a heap fragmented beforehand as a worker's is).
For each figure: the share of the growth charged to the keeping run (>= 90 %
is right; the verdict test asks for it), and the median cost of one reading.

Usage, with any Python of the project (no Odoo)::

    python benchmarks/bench_accounting_figures.py

It always exits 0.
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import accounting  # noqa: E402 - the addon's folder is put on the path first

MIB = accounting.MIB
PAGE = os.sysconf("SC_PAGE_SIZE")
RUNS = 5
TRIALS = 20


def statm():
    with open("/proc/self/statm", "rb") as handle:
        size, resident, shared, _text, _lib, data = handle.read().split()[:6]
    return int(size), int(resident), int(shared), int(data)


def status_field(name):
    with open("/proc/self/status", "rb") as handle:
        for line in handle:
            if line.startswith(name):
                return int(line.split()[1]) * 1024
    return 0


def rollup_anonymous():
    with open("/proc/self/smaps_rollup", "rb") as handle:
        for line in handle:
            if line.startswith(b"Anonymous:"):
                return int(line.split()[1]) * 1024
    return 0


#: name: (reading in bytes, what it is)
FIGURES = {
    "mallinfo2 + blocks (the accounting's)": lambda: (
        accounting.heap_in_use() + sys.getallocatedblocks() * accounting.BLOCK_BYTES
    ),
    "RSS (/proc/self/statm)": lambda: statm()[1] * PAGE,
    "RSS anonymous (statm resident - shared)": lambda: (statm()[1] - statm()[2]) * PAGE,
    "RssAnon (/proc/self/status)": lambda: status_field(b"RssAnon:"),
    "VmData (statm data)": lambda: statm()[3] * PAGE,
    "Anonymous (/proc/self/smaps_rollup)": rollup_anonymous,
}

KEPT = []


def keeps():
    KEPT.append(bytearray(MIB))


def frees():
    return len(bytearray(3 * MIB))


def noise():
    return len([str(i) * 3 for i in range(20_000)])


def share_of_the_keeping_run():
    """``{figure: % of the growth charged to the keeping run}`` over one trial."""
    KEPT.clear()
    growth = {name: {"keeps": 0, "frees": 0} for name in FIGURES}
    for _ in range(2 * RUNS):
        for label, run in (("keeps", keeps), ("frees", frees)):
            noise()  # what a worker does between two runs
            before = {name: read() for name, read in FIGURES.items()}
            run()
            for name, read in FIGURES.items():
                growth[name][label] += read() - before[name]
    return {name: accounting.growth_shares(by_run).get("keeps", 0.0) for name, by_run in growth.items()}


def cost_us(read, times=300):
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        read()
        spent.append(time.perf_counter() - started)
    return statistics.median(spent) * 1e6


def main():
    if accounting.heap_in_use() is None:
        print("no mallinfo2 in this C library: nothing to compare")
        return 0
    # A worker's heap: many small blocks, a third of them freed.
    fragments = [bytearray(i % 3000 + 10) for i in range(200_000)]
    del fragments[::3]
    shares = [share_of_the_keeping_run() for _ in range(TRIALS)]
    info = accounting._mallinfo2()  # noqa: SLF001 - the same call, for its count of free chunks
    print(
        f"Python {sys.version.split()[0]}: a run keeping 1 MiB alternating with one freeing 3 MiB, "
        f"{2 * RUNS} runs each, {TRIALS} trials; the heap has {info.ordblks + info.smblks} free chunks "
        "(what mallinfo2 walks)."
    )
    print()
    print("| figure | share charged to the keeping run (min / median) | trials < 90 % | one reading (us) |")
    print("|---|---:|---:|---:|")
    for name, read in FIGURES.items():
        values = [trial[name] for trial in shares]
        print(
            f"| {name} | {min(values):.0f} % / {statistics.median(values):.0f} % "
            f"| {sum(value < 90 for value in values)} of {TRIALS} | {cost_us(read):.0f} |"
        )
    del fragments
    return 0


if __name__ == "__main__":
    sys.exit(main())

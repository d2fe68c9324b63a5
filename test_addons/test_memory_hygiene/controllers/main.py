import json
import mmap
import os
import subprocess
import sys
import time

import psutil

from odoo import http
from odoo.http import request

#: Address space a worker holds on purpose, until it is recycled.
_HELD = []
#: Helper programs a worker started (what wkhtmltopdf is to a report), kept to be reaped.
_HELPERS = []

#: A helper that reserves address space without touching it, like wkhtmltopdf (GiB of virtual
#: size, MiB of RSS), then waits for its end (bounded, should nobody end it).
_HELPER_CODE = (
    "import mmap, sys, time\n"
    "area = mmap.mmap(-1, int(sys.argv[1]) * 1024 * 1024, flags=mmap.MAP_PRIVATE)\n"
    "print('ready', flush=True)\n"
    "time.sleep(300)\n"
)


class TestMemoryHygieneController(http.Controller):
    """Routes the real-server tests drive: which worker answered, and memory held on purpose."""

    @http.route("/test_memory_hygiene/pid", type="http", auth="none", save_session=False)
    def pid(self, sleep=0, **kwargs):
        time.sleep(min(float(sleep), 10))  # keeps this worker busy: the next request goes to another
        return _json({"pid": os.getpid()})

    @http.route("/test_memory_hygiene/wait", type="http", auth="none", save_session=False)
    def wait(self, path, timeout=120, **kwargs):
        """A slow route: answers once ``path`` exists (bounded by ``timeout`` seconds)."""
        deadline = time.monotonic() + min(float(timeout), 300)
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.2)
        return _json({"pid": os.getpid()})

    @http.route("/test_memory_hygiene/burn", type="http", auth="none", save_session=False)
    def burn(self, seconds=60, **kwargs):
        """Burn CPU for ``seconds`` of this process's CPU time (what a runaway computation does)."""
        start = time.process_time()
        while time.process_time() - start < min(float(seconds), 300):
            sum(range(10000))
        return _json({"pid": os.getpid()})

    @http.route("/test_memory_hygiene/allocate", type="http", auth="none", save_session=False)
    def allocate(self, target_mb, pid=None, **kwargs):
        """Reserve address space until this worker's virtual size is ``target_mb``; 409 if it is not ``pid``.

        VMS is what ``limit_memory_soft`` is compared with. The mapping is never touched: RSS stays,
        and no CPU goes to faulting a GiB of pages in (``bytearray(n)`` zeroes every page: over the
        2 s of ``limit_time_cpu`` that TestLifecycleServer sets, on a slow host).
        """
        if pid and int(pid) != os.getpid():
            return _json({"pid": os.getpid()}, status=409)
        missing = float(target_mb) - psutil.Process().memory_info().vms / 1024 / 1024
        if missing > 0:
            _HELD.append(mmap.mmap(-1, int(missing * 1024 * 1024), flags=mmap.MAP_PRIVATE))
        return _json({"pid": os.getpid(), "vms_mb": psutil.Process().memory_info().vms / 1024 / 1024})

    @http.route("/test_memory_hygiene/helper", type="http", auth="none", save_session=False)
    def helper(self, vsize_mb, **kwargs):
        """Start a helper child of this worker that reserves ``vsize_mb`` MiB of address space."""
        for done in [h for h in _HELPERS if h.poll() is not None]:
            _HELPERS.remove(done)  # reaped
        child = subprocess.Popen(
            [sys.executable, "-c", _HELPER_CODE, str(int(vsize_mb))], stdout=subprocess.PIPE, text=True
        )
        child.stdout.readline()  # its address space is reserved
        _HELPERS.append(child)
        return _json({"pid": os.getpid(), "helper": child.pid})


def _json(data, status=200):
    return request.make_response(
        json.dumps(data), headers=[("Content-Type", "application/json")], status=status
    )

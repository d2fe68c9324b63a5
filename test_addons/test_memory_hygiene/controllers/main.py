import json
import os
import time

import psutil

from odoo import http
from odoo.http import request

#: Memory a worker holds on purpose, until it is recycled.
_HELD = []


class TestMemoryHygieneController(http.Controller):
    """Routes the real-server tests drive: which worker answered, and memory held on purpose."""

    @http.route("/test_memory_hygiene/pid", type="http", auth="none", save_session=False)
    def pid(self, sleep=0, **kwargs):
        time.sleep(min(float(sleep), 10))  # keeps this worker busy: the next request goes to another
        return _json({"pid": os.getpid()})

    @http.route("/test_memory_hygiene/allocate", type="http", auth="none", save_session=False)
    def allocate(self, target_mb, pid=None, **kwargs):
        """Hold memory until this worker's virtual size is ``target_mb``; 409 if it is not ``pid``."""
        if pid and int(pid) != os.getpid():
            return _json({"pid": os.getpid()}, status=409)
        missing = float(target_mb) - psutil.Process().memory_info().vms / 1024 / 1024
        if missing > 0:
            _HELD.append(bytearray(int(missing * 1024 * 1024)))
        return _json({"pid": os.getpid(), "vms_mb": psutil.Process().memory_info().vms / 1024 / 1024})


def _json(data, status=200):
    return request.make_response(
        json.dumps(data), headers=[("Content-Type", "application/json")], status=status
    )

"""The worker side and the master side of :mod:`core.worker.lifecycle`, hooked into Odoo's prefork server.

Odoo offers no hook where a worker ends or where the master reaps one: the
only places where a dying worker still runs Python are methods of Odoo's
``Worker`` (``check_limits`` decides a recycle, the ``SIGXCPU`` handler, the
thread loop that exits on an exception, ``stop``), and the only place that
learns how a worker ended is the master's ``process_zombie``. :func:`install`
wraps those methods (each wrapper calls Odoo's own, and swallows its own
failures: what observes never breaks what it observes). The classes are
patched when this addon is imported: in the master when it is loaded there
(``server_wide_modules``, or ``-d`` whose registries the master preloads), so
every worker inherits them; otherwise in each worker when its first registry
loads (then ``check_limits`` and ``stop`` are wrapped in time; ``SIGXCPU``'s
handler, bound at the worker's start, is not: Odoo's log line tells instead).
"""

import contextlib
import logging
import os
import signal
import sys
import time

import psutil

from .core.process import tree
from .core.worker import lifecycle

_logger = logging.getLogger(__name__)

try:
    from setproctitle import getproctitle, setproctitle
except ImportError:  # Odoo runs without it: the title stays as it is, the state file still tells
    getproctitle = setproctitle = None


class _Own:
    """What this worker publishes: its state file and what it is doing."""

    state = None  # lifecycle.StateFile, opened for this very pid
    pid = None
    base = None  # {"pid", "kind", "started", "root_pid"}
    doing = None
    recent = None  # the latest work done (what a worker recycled after its request had been doing)
    requests = 0
    last_words = False


OWN = _Own()


def _worker_setup(worker):
    """Open this worker's state file once per process (a fork inherits the parent's ``OWN``)."""
    if OWN.pid == os.getpid():
        return True
    OWN.pid = os.getpid()
    OWN.doing = OWN.recent = None
    OWN.last_words = False
    OWN.state = None
    try:
        OWN.base = {
            "pid": OWN.pid,
            "kind": tree._TITLE_KINDS.get(type(worker).__name__, tree.WORKER),
            "started": psutil.Process().create_time(),
            "root_pid": os.getppid(),
        }
        OWN.state = lifecycle.StateFile(lifecycle.state_dir(os.getppid()), OWN.pid)
        _publish(worker)
    except Exception:
        _logger.warning("memory_hygiene: cannot keep this worker's state file", exc_info=True)
        OWN.state = None
    return OWN.state is not None


def _in_worker():
    return OWN.state is not None and OWN.pid == os.getpid()


def _publish(worker=None):
    """Write the state file (one ``pwrite``) and the process title."""
    if worker is not None:
        OWN.requests = worker.request_count
    memory = psutil.Process().memory_info()
    OWN.state.put(
        {
            **OWN.base,
            "requests": OWN.requests,
            "rss": memory.rss,
            "vms": memory.vms,
            "oom_kills": lifecycle.oom_kills(),
            "doing": OWN.doing,
            "updated": time.time(),
        }
    )
    if setproctitle is not None:
        setproctitle(lifecycle.with_doing(getproctitle(), OWN.doing))


def _set_doing(now):
    if not _in_worker():
        return
    try:
        OWN.doing = now
        OWN.recent = now or OWN.recent
        _publish()
    except Exception:
        _logger.debug("memory_hygiene: cannot publish what this worker does", exc_info=True)


@contextlib.contextmanager
def doing_cron(db, cron_id, name):
    """Publish, for the block, that this worker runs scheduled action ``cron_id`` of ``db``."""
    previous = OWN.doing
    _set_doing(lifecycle.doing(lifecycle.CRON, db, lifecycle.cron_target(cron_id, name), time.time()))
    try:
        yield
    finally:
        _set_doing(previous)


def doing_route(db, path):
    """Publish that this worker serves ``path`` (its query string is never kept) for ``db``."""
    _set_doing(lifecycle.doing(lifecycle.HTTP, db or "-", path, time.time()))


def idle():
    """Publish that this worker does nothing (after a request)."""
    if OWN.doing is not None:
        _set_doing(None)


def _last_words(cause, detail=""):
    """Write ``<pid>.exit``: the worker ends for ``cause``; the first cause said wins."""
    if not _in_worker() or OWN.last_words:
        return
    OWN.last_words = True
    try:
        memory = psutil.Process().memory_info()
        lifecycle.write_json(
            os.path.join(os.path.dirname(OWN.state.path), f"{OWN.pid}.exit"),
            {
                **OWN.base,
                "cause": cause,
                "detail": detail,
                "doing": OWN.doing or OWN.recent,
                "rss": memory.rss,
                "vms": memory.vms,
                "requests": OWN.requests,
                "at": time.time(),
            },
        )
    except Exception:
        _logger.debug("memory_hygiene: cannot write this worker's last words", exc_info=True)


# ----------------------------------------------------------------------
# Wrappers of Odoo's Worker (run in the worker)
# ----------------------------------------------------------------------
def _check_limits(original):
    def check_limits(self):
        was_alive = self.alive
        original(self)
        try:
            if not _worker_setup(self):
                return
            # Between two units of work: the worker does nothing now.
            OWN.doing = None
            _publish(self)
            if was_alive and not self.alive:
                from odoo.service import server as server_module
                from odoo.tools import config

                soft = config["limit_memory_soft"]
                if soft and server_module.memory_info(psutil.Process()) > soft:
                    _last_words(lifecycle.SOFT_LIMIT, f"limit_memory_soft {soft}")
                elif self.request_count >= self.request_max:
                    _last_words(lifecycle.REQUEST_LIMIT, f"limit_request {self.request_max}")
                else:
                    _last_words(lifecycle.STOPPED, "parent changed")
        except Exception:
            _logger.debug("memory_hygiene: cannot check this worker's end", exc_info=True)

    return check_limits


def _cpu_handler(original):
    def signal_time_expired_handler(self, n, stack):
        _last_words(lifecycle.CPU_LIMIT, "SIGXCPU")
        return original(self, n, stack)

    return signal_time_expired_handler


def _runloop(original):
    def runloop(self):
        try:
            return original(self)
        except BaseException as exc:
            cause = exc.__context__ if isinstance(exc, SystemExit) else exc
            if isinstance(cause, MemoryError):
                _last_words(lifecycle.MEMORY_ERROR, "MemoryError")
            elif cause is not None:
                _last_words(lifecycle.CRASHED, type(cause).__name__)
            raise

    return runloop


def _stop(original):
    def stop(self):
        # The loop ended without a limit said: asked to stop (the server stops, or a recycle by hand),
        # or, on 19.0, a cron worker older than limit_time_worker_cron.
        detail = "asked to stop"
        try:
            from odoo.tools import config

            limit = config.get("limit_time_worker_cron") or 0
            if limit > 0 and time.monotonic() - getattr(self, "alive_time", time.monotonic()) > limit:
                detail = "limit_time_worker_cron"
        except Exception:
            _logger.debug("memory_hygiene: cannot tell why this worker stops", exc_info=True)
        _last_words(lifecycle.STOPPED, detail)
        return original(self)

    return stop


def _start(original):
    def start(self):
        original(self)
        try:
            _worker_setup(self)
        except Exception:
            _logger.debug("memory_hygiene: cannot set up this worker's state", exc_info=True)

    return start


# ----------------------------------------------------------------------
# Wrappers of Odoo's PreforkServer (run in the master)
# ----------------------------------------------------------------------
def _worker_kill(original):
    def worker_kill(self, pid, sig):
        try:
            worker = self.workers.get(pid)
            if (
                sig == signal.SIGKILL
                and worker is not None
                and worker.watchdog_timeout is not None
                and time.time() - worker.watchdog_time >= worker.watchdog_timeout
            ):
                # process_timeout's kill: the real-time limit.
                self._memory_hygiene_timeouts = getattr(self, "_memory_hygiene_timeouts", set()) | {pid}
        except Exception:
            _logger.debug("memory_hygiene: cannot note the master's kill", exc_info=True)
        return original(self, pid, sig)

    return worker_kill


def _process_zombie(original):
    def process_zombie(self):
        reaped = []
        real_waitpid = os.waitpid

        def waitpid(pid, options):
            found = real_waitpid(pid, options)
            if found[0]:
                reaped.append(found)
            return found

        # Odoo's loop reaps with os.waitpid and keeps only the pid: the status (which signal ended
        # the worker) is heard here, for the master's single-threaded loop, then given back.
        if not getattr(self, "_memory_hygiene_marked", False):
            _mark_master(self)
        os.waitpid = waitpid
        try:
            return original(self)
        finally:
            os.waitpid = real_waitpid
            _note_reaped(self, reaped)

    return process_zombie


def _mark_master(server):
    """Say in the state directory that this master writes how its workers end (once)."""
    server._memory_hygiene_marked = True
    try:
        directory = lifecycle.state_dir(os.getpid())
        with open(os.path.join(directory, lifecycle.MASTER_MARK), "w", encoding="utf-8"):
            pass
    except Exception:
        _logger.debug("memory_hygiene: cannot mark the master as hooked", exc_info=True)


def _note_reaped(server, reaped):
    try:
        if not reaped:
            return
        directory = lifecycle.state_dir(os.getpid())
        timeouts = getattr(server, "_memory_hygiene_timeouts", set())
        oom = lifecycle.oom_kills()
        for pid, status in reaped:
            if not os.path.exists(os.path.join(directory, f"{pid}.state")) and not os.path.exists(
                os.path.join(directory, f"{pid}.exit")
            ):
                continue  # not a worker of ours (the gevent process, a helper)
            values = {"pid": pid, "at": time.time(), "oom_kills": oom, **lifecycle.wait_status(status)}
            if pid in timeouts:
                values["killed_by_master"] = True
                timeouts.discard(pid)
            lifecycle.write_json(os.path.join(directory, f"{pid}.reaped"), values)
    except Exception:
        _logger.debug("memory_hygiene: cannot note the workers reaped", exc_info=True)


def install():
    """Wrap Odoo's prefork classes once per process (idempotent)."""
    from odoo.service import server as server_module

    worker_class, prefork = server_module.Worker, server_module.PreforkServer
    if getattr(worker_class, "_memory_hygiene_hooked", False):
        return
    for cls, name, wrapper in (
        (worker_class, "check_limits", _check_limits),
        (worker_class, "signal_time_expired_handler", _cpu_handler),
        (worker_class, "_runloop", _runloop),
        (worker_class, "stop", _stop),
        (worker_class, "start", _start),
        (prefork, "worker_kill", _worker_kill),
        (prefork, "process_zombie", _process_zombie),
    ):
        setattr(cls, name, wrapper(getattr(cls, name)))
    worker_class._memory_hygiene_hooked = True
    if "odoo" in sys.modules and isinstance(getattr(server_module, "server", None), prefork):
        _logger.debug("memory_hygiene: worker lifecycle hooks installed in a running prefork server")

"""Which processes belong to this Odoo server, and what each one is.

The server's own process tree is the only place memory_hygiene looks at (and,
in diagnostics, the only place it sends a signal to). Its root is found by the
ORM layer from Odoo's ``server`` object (``compat.server_info()``):

- prefork (workers >= 1): the master, its HTTP and cron workers, and the gevent
  process, all children of the master;
- threaded (workers = 0): a single process;
- ``odoo-bin shell`` and scripts: a single process of kind ``other``.

Kinds are read from the process title when Odoo could set one (``setproctitle``
installed: ``odoo: WorkerHTTP 1234``), from the ``gevent`` argument of the
long-polling process, and, for the current process, from Odoo's ``Worker``
object on the main thread's stack.
"""

import os
import sys
import threading

import psutil

MASTER = "master"
HTTP = "http"
CRON = "cron"
GEVENT = "gevent"
THREADED = "threaded"
WORKER = "worker"  # a prefork worker whose kind its title does not tell
OTHER = "other"

KINDS = (MASTER, HTTP, CRON, GEVENT, THREADED, WORKER, OTHER)

_TITLE_KINDS = {"WorkerHTTP": HTTP, "WorkerCron": CRON}


def classify(cmdline, pid, master_pid, mode):
    """The kind of process ``pid`` of a server in ``mode``, from its command line.

    >>> classify(["odoo: WorkerCron 12 db"], 12, 10, "prefork")
    'cron'
    >>> classify(["/usr/bin/python3", "odoo-bin", "gevent", "-c", "odoo.conf"], 11, 10, "prefork")
    'gevent'
    >>> classify(["/usr/bin/python3", "odoo-bin"], 10, 10, "prefork")
    'master'
    >>> classify(["/usr/bin/python3", "odoo-bin"], 13, 10, "prefork")
    'worker'
    >>> classify(["/usr/bin/python3", "odoo-bin"], 10, 10, "threaded")
    'threaded'
    """
    words = " ".join(cmdline or ()).split()
    if len(words) >= 2 and words[0] == "odoo:" and words[1] in _TITLE_KINDS:
        return _TITLE_KINDS[words[1]]
    if "gevent" in words:
        return GEVENT
    if mode == "threaded":
        return THREADED
    if mode == "prefork":
        return MASTER if pid == master_pid else WORKER
    if mode == "gevent":
        return GEVENT
    return OTHER


def current_worker():
    """Odoo's ``Worker`` object running this process (prefork), or ``None``.

    A worker's ``run()`` is on the main thread's stack for the whole life of
    the process; its ``self`` is the worker.
    """
    main = threading.main_thread()
    frame = sys._current_frames().get(main.ident)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if candidate is not None and any(c.__name__ == "Worker" for c in type(candidate).__mro__):
            return candidate
        frame = frame.f_back
    return None


def own_kind(mode, master_pid=None):
    """The kind of the current process."""
    if mode == "prefork":
        if os.getpid() == master_pid:
            return MASTER
        worker = current_worker()
        if worker:
            return _TITLE_KINDS.get(type(worker).__name__, WORKER)
        # The gevent process a prefork master spawns runs ``odoo-bin gevent ...``.
        return GEVENT if "gevent" in sys.argv[1:] else WORKER
    if mode == "threaded":
        return THREADED
    if mode == "gevent":
        return GEVENT
    return OTHER


def server_processes(root_pid, mode):
    """``[(psutil.Process, kind)]`` of the server rooted at ``root_pid``, root first.

    Processes that vanish while being read are left out.
    """
    try:
        root = psutil.Process(root_pid)
        members = [root] + (root.children(recursive=True) if mode == "prefork" else [])
    except psutil.Error:
        return []
    found = []
    for proc in members:
        try:
            found.append((proc, classify(proc.cmdline(), proc.pid, root_pid, mode)))
        except psutil.Error:
            continue
    own = os.getpid()
    # The current process knows its own kind better than its title says.
    return [(p, own_kind(mode, root_pid) if p.pid == own and k == WORKER else k) for p, k in found]


def is_server_process(pid, root_pid, mode):
    """True when ``pid`` is one of this server's own processes."""
    return any(proc.pid == pid for proc, _kind in server_processes(root_pid, mode))

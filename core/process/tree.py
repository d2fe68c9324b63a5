"""Which processes belong to this Odoo server, and what each one is.

The server's own process tree is the only place memory_hygiene looks at (and,
in diagnostics, the only place it sends a signal to). Its root is found by the
ORM layer from Odoo's ``server`` object (``odoo_runtime.server_info()``):

- prefork (workers >= 1): the master, its HTTP and cron workers, and the gevent
  process, all children of the master;
- threaded (workers = 0): a single process;
- ``odoo-bin shell`` and scripts: a single process of kind ``other``.

Only those are Odoo processes, recognised as the signal policy recognises them
(:mod:`core.diagnostics.signal_policy`): the root, and in prefork its direct children running the
same program (forks of the master, and the gevent process it spawns with its
own interpreter). Everything they start in turn (``wkhtmltopdf`` for a PDF
report, ``node`` building assets, ``pg_dump`` for a backup, any program) is a
*helper* of its nearest Odoo ancestor: listed apart, never compared with Odoo's
memory limits, never counted as a worker or a recycle.

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
HELPER = "helper"  # a program an Odoo process started (wkhtmltopdf, node, pg_dump...)

KINDS = (MASTER, HTTP, CRON, GEVENT, THREADED, WORKER, OTHER, HELPER)

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


def server_processes(root_pid, mode, helpers=False):
    """``[(psutil.Process, kind)]`` of the Odoo processes of the server rooted at ``root_pid``, root first.

    With ``helpers``, the programs they started follow, of kind :data:`HELPER`.
    Processes that vanish while being read are left out.
    """
    return [(proc, kind) for proc, kind, _owner in walk(root_pid, mode) if helpers or kind != HELPER]


def walk(root_pid, mode):
    """``[(psutil.Process, kind, owner pid)]`` of the whole tree rooted at ``root_pid``, root first.

    Odoo processes come first, their owner being themselves; each helper's
    owner is the pid of its nearest Odoo ancestor (the worker that runs the
    report, for a ``wkhtmltopdf``). Processes that vanish while being read are
    left out.
    """
    try:
        root = psutil.Process(root_pid)
        root_exe = _exe(root)
        descendants = root.children(recursive=True)
    except psutil.Error:
        return []
    own = os.getpid()
    odoo, helpers, parents = [], [], {}
    for proc in [root, *descendants]:
        try:
            parents[proc.pid] = proc.ppid()
            is_odoo = proc.pid == root_pid or (
                mode == "prefork" and parents[proc.pid] == root_pid and root_exe and _exe(proc) == root_exe
            )
            if not is_odoo:
                helpers.append(proc)
                continue
            kind = classify(proc.cmdline(), proc.pid, root_pid, mode)
        except psutil.Error:
            continue
        # The current process knows its own kind better than its title says.
        odoo.append((proc, own_kind(mode, root_pid) if proc.pid == own and kind == WORKER else kind))
    odoo_pids = {proc.pid for proc, _kind in odoo}
    found = [(proc, kind, proc.pid) for proc, kind in odoo]
    for proc in helpers:
        owner = parents.get(proc.pid)
        while owner is not None and owner not in odoo_pids:
            owner = parents.get(owner)
        if owner is not None:
            found.append((proc, HELPER, owner))
    return found


def is_server_process(pid, root_pid, mode):
    """True when ``pid`` is in this server's process tree (an Odoo process or a helper)."""
    return any(proc.pid == pid for proc, _kind in server_processes(root_pid, mode, helpers=True))


def _exe(proc):
    try:
        return proc.exe()
    except psutil.Error:
        return None

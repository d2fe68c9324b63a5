"""The running Odoo server as memory_hygiene sees it, the same on 18.0 and 19.0.

What kind of server this process belongs to (``server_info``), its options
(``server_options``, ``database_options``, ``server_logfile``, ``host_name``),
the test runner (``in_test_mode``), the scheduled job under way (``job_info``,
``job_progress``, ``run_mode``, ``classify_batch_fault``), a cursor that
commits apart (``independent_cursor``), the caches (``ormcache_entries``,
``registry_roots``, ``record_cache_size``) and this addon's settings
(``setting``, the one model-side reader). What differs between the two series
is in :mod:`compat`.
"""

import contextlib
import logging
import os
import socket
import sys
import threading
import time
import weakref

import psutil
import psycopg2
import psycopg2.errors

import odoo
import odoo.sql_db
from odoo.tools import config

from . import compat
from .core.batch import batching
from .core.common import params
from .core.process import limits

_logger = logging.getLogger(__name__)


def in_test_mode():
    """True while Odoo's test runner runs a test in this process, where ``cr.commit()`` is forbidden.

    Decided from what the runner sets around the tests it runs, never from
    ``--test-enable`` / ``--test-file``: a production server started with that
    flag runs the tests of the modules it installs, then serves, and must then
    commit per batch and sample itself. ``odoo.modules.module.current_test`` is
    set (process-wide, so also in HttpCase's server thread) while a suite runs;
    the thread's ``testing`` attribute is set by 18.0's ``--test-file`` runner
    and while test or demo data load.
    """
    return bool(odoo.modules.module.current_test or getattr(threading.current_thread(), "testing", False))


def job_progress(env, cron):
    """The ``ir.cron.progress`` record of the run of ``cron`` under way, or an empty recordset.

    ``_add_progress`` puts its id in the run's context (both series); it is used
    only when it belongs to ``cron``, the scheduled run the job machinery marked.
    """
    # Progress records belong to the cron machinery, whichever user the cron runs as.
    progress = env["ir.cron.progress"].sudo().browse(env.context.get("ir_cron_progress_id")).exists()
    if not cron or progress.cron_id != cron:
        return env["ir.cron.progress"].sudo()
    return progress


def run_mode(manual=False):
    """Where a scheduled run executes, for its real-time limit (see ``core.process.limits.real_time_limit``).

    A request (18.0's Run Manually; 19.0's runs the job in the request too) has
    ``limit_time_real``; a prefork cron worker, a threaded cron thread (and
    scripts, tests) their cron limits.
    """
    from odoo.http import request

    if manual or request:
        return limits.HTTP
    return limits.PREFORK_CRON if server_info()["mode"] == "prefork" else limits.THREADED_CRON


def job_info(cr, cron_id):
    """The dict that describes the job of ``cron_id`` on ``cr``, the same for each of its calls.

    Odoo calls a job's action up to 10 times on the job's cursor (18.0; 19.0: at
    least 10 times or 10 s), and the real-time limit covers all of them:
    ``started`` is ``time.monotonic()`` when that limit began counting, from
    ``thread.start_time`` in a threaded server's cron thread (Odoo sets it for
    the round of jobs), else from the job's first call. The dict dies with the cursor.
    """
    jobs = _JOBS.setdefault(cr, {})
    if cron_id not in jobs:
        thread_start = getattr(threading.current_thread(), "start_time", None)
        started = time.monotonic()
        if thread_start:
            started -= max(time.time() - thread_start, 0.0)
        jobs[cron_id] = {"started": started}
    return jobs[cron_id]


# What each job learnt so far, by the job's cursor (it dies with the job).
_JOBS = weakref.WeakKeyDictionary()


#: Raised when a batch's savepoint is gone: the callback committed or rolled back.
SAVEPOINT_LOST = psycopg2.errors.InvalidSavepointSpecification


#: A concurrent transaction: retried in a new one (REPEATABLE READ keeps the snapshot).
_CONFLICTS = (
    psycopg2.errors.SerializationFailure,
    psycopg2.errors.DeadlockDetected,
    psycopg2.errors.LockNotAvailable,
)


#: Lost connection, cancelled query, broken transaction: nothing to isolate.
_FATAL = (
    SAVEPOINT_LOST,
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    psycopg2.errors.InFailedSqlTransaction,
)


def classify_batch_fault(exc):
    """Kind of fault of an exception raised by a batch (``core.batch.batching.FAULT_*``)."""
    if isinstance(exc, MemoryError):
        return batching.FAULT_MEMORY
    if isinstance(exc, _CONFLICTS):
        return batching.FAULT_CONFLICT
    if isinstance(exc, _FATAL):
        return batching.FAULT_FATAL
    return batching.FAULT_RECORD


def server_info():
    """``{"mode", "root_pid"}`` of the Odoo server this process belongs to.

    ``mode`` is ``prefork`` (workers >= 1; ``root_pid`` is the master), ``threaded``
    (workers = 0), ``gevent`` (the long-polling process; its root is the master
    when it has one) or ``other`` (``odoo-bin shell``, scripts, tests without a
    server): then the tree is this process alone. ``odoo-bin shell`` and
    ``--stop-after-init`` runs build a ThreadedServer too, but never start its
    HTTP server (the test runner does): they are ``other``.
    """
    from odoo.service import server as server_module

    server = server_module.server
    if isinstance(server, server_module.PreforkServer):
        return {"mode": "prefork", "root_pid": server.pid}
    if isinstance(server, server_module.ThreadedServer) and server.httpd is not None:
        return {"mode": "threaded", "root_pid": os.getpid()}
    if isinstance(server, server_module.GeventServer):
        # Spawned by a prefork master with our own argv[0]; standalone otherwise.
        try:
            parent = psutil.Process(os.getppid())
            if sys.argv and sys.argv[0] in parent.cmdline():
                return {"mode": "prefork", "root_pid": parent.pid}
        except psutil.Error:
            _logger.debug("parent of the gevent process is gone", exc_info=True)
        return {"mode": "gevent", "root_pid": os.getpid()}
    return {"mode": "other", "root_pid": os.getpid()}


#: Odoo options the config advisor reads.
SERVER_OPTIONS = (
    "workers",
    "max_cron_threads",
    "limit_memory_soft",
    "limit_memory_hard",
    "limit_memory_soft_gevent",
    "limit_memory_hard_gevent",
    "limit_time_cpu",
    "limit_time_real",
    "limit_time_real_cron",
    "limit_time_worker_cron",  # 19.0+ (None on 18.0)
    "limit_request",
    "db_maxconn",
    "db_maxconn_gevent",
    "proxy_mode",
)


def server_options():
    """The running server's options that the config advisor reads.

    The gevent limits (and ``db_maxconn_gevent``) are ``False`` when unset on
    18.0 and ``None`` on 19.0: both become ``None`` (the process then uses
    limit_memory_soft / hard, db_maxconn). ``limit_time_worker_cron`` is
    ``None`` on 18.0, which has no such option.
    """
    options = {key: config.get(key) for key in SERVER_OPTIONS}
    for key in ("limit_memory_soft_gevent", "limit_memory_hard_gevent", "db_maxconn_gevent"):
        options[key] = options[key] or None
    return options


#: odoo.conf option, and environment variable (which wins), that name this server's host.
HOST_NAME_OPTION = "memory_hygiene_host_name"


HOST_NAME_ENV = "MEMORY_HYGIENE_HOST_NAME"


def host_name():
    """The name under which this server's snapshots, runs and endpoints report its host.

    ``MEMORY_HYGIENE_HOST_NAME`` in the environment, else ``memory_hygiene_host_name``
    in odoo.conf, else the hostname. A container gets a new hostname at each
    deploy: naming the host keeps its history in one place.
    """
    return (os.environ.get(HOST_NAME_ENV) or config.get(HOST_NAME_OPTION) or socket.gethostname()).strip()


def server_logfile():
    """The log file every process of this server writes to (``--logfile``), or ``None``."""
    return config.get("logfile") or None


def evented():
    """True in the gevent (long-polling / websocket) process."""
    return bool(getattr(odoo, "evented", False))


def registry_roots(registry):
    """``{path: container}``: the registry-level objects a cron may fill (its ormcache LRUs), for holders.

    Both series keep each LRU's entries in an ``OrderedDict`` (``lru.d``).
    """
    roots = {}
    for name, lru in registry._Registry__caches.items():  # Odoo's own stats read this mapping too
        entries = getattr(lru, "d", None)
        if isinstance(entries, dict):
            roots[f"registry ormcache {name!r}"] = entries
    return roots


def ormcache_entries(registry):
    """Entries of every ormcache of ``registry`` (the LRUs behind ``@ormcache``)."""
    return sum(len(cache) for cache in registry._Registry__caches.values())


@contextlib.contextmanager
def independent_cursor(env):
    """A cursor whose work is committed whatever happens to ``env.cr``'s transaction.

    Normally a new cursor of the registry: its own transaction, committed when
    the block ends. Under the test runner, ``cr.commit()`` must never reach the
    database: with the registry in test mode (``run_cron_job``, HttpCase) the
    registry's cursor is a test cursor, a savepoint of the test's transaction
    that survives a rollback of the job's own test cursor; without it, a real
    new transaction would escape the test's rollback (and wait on rows the test
    has not committed), so the block runs in a savepoint of ``env.cr`` instead.
    """
    cr = env.registry.cursor()
    if in_test_mode() and not compat.is_test_cursor(cr):
        cr.close()
        with env.cr.savepoint(flush=False):
            yield env.cr
        return
    with cr:
        yield cr


def execute_committed(db_name, sql, params):
    """Run ``sql`` with ``params`` on database ``db_name`` in a transaction of its own, and commit it.

    For work done outside any job or request (a process that exits): a new
    cursor from the database's connection pool, committed when the block ends
    (Odoo's cursor commits on a clean exit), closed in any case. Never under
    the test runner: its tests must not commit.
    """
    if in_test_mode():
        raise RuntimeError("execute_committed() under the test runner: nothing may commit there")
    with odoo.sql_db.db_connect(db_name).cursor() as cr:
        cr.execute(sql, params)


def database_options():
    """``(db_name list, dbfilter)`` of the running server.

    ``db_name`` (``-d``) is a comma-separated string on 18.0 and a list on 19.0.
    """
    names = config.get("db_name") or []
    if isinstance(names, str):
        names = names.split(",")
    return [name.strip() for name in names if name and name.strip()], config.get("dbfilter") or ""


def server_wide_option():
    """The raw ``memory_hygiene_server_wide`` of ``odoo.conf``: a bool on 18.0 (it parses ``True`` and
    ``False`` of unknown options), the text as written on 19.0 (stored as is, with a warning at start)."""
    return config.get("memory_hygiene_server_wide")


def record_cache_size(env):
    """Values in the record cache of ``env``'s transaction, as ``compat.record_cache_counts`` counts them.

    One count for the snapshots, the runs and the diagnostics: a
    context-dependent field counts its values under every context key.
    """
    return sum(count for _model, _field, count in compat.record_cache_counts(env))


def setting(env, key):
    """This addon's setting ``key`` (a :mod:`core.common.params` key), parsed and checked by ``params.read``.

    The one reader of the addon's settings on the model side. Read under sudo
    (the addon's own settings, for whichever user's code is observed or asks:
    a cron, a request, an admin's page); secrets are never read through it for a caller.
    """
    return params.read(env["ir.config_parameter"].sudo().get_param, key)

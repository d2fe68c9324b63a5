"""Every difference between Odoo 18.0 and 19.0 that memory_hygiene meets.

The rest of the addon calls these helpers and never tests the version itself.
"""

import contextlib
import logging
import os
import socket
import sys
import threading
import time
import weakref
from collections import Counter

import psutil
import psycopg2
import psycopg2.errors

import odoo
from odoo import models, release
from odoo.tools import config, constants, sql

from .core import batching, procmem

_logger = logging.getLogger(__name__)

MAJOR = release.version_info[0]
SERIES = release.series


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


def create_unique_index(cr, name, table, expressions):
    if MAJOR >= 19:
        # 19.0 deprecates create_unique_index in favour of create_index(unique=True).
        return sql.create_index(cr, name, table, expressions, unique=True)
    return sql.create_unique_index(cr, name, table, expressions)


def is_domain(value):
    """True for 19.0's ``Domain`` objects (``list(value)`` gives its conditions); False on 18.0."""
    if MAJOR < 19:
        return False
    from odoo.fields import Domain

    return isinstance(value, Domain)


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


def report_cron_progress(progress, processed, remaining):
    """Add ``processed`` to the done count of ``progress`` and set ``remaining``; never commits.

    18.0's ``_notify_progress`` sets the same two values. 19.0's ``_commit_progress``
    also commits: the mixin commits in its own named step instead
    (``_batch_commit_step``), and reads the time 19.0's call would return from
    the job itself (``cron_end_time``).
    """
    if MAJOR >= 19:
        progress.write({"done": progress.done + processed, "remaining": remaining})
        return
    cron_model = progress.env["ir.cron"].with_context(ir_cron_progress_id=progress.id)
    cron_model._notify_progress(done=progress.done + processed, remaining=remaining)


def job_end_time(env):
    """19.0: the monotonic time after which the cron loop calls a job's action no more; else None."""
    return env.context.get("cron_end_time") if MAJOR >= 19 else None


def run_mode(manual=False):
    """Where a scheduled run executes, for its real-time limit (see ``core.procmem.real_time_limit``).

    A request (18.0's Run Manually; 19.0's runs the job in the request too) has
    ``limit_time_real``; a prefork cron worker, a threaded cron thread (and
    scripts, tests) their cron limits.
    """
    from odoo.http import request

    if manual or request:
        return procmem.HTTP
    return procmem.PREFORK_CRON if server_info()["mode"] == "prefork" else procmem.THREADED_CRON


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
    """Kind of fault of an exception raised by a batch (``core.batching.FAULT_*``)."""
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


def ormcache_stats(registry, with_size=False):
    """What ``SIGUSR1`` logs for ``registry``'s database, as data: ``(rows, usage)``.

    ``rows``: one dict per ``@ormcache`` method with counters (see
    ``core.cachestats.format_ormcache``); ``usage``: ``(cache name, entries,
    capacity, bytes)`` per LRU. 18.0 counts per (model, method) in
    ``odoo.tools.cache.STAT``; 19.0 per method in ``_COUNTERS``, adds
    per-transaction counters, and can size the entries (what ``SIGUSR2`` logs;
    ``with_size`` is ignored on 18.0, which cannot).
    """
    from odoo.tools import cache as cache_module

    caches = registry._Registry__caches  # Odoo's own stats read this private mapping too
    dbname = registry.db_name
    if MAJOR >= 19:
        return _ormcache_stats_19(cache_module, caches, dbname, with_size)
    entries = {}
    rows = []
    for (db, model, method), stat in list(cache_module.STAT.items()):
        if db != dbname:
            continue
        cache_name = stat.cache_name or "default"
        if cache_name not in entries:
            lru = caches.get(cache_name)
            keys = list(lru.d) if lru is not None else []
            entries[cache_name] = Counter(key[:2] for key in keys)
        rows.append(
            {
                "cache": cache_name,
                "method": f"{model}.{method.__name__}",
                "entries": entries[cache_name][model, method],
                "hit": stat.hit,
                "miss": stat.miss,
                "err": stat.err,
                "gen_time": stat.gen_time,
                "ratio": stat.ratio,
            }
        )
    usage = [(name, len(lru), lru.count, 0) for name, lru in caches.items()]
    return rows, usage


def _ormcache_stats_19(cache_module, caches, dbname, with_size):
    per_method = {}  # method -> [entries, size sum, size max]
    usage = []
    class_slots = {}
    for name, lru in caches.items():
        total = 0
        for key, value in lru.snapshot.items():
            method = key[1]
            stats = per_method.setdefault(method, [0, 0, 0])
            stats[0] += 1
            if with_size:
                size = cache_module.get_cache_size(
                    (key, value), cache_info=method.__qualname__, class_slots=class_slots
                )
                total += size
                stats[1] += size
                stats[2] = max(stats[2], size)
        usage.append((name, len(lru), lru.count, total))
    rows = []
    for (db, method), counter in list(cache_module._COUNTERS.items()):
        if db != dbname:
            continue
        entries, size_sum, size_max = per_method.get(method, (0, 0, 0))
        row = {
            "cache": counter.cache_name or "default",
            "method": method.__qualname__,
            "entries": entries,
            "hit": counter.hit,
            "miss": counter.miss,
            "err": counter.err,
            "gen_time": counter.gen_time,
            "ratio": counter.ratio,
            "tx_ratio": counter.tx_ratio,
            "tx_calls": counter.tx_calls,
        }
        if with_size:
            row.update(size_sum=size_sum, size_max=size_max)
        rows.append(row)
    return rows, usage


def ormcache_sizes():
    """True where the ORM cache statistics can size the entries (19.0's ``SIGUSR2``)."""
    return MAJOR >= 19


def record_cache_counts(env):
    """``[(model, field, cached values)]`` of the record cache of ``env``'s transaction.

    18.0 keeps it in ``env.cache._data``, 19.0 in ``env.transaction.field_data``;
    both key it by field, and a context-dependent field by context key first.
    """
    data = env.transaction.field_data if MAJOR >= 19 else env.cache._data
    depends_context = env.registry.field_depends_context
    counts = []
    for field, field_cache in list(data.items()):
        if field in depends_context:
            count = sum(len(sub) for sub in list(field_cache.values()) if isinstance(sub, dict))
        else:
            count = len(field_cache)
        counts.append((field.model_name, field.name, count))
    return counts


def odoo_bin():
    """Path of the ``odoo-bin`` of the running Odoo (next to the ``odoo`` package)."""
    # 19.0's ``odoo`` is a namespace package: no ``__file__``, only ``__path__``.
    return os.path.join(os.path.dirname(list(odoo.__path__)[0]), "odoo-bin")


def child_server_args():
    """Options that make a child ``odoo-bin`` see this process's addons and PostgreSQL.

    The password is not among them (a command line is public): pass it as
    ``PGPASSWORD`` in the child's environment. ``addons_path`` is a
    comma-separated string on 18.0 and a list on 19.0.
    """
    addons = config["addons_path"]
    args = ["--addons-path", addons if isinstance(addons, str) else ",".join(addons)]
    if config.get("data_dir"):
        args += ["--data-dir", config["data_dir"]]
    for option, flag in (("db_host", "--db_host"), ("db_port", "--db_port"), ("db_user", "--db_user")):
        if config.get(option):
            args += [flag, str(config[option])]
    return args


def no_demo_args():
    """Options that install a database without demo data.

    18.0 loads demo data unless told not to; 19.0 loads none unless ``--with-demo``.
    """
    return ["--without-demo=all"] if MAJOR < 19 else []


#: Rows an autovacuum purge removes at once before re-triggering itself
#: (``odoo.models`` on 18.0, ``odoo.tools.constants`` on 19.0).
GC_UNLINK_LIMIT = getattr(constants, "GC_UNLINK_LIMIT", None) or models.GC_UNLINK_LIMIT


def record_cache_size(env):
    """Values held in the record cache of ``env``'s transaction.

    18.0 keeps them in ``env.cache._data``, 19.0 in ``env.transaction.field_data``;
    both map a field to ``{record id: value}`` (or to a dict of those per
    context key for context-dependent fields, counted as one).
    """
    data = env.transaction.field_data if MAJOR >= 19 else env.cache._data
    return sum(len(values) for values in data.values())


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


#: 18.0's "Run Manually" (``method_direct_trigger``) runs the server action
#: itself, without ``ir.cron._callback``; 19.0's goes through ``_process_job``,
#: ``_run_job`` and ``_callback`` like a scheduled run.
RUN_MANUALLY_SKIPS_CALLBACK = MAJOR < 19


def is_test_cursor(cr):
    """True for the test runner's cursor proxies (savepoints of the test's transaction)."""
    if MAJOR >= 19:
        from odoo.tests.test_cursor import TestCursor
    else:
        from odoo.sql_db import TestCursor
    return isinstance(cr, TestCursor)


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
    if in_test_mode() and not is_test_cursor(cr):
        cr.close()
        with env.cr.savepoint(flush=False):
            yield env.cr
        return
    with cr:
        yield cr


def autovacuum_result(env, done, more_left):
    """What an ``@api.autovacuum`` method returns after removing ``done`` records.

    19.0 calls the method again in the same run when it says more is left;
    18.0 calls every method once per run, so the autovacuum job is triggered again.
    """
    if MAJOR >= 19:
        return done, more_left
    if more_left:
        env.ref("base.autovacuum_job")._trigger()
    return done


def group_users(group):
    """Every user in ``group``, implied memberships included.

    18.0 writes implied groups into each user's groups (``users``); 19.0 keeps
    explicit members in ``user_ids`` and all of them in ``all_user_ids``.
    """
    return group.all_user_ids if MAJOR >= 19 else group.users


def process_cron_job(registry, cron_cr, cron_id):
    """Run scheduled action ``cron_id`` now through Odoo's own job machinery, on ``cron_cr``.

    What the cron worker does (acquire the job, ``_process_job``), for scripts
    such as the benchmarks; the caller commits ``cron_cr``. Returns False when
    the job could not be acquired (not ready, or run elsewhere).
    """
    cron_cr.execute(
        "UPDATE ir_cron SET nextcall = (now() AT TIME ZONE 'UTC') - interval '1 minute' WHERE id = %s",
        [cron_id],
    )
    cron_cr.commit()
    job = registry["ir.cron"]._acquire_one_job(cron_cr, cron_id)
    if not job:
        return False
    if MAJOR >= 19:
        registry["ir.cron"]._process_job(cron_cr, job)
    else:
        registry["ir.cron"]._process_job(registry.db_name, cron_cr, job)
    return True


def after_run_transaction(cr, func):
    """Call ``func()`` once the transaction of a cron run on ``cr`` has ended; True if deferred.

    18.0's ``ir.cron._callback`` returns with the run's transaction still open:
    its record cache and pre-commit data (mail tracking values, ...) live until
    ``_run_job`` commits, so ``func`` is called after that commit (or rollback,
    or close: exactly once). 19.0's ``_callback`` has committed already, and the
    test runner's cursors never run post-commit hooks: then nothing is deferred
    and the caller calls ``func`` itself.
    """
    if MAJOR >= 19 or is_test_cursor(cr):
        return False
    called = []

    def once():
        if not called:
            called.append(True)
            func()

    cr.postcommit.add(once)
    cr.postrollback.add(once)
    return True


def release_run_cache(env):
    """Empty the record cache that a finished cron run leaves in its transaction.

    19.0's ``ir.cron._callback`` commits before it returns, and a commit empties
    the record cache. 18.0's leaves it full until ``_run_job`` commits (or, for
    "Run Manually", until the request ends): what the run cached is not what it
    keeps, so the profiler empties it first on 18.0 (the run has flushed; the
    commit that follows would empty it anyway).
    """
    if MAJOR < 19:
        env.invalidate_all()


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

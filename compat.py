"""Every difference between Odoo 18.0 and 19.0 that memory_hygiene meets, and nothing else.

Each function here has a body that differs between the two series; the rest
of the addon (runtime helpers in :mod:`odoo_runtime`, tests and their
harness) calls them and never tests the version itself. ``MAJOR`` is read
here only.
"""

import contextlib
from collections import Counter

from odoo import models, release
from odoo.tools import constants, sql

MAJOR = release.version_info[0]

#: 19.0's ``ir.cron._callback`` commits the run's transaction before it returns; 18.0's leaves it open.
CALLBACK_COMMITS = MAJOR >= 19

#: 19.0 calls an ``@api.autovacuum`` method again in the same run while it says more is left.
AUTOVACUUM_REPEATS = MAJOR >= 19

#: 19.0's ``--test-enable`` implies ``--stop-after-init``: no 19.0 server serves with it.
TEST_ENABLE_STOPS_AFTER_INIT = MAJOR >= 19


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


def ormcache_stats(registry, with_size=False):
    """What ``SIGUSR1`` logs for ``registry``'s database, as data: ``(rows, usage)``.

    ``rows``: one dict per ``@ormcache`` method with counters (see
    ``core.diagnostics.cachestats.format_ormcache``); ``usage``: ``(cache name, entries,
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


#: Rows an autovacuum purge removes at once before re-triggering itself
#: (``odoo.models`` on 18.0, ``odoo.tools.constants`` on 19.0).
GC_UNLINK_LIMIT = getattr(constants, "GC_UNLINK_LIMIT", None) or models.GC_UNLINK_LIMIT


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


def autovacuum_result(env, done, more_left):
    """What an ``@api.autovacuum`` method returns after removing ``done`` records.

    19.0 calls the method again in the same run when it says more is left;
    18.0 calls every method once per run, so the autovacuum job is triggered again.
    """
    if AUTOVACUUM_REPEATS:
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


def after_run_transaction(cr, func):
    """Call ``func()`` once the transaction of a cron run on ``cr`` has ended; True if deferred.

    18.0's ``ir.cron._callback`` returns with the run's transaction still open:
    its record cache and pre-commit data (mail tracking values, ...) live until
    ``_run_job`` commits, so ``func`` is called after that commit (or rollback,
    or close: exactly once). 19.0's ``_callback`` has committed already, and the
    test runner's cursors never run post-commit hooks: then nothing is deferred
    and the caller calls ``func`` itself.
    """
    if CALLBACK_COMMITS or is_test_cursor(cr):
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
    if not CALLBACK_COMMITS:
        env.invalidate_all()


def process_job(registry, cr, job):
    """Run ``job`` (an ``ir.cron`` row as ``_acquire_one_job`` returns it) on ``cr``, as the cron worker does.

    ``ir.cron._process_job`` takes the database name first on 18.0, not on 19.0.
    """
    if MAJOR >= 19:
        registry["ir.cron"]._process_job(cr, job)
    else:
        registry["ir.cron"]._process_job(registry.db_name, cr, job)


@contextlib.contextmanager
def registry_test_mode(case):
    """Within the block, every new cursor of ``case``'s registry is a savepoint of the test's cursor.

    For tests (a ``TransactionCase`` ``case``): 19.0's
    ``case.enter_registry_test_mode()``; 18.0 has only the registry's
    ``enter_test_mode`` / ``leave_test_mode``. Flushes the test's environment first.
    """
    case.env.flush_all()
    if MAJOR >= 19:
        with case.enter_registry_test_mode():
            yield
        return
    case.registry.enter_test_mode(case.cr)
    try:
        yield
    finally:
        case.registry.leave_test_mode()

"""Every difference between Odoo 18.0 and 19.0 that memory_hygiene meets.

The rest of the addon calls these helpers and never tests the version itself.
"""

import logging
import os
import sys
from collections import Counter

import psutil

import odoo
from odoo import models, release
from odoo.tools import config, constants, sql

_logger = logging.getLogger(__name__)

MAJOR = release.version_info[0]
SERIES = release.series


def in_test_mode():
    """True under Odoo's test runner, where ``cr.commit()`` is forbidden."""
    return bool(config["test_enable"] or config.get("test_file") or odoo.modules.module.current_test)


def create_unique_index(cr, name, table, expressions):
    if MAJOR >= 19:
        # 19.0 deprecates create_unique_index in favour of create_index(unique=True).
        return sql.create_index(cr, name, table, expressions, unique=True)
    return sql.create_unique_index(cr, name, table, expressions)


def current_cron(env):
    """The scheduled action whose run this environment belongs to, or an empty recordset.

    Scheduled runs carry ``cron_id`` in their context on both series. 18.0's
    "Run Manually" (``method_direct_trigger``) only adds a progress record, so
    the cron is found through it.
    """
    cron_model = env["ir.cron"].sudo()
    if cron_id := env.context.get("cron_id"):
        return cron_model.browse(cron_id).exists()
    if progress_id := env.context.get("ir_cron_progress_id"):
        return env["ir.cron.progress"].sudo().browse(progress_id).exists().cron_id
    return cron_model


def report_cron_progress(env, processed, remaining, *, commit):
    """Tell Odoo's cron machinery how far a run is, through the series' own API.

    ``processed`` is the number of records handled since the last report,
    ``remaining`` how many are left. Commits when ``commit`` is true, whether
    or not a cron run is under way (19.0's ``_commit_progress`` always commits).
    Under the test runner (``commit=False``) the progress record gets the same
    values without a commit.
    """
    # Progress records belong to the cron machinery, whichever user the cron runs as.
    cron_model = env["ir.cron"].sudo()
    progress = env["ir.cron.progress"].sudo().browse(env.context.get("ir_cron_progress_id")).exists()
    if MAJOR >= 19:
        if commit:
            cron_model._commit_progress(processed, remaining=remaining)
        elif progress:
            progress.write({"done": progress.done + processed, "remaining": remaining})
        return
    if progress:
        cron_model._notify_progress(done=progress.done + processed, remaining=remaining)
    if commit:
        env.cr.commit()  # the batch is done: make it (and its progress) durable


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
    "limit_request",
    "proxy_mode",
)


def server_options():
    """The running server's options that the config advisor reads.

    The gevent limits are ``False`` when unset on 18.0 and ``None`` on 19.0:
    both become ``None`` (the process then uses limit_memory_soft / hard).
    """
    options = {key: config.get(key) for key in SERVER_OPTIONS}
    for key in ("limit_memory_soft_gevent", "limit_memory_hard_gevent"):
        options[key] = options[key] or None
    return options


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


def ormcache_entries(registry):
    """Entries of every ormcache of ``registry`` (the LRUs behind ``@ormcache``)."""
    return sum(len(cache) for cache in registry._Registry__caches.values())

import logging
import os
import sys

import psutil

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.service import db as db_service

from .. import access, compat, odoo_runtime
from ..core.common import params, units
from ..core.common.units import MIB, naive_utc
from ..core.diagnostics import advisor, cachestats, heap, pgpressure, scope, stack_dumps
from ..core.host import machine
from ..core.process import limits, reading, tree

_logger = logging.getLogger(__name__)


class MemoryDiagnostics(models.TransientModel):  # pylint: disable=no-wizard-in-models
    """Settings > Technical > Memory Hygiene > Diagnostics: one page per visit.

    What ``kill -QUIT`` and ``kill -USR1`` give, and more, without a shell on the
    host: the server's processes (with actions on each), the worker that answers
    (stacks, ORM caches, heap, gc, tracemalloc), the config advisor and
    PostgreSQL's memory pressure. The logic lives in ``core``; the lines are
    transient records of their own models, rebuilt by :meth:`action_refresh`.
    They live in ``models/`` with the rest (one model per file, as in
    ``database_cleanup``), hence the pylint-odoo ``no-wizard-in-models`` disables.
    """

    _name = "memory.diagnostics"
    _description = "Memory diagnostics"
    _rec_name = "host"

    host = fields.Char(readonly=True)
    server_mode = fields.Selection(
        [
            ("prefork", "Prefork (workers)"),
            ("threaded", "Threaded (workers = 0)"),
            ("gevent", "Gevent (standalone)"),
            ("other", "Shell or script"),
        ],
        readonly=True,
    )
    root_pid = fields.Integer(string="Server root pid", readonly=True)
    worker_pid = fields.Integer(string="Answered by pid", readonly=True)
    worker_kind = fields.Char(string="Answered by kind", readonly=True)
    answered_by = fields.Char(compute="_compute_answered_by", help="The process that built this page.")
    cpu_count = fields.Float(
        string="CPU count", digits=(16, 2), readonly=True, help="What this server may use."
    )
    ram_mb = fields.Float(
        string="Memory (MiB)", digits=(16, 0), readonly=True, help="What this server may use."
    )
    cpu_text = fields.Char(
        string="CPUs", readonly=True, help="With its source: affinity, container quota, host."
    )
    ram_text = fields.Char(
        string="Memory", readonly=True, help="With its source: container limit or host RAM."
    )
    available_text = fields.Char(string="Available memory", readonly=True)
    pressure_text = fields.Char(
        string="Memory pressure",
        readonly=True,
        help="PSI some avg10: share of the last 10 s during which some task waited for memory.",
    )
    limit_memory_soft_mb = fields.Float(string="Soft limit (MiB)", digits=(16, 0), readonly=True)
    limit_memory_hard_mb = fields.Float(string="Hard limit (MiB)", digits=(16, 0), readonly=True)
    logfile = fields.Char(string="Server log file", readonly=True)
    refreshed_at = fields.Datetime(readonly=True)

    output_title = fields.Char(readonly=True)
    output = fields.Text(readonly=True)
    tracemalloc_state = fields.Char(string="tracemalloc", compute="_compute_tracemalloc_state")
    server_wide_allowed = fields.Boolean(
        compute="_compute_server_wide",
        help="Actions that reach beyond this database: allowed by the server's configuration, or because"
        " the server serves this database only.",
    )
    server_wide_note = fields.Text(compute="_compute_server_wide")

    process_ids = fields.One2many("memory.diagnostics.process", "diagnostics_id", string="Processes")
    finding_ids = fields.One2many("memory.diagnostics.finding", "diagnostics_id", string="Findings")
    pg_query_ids = fields.One2many("memory.diagnostics.pg.query", "diagnostics_id", string="Long queries")
    pg_session_ids = fields.One2many(
        "memory.diagnostics.pg.figure",
        "diagnostics_id",
        string="Sessions by state",
        domain=[("section", "=", "session")],
    )
    pg_temp_ids = fields.One2many(
        "memory.diagnostics.pg.figure",
        "diagnostics_id",
        string="Temporary files",
        domain=[("section", "=", "temp")],
    )
    pg_setting_ids = fields.One2many(
        "memory.diagnostics.pg.figure",
        "diagnostics_id",
        string="Memory settings",
        domain=[("section", "=", "setting")],
    )
    pg_notes = fields.Text(string="PostgreSQL notes", readonly=True)
    long_query_seconds = fields.Integer(default=pgpressure.LONG_QUERY_SECONDS, readonly=True)

    # ------------------------------------------------------------------
    # Access: Settings admins only, also for calls that read no field
    # ------------------------------------------------------------------
    @api.model
    def _check_admin(self):
        access.check_admin(self.env)

    # ------------------------------------------------------------------
    # Server-wide powers: the server's operator's (core/diagnostics/scope.py)
    # ------------------------------------------------------------------
    @api.model
    def _server_wide_scope(self):
        """``scope.Scope`` of this database's administrator on this server (never raises)."""
        names, dbfilter = odoo_runtime.database_options()
        try:
            served = scope.served_databases(names, dbfilter, lambda: db_service.list_dbs(True))
        except Exception:  # noqa: BLE001 - a bad dbfilter, PostgreSQL down: then not known, so refused
            _logger.warning("Cannot tell which databases this server serves", exc_info=True)
            served = None
        return scope.decide(scope.configured(odoo_runtime.server_wide_option()), served, self.env.cr.dbname)

    @api.model
    def _server_wide_refusal(self, result):
        """Why server-wide actions are unavailable, and how the operator enables them ("" if allowed)."""
        if result.allowed:
            return ""
        if result.code == scope.CONFIGURED_OFF:
            why = self.env._(
                "The server's configuration turns off the actions that reach beyond this database"
                " (memory_hygiene_server_wide = False)."
            )
        elif result.code == scope.BY_HOST_NAME:
            why = self.env._(
                "This server picks each request's database from its host name (its dbfilter uses the host or"
                " domain placeholder), so it may serve several databases."
            )
        else:
            why = self.env._("This server serves %(count)s databases.", count=result.count)
        what = self.env._(
            "Its processes are shared by all of them, so these actions belong to the server's operator:"
            " signals to other processes (stacks, ORM statistics, recycle), and the Python heap and"
            " tracemalloc of a shared worker."
        )
        how = self.env._(
            "To allow them to the Settings administrators of every database of this server, set"
            " memory_hygiene_server_wide = True in the [options] section of the server's configuration"
            " file (or ODOO_MEMORY_HYGIENE_SERVER_WIDE=1 in its environment) and restart it."
        )
        return f"{why} {what} {how}"

    @api.model
    def _check_server_wide(self):
        """Raise UserError (saying why and how to enable) unless server-wide actions are allowed here."""
        result = self._server_wide_scope()
        if not result.allowed:
            raise UserError(self._server_wide_refusal(result))
        return result

    def _compute_server_wide(self):
        result = self._server_wide_scope()
        note = self._server_wide_refusal(result)
        for page in self:
            page.server_wide_allowed = result.allowed
            page.server_wide_note = note or False

    @api.model
    def action_open(self):
        """Create a page, fill it, and open it (the menu's server action)."""
        self._check_admin()
        page = self.create({})
        page.action_refresh()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Memory Diagnostics"),
            "res_model": self._name,
            "res_id": page.id,
            "views": [(False, "form")],
            "target": "current",
        }

    # ------------------------------------------------------------------
    # Refresh: processes, advisor, PostgreSQL
    # ------------------------------------------------------------------
    def action_refresh(self):
        self._check_admin()
        for page in self:
            info = odoo_runtime.server_info()
            options = odoo_runtime.server_options()
            soft, hard = limits.memory_limits(advisor.with_defaults(options), tree.HTTP)
            found = machine.read()
            page.write(
                {
                    "host": odoo_runtime.host_name(),
                    "server_mode": info["mode"],
                    "root_pid": info["root_pid"],
                    "worker_pid": os.getpid(),
                    "worker_kind": tree.own_kind(info["mode"], info["root_pid"]),
                    "cpu_count": found.cpus.value,
                    "ram_mb": (found.memory.value or 0) / MIB,
                    "cpu_text": str(found.cpus),
                    "ram_text": str(found.memory),
                    "available_text": str(found.available),
                    "pressure_text": str(found.pressure),
                    "limit_memory_soft_mb": soft / MIB,
                    "limit_memory_hard_mb": hard / MIB,
                    "logfile": odoo_runtime.server_logfile() or False,
                    "refreshed_at": fields.Datetime.now(),
                }
            )
            figures = page._refresh_processes(info, options)
            settings = page._refresh_postgres(found)
            page._refresh_findings(options, figures, found, settings)

    def _refresh_processes(self, info, options):
        self.process_ids.unlink()
        warn_share = odoo_runtime.setting(self.env, params.WARN_SHARE)
        worker = tree.current_worker()
        figures = []
        for proc, kind, owner in tree.walk(info["root_pid"], info["mode"]):
            soft, _hard = limits.memory_limits(advisor.with_defaults(options), kind)
            # Helpers (wkhtmltopdf, node...) are not held to Odoo's limits: no share of them.
            compared = kind not in (tree.MASTER, tree.HELPER)
            described = reading.describe(proc, kind, soft_limit=soft if compared else 0)
            if described:
                if kind == tree.HELPER:
                    described["owner_pid"] = owner
                    described["name"] = reading.command(proc)
                if proc.pid == os.getpid() and worker is not None:
                    described["requests"] = str(worker.request_count)
                figures.append(described)
        self._requests_from_snapshots(figures)
        for fig in figures:
            fig["tracing"] = self._tracing_text(heap.BOARD.lookup(fig["pid"], fig["started"]))
        self.env["memory.diagnostics.process"].create(
            [self.env["memory.diagnostics.process"]._values_from(self, fig, warn_share) for fig in figures]
        )
        return figures

    def _tracing_text(self, mark):
        """The board's mark of a process (``heap.TracingBoard``), as the page says it."""
        if not mark:
            return False
        if mark.get("until"):
            until = fields.Datetime.to_string(naive_utc(mark["until"]))
            return self.env._("tracing, stops by itself at %(until)s UTC", until=until)
        return self.env._("tracing")

    def _requests_from_snapshots(self, figures):
        """Requests served by the other workers, as their latest snapshot (memory.snapshot) says."""
        others = [fig for fig in figures if fig.get("requests") is None]
        if not others:
            return
        oldest = min(fig["started"] for fig in others)
        rows = self.env["memory.snapshot"].search_read(
            [
                ("host", "=", odoo_runtime.host_name()),
                ("pid", "in", [fig["pid"] for fig in others]),
                ("requests_count", ">", 0),
                ("date", ">=", naive_utc(oldest)),
            ],
            ["pid", "date", "requests_count"],
            order="date desc",
        )
        now = fields.Datetime.now()
        for fig in others:
            started = naive_utc(fig["started"])
            # The latest snapshot taken since this very process started (a pid can be reused).
            row = next((r for r in rows if r["pid"] == fig["pid"] and r["date"] >= started), None)
            if row:
                fig["requests"] = self.env._(
                    "%(count)s (snapshot %(age)s ago)",
                    count=row["requests_count"],
                    age=reading.age_text((now - row["date"]).total_seconds()),
                )

    def _refresh_findings(self, options, figures, found, settings):
        self.finding_ids.unlink()
        live = {}
        for fig in figures:
            if fig["kind"] != tree.HELPER:
                live.setdefault(fig["kind"], []).append((fig["rss"], fig["vms"]))
        findings = advisor.advise(
            options,
            found.cpus.value,
            found.memory.value or psutil.virtual_memory().total,
            live,
            cpu_source=found.cpus.source,
            ram_source=found.memory.source,
            postgres=pgpressure.connection_settings(settings),
        )
        self.env["memory.diagnostics.finding"].create(
            [
                {
                    "diagnostics_id": self.id,
                    "sequence": index,
                    "level": finding.level,
                    "code": finding.code,
                    "title": finding.title,
                    "advice": finding.advice,
                }
                for index, finding in enumerate(findings)
            ]
        )

    def _refresh_postgres(self, found=None):
        """Refresh the PostgreSQL figures and notes; ``{name: (setting, unit)}`` of its settings."""
        found = found or machine.read()
        self.pg_query_ids.unlink()
        self.env["memory.diagnostics.pg.figure"].search([("diagnostics_id", "=", self.id)]).unlink()
        cr = self.env.cr
        figures = []
        cr.execute(pgpressure.CLEAR_SNAPSHOT)
        cr.execute(pgpressure.SESSIONS_BY_STATE)
        active = 0
        for state, count in cr.fetchall():
            active += count if state == "active" else 0
            figures.append({"section": "session", "name": state, "value": str(count)})
        cr.execute(pgpressure.TEMP_FILES)
        for datname, temp_files, temp_bytes in cr.fetchall():
            figures.append(
                {
                    "section": "temp",
                    "name": datname,
                    "value": units.human_size(temp_bytes or 0),
                    "detail": self.env._("%(files)s temporary files", files=temp_files),
                    "is_current": datname == cr.dbname,
                }
            )
        cr.execute(pgpressure.MEMORY_SETTINGS, [list(pgpressure.SETTINGS)])
        settings = {}
        for name, setting, unit, shown, short_desc in cr.fetchall():
            settings[name] = (setting, unit)
            figures.append({"section": "setting", "name": name, "value": shown, "detail": short_desc})
        self.env["memory.diagnostics.pg.figure"].create(
            [{**fig, "diagnostics_id": self.id} for fig in figures]
        )
        cr.execute(pgpressure.LONG_QUERIES, [self.long_query_seconds, pgpressure.LONG_QUERY_LIMIT])
        self.env["memory.diagnostics.pg.query"].create(
            [
                {
                    "diagnostics_id": self.id,
                    "backend_pid": pid,
                    "backend_start": backend_start,
                    "query_start": query_start,
                    "usename": usename,
                    "runtime": runtime,
                    "wait_event_type": wait_event_type,
                    "wait_event": wait_event,
                    "query": query,
                }
                for (
                    pid,
                    backend_start,
                    query_start,
                    usename,
                    runtime,
                    wait_event_type,
                    wait_event,
                    query,
                ) in cr.fetchall()
            ]
        )
        notes = pgpressure.notes(
            settings, active, found.memory.value or psutil.virtual_memory().total, found.memory.source
        )
        self.pg_notes = "\n".join(notes) or False
        return settings

    def action_refresh_postgres(self):
        self._check_admin()
        for page in self:
            page._refresh_postgres()

    # ------------------------------------------------------------------
    # This worker: output shown in the page and logged
    # ------------------------------------------------------------------
    def _show(self, title, text):
        """Put ``text`` in the page under ``title`` and log it: what the signal would have logged."""
        self.ensure_one()
        info = odoo_runtime.server_info()
        kind = tree.own_kind(info["mode"], info["root_pid"])
        heading = self.env._(
            "%(title)s, pid %(pid)s (%(kind)s) on %(host)s",
            title=title,
            pid=os.getpid(),
            kind=kind,
            host=odoo_runtime.host_name(),
        )
        _logger.info("%s, asked by %s:\n%s", heading, self.env.user.login, text)
        self.write({"output_title": heading, "output": text})

    def action_dump_stacks(self):
        self._check_admin()
        greenlets = stack_dumps.live_greenlets() if odoo_runtime.evented() else ()
        text = stack_dumps.dump(sys._current_frames(), greenlets=greenlets)
        # A threaded or gevent process also serves other databases: their threads stay hidden unless
        # the server's operator allowed server-wide actions; URLs lose query strings and tokens.
        shown = scope.redact_stack_dump(text, self.env.cr.dbname, self._server_wide_scope().allowed)
        self._show(self.env._("Thread stacks"), shown)

    def action_orm_stats(self):
        self._check_admin()
        with_size = compat.ormcache_sizes()
        rows, usage = compat.ormcache_stats(self.env.registry, with_size=with_size)
        text = cachestats.format_ormcache(self.env.cr.dbname, rows, usage, with_size=with_size)
        text += "\n\n" + cachestats.format_record_cache(compat.record_cache_counts(self.env))
        self._show(self.env._("ORM cache statistics"), text)

    def action_heap_summary(self):
        self._check_admin()
        self._check_server_wide()  # the heap of a worker that other databases share
        rows = heap.top_types(limit=30)
        self._show(self.env._("Python heap: top types by size (pympler)"), heap.format_top_types(rows))

    def action_collect(self):
        self._check_admin()
        self._show(self.env._("Garbage collection and malloc_trim(0)"), heap.format_collect(heap.collect()))

    def action_clear_caches(self):
        self._check_admin()
        _rows, before = compat.ormcache_stats(self.env.registry)
        self.env.registry.clear_all_caches()
        _rows, after = compat.ormcache_stats(self.env.registry)
        lines = [
            self.env._(
                "All ORM caches of database %(db)s cleared in this worker; the other workers clear theirs at"
                " their next request (Odoo's cache invalidation signalling).",
                db=self.env.cr.dbname,
            ),
            "",
        ]
        lines += [
            f"{name:>25}: {count_before:6d} -> {count_after:6d} entries"
            for (name, count_before, _c, _s), (_n, count_after, _c2, _s2) in zip(before, after, strict=True)
        ]
        self._show(self.env._("Clear the ORM caches"), "\n".join(lines))

    def _profile_settings(self):
        return odoo_runtime.setting(self.env, params.PROFILE_FRAMES), odoo_runtime.setting(
            self.env, params.PROFILE_TOP_N
        )

    def action_tracemalloc_start(self):
        """Trace this worker's allocations until stopped, the time is up or the traced size is reached."""
        self._check_admin()
        self._check_server_wide()  # tracing slows a worker that other databases share
        frames, _top_n = self._profile_settings()
        minutes = odoo_runtime.setting(self.env, params.TRACEMALLOC_MAX_MINUTES)
        max_mb = odoo_runtime.setting(self.env, params.TRACEMALLOC_MAX_MB)
        self._show(
            self.env._("tracemalloc: start"),
            heap.TRACER.start(frames, max_seconds=minutes * 60, max_bytes=max_mb * MIB),
        )

    def action_tracemalloc_snapshot(self):
        self._check_admin()
        self._check_server_wide()  # what a shared worker allocates, for every database
        _frames, top_n = self._profile_settings()
        text = heap.TRACER.snapshot(top_n=top_n)
        if text is None:
            text = self.env._(
                "tracemalloc is not tracing in this worker (pid %(pid)s). With several HTTP workers, each"
                " request"
                " may land on another worker: start tracing, then snapshot until the answer comes from the"
                " worker that traces, or use workers = 0 on a test server.",
                pid=os.getpid(),
            )
        self._show(self.env._("tracemalloc: snapshot"), text)

    def action_tracemalloc_stop(self):
        self._check_admin()
        self._show(self.env._("tracemalloc: stop"), heap.TRACER.stop())

    @api.depends("worker_pid", "worker_kind")
    def _compute_answered_by(self):
        for page in self:
            page.answered_by = f"pid {page.worker_pid} ({page.worker_kind})" if page.worker_pid else False

    @api.depends("host")
    def _compute_display_name(self):
        for page in self:
            page.display_name = self.env._("Diagnostics of %(host)s", host=page.host or "?")

    def _compute_tracemalloc_state(self):
        # The state of the process that reads the page: no stored dependency.
        if heap.TRACER.tracing:
            state = self.env._("tracing in pid %(pid)s", pid=os.getpid())
        elif heap.TRACER.stopped_because:
            state = self.env._(
                "off in pid %(pid)s (stopped by itself: %(reason)s)",
                pid=os.getpid(),
                reason=heap.TRACER.stopped_because,
            )
        else:
            state = self.env._("off in pid %(pid)s", pid=os.getpid())
        for page in self:
            page.tracemalloc_state = state

import json
import logging
import os
import uuid
from datetime import timedelta

from odoo import SUPERUSER_ID, api, fields, models
from odoo.exceptions import UserError
from odoo.modules.registry import Registry
from odoo.tools import config, sql

from .. import access, compat, odoo_runtime
from ..core.common import params, throttle
from ..core.common.units import naive_utc
from ..core.diagnostics import heap
from ..core.process import limits, tree
from ..core.snapshot import sampler, trends

_logger = logging.getLogger(__name__)

KINDS = [
    (tree.MASTER, "Master"),
    (tree.HTTP, "HTTP worker"),
    (tree.CRON, "Cron worker"),
    (tree.GEVENT, "Gevent (websocket)"),
    (tree.THREADED, "Threaded server"),
    (tree.WORKER, "Worker"),
    (tree.OTHER, "Other (shell, script)"),
]
TRIGGERS = [
    ("schedule", "Scheduled"),
    ("request", "After a request"),
    ("manual", "Sample now"),
    ("profiler", "Profiler"),
]
RECENT = [("1h", "Last hour"), ("24h", "Last 24 hours")]

#: When this HTTP worker samples itself next (reset in forked workers).
SELF_SAMPLE_THROTTLE = throttle.Throttle()


class MemorySnapshot(models.Model):
    """One sample of one Odoo process: what it weighs, how close it is to its limits.

    Written by the scheduled action (every process of the host), by each HTTP
    worker after a request (itself, throttled), and by "Sample now".
    """

    _name = "memory.snapshot"
    _description = "Worker Memory Snapshot"
    _log_access = False
    _order = "date desc, id desc"

    date = fields.Datetime(required=True, readonly=True, index=True, default=fields.Datetime.now)
    host = fields.Char(required=True, readonly=True, index=True)
    pid = fields.Integer(string="PID", readonly=True, index=True, aggregator=False)
    process_kind = fields.Selection(KINDS, string="Kind", required=True, readonly=True)
    trigger = fields.Selection(TRIGGERS, required=True, readonly=True)
    round_key = fields.Char(readonly=True, index=True, help="Shared by the snapshots of one sampling round.")
    rss_mb = fields.Float(
        string="RSS (MiB)", readonly=True, aggregator="avg", help="What the OOM killer sees."
    )
    vms_mb = fields.Float(
        string="Virtual (MiB)",
        readonly=True,
        aggregator="avg",
        help="Virtual size: what Odoo compares with limit_memory_soft and limit_memory_hard on Linux.",
    )
    uss_mb = fields.Float(
        string="USS (MiB)", readonly=True, aggregator="avg", help="Only when USS sampling is on."
    )
    soft_limit_pct = fields.Float(
        string="% of soft limit",
        readonly=True,
        aggregator="max",
        help="The size Odoo compares (virtual size on Linux) as a share of the soft limit in force: "
        "at 100% the worker is recycled after its request.",
    )
    soft_limit_mb = fields.Float(string="Soft limit (MiB)", readonly=True, aggregator="max")
    hard_limit_mb = fields.Float(string="Hard limit (MiB)", readonly=True, aggregator="max")
    num_fds = fields.Integer(string="Open files", readonly=True, aggregator="max")
    num_threads = fields.Integer(string="Threads", readonly=True, aggregator="max")
    cpu_seconds = fields.Float(string="CPU (s)", readonly=True, aggregator="max")
    started_at = fields.Datetime(string="Process started", readonly=True)
    age_hours = fields.Float(string="Age (h)", readonly=True, aggregator="max")
    requests_count = fields.Integer(string="Requests served", readonly=True, aggregator="max")
    record_cache_size = fields.Integer(string="Record cache values", readonly=True, aggregator="max")
    ormcache_entries = fields.Integer(string="ormcache entries", readonly=True, aggregator="max")
    gc_counts = fields.Char(string="GC counts", readonly=True, help="Pending collections per generation.")
    growth_mb_per_hour = fields.Float(
        string="Growth (MiB/h)", readonly=True, aggregator="max", help="Least squares of RSS over the window."
    )
    leak_suspect = fields.Boolean(readonly=True, index=True)
    recycled_pid = fields.Integer(
        string="Replaced PID",
        readonly=True,
        aggregator=False,
        help="The worker this one replaced (a recycle).",
    )
    top_types = fields.Text(
        string="Top object types", readonly=True, prefetch=False, help="pympler, as JSON."
    )
    top_types_display = fields.Text(string="Top object types (table)", compute="_compute_top_types_display")
    above_warn = fields.Boolean(
        string="Above warn share", compute="_compute_above_warn", search="_search_above_warn"
    )
    recent = fields.Selection(RECENT, compute="_compute_recent", search="_search_recent")
    host_gone = fields.Boolean(
        compute="_compute_host_gone",
        search="_search_host_gone",
        help="The host has sent nothing for a few sampling intervals (Hosts).",
    )

    def init(self):
        # The latest snapshot of each host (hosts, gone hosts, rounds): an index lookup per host.
        sql.create_index(self.env.cr, "memory_snapshot_host_date_index", self._table, ["host", "date"])

    @api.depends("host", "process_kind", "pid")
    def _compute_display_name(self):
        kinds = dict(KINDS)
        for snapshot in self:
            snapshot.display_name = f"{snapshot.host} {kinds.get(snapshot.process_kind, '')} {snapshot.pid}"

    def _compute_top_types_display(self):
        for snapshot in self:
            rows = json.loads(snapshot.top_types) if snapshot.top_types else []
            snapshot.top_types_display = "\n".join(
                f"{size / limits.MIB:10.1f} MiB {count:10d}  {name}" for name, count, size in rows
            )

    def _compute_above_warn(self):
        warn = odoo_runtime.setting(self.env, params.WARN_SHARE)
        for snapshot in self:
            snapshot.above_warn = snapshot.soft_limit_pct >= warn

    def _search_above_warn(self, operator, value):
        wanted = _wanted(operator, value, True)
        return [
            ("soft_limit_pct", ">=" if wanted else "<", odoo_runtime.setting(self.env, params.WARN_SHARE))
        ]

    def _compute_host_gone(self):
        gone = set(self.env["memory.host"]._gone_names())
        for snapshot in self:
            snapshot.host_gone = snapshot.host in gone

    def _search_host_gone(self, operator, value):
        wanted = _wanted(operator, value, True)
        return [("host", "in" if wanted else "not in", self.env["memory.host"]._gone_names())]

    def _compute_recent(self):
        self.recent = False

    def _search_recent(self, operator, value):
        values = [value] if isinstance(value, str) else list(value)
        if operator not in ("=", "in") or not set(values) <= set(dict(RECENT)):
            raise UserError(self.env._("Search recent snapshots with 'is' %s.", ", ".join(dict(RECENT))))
        hours = max(1 if v == "1h" else 24 for v in values)
        return [("date", ">=", fields.Datetime.now() - timedelta(hours=hours))]

    # ------------------------------------------------------------------ sampling

    @api.model
    def _cron_sample(self):
        """Scheduled action: sample every Odoo process of this host.

        Checked like a public method: its server action can be run over RPC
        (19.0's ``ir.actions.server.run`` checks write access under sudo, so
        for anyone). The scheduled action runs as the superuser and passes.
        """
        access.check_admin(self.env)
        return self._sample_round("schedule")

    def action_sample_now(self):
        """Sample every Odoo process of this host now, with this worker's top object types."""
        access.check_admin(self.env)  # the records are written as superuser: admins only
        self._sample_round("manual", top_types=True)
        return {"type": "ir.actions.client", "tag": "reload"}

    @api.model
    def _sample_round(self, trigger, top_types=False):
        """Sample this process and every sibling of the server's process tree; one round.

        A scheduled round is skipped while another process of the host takes one (two rounds at
        once would both compare with the same previous round).
        """
        if not self.env["memory.host"]._lock_round(odoo_runtime.host_name()) and trigger == "schedule":
            _logger.info(
                "Another process of %s is sampling it now: this round is skipped", odoo_runtime.host_name()
            )
            return self.browse()
        info = odoo_runtime.server_info()
        uss = odoo_runtime.setting(self.env, params.SNAPSHOT_USS)
        found = sampler.sample_tree(info["root_pid"], info["mode"], uss=uss)
        own = os.getpid()
        for figures in found:
            if figures["pid"] == own:
                figures.update(self._own_figures(top_types=top_types))
        root_kind = tree.MASTER if info["mode"] == "prefork" else tree.own_kind(info["mode"])
        return self._record(trigger, found, round_key=uuid.uuid4().hex, root_kind=root_kind)

    @api.model
    def _sample_self(self, trigger, extra=None, top_types=False):
        """Sample the current process alone (an HTTP worker after a request, the profiler)."""
        info = odoo_runtime.server_info()
        figures = sampler.sample(
            limits.this_process(), uss=odoo_runtime.setting(self.env, params.SNAPSHOT_USS)
        )
        figures["kind"] = tree.own_kind(info["mode"], info["root_pid"])
        figures.update(self._own_figures(top_types=top_types), **(extra or {}))
        return self._record(trigger, [figures])

    def _own_figures(self, top_types=False):
        """What only Odoo knows, for the process this code runs in."""
        worker = tree.current_worker()
        figures = {
            "record_cache_size": odoo_runtime.record_cache_size(self.env),
            "ormcache_entries": odoo_runtime.ormcache_entries(self.env.registry),
            "gc_counts": sampler.gc_counts(),
            "requests_count": getattr(worker, "request_count", 0),
        }
        if top_types:
            figures["top_types"] = json.dumps(heap.top_types(limit=20), separators=(",", ":"))
        return figures

    def _record(self, trigger, found, round_key=False, root_kind=tree.MASTER):
        """Create the snapshots of ``found`` (figures of processes of this host), with trends."""
        host = odoo_runtime.host_name()
        now = fields.Datetime.now()
        options = {option: config.get(option) for option in limits.LIMIT_OPTIONS}
        found = [sampler.with_limits(figures, options) for figures in found]
        growth = self._growth(host, now, found)
        replaced = {}
        if round_key:
            previous = self._previous_round(host)
            current = {figures["pid"]: figures["kind"] for figures in found}
            for kind, old, new in trends.recycles(previous, current, root_kind):
                _logger.info("%s worker %s of %s was recycled: %s replaces it", kind, old, host, new)
                replaced[new] = old
        vals_list = []
        for figures in found:
            rate, suspect = growth.get(figures["pid"], (None, False))
            vals_list.append(
                {
                    "date": now,
                    "host": host,
                    "trigger": trigger,
                    "round_key": round_key,
                    "pid": figures["pid"],
                    "process_kind": figures["kind"],
                    "rss_mb": figures["rss_mb"],
                    "vms_mb": figures["vms_mb"],
                    "uss_mb": figures["uss_mb"] or 0.0,
                    "soft_limit_pct": figures["soft_limit_pct"],
                    "soft_limit_mb": figures["soft_limit_mb"],
                    "hard_limit_mb": figures["hard_limit_mb"],
                    "num_fds": figures["num_fds"] or 0,
                    "num_threads": figures["num_threads"] or 0,
                    "cpu_seconds": figures["cpu_seconds"],
                    "started_at": naive_utc(int(figures["started_at"])),
                    "age_hours": figures["age_seconds"] / 3600,
                    "requests_count": figures.get("requests_count") or 0,
                    "record_cache_size": figures.get("record_cache_size") or 0,
                    "ormcache_entries": figures.get("ormcache_entries") or 0,
                    "gc_counts": figures.get("gc_counts") or False,
                    "top_types": figures.get("top_types") or False,
                    "growth_mb_per_hour": rate or 0.0,
                    "leak_suspect": suspect,
                    "recycled_pid": replaced.get(figures["pid"], 0),
                }
            )
        # Snapshots are the sampler's records: written whoever's request or cron is observed.
        return self.sudo().create(vals_list)

    def _growth(self, host, now, found):
        """``{pid: (MiB/h over the window, leak suspect)}`` from earlier snapshots of the same processes."""
        threshold = odoo_runtime.setting(self.env, params.GROWTH_THRESHOLD)
        span = odoo_runtime.setting(self.env, params.GROWTH_MIN_SPAN) * 60
        lookback = span + 2 * odoo_runtime.setting(self.env, params.SNAPSHOT_INTERVAL) * 60
        pids = [figures["pid"] for figures in found]
        # Earlier snapshots of this host's processes: read by the sampler whoever triggers it.
        rows = self.sudo().search_read(
            [("host", "=", host), ("pid", "in", pids), ("date", ">=", now - timedelta(seconds=lookback))],
            ["pid", "started_at", "date", "rss_mb"],
            order="date",
        )
        result = {}
        for figures in found:
            started = naive_utc(int(figures["started_at"]))
            points = [
                (row["date"].timestamp(), row["rss_mb"])
                for row in rows
                if row["pid"] == figures["pid"] and row["started_at"] == started
            ]
            points.append((now.timestamp(), figures["rss_mb"]))
            window = [p for p in points if p[0] >= now.timestamp() - span]
            result[figures["pid"]] = (
                trends.growth_rate(window),
                trends.leak_suspect(points, threshold, span),
            )
        return result

    def _previous_round(self, host):
        """``{pid: kind}`` of this host's latest sampling round."""
        # The previous round, whoever triggers this one.
        last = self.sudo().search([("host", "=", host), ("round_key", "!=", False)], limit=1)
        if not last:
            return {}
        return {s.pid: s.process_kind for s in self.sudo().search([("round_key", "=", last.round_key)])}

    @api.model
    def _recycles_per_host(self, since=None):
        """``{host: number of recycles recorded}`` (since ``since`` when given), gone hosts left out."""
        domain = [("recycled_pid", "!=", 0), ("host_gone", "=", False)]
        domain += [("date", ">=", since)] if since else []
        return dict(self._read_group(domain, ["host"], ["__count"]))

    # ------------------------------------------------------------------ housekeeping

    @api.autovacuum
    def _gc_snapshots(self):
        """Purge snapshots older than the retention, in bounded chunks."""
        days = odoo_runtime.setting(self.env, params.SNAPSHOT_RETENTION_DAYS)
        old = self.search(
            [("date", "<", fields.Datetime.now() - timedelta(days=days))], limit=compat.GC_UNLINK_LIMIT
        )
        if len(old) >= compat.GC_UNLINK_LIMIT:
            self.env.ref("base.autovacuum_job")._trigger()  # more is left: run again soon
        return old.unlink()

    @api.model
    def _sync_cron_interval(self):
        """Make the sampling scheduled action run at the interval of the settings."""
        # The scheduled action belongs to the addon: Settings admins change it through the setting.
        cron = self.env.ref("memory_hygiene.ir_cron_memory_snapshot", raise_if_not_found=False)
        minutes = odoo_runtime.setting(self.env, params.SNAPSHOT_INTERVAL)
        if cron and (cron.sudo().interval_number, cron.sudo().interval_type) != (minutes, "minutes"):
            cron.sudo().write({"interval_number": minutes, "interval_type": "minutes"})


def self_sample_due():
    """Whether this HTTP worker samples itself after the current request (the per-request check).

    Never under the test runner, whose single cursor must not be shared.
    """
    return SELF_SAMPLE_THROTTLE.due() and not odoo_runtime.in_test_mode()


def sample_after_request(dbname, extra):
    """Sample this worker in a short transaction of its own, once the response is sent.

    Never raises: a failure is logged and the request (already answered) is
    not affected.
    """
    try:
        worker = tree.current_worker()
        if worker is not None:
            # Odoo counts a request once it is closed, after this callback.
            extra = {**extra, "requests_count": worker.request_count + 1}
        with Registry(dbname).cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            # First statement of the transaction: the host's round when none was taken within the
            # interval, so that a host whose cron worker never takes the scheduled action is sampled
            # whole all the same, by one of its processes.
            round_due = env["memory.host"]._claim_round(odoo_runtime.host_name())
            env["memory.snapshot"]._sample_self("request", extra)
            if round_due:
                env["memory.snapshot"]._sample_round("schedule")
    except Exception:
        _logger.exception("memory_hygiene: sampling this worker after a request failed")


def _wanted(operator, value, truth):
    """Whether a search on a computed boolean asks for records where it is ``truth``."""
    if operator in ("in", "not in"):
        positive = truth in value
        return positive if operator == "in" else not positive
    if operator in ("=", "!="):
        return (bool(value) == truth) == (operator == "=")
    raise NotImplementedError(f"Unsupported operator {operator!r}")

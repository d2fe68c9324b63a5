import contextlib
import logging
import os
from datetime import datetime, timedelta

import psutil

from odoo import api, fields, models

from .. import access, compat, odoo_runtime
from ..core.common import params
from ..core.common.units import MIB, naive_utc
from ..core.process import reading
from ..core.worker import lifecycle, storms

_logger = logging.getLogger(__name__)

#: Seconds a vanished worker waits for the master's word before it is judged without it.
_MASTER_GRACE = 30
#: Days worker exits are kept.
_RETENTION_DAYS = 30

CAUSES = [
    (lifecycle.SOFT_LIMIT, "Recycled at the soft memory limit"),
    (lifecycle.REQUEST_LIMIT, "limit_request reached"),
    (lifecycle.REAL_TIME, "Killed for the real-time limit"),
    (lifecycle.CPU_LIMIT, "CPU limit (SIGXCPU)"),
    (lifecycle.MEMORY_ERROR, "MemoryError at the hard limit"),
    (lifecycle.OOM, "Killed by the kernel's OOM killer"),
    (lifecycle.SIGNAL, "Killed by a signal"),
    (lifecycle.CRASHED, "Crashed"),
    (lifecycle.STOPPED, "Stopped"),
    (lifecycle.UNKNOWN, "Unknown"),
]
EVIDENCE = [
    (lifecycle.WORKER, "The worker's last words"),
    (lifecycle.MASTER, "The master's wait status"),
    (lifecycle.LOG, "Odoo's log"),
    (lifecycle.CGROUP, "The cgroup's OOM-kill counter"),
    (lifecycle.NONE, "None"),
]


class MemoryWorkerExit(models.Model):
    """A worker of this server that went away: why (and the evidence of it), what it was doing.

    Collected by whoever looks (the sampling round, the Diagnostics page) from
    the server's state directory (:mod:`core.worker.lifecycle`), on the host of the
    server, into the database of the collector. The work of another database
    is stored unnamed unless server-wide powers are allowed.
    """

    _name = "memory.worker.exit"
    _description = "Worker exit"
    _order = "ended_at desc, id desc"
    _log_access = False

    host = fields.Char(readonly=True, index=True)
    root_pid = fields.Integer(string="Server pid", readonly=True)
    pid = fields.Integer(readonly=True)
    kind = fields.Char(readonly=True, index=True)
    cause = fields.Selection(CAUSES, readonly=True, index=True)
    evidence = fields.Selection(EVIDENCE, readonly=True, help="Which source gave the cause.")
    detail = fields.Char(readonly=True)
    doing = fields.Char(readonly=True, help="What the worker was doing when it ended (idle when nothing).")
    doing_seconds = fields.Integer(string="Doing for (s)", readonly=True)
    cron_id = fields.Many2one("ir.cron", string="Scheduled action", readonly=True, index="btree_not_null")
    rss_mb = fields.Float(string="Last RSS (MiB)", digits=(16, 1), readonly=True)
    vms_mb = fields.Float(string="Last virtual (MiB)", digits=(16, 1), readonly=True)
    requests = fields.Integer(readonly=True)
    age_seconds = fields.Integer(string="Age (s)", readonly=True)
    age = fields.Char(compute="_compute_age")
    started_at = fields.Datetime(readonly=True)
    ended_at = fields.Datetime(readonly=True, index=True)

    def _compute_age(self):
        for record in self:
            record.age = reading.age_text(record.age_seconds)

    @api.model
    def _collect(self):
        """Record the workers of this host's server that went away since the last look; never raises.

        ``[memory.worker.exit]`` created (empty when none).
        """
        try:
            return self._collect_exits()
        except Exception:
            _logger.exception("memory_hygiene: cannot collect the exits of this server's workers")
            return self.browse()

    def _collect_exits(self):
        info = odoo_runtime.server_info()
        if info["mode"] != "prefork":
            return self.browse()
        directory = lifecycle.state_dir(info["root_pid"])
        lifecycle.sweep(psutil.pid_exists)
        found = lifecycle.pending(directory)
        if not found:
            return self.browse()
        log_text = lifecycle.read_log_tail(odoo_runtime.server_logfile())
        oom_now = lifecycle.oom_kills()
        master_hooked = _master_hooked(directory)
        allowed = self.env["memory.diagnostics"]._server_wide_scope().allowed
        vals_list = []
        for pid, files in found.items():
            if not files["exit"] and not os.path.exists(os.path.join(directory, f"{pid}.state")):
                lifecycle.forget(directory, pid)  # the master's word on an exit already recorded
                continue
            if not _gone(pid, files):
                continue
            if master_hooked and not files["reaped"] and not files["exit"] and not _waited(directory, pid):
                continue  # the master reaps it now and writes how it ended: next look
            if not _claim(directory, pid):
                continue
            cause, evidence, detail = lifecycle.decide(files, log_text, oom_now)
            record = lifecycle.exit_record(pid, files, cause, evidence, detail)
            vals_list.append(self._values(info["root_pid"], record, allowed))
            lifecycle.forget(directory, pid)
            _release(directory, pid)
        if not vals_list:
            return self.browse()
        for vals in vals_list:
            _logger.info(
                "%s worker %s ended: %s (evidence: %s) while %s",
                vals["kind"],
                vals["pid"],
                vals["cause"],
                vals["evidence"],
                vals["doing"],
            )
        # Exits are the observer's records: written whoever's request or cron looks.
        created = self.sudo().create(vals_list)
        created._raise_alerts()
        return created

    def _raise_alerts(self):
        """Immediate alerts of these new exits: an OOM kill, a recycle storm (rate-limited per kind)."""
        alerts = self.env["memory.lifecycle.alert"]
        for exit_ in self.filtered(lambda e: e.cause == lifecycle.OOM):
            alerts._raise(
                "oom_killer",
                exit_.kind,
                self.env._(
                    "%(kind)s worker %(pid)s OOM-killed by the kernel (RSS %(rss)s MiB) while %(doing)s",
                    kind=exit_.kind,
                    pid=exit_.pid,
                    rss=round(exit_.rss_mb),
                    doing=exit_.doing,
                ),
                self.env._(
                    "The machine ran out of memory: lower limit_memory_hard or the number of workers,"
                    " or give the server more memory."
                ),
            )
        for kind, storm in self._storms().items():
            alerts._raise("storm", kind, storm["reason"], storm["advice"])

    def _values(self, root_pid, record, allowed):
        doing = record["doing"]
        text, seconds = lifecycle.describe_doing(doing, self.env.cr.dbname, allowed, at=record["ended"])
        cron_id = False
        if doing and doing["what"] == lifecycle.CRON and doing["db"] == self.env.cr.dbname:
            cron_id = _cron_id(doing["target"])
            # A scheduled action of this database, still there.
            cron_id = cron_id if cron_id and self.env["ir.cron"].sudo().browse(cron_id).exists() else False
        return {
            "host": odoo_runtime.host_name(),
            "root_pid": root_pid,
            "pid": record["pid"],
            "kind": record["kind"],
            "cause": record["cause"],
            "evidence": record["evidence"],
            "detail": record["detail"] or False,
            "doing": text,
            "doing_seconds": seconds,
            "cron_id": cron_id,
            "rss_mb": record["rss"] / MIB,
            "vms_mb": record["vms"] / MIB,
            "requests": record["requests"],
            "age_seconds": int(record["age"] or 0),
            "started_at": naive_utc(record["started"]) if record["started"] else False,
            "ended_at": naive_utc(record["ended"]),
        }

    # ------------------------------------------------------------------
    # Recycle storms and scheduled actions that kill their worker
    # ------------------------------------------------------------------
    @api.model
    def _storms(self, host=None):
        """``{kind: {"count", "cause", "likely", "reason"}}`` of this host's kinds in a recycle storm."""
        window = odoo_runtime.setting(self.env, params.STORM_WINDOW)
        now = fields.Datetime.now()
        # Exits are read for whoever looks at the server's health (an admin, or the endpoint's token).
        rows = self.sudo().search_read(
            [
                ("host", "=", host or odoo_runtime.host_name()),
                ("ended_at", ">=", now - timedelta(minutes=window)),
            ],
            ["kind", "cause", "requests", "age_seconds", "ended_at"],
        )
        exits = [
            {
                "kind": row["kind"],
                "cause": row["cause"],
                "requests": row["requests"],
                "age": row["age_seconds"],
                "ended": row["ended_at"].timestamp(),
            }
            for row in rows
        ]
        found = storms.storms(
            exits,
            now.timestamp(),
            max_requests=odoo_runtime.setting(self.env, params.STORM_REQUESTS),
            max_minutes=odoo_runtime.setting(self.env, params.STORM_MINUTES),
            window_minutes=window,
            databases=self._databases_served(),
        )
        for kind, storm in found.items():
            storm["reason"], storm["advice"] = self._storm_reason(kind, storm, window)
        return found

    def _databases_served(self):
        scope_ = self.env["memory.diagnostics"]._server_wide_scope()
        return scope_.count or 1

    def _storm_reason(self, kind, storm, window):
        causes = dict(self._fields["cause"]._description_selection(self.env))
        advice = {
            "baseline": self.env._(
                "a fresh worker already sits near limit_memory_soft: raise the limit, or load fewer modules"
            ),
            "registries": self.env._(
                "each worker loads the registry of every database it serves: fewer databases per server,"
                " or a higher limit_memory_soft"
            ),
            "leak": self.env._("memory grows with each request: look for a leak (Leak report, snapshots)"),
            "limit_request": self.env._("limit_request is low: raise it"),
            "killed": self.env._("workers are killed: see the causes in Worker exits"),
        }[storm["likely"]]
        reason = self.env._(
            "recycle storm: %(count)s %(kind)s workers ended young in the last %(window)s minutes,"
            " mostly %(cause)s; %(advice)s",
            count=storm["count"],
            kind=kind,
            window=window,
            cause=causes.get(storm["cause"], storm["cause"]),
            advice=advice,
        )
        return reason, advice

    @api.model
    def _killing_crons(self):
        """``{ir.cron record: {"count", "cause", "reason"}}``: scheduled actions whose runs ended with their
        worker killed (time, CPU, memory, OOM, signal) within the storm window."""
        window = odoo_runtime.setting(self.env, params.STORM_WINDOW)
        since = fields.Datetime.now() - timedelta(minutes=max(window, 24 * 60))
        rows = self.sudo().search_read(
            [("cron_id", "!=", False), ("cause", "in", lifecycle.KILLED), ("ended_at", ">=", since)],
            ["cron_id", "cause"],
        )
        found = storms.killing_crons([{"cron_id": r["cron_id"][0], "cause": r["cause"]} for r in rows])
        causes = dict(self._fields["cause"]._description_selection(self.env))
        result = {}
        for cron_id, figures in found.items():
            cron = self.env["ir.cron"].sudo().browse(cron_id)
            figures["reason"] = self.env._(
                "scheduled action %(name)s: %(count)s runs ended with their worker killed (%(cause)s);"
                " Odoo counts each as a failure and deactivates the action after repeated ones",
                name=cron.name,
                count=figures["count"],
                cause=causes.get(figures["cause"], figures["cause"]),
            )
            result[cron] = figures
        return result

    @api.model
    def _report_notes(self):
        """Lines for the leak report: this host's recycle storms and the scheduled actions killing their
        worker, each with its likely cause and advice (never raises)."""
        try:
            notes = [storm["reason"] for _kind, storm in sorted(self._storms().items())]
            return notes + [figures["reason"] for figures in self._killing_crons().values()]
        except Exception:
            _logger.exception("Memory leak report: cannot read the worker exits")
            return []

    @api.model
    def _exit_counts(self, host):
        """``{(cause, kind): count}`` of the recorded exits of ``host``."""
        groups = self.sudo()._read_group([("host", "=", host)], ["cause", "kind"], ["__count"])
        return {(cause, kind): count for cause, kind, count in groups}

    def action_collect(self):
        """Collect the exits of this server's workers now (the list's button)."""
        access.check_admin(self.env)
        self._collect()
        return {"type": "ir.actions.client", "tag": "reload"}

    @api.autovacuum
    def _gc_exits(self):
        """Purge exits older than the retention, in bounded chunks."""
        old = self.search(
            [("ended_at", "<", fields.Datetime.now() - timedelta(days=_RETENTION_DAYS))],
            limit=compat.GC_UNLINK_LIMIT,
        )
        if len(old) >= compat.GC_UNLINK_LIMIT:
            self.env.ref("base.autovacuum_job")._trigger()  # more is left: run again soon
        return old.unlink()


def _gone(pid, files):
    """Whether the worker of ``files`` is gone (a reused pid is another process; a zombie is not yet)."""
    started = (files["state"] or files["exit"] or {}).get("started")
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is not None and abs(proc.create_time() - started) > 1
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _master_hooked(directory):
    """Whether the master runs this addon's hooks (then it writes how each worker ended)."""
    return os.path.exists(os.path.join(directory, lifecycle.MASTER_MARK))


def _waited(directory, pid):
    """Whether worker ``pid`` was seen gone at least :data:`_MASTER_GRACE` seconds ago."""
    mark = os.path.join(directory, f"{pid}.gone")
    try:
        return os.stat(mark).st_mtime < datetime.now().timestamp() - _MASTER_GRACE
    except FileNotFoundError:
        with open(mark, "w", encoding="utf-8"):
            pass
        return False


def _claim(directory, pid):
    """Take worker ``pid``'s files for this collector alone (two collectors may look at once)."""
    try:
        os.close(
            os.open(os.path.join(directory, f"{pid}.claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        )
        return True
    except FileExistsError:
        return False


def _release(directory, pid):
    for suffix in ("claim", "gone"):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, f"{pid}.{suffix}"))


def _cron_id(target):
    head = target.split(" ", 1)[0]
    return int(head[1:]) if head.startswith("#") and head[1:].isdigit() else False

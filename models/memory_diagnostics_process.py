import logging
import os
import socket
import time

from odoo import fields, models
from odoo.exceptions import UserError

from .. import odoo_runtime
from ..core.common.units import MIB, naive_utc
from ..core.diagnostics import scope, signal_policy, stack_dumps
from ..core.process import reading, tree

_logger = logging.getLogger(__name__)


#: Where each signal's answer appears in the server log: (logger, marker, seconds to wait for it).
# (logger, first line, seconds to wait): a loaded host can take a while to
# schedule the signalled process; past the wait the page says where to look.
_ANSWERS = {
    signal_policy.STACKS: ("odoo.tools.misc", "# Thread:", 15.0),
    signal_policy.ORM_STATS: ("odoo.tools.cache", "Caches stats:", 30.0),
}


class MemoryDiagnosticsProcess(models.TransientModel):  # pylint: disable=no-wizard-in-models
    """One process of this host's server, with what ``ps`` and Odoo's limits say about it.

    Odoo processes, then the helpers they started (kind ``helper``, with the
    pid of the Odoo process that owns them), which no signal action accepts.
    """

    _name = "memory.diagnostics.process"
    _inherit = "memory.diagnostics.line"
    _description = "Odoo process of this host"
    _order = "sequence, pid"

    sequence = fields.Integer(readonly=True)
    pid = fields.Integer(readonly=True)
    kind = fields.Selection(
        [
            (tree.MASTER, "Master"),
            (tree.HTTP, "HTTP"),
            (tree.CRON, "Cron"),
            (tree.GEVENT, "Gevent"),
            (tree.THREADED, "Threaded"),
            (tree.WORKER, "Worker"),
            (tree.OTHER, "Other"),
            (tree.HELPER, "Helper"),
        ],
        readonly=True,
    )
    owner_pid = fields.Integer(
        string="Helper of pid",
        readonly=True,
        help="For a helper (a program an Odoo process started: wkhtmltopdf, node...), that Odoo process."
        " Helpers are not held to Odoo's memory limits.",
    )
    command = fields.Char(readonly=True, help="The program a helper runs.")
    is_current = fields.Boolean(string="This worker", readonly=True, help="The process that built this page.")
    rss_mb = fields.Float(string="RSS (MiB)", digits=(16, 1), readonly=True, help="What the OOM killer sees.")
    vms_mb = fields.Float(
        string="Virtual (MiB)",
        digits=(16, 1),
        readonly=True,
        help="The address space: what Odoo compares with its memory limits on Linux.",
    )
    uss_mb = fields.Float(
        string="USS (MiB)",
        digits=(16, 1),
        readonly=True,
        help="What the host gets back when the process exits.",
    )
    soft_limit_pct = fields.Float(
        string="% of soft limit",
        digits=(16, 1),
        readonly=True,
        help="Virtual size as a share of limit_memory_soft (the gevent limit for the gevent process).",
    )
    num_fds = fields.Integer(string="Open files", readonly=True)
    num_threads = fields.Integer(string="Threads", readonly=True)
    cpu_seconds = fields.Float(string="CPU (s)", digits=(16, 1), readonly=True)
    started_at = fields.Datetime(readonly=True)
    # psutil's start time (epoch seconds, float8 kept exact): a signal goes only to the process that
    # has this pid *and* this start time (a pid is reused by the next process).
    create_time = fields.Float(readonly=True)
    age = fields.Char(readonly=True)
    above_warn = fields.Boolean(
        string="Above warn share", readonly=True, help="Above the settings' warn share of its soft limit."
    )
    requests = fields.Char(
        readonly=True, help="Known for the worker that answers, and from the latest snapshot of the others."
    )
    tracing = fields.Char(
        string="tracemalloc",
        readonly=True,
        help="Whether the Diagnostics' tracemalloc traces this process, and until when (it stops by itself).",
    )

    def _values_from(self, page, fig, warn_share):
        order = {kind: index for index, kind in enumerate(tree.KINDS)}
        uss = fig.get("uss")
        return {
            "diagnostics_id": page.id,
            "sequence": order.get(fig["kind"], 99),
            "pid": fig["pid"],
            "kind": fig["kind"],
            "is_current": fig["pid"] == os.getpid(),
            "rss_mb": fig["rss"] / MIB,
            "vms_mb": fig["vms"] / MIB,
            "uss_mb": uss / MIB if uss is not None else False,
            "soft_limit_pct": fig["soft_pct"] or False,
            "above_warn": bool(fig["soft_pct"] and fig["soft_pct"] >= warn_share),
            "num_fds": fig["num_fds"] or 0,
            "num_threads": fig["num_threads"],
            "cpu_seconds": fig["cpu_seconds"],
            "started_at": naive_utc(fig["started"]),
            "create_time": fig["started"],
            "age": reading.age_text(fig["age"]),
            "requests": fig.get("requests") or False,
            "tracing": fig.get("tracing") or False,
            "owner_pid": fig.get("owner_pid") or False,
            "command": fig.get("name") or False,
        }

    # ------------------------------------------------------------------
    # Actions on another process: each one checked by the signal policy
    # ------------------------------------------------------------------
    def action_signal_stacks(self):
        return self._signal(signal_policy.STACKS)

    def action_signal_orm_stats(self):
        return self._signal(signal_policy.ORM_STATS)

    def action_recycle(self):
        return self._signal(signal_policy.RECYCLE)

    def _signal(self, action):
        self._check_admin()
        self.ensure_one()
        host = socket.gethostname()
        if self.diagnostics_id.host != host:
            raise UserError(
                self.env._(
                    "This page was drawn on host %(page_host)s, but this click is answered on host %(host)s:"
                    " pid %(pid)s there is another process. Nothing was sent; open Diagnostics again.",
                    page_host=self.diagnostics_id.host or "?",
                    host=host,
                    pid=self.pid,
                )
            )
        page = self.diagnostics_id
        result = page._check_server_wide()  # another process: shared by every database of the server
        info = odoo_runtime.server_info()
        # create_time: the process shown, not whichever took its pid since (0 refuses any).
        decision = signal_policy.decide(
            self.pid, action, info["root_pid"], info["mode"], self.create_time or 0.0
        )
        if not decision.allowed:
            raise UserError(decision.reason)
        logfile = odoo_runtime.server_logfile()
        offset = _size(logfile)
        _logger.info(
            "Sending %s to pid %s (%s) for %s, asked by %s",
            decision.signal_name,
            decision.pid,
            decision.kind,
            action,
            self.env.user.login,
        )
        # The policy accepted it: an Odoo process of this server's own tree, the one the page showed.
        try:
            signal_policy.send(decision)
        except ProcessLookupError as exc:
            raise UserError(
                self.env._(
                    "pid %(pid)s ended between the check and the signal: nothing was sent. Refresh the page.",
                    pid=self.pid,
                )
            ) from exc
        if action == signal_policy.RECYCLE:
            text = self.env._(
                "%(signal)s sent to pid %(pid)s (%(kind)s): it stops after its current request and the master"
                " starts a fresh %(kind)s process. Refresh to see the new pid.",
                signal=decision.signal_name,
                pid=decision.pid,
                kind=decision.kind,
            )
            page.write({"output_title": self.env._("Recycle pid %(pid)s", pid=decision.pid), "output": text})
            return
        answer = self._wait_for_answer(logfile, offset, action) if logfile else None
        titles = {
            signal_policy.STACKS: self.env._(
                "Thread stacks of pid %(pid)s (%(kind)s)", pid=decision.pid, kind=decision.kind
            ),
            signal_policy.ORM_STATS: self.env._(
                "ORM cache statistics of pid %(pid)s (%(kind)s)", pid=decision.pid, kind=decision.kind
            ),
        }
        if answer:
            text = self._redact_answer(action, answer, result.allowed)
        elif logfile:
            text = self.env._(
                "%(signal)s sent to pid %(pid)s. Its answer did not reach %(log)s in time: look there a"
                " little later.",
                signal=decision.signal_name,
                pid=decision.pid,
                log=logfile,
            )
        else:
            text = self.env._(
                "%(signal)s sent to pid %(pid)s: its answer is in the server's log. This server logs to no"
                " file"
                " (--logfile), so it cannot be shown here.",
                signal=decision.signal_name,
                pid=decision.pid,
            )
        page.write({"output_title": titles[action], "output": text})

    def _redact_answer(self, action, answer, show_other_databases):
        """What the page may show of another process's answer (``core.diagnostics.scope``)."""
        dbname = self.env.cr.dbname
        if action == signal_policy.STACKS:
            return scope.redact_stack_dump(answer, dbname, show_other_databases)
        text, skipped = scope.keep_database_section(answer, dbname)
        if skipped:
            text += "\n\n" + self.env._(
                "(The statistics of %(count)s other database(s) of this process are left out.)", count=skipped
            )
        return text

    def _wait_for_answer(self, logfile, offset, action):
        """The record the signalled process logs in answer, read from the new part of the log file."""
        logger, marker, timeout = _ANSWERS[action]
        deadline = time.monotonic() + timeout
        while True:
            found = stack_dumps.find_record(_read_from(logfile, offset), self.pid, logger, marker)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


def _size(path):
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def _read_from(path, offset, limit=8 * 1024 * 1024):
    """At most ``limit`` bytes of ``path`` after ``offset`` (the file may have been rotated: then from 0)."""
    try:
        with open(path, "rb") as log:
            if os.fstat(log.fileno()).st_size < offset:
                offset = 0
            log.seek(offset)
            return log.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return ""

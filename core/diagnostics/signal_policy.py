"""The signal policy: which signal the diagnostics may send to which process, and why not.

Not the standard library's :mod:`signal`: :func:`decide` applies the rules below and
:func:`send` sends only what a decision allowed.

Diagnostics never send a signal anywhere but to a process of this Odoo server's
own tree (:mod:`core.process.tree`), and only to Odoo processes in it: the master,
its HTTP and cron workers and the gevent process (or the single threaded
process). Not pid 1, not PostgreSQL, not a program a worker started (a
``wkhtmltopdf``, a ``sleep``), not any unrelated pid: Odoo often runs as a user
that could signal all of them, and in a container as root.

Actions, and the signal each one sends:

- ``stacks``: ``SIGQUIT``; every Odoo process logs its threads' stacks
  (``odoo.tools.misc.dumpstacks``).
- ``orm_stats``: ``SIGUSR1``; every Odoo process logs its ORM cache statistics
  (``odoo.tools.cache.log_ormcache_stats``).
- ``recycle``: a worker stops after its current request and the master forks a
  fresh one. For HTTP and cron workers that is ``SIGINT``: Odoo's
  ``Worker.signal_handler`` sets ``alive = False`` and the work loop ends after
  the request, which is also what the master sends for a graceful stop.
  ``SIGTERM`` is *not* graceful there: workers reset it to ``SIG_DFL`` and die
  on the spot, in the middle of their request. The gevent process has no
  graceful signal; it recycles itself with ``SIGTERM`` when it passes its soft
  limit (``GeventServer.process_limits``), so a recycle sends the same. The
  master is never recycled (that stops the whole server), nor the single
  process of a threaded server.

The process must also be the one the page showed: :func:`decide` compares its
start time with ``create_time`` (a pid is reused by the next process), and
:func:`send` signals it through a pidfd (Linux >= 5.3) opened *before* that
comparison, so that the signal cannot reach a process that took the pid since;
elsewhere through ``psutil``, which checks the start time again right before
``kill``.
"""

import contextlib
import os
import signal
from dataclasses import dataclass, field

import psutil

from ..process import tree

STACKS = "stacks"
ORM_STATS = "orm_stats"
RECYCLE = "recycle"
ACTIONS = (STACKS, ORM_STATS, RECYCLE)

#: Kinds that are Odoo processes (``other`` is ``odoo-bin shell`` or a script).
ODOO_KINDS = (
    tree.MASTER,
    tree.HTTP,
    tree.CRON,
    tree.GEVENT,
    tree.THREADED,
    tree.WORKER,
)
_RECYCLE_SIGNALS = {
    tree.HTTP: signal.SIGINT,
    tree.CRON: signal.SIGINT,
    tree.WORKER: signal.SIGINT,
    tree.GEVENT: signal.SIGTERM,
}


@dataclass(frozen=True)
class Decision:
    """What the policy says about one action on one pid.

    ``signum`` is the signal to send when ``allowed``; ``reason`` says why not
    otherwise (a sentence meant for the admin).
    """

    pid: int
    action: str
    allowed: bool
    signum: int | None = None
    kind: str | None = None
    reason: str = ""
    #: The ``psutil.Process`` decided about (its start time is checked again when signalled).
    process: object = field(default=None, compare=False, repr=False)
    #: A pidfd of that process, opened before its start time was compared (Linux), else ``None``.
    pidfd: int | None = field(default=None, compare=False, repr=False)

    @property
    def signal_name(self):
        return signal.Signals(self.signum).name if self.signum else ""


def decide(pid, action, root_pid, mode, create_time=None):  # noqa: PLR0911 - one refusal per rule, each with its reason
    """The decision for ``action`` on ``pid``, for the server rooted at ``root_pid`` in ``mode``.

    ``create_time`` (epoch seconds, ``psutil``'s) is the start time of the
    process as the caller saw it: a process with another start time is refused
    (the pid was reused). ``None`` skips that check (not for signals sent on a
    user's click). An allowed decision may hold an open pidfd: pass it to
    :func:`send`, or :func:`release` it.

    >>> decide(1, STACKS, os.getpid(), "prefork").reason
    'pid 1 is the init process of this host or container: memory_hygiene never signals it.'
    >>> decide(os.getpid(), "kill", os.getpid(), "prefork").reason
    "Unknown action 'kill': use one of stacks, orm_stats, recycle."
    """
    if action not in ACTIONS:
        return _refuse(pid, action, f"Unknown action {action!r}: use one of {', '.join(ACTIONS)}.")
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return _refuse(0, action, f"{pid!r} is not a process id.")
    if pid <= 1:
        return _refuse(
            pid,
            action,
            f"pid {pid} is the init process of this host or container: memory_hygiene never signals it.",
        )
    try:
        target = psutil.Process(pid)
        name = target.name()
    except psutil.Error:
        return _refuse(pid, action, f"There is no process {pid} on this host (any more).")
    members = dict(
        (proc.pid, (proc, kind)) for proc, kind in tree.server_processes(root_pid, mode, helpers=True)
    )
    if pid not in members:
        what = " It is a PostgreSQL process." if _is_postgres(target, name) else ""
        return _refuse(
            pid,
            action,
            f"pid {pid} ({name}) is not a process of this Odoo server (its root is pid {root_pid}).{what}"
            " memory_hygiene only signals this server's own processes.",
        )
    proc, kind = members[pid]
    # The pidfd first, the start time read afresh next: if it matches, the pidfd is that process.
    pidfd = _pidfd_open(pid) if create_time is not None else None
    if create_time is not None and not _same_start(pid, create_time):
        _close(pidfd)
        return _refuse(
            pid,
            action,
            f"pid {pid} is no longer the process shown on the page: that one ended and pid {pid} now belongs"
            " to a process started later. Nothing was sent; refresh the page.",
            kind,
        )
    decision = _decide_kind(pid, action, root_pid, name, proc, kind, members)
    if not decision.allowed:
        _close(pidfd)
        return decision
    return Decision(pid, action, True, decision.signum, kind, process=proc, pidfd=pidfd)


def _decide_kind(pid, action, root_pid, name, proc, kind, members):  # noqa: PLR0911 - one refusal per rule
    if not _is_odoo_process(proc, pid, members.get(root_pid, (None, None))[0], root_pid):
        return _refuse(
            pid,
            action,
            f"pid {pid} ({name}) belongs to this server's process tree but is not an Odoo process"
            " (a program started by a worker): refused.",
        )
    if kind not in ODOO_KINDS:
        return _refuse(pid, action, f"pid {pid} is an Odoo process of kind {kind!r}, not a server process.")
    if action == STACKS:
        return Decision(pid, action, True, signal.SIGQUIT, kind)
    if action == ORM_STATS:
        return Decision(pid, action, True, signal.SIGUSR1, kind)
    if kind == tree.MASTER:
        return _refuse(
            pid,
            action,
            f"pid {pid} is the master: recycling it would stop the whole server."
            " Restart the service instead, or recycle its workers one by one.",
            kind,
        )
    if kind == tree.THREADED:
        return _refuse(
            pid,
            action,
            f"pid {pid} is the only process of this threaded server (workers = 0): recycling it would"
            " stop the server. Run with workers >= 1 to have workers that can be recycled.",
            kind,
        )
    return Decision(pid, action, True, _RECYCLE_SIGNALS[kind], kind)


def send(decision):
    """Send the decided signal to the very process decided about.

    Raise ``PermissionError`` when the decision refused it, ``ProcessLookupError``
    when that process has ended (or its pid was taken by another one) since.
    """
    if not decision.allowed:
        raise PermissionError(decision.reason)
    try:
        if decision.pidfd is not None:
            signal.pidfd_send_signal(decision.pidfd, decision.signum)
        elif decision.process is not None:
            decision.process.send_signal(decision.signum)  # psutil: refused if the pid was reused
        else:
            raise PermissionError(f"pid {decision.pid}: no process to signal in this decision.")
    except psutil.NoSuchProcess as exc:
        raise ProcessLookupError(f"pid {decision.pid} has ended or was reused: nothing was sent.") from exc
    finally:
        release(decision)


def release(decision):
    """Close the pidfd a decision holds (idempotent)."""
    if decision.pidfd is not None:
        _close(decision.pidfd)
        object.__setattr__(decision, "pidfd", None)


def _pidfd_open(pid):
    """A pidfd of ``pid`` (Linux >= 5.3, Python >= 3.9), or ``None`` where there is none."""
    if not hasattr(os, "pidfd_open") or not hasattr(signal, "pidfd_send_signal"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _close(fd):
    if fd is not None:
        with contextlib.suppress(OSError):  # already closed
            os.close(fd)


def _same_start(pid, create_time):
    """The process that has ``pid`` now started when the caller saw it start (clock ticks: 1/100 s).

    A new ``psutil.Process``: an existing one keeps the start time it read when it was made.
    """
    try:
        return abs(psutil.Process(pid).create_time() - float(create_time)) < 0.01
    except (psutil.Error, TypeError, ValueError):
        return False


def _refuse(pid, action, reason, kind=None):
    return Decision(pid, action, False, None, kind, reason)


def _is_postgres(process, name):
    try:
        return name.startswith("postgres") or "postgres" in os.path.basename(process.exe() or "")
    except psutil.Error:
        return name.startswith("postgres")


def _is_odoo_process(proc, pid, root, root_pid):
    """The root itself, or a direct child of it running the same program (a fork or the gevent process)."""
    if pid == root_pid:
        return True
    try:
        if proc.ppid() != root_pid:
            return False
        if root is None:
            return False
        return proc.exe() == root.exe()
    except psutil.Error:
        return False

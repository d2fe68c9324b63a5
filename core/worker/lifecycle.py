"""Worker lifecycle: what each Odoo process is doing now, and why each worker ended.

**Doing now.** Each prefork worker appends what it is doing to the process
title Odoo gives it (``ps``, ``top`` and ``/proc/<pid>/cmdline`` show it),
after a ``|`` so that Odoo's own title stays first and recognisable::

    odoo: WorkerCron 4242 mydb | doing cron mydb #12 Slow job since 2026-11-30T21:30:01Z
    odoo: WorkerHTTP 4243  | doing http mydb /web/dataset/call_kw since 2026-11-30T21:30:05Z

A route is its path only (never the query string), token-like parts redacted
(:func:`core.diagnostics.scope.redact_url`). No database write: the title costs a copy in
memory; the same facts go to a small state file (below), one ``pwrite``.

**Why a worker ended.** Evidence, from most to least direct:

- ``worker``: its last words. The soft-limit, ``limit_request``, CPU-limit
  (``SIGXCPU``) and exception paths still run Python in the dying worker,
  which writes ``<pid>.exit`` (JSON) in the server's state directory;
- ``master``: with this addon loaded in the master (``server_wide_modules``,
  or ``-d`` which preloads it there), the master writes ``<pid>.reaped``: the
  wait status it reaped, and whether it killed the worker itself for the
  real-time limit;
- ``log``: the lines Odoo's own log holds about that pid;
- ``cgroup``: the kernel's OOM-kill counter of the server's cgroup (v2
  ``memory.events`` ``oom_kill``, v1 ``memory.oom_control``), read by the worker
  at each of its state updates: a worker that vanished without last words
  while the counter moved was most likely OOM-killed.

Every worker keeps ``<pid>.state`` (JSON padded to a fixed size, rewritten in
place with one ``pwrite``): kind, start, requests, RSS/VMS, what it is doing.
The page cache keeps it when the worker is SIGKILLed: what it was doing when
the OOM killer came is still there. The state directory is host-local
(``$TMPDIR/odoo-memory-hygiene-<uid>/<root pid>``), owned by the server's user.
"""

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from datetime import datetime, timezone

from ..diagnostics import scope

#: Causes of a worker's end.
SOFT_LIMIT = "soft_limit"
REQUEST_LIMIT = "request_limit"
REAL_TIME = "real_time_limit"
CPU_LIMIT = "cpu_limit"
MEMORY_ERROR = "memory_error"
OOM = "oom_killer"
SIGNAL = "signal"
CRASHED = "crashed"
STOPPED = "stopped"
UNKNOWN = "unknown"
CAUSES = (
    SOFT_LIMIT,
    REQUEST_LIMIT,
    REAL_TIME,
    CPU_LIMIT,
    MEMORY_ERROR,
    OOM,
    SIGNAL,
    CRASHED,
    STOPPED,
    UNKNOWN,
)
#: Causes that mean "the worker was killed while working" (what counts against a scheduled action).
KILLED = (REAL_TIME, CPU_LIMIT, MEMORY_ERROR, OOM, SIGNAL)

#: Sources of the cause.
WORKER = "worker"
MASTER = "master"
LOG = "log"
CGROUP = "cgroup"
NONE = "none"
EVIDENCE = (WORKER, MASTER, LOG, CGROUP, NONE)

IDLE = "idle"
CRON = "cron"
HTTP = "http"

#: The file a master hooked by this addon leaves in its state directory.
MASTER_MARK = "master"

_MARK = " | doing "
_DOING = re.compile(
    r"^(?P<what>cron|http) (?P<db>\S+) (?P<target>.*) since (?P<since>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$"
)
_STATE_SIZE = 2048  # bytes of a state file: rewritten in place, never shorter
_TARGET_MAX = 120


# ----------------------------------------------------------------------
# Doing now: the process title
# ----------------------------------------------------------------------
def doing(what, db, target, since):
    """The doing-now dict: ``what`` (``cron``/``http``), ``db``, ``target`` (``#id name`` of a
    scheduled action, or a route's path), ``since`` (epoch seconds).

    >>> doing("http", "db1", "/web?token=abc", 0)["target"]
    '/web'
    """
    if what == HTTP:
        target = scope.redact_url(target.split("?", 1)[0].split("#", 1)[0])
    target = " ".join(str(target).split())[:_TARGET_MAX]
    return {"what": what, "db": db, "target": target, "since": int(since)}


def cron_target(cron_id, name):
    """``#12 Name`` of a scheduled action."""
    return f"#{cron_id} {name or ''}".strip()


def with_doing(title, now):
    """``title`` (a process title) with ``now`` (a doing dict, or ``None`` for idle) after Odoo's part.

    >>> t = with_doing("odoo: WorkerCron 42 db1", doing("cron", "db1", "#3 Slow", 1796074201))
    >>> t
    'odoo: WorkerCron 42 db1 | doing cron db1 #3 Slow since 2026-11-30T21:30:01Z'
    >>> with_doing(t, None)
    'odoo: WorkerCron 42 db1'
    """
    base = title.split(_MARK, 1)[0].rstrip()
    if not now:
        return base
    since = datetime.fromtimestamp(now["since"], tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{base}{_MARK}{now['what']} {now['db']} {now['target']} since {since}"


def parse_title(title):
    """The doing dict a process title shows, or ``None`` (idle, or not titled by this addon).

    >>> parse_title("odoo: WorkerHTTP 7  | doing http db1 /slow since 2026-11-30T21:30:01Z")
    {'what': 'http', 'db': 'db1', 'target': '/slow', 'since': 1796074201}
    >>> parse_title("odoo: WorkerHTTP 7 ") is None
    True
    """
    if not title or _MARK not in title:
        return None
    found = _DOING.match(title.split(_MARK, 1)[1].strip())
    if not found:
        return None
    since = datetime.strptime(found["since"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return {
        "what": found["what"],
        "db": found["db"],
        "target": found["target"],
        "since": int(since.timestamp()),
    }


def describe_doing(now, current_db, show_other_databases, at=None):
    """``(text, seconds)`` of a doing dict as a page shows it; another database's work stays
    unnamed unless ``show_other_databases``.

    >>> d = doing("cron", "db2", "#3 Slow", 100)
    >>> describe_doing(d, "db2", False, at=130)
    ('cron db2: #3 Slow', 30)
    >>> describe_doing(d, "db1", False, at=130)
    ('cron of another database', 30)
    >>> describe_doing(None, "db1", True)
    ('idle', 0)
    """
    if not now:
        return IDLE, 0
    seconds = max(int((time.time() if at is None else at) - now["since"]), 0)
    if now["db"] != current_db and not show_other_databases:
        return f"{now['what']} of another database", seconds
    return f"{now['what']} {now['db']}: {now['target']}", seconds


# ----------------------------------------------------------------------
# The server's state directory
# ----------------------------------------------------------------------
def base_dir():
    """The host-local directory of this user's servers' state directories."""
    return os.path.join(tempfile.gettempdir(), f"odoo-memory-hygiene-{os.getuid()}")


def private_dir(path):
    """Make ``path`` a directory that only this user can enter (mode 0700) and return it.

    It lives under the shared temporary directory, where any local user may
    have made it first: a symbolic link, or a directory of someone else's, is
    refused with ``PermissionError`` (the state files are then not kept,
    rather than written where another user chose); one of this user's with
    wider permissions is narrowed.

    >>> import tempfile
    >>> d = private_dir(os.path.join(tempfile.mkdtemp(), "s"))
    >>> oct(os.stat(d).st_mode & 0o777)
    '0o700'
    >>> link = d + "-link"
    >>> os.symlink(d, link)
    >>> try:
    ...     private_dir(link)
    ... except PermissionError as exc:
    ...     print("refused:", "is not a directory of uid" in str(exc))
    refused: True
    """
    with contextlib.suppress(FileExistsError):  # made before: checked below like a new one
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(
            f"{path} is not a directory of uid {os.getuid()} alone: no worker state is kept there"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def state_dir(root_pid, base=None):
    """The host-local directory of the server rooted at ``root_pid``: :func:`private_dir` of its pid."""
    return private_dir(os.path.join(private_dir(base or base_dir()), str(root_pid)))


def sweep(alive, base=None):
    """Remove the state directories of servers whose master is gone (``alive(pid)`` is false).

    Their workers ended with them (stopped with the server): nothing left to tell.

    >>> import tempfile
    >>> b = tempfile.mkdtemp()
    >>> _ = state_dir(1, b), state_dir(2, b)
    >>> sweep(lambda pid: pid == 1, b)
    [2]
    >>> sorted(os.listdir(b))
    ['1']
    """
    base = private_dir(base or base_dir())
    removed = []
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    for name in names:
        if name.isdigit() and not alive(int(name)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            removed.append(int(name))
    return removed


class StateFile:
    """The state file of one worker, rewritten in place (one ``pwrite`` of a fixed size).

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> s = StateFile(d, 42)
    >>> s.put({"kind": "http", "requests": 3})
    >>> read_json(os.path.join(d, "42.state"))
    {'kind': 'http', 'requests': 3}
    """

    def __init__(self, directory, pid):
        self.path = os.path.join(directory, f"{pid}.state")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def put(self, state):
        data = json.dumps(state, separators=(",", ":")).encode()
        if len(data) > _STATE_SIZE:
            state = dict(state, doing=None)
            data = json.dumps(state, separators=(",", ":")).encode()[:_STATE_SIZE]
        os.pwrite(self.fd, data.ljust(_STATE_SIZE), 0)

    def close(self):
        os.close(self.fd)


def write_json(path, values):
    """Write ``values`` to ``path`` (whole: a temporary file renamed over it)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(values, out)
    os.replace(tmp, path)


def read_json(path):
    """The JSON in ``path``, or ``None`` (missing, or caught mid-write)."""
    try:
        with open(path, encoding="utf-8") as src:
            return json.loads(src.read().strip() or "null")
    except (OSError, ValueError):
        return None


def pending(directory):
    """``{pid: {"state", "exit", "reaped"}}`` of the workers with files in ``directory``.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_json(os.path.join(d, "7.exit"), {"cause": "soft_limit"})
    >>> pending(d)
    {7: {'state': None, 'exit': {'cause': 'soft_limit'}, 'reaped': None}}
    """
    found = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in names:
        pid, _dot, suffix = name.partition(".")
        if pid.isdigit() and suffix in ("state", "exit", "reaped"):
            found.setdefault(int(pid), {"state": None, "exit": None, "reaped": None})
    for pid, files in found.items():
        for suffix in files:
            files[suffix] = read_json(os.path.join(directory, f"{pid}.{suffix}"))
    return found


def forget(directory, pid):
    """Remove the files of worker ``pid``."""
    for suffix in ("state", "exit", "reaped"):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, f"{pid}.{suffix}"))


# ----------------------------------------------------------------------
# Kernel's OOM-kill counter
# ----------------------------------------------------------------------
def oom_kills(proc_cgroup="/proc/self/cgroup", root="/sys/fs/cgroup"):
    """The OOM-kill count of this process's memory cgroup (v2 ``memory.events``, v1
    ``memory.oom_control``), or ``None`` where not readable."""
    try:
        with open(proc_cgroup, encoding="utf-8") as src:
            lines = src.read().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _id, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            candidates.append(os.path.join(root, path.lstrip("/"), "memory.events"))
        elif "memory" in controllers.split(","):
            candidates.append(os.path.join(root, "memory", path.lstrip("/"), "memory.oom_control"))
    for candidate in candidates:
        try:
            with open(candidate, encoding="utf-8") as src:
                for line in src:
                    key, _sep, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


# ----------------------------------------------------------------------
# Odoo's own log lines
# ----------------------------------------------------------------------
_LOG_CAUSES = (
    (REAL_TIME, r"Worker\w* \({pid}\) timeout after"),
    (CPU_LIMIT, r"Worker \({pid}\) CPU time limit"),
    (SOFT_LIMIT, r"Worker \({pid}\) virtual memory limit"),
    (REQUEST_LIMIT, r"Worker \({pid}\) max request"),
    (CRASHED, r"Worker \w*\s?\({pid}\) Exception occurred"),
    (STOPPED, r"Worker \({pid}\) exiting\."),
)


def log_cause(text, pid):
    """The cause Odoo's log ``text`` gives for the end of worker ``pid``, or ``None``.

    >>> log_cause("... WorkerHTTP (12) timeout after 5s", 12)
    'real_time_limit'
    >>> log_cause("Worker (12) max request (3) reached.\\nWorker (12) exiting. request_count: 3", 12)
    'request_limit'
    >>> log_cause("Worker (12) exiting.", 13) is None
    True
    """
    if not text:
        return None
    for cause, pattern in _LOG_CAUSES:
        if re.search(pattern.format(pid=pid), text):
            return cause
    return None


def read_log_tail(path, size=4 * 1024 * 1024):
    """The last ``size`` bytes of the log file ``path`` as text ('' when unreadable)."""
    try:
        with open(path, "rb") as src:
            src.seek(0, os.SEEK_END)
            src.seek(max(src.tell() - size, 0))
            return src.read().decode("utf-8", "replace")
    except (OSError, TypeError):
        return ""


# ----------------------------------------------------------------------
# The verdict
# ----------------------------------------------------------------------
def decide(files, log_text="", oom_now=None):  # noqa: PLR0911 - one return per rung of the evidence ladder
    """``(cause, evidence, detail)`` of the end of a worker from its ``files`` (see :func:`pending`).

    >>> decide({"exit": {"cause": "soft_limit"}, "reaped": None, "state": None})
    ('soft_limit', 'worker', '')
    >>> decide({"exit": None, "reaped": {"signal": 9, "killed_by_master": True}, "state": {}})
    ('real_time_limit', 'master', 'SIGKILL by the master')
    >>> decide({"exit": None, "reaped": {"signal": 9}, "state": {"oom_kills": 1}}, oom_now=2)
    ('oom_killer', 'cgroup', 'oom_kill 1 -> 2')
    >>> decide({"exit": None, "reaped": {"signal": 9}, "state": {"oom_kills": 2}}, oom_now=2)
    ('signal', 'master', 'signal 9')
    >>> decide({"exit": None, "reaped": None, "state": {"pid": 5}}, "Worker (5) CPU time limit")
    ('cpu_limit', 'log', '')
    >>> decide({"exit": None, "reaped": {"exit_code": 0}, "state": {}})
    ('stopped', 'master', 'exit code 0')
    >>> decide({"exit": None, "reaped": None, "state": {}})
    ('unknown', 'none', '')
    """
    last, reaped, state = files.get("exit") or {}, files.get("reaped") or {}, files.get("state") or {}
    if last.get("cause") in CAUSES:
        return last["cause"], WORKER, last.get("detail") or ""
    if reaped.get("killed_by_master"):
        return REAL_TIME, MASTER, "SIGKILL by the master"
    pid = state.get("pid") or reaped.get("pid") or last.get("pid")
    from_log = log_cause(log_text, pid) if pid else None
    if from_log and from_log != STOPPED:
        return from_log, LOG, ""
    signum = reaped.get("signal")
    before = state.get("oom_kills")
    after = reaped.get("oom_kills", oom_now)
    if (signum == 9 or not reaped) and before is not None and after is not None and after > before:
        return OOM, CGROUP, f"oom_kill {before} -> {after}"
    if signum:
        return SIGNAL, MASTER, f"signal {signum}"
    if "exit_code" in reaped:
        code = reaped["exit_code"]
        return (STOPPED if code == 0 else CRASHED), MASTER, f"exit code {code}"
    if from_log:
        return from_log, LOG, ""
    return UNKNOWN, NONE, ""


def wait_status(status):
    """``{"signal"}`` or ``{"exit_code"}`` of a wait status (``os.waitpid``).

    >>> wait_status(9), wait_status(256)
    ({'signal': 9}, {'exit_code': 1})
    """
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    return {"exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else status}


def exit_record(pid, files, cause, evidence, detail, now=None):
    """The values of an exit record (plain dict; sizes in bytes, times in epoch seconds)."""
    now = time.time() if now is None else now
    last, reaped, state = files.get("exit") or {}, files.get("reaped") or {}, files.get("state") or {}
    ended = last.get("at") or reaped.get("at") or state.get("updated") or now
    started = state.get("started") or last.get("started")
    return {
        "pid": pid,
        "kind": state.get("kind") or last.get("kind") or "worker",
        "cause": cause,
        "evidence": evidence,
        "detail": detail,
        "doing": last.get("doing") or state.get("doing"),
        "rss": last.get("rss") or state.get("rss") or 0,
        "vms": last.get("vms") or state.get("vms") or 0,
        "requests": last.get("requests", state.get("requests")) or 0,
        "started": started,
        "ended": ended,
        "age": max(ended - started, 0) if started else None,
    }

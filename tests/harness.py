"""A real multi-worker Odoo server for tests: ``odoo-bin`` in a subprocess.

Not a test module: tests import it, ``tests/__init__.py`` does not::

    from odoo.addons.memory_hygiene.tests.harness import OdooServer, server_database

    db = server_database()  # installed once per Python process, dropped at exit
    server = OdooServer(db, workers=2, max_cron_threads=1, limit_memory_soft=600 * MIB)
    self.addCleanup(server.stop)
    server.start()
    server.get("/web/login")
    server.pids()  # {"master": [...], "http": [..., ...], "cron": [...], "gevent": [...]}

The server runs in its own process group, on free 127.0.0.1 ports, serving
only its database, and logs to a file of its own (``server.log()``). Whatever
happens, ``stop()`` (``__exit__``, ``addCleanup``, and at the latest the
interpreter's exit) ends it and every process it spawned; where util-linux's
``setpriv`` exists the server also dies with the thread that started it.

Process kinds come from the titles Odoo gives its workers (``odoo:
WorkerHTTP 1234``): that needs ``setproctitle`` (requirements.txt) in the
server's Python. Without it, every worker is of kind ``worker``.
"""

import atexit
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from contextlib import closing, contextmanager

import psutil
import psycopg2
import psycopg2.sql
import requests

import odoo
from odoo.tests.common import get_db_name
from odoo.tools import config

from .. import compat
from ..core.common.units import MIB  # noqa: F401 - tests import it from here
from ..core.process import tree

_logger = logging.getLogger(__name__)

#: What a real server needs for the addon's own tests; tests about a user's
#: addon ask for ``("memory_hygiene", "test_memory_hygiene")`` themselves, so
#: that ``odoo-bin --test-enable -i memory_hygiene`` runs without test_addons/.
DEFAULT_MODULES = ("memory_hygiene",)

_DATABASES = {}  # modules -> name of the database made for them
_COPIES = set()  # names of the databases copy_database made
_SERVERS = set()  # started and not yet stopped


#: Options that install a database without demo data: 18.0 loads demo data
#: unless told not to; 19.0 loads none by default and reads the same option
#: (``--without-demo``, a boolean there) the same way.
NO_DEMO_ARGS = ("--without-demo=True",)


def odoo_bin():
    """Path of the ``odoo-bin`` of the running Odoo (next to the ``odoo`` package)."""
    # 19.0's ``odoo`` is a namespace package: no ``__file__``, only ``__path__``.
    return os.path.join(os.path.dirname(list(odoo.__path__)[0]), "odoo-bin")


def child_server_args():
    """Options that make a child ``odoo-bin`` see this process's addons and PostgreSQL.

    The password is not among them (a command line is public): pass it as
    ``PGPASSWORD`` in the child's environment (``_child_env``). ``addons_path``
    is a comma-separated string on 18.0 and a list on 19.0.
    """
    addons = config["addons_path"]
    args = ["--addons-path", addons if isinstance(addons, str) else ",".join(addons)]
    if config.get("data_dir"):
        args += ["--data-dir", config["data_dir"]]
    for option, flag in (("db_host", "--db_host"), ("db_port", "--db_port"), ("db_user", "--db_user")):
        if config.get(option):
            args += [flag, str(config[option])]
    return args


def run_cron_job_now(registry, cron_cr, cron_id):
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
    compat.process_job(registry, cron_cr, job)
    return True


def wake_cron_workers(db):
    """NOTIFY ``cron_trigger`` with ``db`` on database ``postgres``, as ``ir.cron._notifydb`` does.

    Odoo's cron workers (and a threaded server's cron threads) LISTEN there: a sleeping one polls
    ``db`` now instead of 60 s or so later. A notification sent before one listens is lost: that
    one polls when its sleep ends, as it would have anyway.
    """
    with db_cursor("postgres") as cr:
        cr.execute("NOTIFY cron_trigger, %s", [db])


def free_port():
    """A TCP port of 127.0.0.1 that nobody listens on right now."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout=60, interval=0.5, message="condition"):
    """Call ``check()`` until it returns something true, and return that; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message}: not met after {timeout} s (last: {result!r})")
        time.sleep(interval)


@contextmanager
def db_cursor(db):
    """An autocommit psycopg2 cursor on ``db``, apart from any Odoo transaction (the test's included)."""
    _name, params = odoo.sql_db.connection_info_for(db)
    connection = psycopg2.connect(**params)
    connection.autocommit = True
    try:
        with connection.cursor() as cr:
            yield cr
    finally:
        connection.close()


def server_database(modules=DEFAULT_MODULES, name=None):
    """Name of a database with ``modules`` installed, made once per Python process.

    ``odoo-bin -d NAME -i MODULES --stop-after-init`` in a subprocess, with this
    process's addons path and PostgreSQL options. The default name is
    ``<current test database>_srv`` (plus a hash for other modules). Dropped by
    :func:`drop` and at the interpreter's exit.
    """
    modules = tuple(modules)
    if modules in _DATABASES:
        return _DATABASES[modules]
    if name is None:
        name = f"{get_db_name()}_srv"
        if modules != DEFAULT_MODULES:
            name += f"_{zlib.crc32(','.join(modules).encode()):08x}"
    _drop_database(name)  # a leftover of an interrupted run would not be fresh
    _DATABASES[modules] = name
    workdir = tempfile.mkdtemp(prefix="memory_hygiene_install_")
    logfile = os.path.join(workdir, "install.log")
    cmd = _odoo_command(
        "-d",
        name,
        "-i",
        ",".join(modules),
        "--stop-after-init",
        "--http-interface=127.0.0.1",
        f"--http-port={free_port()}",
        f"--logfile={logfile}",
        "--log-level=warn",
        *NO_DEMO_ARGS,
    )
    _logger.info("Installing %s in database %s for a real server", ",".join(modules), name)
    try:
        done = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, env=_child_env(), check=False
        )
        installed = set()
        if not done.returncode:
            with db_cursor(name) as cr:
                cr.execute(
                    "SELECT name FROM ir_module_module WHERE state = 'installed' AND name IN %s", [modules]
                )
                installed = {row[0] for row in cr.fetchall()}
        if done.returncode or installed != set(modules):
            del _DATABASES[modules]  # the next call tries again
            _drop_database(name)
            raise RuntimeError(
                f"Installing {modules} in {name} failed (exit code {done.returncode}, installed: "
                f"{sorted(installed)}):\n{_tail(logfile)}\n{done.stderr.decode(errors='replace')[-3000:]}"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return name


def copy_database(source, name):
    """A copy of database ``source`` named ``name`` (``CREATE DATABASE ... TEMPLATE``), made once.

    No filestore is copied (a server serving the copy rebuilds its assets).
    Dropped by :func:`drop` and at the interpreter's exit.
    """
    if name in _COPIES:
        return name
    _drop_database(name)
    odoo.sql_db.close_db(source)  # a template must have no other session
    with db_cursor("postgres") as cr:
        cr.execute(
            psycopg2.sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                psycopg2.sql.Identifier(name), psycopg2.sql.Identifier(source)
            )
        )
    _COPIES.add(name)
    return name


def drop():
    """Drop every database :func:`server_database` and :func:`copy_database` made in this process."""
    while _COPIES:
        name = _COPIES.pop()
        try:
            _drop_database(name)
        except Exception:
            _logger.exception("Could not drop the copied database %s", name)
    while _DATABASES:
        _modules, name = _DATABASES.popitem()
        try:
            _drop_database(name)
        except Exception:
            _logger.exception("Could not drop the server database %s", name)


class OdooServer:
    """``odoo-bin`` serving database ``db`` with real workers, as a context manager."""

    def __init__(  # noqa: PLR0913 - one keyword per odoo-bin option the tests vary
        self,
        db,
        workers=2,
        max_cron_threads=1,
        limit_memory_soft=2048 * MIB,
        limit_memory_hard=2560 * MIB,
        limit_time_real=120,
        extra_args=(),
        env=None,
        *,
        databases=None,
        config_options=None,
    ):
        """``databases``: every database to serve (``-d a,b`` and a dbfilter for them), ``db`` first;
        ``config_options``: ``{option: value}`` written to the ``[options]`` of an ``odoo.conf`` (``-c``)."""
        self.db = db
        self.databases = tuple(databases or (db,))
        self.config_options = dict(config_options or {})
        self.workers = workers
        self.max_cron_threads = max_cron_threads
        self.limit_memory_soft = limit_memory_soft
        self.limit_memory_hard = limit_memory_hard
        self.limit_time_real = limit_time_real
        self.extra_args = tuple(extra_args)
        self.env = env
        self.process = None
        self.port = None
        self.gevent_port = None
        self._workdir = None
        self._final_log = ""

    def __enter__(self):
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def mode(self):
        return "prefork" if self.workers else "threaded"

    @property
    def logfile(self):
        return os.path.join(self._workdir, "odoo.log")

    def start(self, timeout=90):
        """Launch the server and wait until GET /web/login answers 200 (and, with workers,
        until the gevent process listens)."""
        if self.process is not None:
            raise RuntimeError("This server is already started.")
        self._workdir = tempfile.mkdtemp(prefix="memory_hygiene_server_")
        self._final_log = ""
        with closing(socket.socket()) as first:
            first.bind(("127.0.0.1", 0))  # held, so that the second port differs
            self.port = first.getsockname()[1]
            self.gevent_port = free_port()
        args = []
        if self.config_options:
            conf = os.path.join(self._workdir, "odoo.conf")
            with open(conf, "w", encoding="utf-8") as out:
                out.write("[options]\n")
                out.writelines(f"{key} = {value}\n" for key, value in self.config_options.items())
            args += ["-c", conf]
        args += [
            "-d",
            ",".join(self.databases),
            f"--db-filter=^({'|'.join(re.escape(name) for name in self.databases)})$",
            "--http-interface=127.0.0.1",
            f"--http-port={self.port}",
            f"--gevent-port={self.gevent_port}",
            f"--workers={self.workers}",
            f"--max-cron-threads={self.max_cron_threads}",
            f"--logfile={self.logfile}",
            "--log-level=info",
        ]
        for option in ("limit_memory_soft", "limit_memory_hard", "limit_time_real"):
            if getattr(self, option) is not None:
                args.append(f"--{option.replace('_', '-')}={getattr(self, option)}")
        cmd = _odoo_command(*args, *self.extra_args)
        if shutil.which("setpriv"):
            # The server dies with the thread that started it, even if this process is killed.
            cmd = ["setpriv", "--pdeathsig", "TERM", "--", *cmd]
        with open(os.path.join(self._workdir, "console.log"), "wb") as console:
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env=_child_env(self.env),
                start_new_session=True,  # its own process group, stopped as one
            )
        _SERVERS.add(self)
        _logger.info(
            "Started odoo-bin (pid %s) on %s, logging to %s", self.process.pid, self.url("/"), self.logfile
        )
        deadline = time.monotonic() + timeout
        serving = False
        while True:
            if self.process.poll() is not None:
                self._fail(f"odoo-bin exited with code {self.process.returncode} before serving")
            try:
                serving = serving or requests.get(self.url("/web/login"), timeout=10).status_code == 200
                if serving and (not self.workers or self._gevent_listens()):
                    return self
            except requests.RequestException as exc:
                _logger.debug("odoo-bin does not answer yet: %s", exc)
            if time.monotonic() > deadline:
                what = "the gevent port" if serving else "/web/login"
                self._fail(f"odoo-bin did not serve {what} within {timeout} s")
            time.sleep(0.5)

    def _gevent_listens(self):
        """The gevent process (spawned by the prefork master after it serves) accepts connections."""
        try:
            socket.create_connection(("127.0.0.1", self.gevent_port), timeout=1).close()
            return True
        except OSError:
            return False

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path, **kw):
        return requests.get(self.url(path), timeout=kw.pop("timeout", 60), **kw)

    def pids(self):
        """``{kind: [pid, ...]}`` of the server's processes, read from the real process tree."""
        found = {}
        if self.process is not None:
            for proc, kind in tree.server_processes(self.process.pid, self.mode):
                found.setdefault(kind, []).append(proc.pid)
        return {kind: sorted(pids) for kind, pids in found.items()}

    def log(self):
        """Text of the server's log file (kept after ``stop()``)."""
        if self.process is None:
            return self._final_log
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as log:
                return log.read()
        except FileNotFoundError:
            return ""

    def stop(self, timeout=30, graceful=False):
        """SIGTERM the process group, SIGKILL what is left after ``timeout``; idempotent.

        ``graceful``: SIGTERM the master alone first (as ``docker stop`` does):
        it asks its workers to end (SIGINT) and waits for them; Odoo's workers
        die on a SIGTERM of their own at once.
        """
        process = self.process
        if process is None:
            return
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.Error:
            children = []
        try:
            if graceful and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    _logger.warning(
                        "odoo-bin (pid %s) still running %s s after SIGTERM", process.pid, timeout
                    )
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    _logger.warning(
                        "odoo-bin (pid %s) still running %s s after SIGTERM: killed", process.pid, timeout
                    )
                    _signal_group(process.pid, signal.SIGKILL)
                    process.wait(10)
            leftovers = [child for child in children if _alive(child)]
            if leftovers:
                _logger.warning("Killing leftover processes of odoo-bin: %s", [c.pid for c in leftovers])
                _signal_group(process.pid, signal.SIGKILL)
                for child in leftovers:
                    try:
                        child.kill()  # psutil checks that the pid was not reused
                    except psutil.Error as exc:
                        _logger.debug("leftover %s already gone: %s", child.pid, exc)
                wait_until(lambda: not any(_alive(c) for c in leftovers), 10, 0.1, "leftover processes gone")
        finally:
            self._final_log = self.log() + _tail(os.path.join(self._workdir, "console.log"), 50)
            self.process = None
            _SERVERS.discard(self)
            shutil.rmtree(self._workdir, ignore_errors=True)

    def _fail(self, what):
        tail = _tail(self.logfile) + "\n" + _tail(os.path.join(self._workdir, "console.log"), 30)
        self.stop()
        raise RuntimeError(f"{what}. Log tail:\n{tail}")


def _odoo_command(*args):
    return [sys.executable, odoo_bin(), *child_server_args(), *args]


def _child_env(extra=None):
    env = dict(os.environ)
    if config.get("db_password"):
        env["PGPASSWORD"] = config["db_password"]
    env.update(extra or {})
    return env


def _alive(proc):
    """Running and not a zombie (an orphaned zombie waits for whoever reaps it, not for us)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError) as exc:
        _logger.debug("process group %s: %s", pgid, exc)


def _tail(path, lines=80):
    try:
        with open(path, encoding="utf-8", errors="replace") as text:
            return "".join(text.readlines()[-lines:])
    except OSError:
        return ""


def _drop_database(name):
    odoo.sql_db.close_db(name)
    with db_cursor("postgres") as cr:
        cr.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        cr.execute(psycopg2.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg2.sql.Identifier(name)))
    shutil.rmtree(config.filestore(name), ignore_errors=True)


@atexit.register
def _at_exit():
    for server in list(_SERVERS):
        server.stop()
    drop()

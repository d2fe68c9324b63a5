import os
import subprocess
import sys

import pytest

from core import proctree


@pytest.fixture
def children():
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) for _ in range(2)]
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("cmdline", "pid", "mode", "kind"),
    [
        (["odoo: WorkerHTTP 12 "], 12, "prefork", "http"),
        (["odoo: WorkerCron 13 mydb"], 13, "prefork", "cron"),
        (["python3", "odoo-bin", "gevent", "--workers=2"], 14, "prefork", "gevent"),
        (["python3", "odoo-bin", "--workers=2"], 10, "prefork", "master"),
        (["python3", "odoo-bin", "--workers=2"], 15, "prefork", "worker"),
        (["python3", "odoo-bin"], 10, "threaded", "threaded"),
        (["python3", "odoo-bin", "shell"], 10, "other", "other"),
    ],
)
def test_classify(cmdline, pid, mode, kind):
    assert proctree.classify(cmdline, pid, 10, mode) == kind


def test_prefork_tree_is_the_root_and_its_descendants(children):
    found = proctree.server_processes(os.getpid(), "prefork")
    pids = [proc.pid for proc, _kind in found]
    assert pids[0] == os.getpid()
    assert {c.pid for c in children} <= set(pids)
    assert dict((p.pid, k) for p, k in found)[os.getpid()] == "master"


def test_only_members_of_the_tree_are_server_processes(children):
    root = os.getpid()
    assert proctree.is_server_process(children[0].pid, root, "prefork")
    assert not proctree.is_server_process(1, root, "prefork")
    assert not proctree.is_server_process(os.getppid(), root, "prefork")
    # threaded: the single process only
    assert not proctree.is_server_process(children[0].pid, root, "threaded")


def test_current_worker_outside_a_worker_is_none():
    assert proctree.current_worker() is None
    assert proctree.own_kind("other") == "other"
    assert proctree.own_kind("prefork", master_pid=os.getpid()) == "master"


def test_own_kind_of_the_gevent_process_of_a_prefork_server(monkeypatch):
    monkeypatch.setattr("sys.argv", ["odoo-bin", "gevent", "-c", "odoo.conf"])
    assert proctree.own_kind("prefork", master_pid=1) == "gevent"
    monkeypatch.setattr("sys.argv", ["odoo-bin", "-c", "odoo.conf"])
    assert proctree.own_kind("prefork", master_pid=1) == "worker"

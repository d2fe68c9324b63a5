import contextlib
import os
import subprocess
import sys

import pytest

from core.process import tree


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
    assert tree.classify(cmdline, pid, 10, mode) == kind


def test_prefork_tree_is_the_root_and_its_descendants(children):
    found = tree.server_processes(os.getpid(), "prefork")
    pids = [proc.pid for proc, _kind in found]
    assert pids[0] == os.getpid()
    assert {c.pid for c in children} <= set(pids)
    assert dict((p.pid, k) for p, k in found)[os.getpid()] == "master"


def test_only_members_of_the_tree_are_server_processes(children):
    root = os.getpid()
    assert tree.is_server_process(children[0].pid, root, "prefork")
    assert not tree.is_server_process(1, root, "prefork")
    assert not tree.is_server_process(os.getppid(), root, "prefork")
    # threaded: the single process only; its children are helpers
    assert [proc.pid for proc, _kind in tree.server_processes(root, "threaded")] == [root]


def test_current_worker_outside_a_worker_is_none():
    assert tree.current_worker() is None
    assert tree.own_kind("other") == "other"
    assert tree.own_kind("prefork", master_pid=os.getpid()) == "master"


def test_own_kind_of_the_gevent_process_of_a_prefork_server(monkeypatch):
    monkeypatch.setattr("sys.argv", ["odoo-bin", "gevent", "-c", "odoo.conf"])
    assert tree.own_kind("prefork", master_pid=1) == "gevent"
    monkeypatch.setattr("sys.argv", ["odoo-bin", "-c", "odoo.conf"])
    assert tree.own_kind("prefork", master_pid=1) == "worker"


@pytest.fixture
def worker_with_helper():
    """A "worker" (same interpreter, child of this process) that started a helper ``sleep``, and a
    ``sleep`` started by this process itself."""
    code = (
        "import subprocess, sys, time\n"
        "helper = subprocess.Popen(['sleep', '30'])\n"
        "print(helper.pid, flush=True)\n"
        "time.sleep(30)"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    helper_pid = int(worker.stdout.readline())
    own_helper = subprocess.Popen(["sleep", "30"])
    yield worker, helper_pid, own_helper
    for proc in (own_helper, worker):
        proc.kill()
        proc.wait()
    with contextlib.suppress(ProcessLookupError):  # ended already: nothing left to kill
        os.kill(helper_pid, 9)


def test_programs_started_by_odoo_processes_are_helpers_of_them(worker_with_helper):
    worker, helper_pid, own_helper = worker_with_helper
    root = os.getpid()
    odoo = {proc.pid: kind for proc, kind in tree.server_processes(root, "prefork")}
    assert odoo[root] == "master"
    assert odoo[worker.pid] == "worker"
    assert helper_pid not in odoo and own_helper.pid not in odoo
    owners = {proc.pid: (kind, owner) for proc, kind, owner in tree.walk(root, "prefork")}
    assert owners[helper_pid] == ("helper", worker.pid)
    assert owners[own_helper.pid] == ("helper", root)
    assert owners[worker.pid] == ("worker", worker.pid)
    with_helpers = tree.server_processes(root, "prefork", helpers=True)
    assert [kind for _proc, kind in with_helpers][-2:] == ["helper", "helper"], "helpers come last"
    assert tree.is_server_process(helper_pid, root, "prefork")


def test_threaded_server_children_are_all_helpers(worker_with_helper):
    worker, helper_pid, own_helper = worker_with_helper
    root = os.getpid()
    assert [(p.pid, k) for p, k in tree.server_processes(root, "threaded")] == [(root, "threaded")]
    owners = {proc.pid: (kind, owner) for proc, kind, owner in tree.walk(root, "threaded")}
    assert owners[worker.pid] == ("helper", root)
    assert owners[helper_pid] == ("helper", root), "a helper's helper belongs to the Odoo process"
    assert owners[own_helper.pid] == ("helper", root)

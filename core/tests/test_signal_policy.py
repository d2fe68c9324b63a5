import os
import signal
import subprocess
import sys

import psutil
import pytest

from core.diagnostics import signal_policy
from core.process import tree


@pytest.fixture
def sleeper():
    """A child process that is not Odoo: ``sleep 30``."""
    proc = subprocess.Popen(["sleep", "30"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def python_child():
    """A child running the same interpreter as this process: what a forked worker looks like."""
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGQUIT, lambda *a: print('dumped', flush=True))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    # Its handler is installed: a SIGQUIT sent earlier would end it (the default action).
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    proc.kill()
    proc.wait()


def test_pid_1_is_refused_for_every_action():
    for action in signal_policy.ACTIONS:
        decision = signal_policy.decide(1, action, os.getpid(), "prefork")
        assert not decision.allowed
        assert decision.reason.code == "init"


def test_non_odoo_child_is_refused_and_not_signalled(sleeper):
    root = os.getpid()
    # In the tree of a prefork "master" (this process) but not an Odoo process.
    assert tree.is_server_process(sleeper.pid, root, "prefork")
    for action in signal_policy.ACTIONS:
        decision = signal_policy.decide(sleeper.pid, action, root, "prefork")
        assert not decision.allowed, action
        assert decision.reason.code == "not_odoo"
        with pytest.raises(PermissionError):
            signal_policy.send(decision)
    # threaded: the single process only; its children are helpers
    decision = signal_policy.decide(sleeper.pid, signal_policy.STACKS, root, "threaded")
    assert not decision.allowed
    assert decision.reason.code == "not_odoo"
    assert sleeper.poll() is None, "still running: nothing was sent"


def test_unrelated_process_is_refused():
    parent = os.getppid()
    decision = signal_policy.decide(parent, signal_policy.STACKS, os.getpid(), "prefork")
    assert not decision.allowed
    assert decision.reason.figures["pid"] == parent


def test_postgres_is_named_in_the_refusal():
    backends = [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]
    if not backends:
        pytest.skip("no PostgreSQL process on this host")
    decision = signal_policy.decide(backends[0].pid, signal_policy.ORM_STATS, os.getpid(), "prefork")
    assert not decision.allowed
    assert decision.reason.code == "foreign_postgres"


def test_vanished_pid_and_nonsense():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert (
        signal_policy.decide(proc.pid, signal_policy.STACKS, os.getpid(), "prefork").reason.code
        == "no_process"
    )
    assert not signal_policy.decide("abc", signal_policy.STACKS, os.getpid(), "prefork").allowed
    assert signal_policy.decide(os.getpid(), "kill", os.getpid(), "prefork").reason.code == "unknown_action"


def test_same_program_child_gets_the_actions_signals(python_child):
    root = os.getpid()
    stacks = signal_policy.decide(python_child.pid, signal_policy.STACKS, root, "prefork")
    assert stacks.allowed and stacks.signum == signal.SIGQUIT and stacks.kind == "worker"
    assert (
        signal_policy.decide(python_child.pid, signal_policy.ORM_STATS, root, "prefork").signum
        == signal.SIGUSR1
    )
    recycle = signal_policy.decide(python_child.pid, signal_policy.RECYCLE, root, "prefork")
    assert recycle.allowed and recycle.signum == signal.SIGINT, "graceful: Worker.signal_handler"
    signal_policy.send(stacks)
    assert python_child.stdout.readline().strip() == "dumped"


def test_master_and_threaded_process_are_never_recycled():
    root = os.getpid()
    master = signal_policy.decide(root, signal_policy.RECYCLE, root, "prefork")
    assert not master.allowed and master.reason.code == "master"
    threaded = signal_policy.decide(root, signal_policy.RECYCLE, root, "threaded")
    assert not threaded.allowed and threaded.reason.code == "threaded"
    # but they may dump their stacks
    assert signal_policy.decide(root, signal_policy.STACKS, root, "prefork").allowed
    assert signal_policy.decide(root, signal_policy.STACKS, root, "threaded").allowed
    # a shell or script is no server process
    assert not signal_policy.decide(root, signal_policy.STACKS, root, "other").allowed


def test_a_process_replaced_since_the_page_was_drawn_is_refused(python_child):
    root = os.getpid()
    started = psutil.Process(python_child.pid).create_time()
    stale = signal_policy.decide(
        python_child.pid, signal_policy.STACKS, root, "prefork", create_time=started - 5
    )
    assert not stale.allowed
    assert stale.reason == signal_policy.Say("replaced", {"pid": stale.pid})
    assert stale.pidfd is None, "the refusal keeps no pidfd open"
    with pytest.raises(PermissionError):
        signal_policy.send(stale)
    fresh = signal_policy.decide(python_child.pid, signal_policy.STACKS, root, "prefork", create_time=started)
    assert fresh.allowed
    signal_policy.send(fresh)
    assert python_child.stdout.readline().strip() == "dumped"
    assert fresh.pidfd is None, "send closes the pidfd"


def test_send_never_reaches_a_process_that_ended_after_the_decision(python_child):
    root = os.getpid()
    started = psutil.Process(python_child.pid).create_time()
    decision = signal_policy.decide(
        python_child.pid, signal_policy.STACKS, root, "prefork", create_time=started
    )
    assert decision.allowed
    python_child.kill()
    python_child.wait()  # reaped: the pid is free for the next process
    with pytest.raises(ProcessLookupError):
        signal_policy.send(decision)


def test_without_pidfd_psutil_guards_against_a_reused_pid(python_child, monkeypatch):
    monkeypatch.setattr(signal_policy, "_pidfd_open", lambda pid: None)  # macOS, Linux < 5.3
    root = os.getpid()
    started = psutil.Process(python_child.pid).create_time()
    decision = signal_policy.decide(
        python_child.pid, signal_policy.STACKS, root, "prefork", create_time=started
    )
    assert decision.allowed and decision.pidfd is None and decision.process is not None
    python_child.kill()
    python_child.wait()
    with pytest.raises(ProcessLookupError):
        signal_policy.send(decision)

import os
import stat

import pytest

from core.worker import lifecycle, storms


def test_oom_kills_reads_cgroup_v2_memory_events(tmp_path):
    (tmp_path / "proc").write_text("0::/system.slice/odoo.service\n")
    events = tmp_path / "sys" / "system.slice" / "odoo.service"
    events.mkdir(parents=True)
    (events / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n")
    assert lifecycle.oom_kills(str(tmp_path / "proc"), str(tmp_path / "sys")) == 2


def test_oom_kills_reads_cgroup_v1_oom_control(tmp_path):
    (tmp_path / "proc").write_text("12:cpu,cpuacct:/docker/abc\n9:memory:/docker/abc\n")
    control = tmp_path / "sys" / "memory" / "docker" / "abc"
    control.mkdir(parents=True)
    (control / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n")
    assert lifecycle.oom_kills(str(tmp_path / "proc"), str(tmp_path / "sys")) == 5


def test_oom_kills_unreadable_is_none(tmp_path):
    assert lifecycle.oom_kills(str(tmp_path / "missing"), str(tmp_path)) is None
    (tmp_path / "proc").write_text("0::/\n")
    assert lifecycle.oom_kills(str(tmp_path / "proc"), str(tmp_path / "sys")) is None


def test_state_file_rewritten_shorter_reads_back_whole(tmp_path):
    state = lifecycle.StateFile(str(tmp_path), 7)
    state.put({"doing": {"what": "http", "db": "d", "target": "/" + "x" * 500, "since": 1}})
    state.put({"doing": None, "requests": 2})
    assert lifecycle.read_json(state.path) == {"doing": None, "requests": 2}
    assert os.path.getsize(state.path) == 2048
    state.close()


def test_state_file_drops_doing_rather_than_overflowing(tmp_path):
    state = lifecycle.StateFile(str(tmp_path), 8)
    state.put({"pid": 8, "doing": {"target": "y" * 5000}})
    assert lifecycle.read_json(state.path) == {"pid": 8, "doing": None}
    state.close()


def test_doing_of_a_route_keeps_the_path_only_and_hides_tokens():
    now = lifecycle.doing("http", "db", "/web/content/12/abcdef0123456789abcdef0123456789?download=1", 5)
    assert "?" not in now["target"] and "abcdef0123456789abcdef0123456789" not in now["target"]
    title = lifecycle.with_doing("odoo: WorkerHTTP 12 ", now)
    assert lifecycle.parse_title(title) == now


def test_an_exit_record_from_the_master_and_the_state_file():
    files = {
        "state": {
            "pid": 9,
            "kind": "http",
            "started": 100.0,
            "rss": 10,
            "vms": 20,
            "requests": 3,
            "updated": 150,
        },
        "exit": None,
        "reaped": {"pid": 9, "signal": 9, "at": 160.0, "oom_kills": 0},
    }
    cause, evidence, detail = lifecycle.decide(files, "")
    record = lifecycle.exit_record(9, files, cause, evidence, detail)
    assert (record["cause"], record["evidence"], record["age"], record["requests"]) == (
        "signal",
        "master",
        60.0,
        3,
    )


def test_a_log_line_beats_the_bare_exit_code():
    files = {"state": {"pid": 4}, "exit": None, "reaped": {"exit_code": 1}}
    assert lifecycle.decide(files, "Worker (4) CPU time limit (5) reached.")[:2] == ("cpu_limit", "log")
    assert lifecycle.decide(files, "")[:2] == ("crashed", "master")


def test_storm_of_a_kind_alone_and_its_metrics():
    exits = [
        {"kind": "http", "cause": "request_limit", "requests": 12, "age": 900, "ended": 100 + i}
        for i in range(3)
    ]
    exits.append({"kind": "cron", "cause": "request_limit", "requests": 12, "age": 900, "ended": 100})
    found = storms.storms(exits, 200, max_requests=13, max_minutes=0, window_minutes=10)
    assert list(found) == ["http"] and found["http"]["likely"] == "limit_request"
    text = storms.render_metrics("h", {("request_limit", "http"): 3}, found).decode()
    assert 'memory_hygiene_recycle_storm{host="h",kind="cron"} 0.0' in text


def test_a_state_directory_made_first_by_another_user_is_refused(tmp_path):
    """The base lives in the shared /tmp: another local user may have made the path first."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    planted = tmp_path / "planted"
    planted.symlink_to(target)
    with pytest.raises(PermissionError):
        lifecycle.state_dir(1, base=str(planted))
    assert not (target / "1").exists(), "nothing was made where the link points"
    if os.getuid() == 0:  # only root can give a directory to another user
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o777)
        os.chown(theirs, 65534, 65534)
        with pytest.raises(PermissionError):
            lifecycle.state_dir(1, base=str(theirs))
        assert not (theirs / "1").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    os.chmod(mine, 0o755)
    made = lifecycle.state_dir(7, base=str(mine))
    assert stat.S_IMODE(os.stat(mine).st_mode) == 0o700, "a base of this user's is narrowed to 0700"
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700

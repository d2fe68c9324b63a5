from core.diagnostics import pgpressure


def test_setting_bytes():
    assert pgpressure.setting_bytes("1", "MB") == 1024**2
    assert pgpressure.setting_bytes("x", "kB") is None


def test_notes_on_a_sane_setup_are_quiet():
    settings = {
        "work_mem": ("4096", "kB"),
        "max_connections": ("100", None),
        "shared_buffers": ("262144", "8kB"),
    }
    assert pgpressure.notes(settings, active=2, ram_bytes=8 * 1024**3) == []


def test_queries_stay_in_this_database_and_never_terminate():
    for sql in (
        pgpressure.SESSIONS_BY_STATE,
        pgpressure.LONG_QUERIES,
        pgpressure.TEMP_FILES,
        pgpressure.CANCEL,
    ):
        assert "current_database()" in sql
    assert "terminate" not in pgpressure.CANCEL
    for column in ("pid = ", "backend_start = ", "query_start = ", "state = 'active'"):
        assert column in pgpressure.CANCEL, "the cancel checks the very query shown"

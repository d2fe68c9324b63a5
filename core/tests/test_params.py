import pytest

from core.common import params


def test_every_key_is_prefixed_and_declared_once():
    assert all(key.startswith("memory_hygiene.") for key in params.PARAMS)
    assert all(p.key == key for key, p in params.PARAMS.items())


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (params.SNAPSHOT_INTERVAL, "15", 15),
        (params.SNAPSHOT_INTERVAL, 15.0, 15),
        (params.WARN_SHARE, "100", 100.0),
        (params.SNAPSHOT_USS, "True", True),
        (params.SNAPSHOT_USS, "0", False),
        (params.REPORT_WEBHOOK_URL, "  https://x  ", "https://x"),
    ],
)
def test_check_converts(key, value, expected):
    assert params.check(key, value) == expected


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (params.SNAPSHOT_INTERVAL, 0, "Sampling interval (minutes) must be at least 1, got 0."),
        (params.SNAPSHOT_RETENTION_DAYS, -3, "Snapshot retention (days) must be at least 1, got -3."),
        (params.WARN_SHARE, 120, "Warn at share of the soft limit (%) must be at most 100, got 120."),
        (params.SNAPSHOT_INTERVAL, "2.5", "Sampling interval (minutes) must be a whole number, got '2.5'."),
        (params.GROWTH_THRESHOLD, "lots", "Leak-suspect growth (MiB/hour) must be a number, got 'lots'."),
    ],
)
def test_nonsense_says_what_to_fix(key, value, message):
    with pytest.raises(params.ParamError) as err:
        params.check(key, value)
    assert str(err.value) == message


def test_read_falls_back_to_the_default_and_warns(caplog):
    stored = {params.SNAPSHOT_INTERVAL: "-5"}
    assert params.read(stored.get, params.SNAPSHOT_INTERVAL) == 5
    assert "must be at least 1" in caplog.text
    assert params.read(stored.get, params.WARN_SHARE) == 90.0


def test_a_short_endpoint_token_is_refused_without_being_repeated(caplog):
    secret = "x" * 31
    with pytest.raises(params.ParamError) as err:
        params.check(params.ENDPOINT_TOKEN, secret)
    assert "at least 32 characters" in str(err.value)
    assert secret not in str(err.value)
    assert params.check(params.ENDPOINT_TOKEN, "") == "", "no token: the endpoints stay closed"
    assert params.check(params.ENDPOINT_TOKEN, "y" * 32) == "y" * 32
    # A short token stored by hand is not used (the endpoints then answer 403), and not logged.
    assert params.read({params.ENDPOINT_TOKEN: secret}.get, params.ENDPOINT_TOKEN) == ""
    assert "at least 32 characters" in caplog.text
    assert secret not in caplog.text

import contextlib
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from core.reporting import report as rep

LEAKING_CRON = {
    "id": 7,
    "name": "Sync <partners>",
    "state": "leaking",
    "reason": "every run keeps memory",
    "top": [
        {
            "file": "/srv/addons/x/models/sync.py",
            "line": 12,
            "size_diff": 1048576,
            "count_diff": 1,
            "size": 5242880,
            "count": 5,
        }
    ],
}


def full_report():
    return rep.build_report(
        "prod",
        "2026-01-01 06:00",
        processes=[
            {"host": "web1", "pid": 42, "kind": "cron", "growth_mb": 812.0, "hours": 23.5, "rss_mb": 1900.0}
        ],
        crons=[LEAKING_CRON],
        near_limit=[
            {
                "host": "web1",
                "pid": 43,
                "kind": "http",
                "soft_limit_pct": 96.0,
                "vms_mb": 1966.0,
                "rss_mb": 700.0,
            }
        ],
        recycles={"web1": 3, "web2": 0},
        notes=["no snapshots"],
    )


def test_every_finding_has_one_line_of_advice():
    report = full_report()
    assert [f.kind for f in report.findings] == ["cron", "process", "limit", "recycles"]
    for finding in report.findings:
        assert finding.advice and "\n" not in finding.advice
    assert "/srv/addons/x/models/sync.py:12" in report.findings[0].advice, "module-level state at the site"
    assert report.findings[0].details == [
        "/srv/addons/x/models/sync.py:12: size=5.0 MiB (+1.0 MiB), count=5 (+1)"
    ]


def test_text_names_the_cron_and_the_line():
    text = rep.render_text(full_report())
    assert 'Scheduled action "Sync <partners>" (id 7)' in text
    assert "sync.py:12: size=5.0 MiB (+1.0 MiB)" in text
    assert "3 worker recycle(s) on web1" in text
    assert "web2" not in text
    assert "(no snapshots)" in text


def test_html_escapes():
    body = rep.render_html(full_report())
    assert "Sync &lt;partners&gt;" in body
    assert "<partners>" not in body
    assert body.count("<li>") == 4


def test_json_is_slack_compatible():
    payload = rep.render_json(full_report())
    assert payload["text"] == rep.render_text(full_report())
    assert payload["findings"][0]["severity"] == "leaking"
    json.dumps(payload)


def test_empty_report_says_so():
    report = rep.build_report("prod", "now")
    assert report.findings == []
    assert "nothing to report" in rep.render_text(report)


@pytest.mark.parametrize(
    ("top", "key"),
    [
        ([{"file": "/opt/odoo/odoo/orm/models.py", "line": 3}], "orm_cache"),
        ([{"file": "/opt/odoo/odoo/models.py", "line": 3}], "orm_cache"),
        ([{"file": "/opt/odoo/addons/mail/models/mail_thread.py", "line": 3}], "tracking"),
        ([{"file": "/usr/lib/python3/site-packages/urllib3/connection.py", "line": 3}], "connections"),
        ([], "outside_python"),
    ],
)
def test_advice_by_site(top, key):
    assert rep.cron_advice("leaking", top) == rep.ADVICE[key]


@pytest.mark.parametrize(
    "url", ["ftp://x/y", "file:///etc/passwd", "not a url", "", "http://", "javascript:alert(1)"]
)
def test_only_http_urls(url):
    with pytest.raises(ValueError):
        rep.check_webhook_url(url)


class _Handler(BaseHTTPRequestHandler):
    received = []
    statuses = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(type(self).statuses.pop(0) if type(self).statuses else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.received, _Handler.statuses = [], []
    httpd = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", _Handler
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_post_webhook_sends_json(server):
    url, handler = server
    ok, message = rep.post_webhook(url + "/hook", {"text": "hi"})
    assert (ok, message) == (True, "HTTP 200")
    assert handler.received == [("/hook", "application/json", {"text": "hi"})]


def test_post_webhook_retries_5xx_then_succeeds(server, caplog):
    url, handler = server
    handler.statuses = [503, 502]
    sleeps = []
    ok, _message = rep.post_webhook(url + "/secret-token", {"text": "hi"}, retries=2, sleep=sleeps.append)
    assert ok
    assert len(handler.received) == 3
    assert sleeps == [1.0, 2.0]
    assert "secret-token" not in caplog.text, "the webhook path (a secret) is not logged"


def test_post_webhook_does_not_retry_4xx(server, caplog):
    url, handler = server
    handler.statuses = [404]
    with caplog.at_level(logging.WARNING):
        ok, message = rep.post_webhook(url, {"text": "hi"}, sleep=lambda s: None)
    assert (ok, message) == (False, "HTTP 404")
    assert len(handler.received) == 1
    assert "HTTP 404" in caplog.text


def test_post_webhook_refused_is_logged_not_raised(caplog):
    with socket_closed_port() as port, caplog.at_level(logging.WARNING):
        ok, message = rep.post_webhook(
            f"http://127.0.0.1:{port}/x", {"text": "hi"}, retries=1, sleep=lambda s: None
        )
    assert not ok
    assert "ConnectionRefusedError" in message
    assert caplog.text.count("failed (attempt") == 2


def test_post_webhook_timeout():
    def slow(url, body, deadline):
        raise TimeoutError(f"no complete answer within {deadline:g} s")

    ok, message = rep.post_webhook("https://example.com/x", {}, send=slow, timeout=0.5, retries=0)
    assert not ok
    assert message == "TimeoutError: no complete answer within 0.5 s"


def test_post_webhook_malformed_url_is_not_called(caplog):
    called = []
    with caplog.at_level(logging.WARNING):
        ok, _message = rep.post_webhook(
            "ftp://example.com/x?token=s3cret", {}, send=lambda *a: called.append(a)
        )
    assert not ok
    assert called == []
    assert "http:// or https://" in caplog.text
    assert "s3cret" not in caplog.text + _message


def test_redirect_is_not_followed(server, caplog):
    url, handler = server
    handler.statuses = [307]
    with caplog.at_level(logging.WARNING):
        ok, message = rep.post_webhook(url + "/hook", {"text": "hi"}, sleep=lambda s: None)
    assert not ok
    assert message.startswith("HTTP 307")
    assert [path for path, _type, _body in handler.received] == ["/hook"], "posted once, never to /moved"


def test_secret_of_the_url_never_reaches_the_log_nor_the_message(server, caplog):
    url, handler = server
    handler.statuses = [500, 500, 500]
    secret_url = url.replace("http://", "http://user:pw0rd@") + "/services/T0/B0/p4th?token=s3cret#fr4g"
    with caplog.at_level(logging.DEBUG):
        ok, message = rep.post_webhook(secret_url, {"text": "hi"}, sleep=lambda s: None)
        with socket_closed_port() as port:
            closed = f"http://127.0.0.1:{port}/services/p4th?token=s3cret"
            _ok, closed_message = rep.post_webhook(closed, {"text": "hi"}, retries=0)
    assert not ok
    assert handler.received[0][0] == "/services/T0/B0/p4th?token=s3cret", "the full URL is used to post"
    shown = caplog.text + message + closed_message
    for secret in ("pw0rd", "p4th", "s3cret", "fr4g", "user:"):
        assert secret not in shown
    assert url.split("//")[1] in caplog.text, "the host is named"


def _raw_server(answer):
    """A TCP server on 127.0.0.1 whose connections ``answer(conn)`` handles in a thread; (port, stop)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stopping = threading.Event()

    def serve():
        while not stopping.is_set():
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)  # the request (small enough for one read here)
                # The client going away (OSError) is what these tests expect of it.
                with contextlib.suppress(OSError):
                    answer(conn, stopping)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def stop():
        stopping.set()
        listener.close()
        thread.join(5)

    return listener.getsockname()[1], stop


def test_one_deadline_for_the_whole_attempt():
    """A server that answers one header byte at a time never trips a per-read timeout: the deadline does."""

    def drip(conn, stopping):
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(600):  # 60 s of headers
            if stopping.wait(0.1):
                return
            conn.sendall(b"X")

    port, stop = _raw_server(drip)
    try:
        ok, message = rep.post_webhook(f"http://127.0.0.1:{port}/x", {}, timeout=1.0, retries=0)
    finally:
        stop()
    assert not ok
    assert message == "TimeoutError: no complete answer within 1 s"


def test_answer_body_is_not_read_beyond_the_cap():
    """An endless body: the sender reads its first bytes and returns the status (or it would time out)."""

    def endless(conn, stopping):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        while not stopping.is_set():
            conn.sendall(b"x" * 65536)

    port, stop = _raw_server(endless)
    try:
        ok, message = rep.post_webhook(f"http://127.0.0.1:{port}/x", {}, timeout=30.0, retries=0)
    finally:
        stop()
    assert (ok, message) == (True, "HTTP 200")


class socket_closed_port:  # noqa: N801 - used as a context manager
    """A port on 127.0.0.1 that nobody listens on (bound, then closed)."""

    def __enter__(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        return self.port

    def __exit__(self, *exc):
        return False

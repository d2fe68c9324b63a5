"""The leak report: findings, one line of advice each, as text, HTML and JSON.

The ORM layer (``models/memory_leak_report.py``) gathers plain dicts from the
database; everything here is Odoo-free: which findings there are, what to
advise, how the report reads, and how it is posted to a webhook
(``http.client``, one deadline per attempt, bounded retries, no redirects; a
failure is reported, never raised).

Nothing here is a sentence: a finding's title, details and advice are
:class:`~core.common.say.Say` values, a stable code and its figures (see :data:`CODES`), and
the renderers take ``say(code, figures) -> str`` that makes a sentence of
one (the model's, through ``env._``, in the reader's language). Without it,
:func:`~core.common.say.as_codes` writes the codes and figures themselves::

    >>> report = build_report(
    ...     database="prod",
    ...     generated_at="2026-01-01 06:00",
    ...     crons=[{"id": 7, "name": "Sync", "state": "leaking", "reason": "every run keeps memory",
    ...             "top": [{"file": "/addons/x/models/sync.py", "line": 12, "size_diff": 1048576,
    ...                      "count_diff": 1, "size": 5242880, "count": 5}]}],
    ... )
    >>> [(f.kind, f.title.code, f.advice.code) for f in report.findings]
    [('cron', 'cron', 'module_state')]
    >>> print(render_text(report).splitlines()[1])
    - [leaking] cron(id=7, name='Sync', reason='every run keeps memory')
"""

import base64
import contextlib
import html
import http.client
import json
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ..common.say import Say, as_codes
from ..profiler.leakprof import format_line
from ..snapshot import trends

_logger = logging.getLogger(__name__)


#: Every code the report says, with the figures its sentence gets.
CODES = {
    # titles
    "cron": ("id", "name", "reason"),
    "growth": ("total_mb",),
    "process": ("kind", "pid", "host", "growth_mb", "hours", "rss_mb"),
    "limit": ("kind", "pid", "host", "soft_limit_pct", "warn_share", "vms_mb", "rss_mb"),
    "recycles": ("count", "host"),
    # details
    "site": ("line",),
    "held_by": ("path",),
    "charged": ("growth_mb", "share"),
    "growth_row": ("id", "name", "growth_mb", "share", "runs", "fds_kept"),
    # advice
    "orm_cache": (),
    "tracking": (),
    "connections": (),
    "module_state": ("site",),
    "outside_python": (),
    "process_growth": (),
    "growth_advice": (),
    "near_limit": (),
    "recycles_advice": (),
    # the summary and the labels of the text and HTML renderings
    "summary": ("database", "generated_at", "count"),
    "summary_empty": ("database", "generated_at"),
    "advice": (),
}


@dataclass
class Finding:
    kind: str  # process, cron, growth, limit, recycles
    severity: str  # leaking, suspect, warning, info
    title: Say
    details: list = field(default_factory=list)  # [Say]
    advice: Say | None = None


@dataclass
class Report:
    database: str
    generated_at: str
    findings: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # sentences already said (strings)

    def as_dict(self):
        """The report as JSON can hold it; each :class:`Say` as ``{"code", "figures"}``."""
        return {
            "database": self.database,
            "generated_at": self.generated_at,
            "notes": list(self.notes),
            "findings": [
                {
                    "kind": f.kind,
                    "severity": f.severity,
                    "title": _said(f.title),
                    "details": [_said(detail) for detail in f.details],
                    "advice": _said(f.advice) if f.advice else None,
                }
                for f in self.findings
            ],
        }


def _said(say):
    return {"code": say.code, "figures": dict(say.figures)}


def cron_advice(state, top):
    """The advice for a suspect or leaking cron, from its top allocation site.

    >>> cron_advice("leaking", [{"file": "/odoo/odoo/orm/models.py", "line": 1}])
    Say(code='orm_cache', figures={})
    >>> cron_advice("leaking", [{"file": "/odoo/addons/mail/models/mail_thread.py", "line": 1}]).code
    'tracking'
    >>> cron_advice("suspect", []).code
    'outside_python'
    """
    if not top:
        return Say("outside_python")
    path = top[0]["file"].replace("\\", "/")
    if "/addons/mail/" in path:
        return Say("tracking")
    if any(part in path for part in ("/odoo/orm/", "/odoo/models.py", "/odoo/api.py", "/odoo/fields.py")):
        return Say("orm_cache")
    if any(part in path for part in ("/requests/", "/urllib3/", "/http/client.py", "/ssl.py", "/socket.py")):
        return Say("connections")
    return Say("module_state", {"site": f"{top[0]['file']}:{top[0]['line']}"})


def process_figures(rows, now, *, warn_share, recent, top):
    """Growing processes and processes near their soft limit, from the snapshot rows of the report's period.

    :param rows: snapshot dicts ``host, pid, started_at, process_kind, rss_mb, vms_mb,
        soft_limit_pct, date`` (datetimes or seconds).
    :param now: the end of the period; a process whose last snapshot is younger
        than ``recent`` seconds is "now" near its limit when at ``warn_share`` % or more.
    :param top: how many growing processes to keep.
    :returns: ``{"processes": [host, pid, kind, growth_mb, hours, rss_mb], "near_limit": [host, pid,
        kind, soft_limit_pct, vms_mb, rss_mb]}``, the growth as the snapshots define it
        (:func:`trends.growth`), largest first.

    >>> rows = [{"host": "w", "pid": 7, "started_at": 0, "process_kind": "cron", "date": t,
    ...          "rss_mb": 300.0 + t / 36, "vms_mb": 900.0, "soft_limit_pct": 95.0} for t in (0, 1800, 3600)]
    >>> found = process_figures(rows, 3600, warn_share=90, recent=600, top=5)
    >>> found["processes"][0]["growth_mb"], found["processes"][0]["hours"], found["near_limit"][0]["pid"]
    (100.0, 1.0, 7)
    """
    processes, near_limit = [], []
    now = trends.seconds(now)
    for (host, pid, _started), samples in trends.series(rows).items():
        last = samples[-1]
        grown, hours = trends.growth(trends.points(samples))
        if grown and grown > 0 and hours > 0:
            processes.append(
                {
                    "host": host,
                    "pid": pid,
                    "kind": last["process_kind"],
                    "growth_mb": grown,
                    "hours": hours,
                    "rss_mb": last["rss_mb"] or 0.0,
                }
            )
        if trends.seconds(last["date"]) >= now - recent and (last["soft_limit_pct"] or 0.0) >= warn_share:
            near_limit.append(
                {
                    "host": host,
                    "pid": pid,
                    "kind": last["process_kind"],
                    "soft_limit_pct": last["soft_limit_pct"],
                    "vms_mb": last["vms_mb"] or 0.0,
                    "rss_mb": last["rss_mb"] or 0.0,
                }
            )
    processes.sort(key=lambda p: -p["growth_mb"])
    return {"processes": processes[:top], "near_limit": near_limit}


def build_report(  # noqa: PLR0913 - one keyword argument per section of the report
    database,
    generated_at,
    *,
    processes=(),
    crons=(),
    near_limit=(),
    recycles=None,
    warn_share=90.0,
    notes=(),
    growth=(),
):
    """Turn gathered figures into findings, each with its advice.

    :param processes: dicts ``host, pid, kind, growth_mb, hours, rss_mb`` (largest growth first).
    :param crons: dicts ``id, name, state, reason, top`` (suspect or leaking ones), optionally
        ``holders`` (paths of what keeps the memory) and ``growth_mb``/``share`` (last 24 h).
    :param growth: dicts ``id, name, growth_mb, share, runs, fds_kept``: the growth charged to each
        scheduled action over the report's period (MiB, % of the total); largest first.
    :param near_limit: dicts ``host, pid, kind, soft_limit_pct, vms_mb, rss_mb``.
    :param recycles: ``{host: count}``.
    :param notes: sentences said once at the top (what could not be looked at).
    """
    report = Report(database=database, generated_at=str(generated_at), notes=list(notes))
    for cron in crons:
        top = list(cron.get("top") or ())
        details = [Say("site", {"line": format_line(alloc)}) for alloc in top[:3]]
        details += [Say("held_by", {"path": path}) for path in (cron.get("holders") or ())[:3]]
        if cron.get("growth_mb") is not None:
            details.append(
                Say("charged", {"growth_mb": cron["growth_mb"], "share": cron.get("share") or 0.0})
            )
        report.findings.append(
            Finding(
                kind="cron",
                severity=cron["state"],
                title=Say(
                    "cron",
                    {"id": cron["id"], "name": cron["name"], "reason": cron.get("reason") or cron["state"]},
                ),
                details=details,
                advice=cron_advice(cron["state"], top),
            )
        )
    growing = [row for row in growth if row["growth_mb"] > 0]
    if growing:
        report.findings.append(
            Finding(
                kind="growth",
                severity="info",
                title=Say("growth", {"total_mb": sum(row["growth_mb"] for row in growing)}),
                details=[
                    Say(
                        "growth_row",
                        {
                            "id": row["id"],
                            "name": row["name"],
                            "growth_mb": row["growth_mb"],
                            "share": row["share"],
                            "runs": row["runs"],
                            "fds_kept": row.get("fds_kept") or 0,
                        },
                    )
                    for row in growing[:10]
                ],
                advice=Say("growth_advice"),
            )
        )
    for proc in processes:
        report.findings.append(
            Finding(
                kind="process",
                severity="warning",
                title=Say("process", {key: proc[key] for key in CODES["process"]}),
                advice=Say("process_growth"),
            )
        )
    for proc in near_limit:
        report.findings.append(
            Finding(
                kind="limit",
                severity="warning",
                title=Say(
                    "limit",
                    {
                        **{key: proc[key] for key in CODES["limit"] if key != "warn_share"},
                        "warn_share": warn_share,
                    },
                ),
                advice=Say("near_limit"),
            )
        )
    for host, count in sorted((recycles or {}).items()):
        if count:
            report.findings.append(
                Finding(
                    kind="recycles",
                    severity="info",
                    title=Say("recycles", {"count": count, "host": host}),
                    advice=Say("recycles_advice"),
                )
            )
    return report


def _summary(report, say):
    figures = {"database": report.database, "generated_at": report.generated_at}
    if not report.findings:
        return say("summary_empty", figures)
    return say("summary", {**figures, "count": len(report.findings)})


def render_text(report, say=as_codes):
    """Plain text, also the Slack-compatible ``text`` of the webhook payload; ``say`` makes the sentences."""
    lines = [_summary(report, say)]
    lines += [f"({note})" for note in report.notes]
    for finding in report.findings:
        lines.append(f"- [{finding.severity}] {say(*finding.title)}")
        lines += [f"    {say(*detail)}" for detail in finding.details]
        if finding.advice:
            lines.append(f"    {say('advice', {})}: {say(*finding.advice)}")
    return "\n".join(lines)


_SEVERITY_COLORS = {"leaking": "#c0392b", "suspect": "#d68910", "warning": "#d68910", "info": "#2471a3"}


def render_html(report, say=as_codes):
    """HTML for the mail body; every figure, name and sentence is escaped."""
    esc = html.escape
    parts = [f"<p>{esc(_summary(report, say))}</p>"]
    parts += [f"<p><i>{esc(note)}</i></p>" for note in report.notes]
    if report.findings:
        parts.append("<ul>")
        for finding in report.findings:
            color = _SEVERITY_COLORS.get(finding.severity, "#555555")
            item = f'<li><b style="color: {color}">[{esc(finding.severity)}]</b> {esc(say(*finding.title))}'
            if finding.details:
                item += "<pre>" + esc("\n".join(say(*detail) for detail in finding.details)) + "</pre>"
            if finding.advice:
                item += f"<br/><i>{esc(say('advice', {}))}:</i> {esc(say(*finding.advice))}"
            parts.append(item + "</li>")
        parts.append("</ul>")
    return "\n".join(parts)


def render_json(report, say=as_codes):
    """The webhook payload: Slack's ``text`` (``say``'s sentences) plus the findings as codes and figures."""
    return {"text": render_text(report, say), **report.as_dict()}


def check_webhook_url(url):
    """Return the URL stripped, or raise ValueError: only http(s) URLs with a host.

    The error names the scheme only: the rest of a webhook URL is its secret.

    >>> check_webhook_url(" https://hooks.example.com/x ")
    'https://hooks.example.com/x'
    >>> check_webhook_url("file:///etc/passwd")
    Traceback (most recent call last):
    ...
    ValueError: the webhook must be an http:// or https:// URL with a host, got a 'file' URL
    """
    url = (url or "").strip()
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(
            f"the webhook must be an http:// or https:// URL with a host, got a {parsed.scheme!r} URL"
        )
    return url


def redact_url(url):
    """Scheme and host (and port) only: webhook paths and query strings hold secrets (Slack's do).

    >>> redact_url("https://hooks.slack.com/services/T0/B0/secret")
    'https://hooks.slack.com/...'
    >>> redact_url("http://user:pw@127.0.0.1:8080/x?token=s3cret#frag")
    'http://127.0.0.1:8080/...'
    """
    parsed = urlsplit(url)
    return f"{parsed.scheme}://{parsed.netloc.rpartition('@')[2]}/..."


def redact_error(text, url):
    """``text`` (an exception's message) with every part of ``url`` but scheme and host replaced by ``...``.

    ``str()`` of an HTTP library's exception often repeats the URL, or its path.

    >>> redact_error("Max retries exceeded with url: /services/T0/B0/s3cret?token=x (Caused by ...)",
    ...              "https://hooks.example.com/services/T0/B0/s3cret?token=x")
    'Max retries exceeded with url: ... (Caused by ...)'
    """
    parsed = urlsplit(url)
    host = parsed.netloc.rpartition("@")[2]
    secrets = [url, parsed.netloc, parsed.path + ("?" + parsed.query if parsed.query else "")]
    secrets += [parsed.path, parsed.query, parsed.fragment, parsed.netloc.rpartition("@")[0]]
    for secret in sorted({s for s in secrets if len(s) > 1 and s != host}, key=len, reverse=True):
        text = text.replace(secret, "...")
    return text


#: Bytes of a webhook's answer read at most (the answer is only looked at for its status).
ANSWER_CAP = 4096


def send_json(url, body, deadline):
    """POST ``body`` (bytes of JSON) to ``url`` once; return the HTTP status; raise ``OSError`` on failure.

    One ``deadline`` (seconds) for the whole attempt: connecting, TLS, sending,
    the status line and headers, and the first :data:`ANSWER_CAP` bytes of the
    body (the rest is not read). A socket timeout alone is per ``recv``: a
    server that answers one byte at a time would hold the sender for ever, so
    a timer shuts the socket down when the deadline passes. Redirects are never
    followed (``http.client`` has no redirect logic): a 3xx is the answer.
    The connection is direct (no ``HTTP(S)_PROXY``).
    """
    parsed = urlsplit(url)
    if parsed.scheme == "https":
        connection = http.client.HTTPSConnection(
            parsed.hostname, parsed.port, timeout=deadline, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=deadline)
    headers = {"Content-Type": "application/json", "User-Agent": "memory_hygiene (Odoo)"}
    if parsed.username is not None:
        credentials = f"{unquote(parsed.username)}:{unquote(parsed.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    expired = threading.Event()

    def expire():
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed: the attempt has ended anyway
                sock.shutdown(socket.SHUT_RDWR)  # wakes a recv/send blocked in the sending thread

    timer = threading.Timer(deadline, expire)
    timer.daemon = True
    timer.start()
    try:
        target = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(ANSWER_CAP)
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise TimeoutError(f"no complete answer within {deadline:g} s") from None
        if isinstance(exc, OSError):
            raise
        raise ConnectionError(f"{type(exc).__name__}: {exc}") from None
    finally:
        timer.cancel()
        connection.close()
    if expired.is_set():  # a socket shut down reads as the end of the answer: not a complete one
        raise TimeoutError(f"no complete answer within {deadline:g} s")
    return response.status


def post_webhook(url, payload, *, send=send_json, timeout=10.0, retries=2, backoff=1.0, sleep=time.sleep):
    """POST ``payload`` as JSON; return ``(ok, message)``, never raise.

    ``timeout`` is the deadline of each attempt as a whole (:func:`send_json`).
    Connection errors, timeouts and 5xx / 429 answers are retried ``retries``
    times (waiting ``backoff``, then twice as long, ...); other answers are
    final, a redirect (3xx) included: it is never followed, so the report never
    goes to a second address. Every failure is logged as a warning; neither the
    log nor ``message`` holds more of the URL than its scheme and host.
    """
    try:
        url = check_webhook_url(url)
    except ValueError as exc:
        _logger.warning("Leak report webhook not called: %s", exc)
        return False, str(exc)
    body = json.dumps(payload).encode()
    message = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            status = send(url, body, timeout)
        except Exception as exc:  # noqa: BLE001 - refused, timeout, TLS: all reported
            message = redact_error(f"{type(exc).__name__}: {exc}", url)
            retry = True
        else:
            if 200 <= status < 300:
                return True, f"HTTP {status}"
            message = f"HTTP {status}"
            if 300 <= status < 400:
                message += " (a redirect: not followed; set the webhook to its final address)"
            retry = status >= 500 or status == 429
        _logger.warning(
            "Leak report webhook %s failed (attempt %s of %s): %s",
            redact_url(url),
            attempt + 1,
            retries + 1,
            message,
        )
        if not retry:
            break
    return False, message

"""The leak report: findings, one line of advice each, as text, HTML and JSON.

The ORM layer (``models/memory_leak_report.py``) gathers plain dicts from the
database; everything here is Odoo-free: which findings there are, what to advise,
how the report reads, and how it is posted to a webhook (``http.client``, one deadline per
attempt, bounded retries, no redirects; a failure is reported, never raised)::

    >>> report = build_report(
    ...     database="prod",
    ...     generated_at="2026-01-01 06:00",
    ...     crons=[{"id": 7, "name": "Sync", "state": "leaking", "reason": "every run keeps memory",
    ...             "top": [{"file": "/addons/x/models/sync.py", "line": 12, "size_diff": 1048576,
    ...                      "count_diff": 1, "size": 5242880, "count": 5}]}],
    ... )
    >>> [f.kind for f in report.findings]
    ['cron']
    >>> print(render_text(report).splitlines()[1])
    - [leaking] Scheduled action "Sync" (id 7): every run keeps memory
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
from dataclasses import asdict, dataclass, field
from urllib.parse import unquote, urlsplit

from ..profiler.leakprof import format_line

_logger = logging.getLogger(__name__)

ADVICE = {
    "orm_cache": (
        "The record cache grows: process in batches with memory.batch.mixin (commit and "
        "env.invalidate_all() after each batch) instead of one big loop."
    ),
    "tracking": (
        "Chatter and tracking keep memory: write in bulk with tracking_disable=True "
        "(memory.batch.mixin does it by default)."
    ),
    "connections": (
        "External connections stay open: use `with requests.Session() as session:` and close each response."
    ),
    "module_state": (
        "Memory kept at {site}: a module-level list or dict cache? Keep state in the database or in an "
        "ormcache (cleared by Odoo), never in a module global."
    ),
    "outside_python": (
        "RSS grows outside Python's heap (C extension, fragmentation): keep limit_memory_soft so the "
        "worker is recycled, and lower the limits."
    ),
    "process_growth": (
        "Find what makes it grow: switch on 'Profile every cron until' for a day, and keep "
        "limit_memory_soft low enough that the worker is recycled before it swaps."
    ),
    "growth": (
        "What each scheduled action's runs grew the worker by (after minus before each run): the first "
        "ones are where to look; a suspect one has its next run traced by itself."
    ),
    "near_limit": (
        "It will be recycled after its current job: if this is its normal load, raise limit_memory_soft "
        "and limit_memory_hard (they compare the virtual size); otherwise find the growth."
    ),
    "recycles": (
        "Workers reach their soft limit often: look for leaking crons and heavy requests, or size the "
        "limits (and workers) to the workload."
    ),
}


@dataclass
class Finding:
    kind: str  # process, cron, growth, limit, recycles
    severity: str  # leaking, suspect, warning, info
    title: str
    details: list = field(default_factory=list)
    advice: str = ""


@dataclass
class Report:
    database: str
    generated_at: str
    findings: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def as_dict(self):
        return asdict(self)


def cron_advice(state, top):
    """One line of advice for a suspect or leaking cron, from its top allocation site.

    >>> cron_advice("leaking", [{"file": "/odoo/odoo/orm/models.py", "line": 1}])[:22]
    'The record cache grows'
    >>> cron_advice("leaking", [{"file": "/odoo/addons/mail/models/mail_thread.py", "line": 1}])[:19]
    'Chatter and trackin'
    >>> cron_advice("suspect", [])[:12]
    'RSS grows ou'
    """
    if not top:
        return ADVICE["outside_python"]
    path = top[0]["file"].replace("\\", "/")
    if "/addons/mail/" in path:
        return ADVICE["tracking"]
    if any(part in path for part in ("/odoo/orm/", "/odoo/models.py", "/odoo/api.py", "/odoo/fields.py")):
        return ADVICE["orm_cache"]
    if any(part in path for part in ("/requests/", "/urllib3/", "/http/client.py", "/ssl.py", "/socket.py")):
        return ADVICE["connections"]
    return ADVICE["module_state"].format(site=f"{top[0]['file']}:{top[0]['line']}")


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
    """Turn gathered figures into findings, each with one line of advice.

    :param processes: dicts ``host, pid, kind, growth_mb, hours, rss_mb`` (largest growth first).
    :param crons: dicts ``id, name, state, reason, top`` (suspect or leaking ones), optionally
        ``holders`` (paths of what keeps the memory) and ``growth_mb``/``share`` (last 24 h).
    :param growth: dicts ``id, name, growth_mb, share, runs, fds_kept``: the growth charged to each
        scheduled action over the report's period (MiB, % of the total); largest first.
    :param near_limit: dicts ``host, pid, kind, soft_limit_pct, vms_mb, rss_mb``.
    :param recycles: ``{host: count}``.
    :param notes: lines said once at the top (what could not be looked at).
    """
    report = Report(database=database, generated_at=str(generated_at), notes=list(notes))
    for cron in crons:
        top = list(cron.get("top") or ())
        report.findings.append(
            Finding(
                kind="cron",
                severity=cron["state"],
                title=(
                    f'Scheduled action "{cron["name"]}" (id {cron["id"]}): '
                    f"{cron.get('reason') or cron['state']}"
                ),
                details=[format_line(alloc) for alloc in top[:3]]
                + [f"held by {path}" for path in (cron.get("holders") or ())[:3]]
                + (
                    [f"charged {cron['growth_mb']:+.1f} MiB in 24 h ({cron.get('share') or 0:.0f} % of it)"]
                    if cron.get("growth_mb") is not None
                    else []
                ),
                advice=cron_advice(cron["state"], top),
            )
        )
    growing = [row for row in growth if row["growth_mb"] > 0]
    if growing:
        total = sum(row["growth_mb"] for row in growing)
        report.findings.append(
            Finding(
                kind="growth",
                severity="info",
                title=f"Scheduled actions were charged {total:+.1f} MiB of growth in 24 h",
                details=[
                    f'"{row["name"]}" (id {row["id"]}): {row["growth_mb"]:+.1f} MiB, {row["share"]:.0f} % '
                    f"({row['runs']} runs{_fds_kept(row.get('fds_kept'))})"
                    for row in growing[:10]
                ],
                advice=ADVICE["growth"],
            )
        )
    for proc in processes:
        report.findings.append(
            Finding(
                kind="process",
                severity="warning",
                title=(
                    f"{proc['kind']} process {proc['pid']} on {proc['host']} grew "
                    f"{proc['growth_mb']:+.0f} MiB in {proc['hours']:.1f} h "
                    f"(RSS now {proc['rss_mb']:.0f} MiB)"
                ),
                advice=ADVICE["process_growth"],
            )
        )
    for proc in near_limit:
        report.findings.append(
            Finding(
                kind="limit",
                severity="warning",
                title=(
                    f"{proc['kind']} process {proc['pid']} on {proc['host']} is at "
                    f"{proc['soft_limit_pct']:.0f} % of its soft limit (warn at {warn_share:.0f} %; "
                    f"virtual size {proc['vms_mb']:.0f} MiB, RSS {proc['rss_mb']:.0f} MiB)"
                ),
                advice=ADVICE["near_limit"],
            )
        )
    for host, count in sorted((recycles or {}).items()):
        if count:
            report.findings.append(
                Finding(
                    kind="recycles",
                    severity="info",
                    title=f"{count} worker recycle(s) on {host}",
                    advice=ADVICE["recycles"],
                )
            )
    return report


def _fds_kept(count):
    return f", {count} files kept open" if count else ""


def _summary(report):
    if not report.findings:
        return f"Memory Hygiene report for {report.database} ({report.generated_at}): nothing to report."
    return (
        f"Memory Hygiene report for {report.database} ({report.generated_at}): "
        f"{len(report.findings)} finding(s)."
    )


def render_text(report):
    """Plain text, also the Slack-compatible ``text`` of the webhook payload."""
    lines = [_summary(report)]
    lines += [f"({note})" for note in report.notes]
    for finding in report.findings:
        lines.append(f"- [{finding.severity}] {finding.title}")
        lines += [f"    {detail}" for detail in finding.details]
        if finding.advice:
            lines.append(f"    Advice: {finding.advice}")
    return "\n".join(lines)


_SEVERITY_COLORS = {"leaking": "#c0392b", "suspect": "#d68910", "warning": "#d68910", "info": "#2471a3"}


def render_html(report):
    """HTML for the mail body; every figure and name is escaped."""
    esc = html.escape
    parts = [f"<p>{esc(_summary(report))}</p>"]
    parts += [f"<p><i>{esc(note)}</i></p>" for note in report.notes]
    if report.findings:
        parts.append("<ul>")
        for finding in report.findings:
            color = _SEVERITY_COLORS.get(finding.severity, "#555555")
            item = f'<li><b style="color: {color}">[{esc(finding.severity)}]</b> {esc(finding.title)}'
            if finding.details:
                item += "<pre>" + esc("\n".join(finding.details)) + "</pre>"
            if finding.advice:
                item += f"<br/><i>Advice:</i> {esc(finding.advice)}"
            parts.append(item + "</li>")
        parts.append("</ul>")
    return "\n".join(parts)


def render_json(report):
    """The webhook payload: Slack's ``text`` plus the structured findings."""
    return {"text": render_text(report), **report.as_dict()}


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

"""Thread stack dumps: written as Odoo's ``SIGQUIT`` handler writes them, and found in a log.

Two jobs: :func:`dump` writes them (this worker), :func:`records` and :func:`find_record`
parse a server log for the answer another process wrote after a signal.

:func:`dump` gives the text of ``odoo.tools.misc.dumpstacks`` (same on 18.0 and
19.0): for each thread a header ``# Thread: <repr> (db:..) (uid:..) (url:..)
(qc:.. qt:.. pt:..)`` with what Odoo's request threads carry (database, user,
URL, query count, query time, Python time), then its frames; then the live
greenlets in the gevent process. The diagnostics page shows it for the worker
that serves the request, without the detour through the server log.

For another process the dump can only come from that process, which logs it:
:func:`find_record` picks it out of the new lines of the server's log file.
"""

import re
import threading
import time
import traceback

_ATTRS = ("uid", "dbname", "url", "query_count")

#: A query-string parameter that carries a credential: ``token=``, ``access_token=``, ``password=``...
_SECRET_PARAM = re.compile(r"(?i)([?&;][^=&;#\s]*(?:token|password|secret)=)[^&;#\s)]*")


def mask_secrets(url):
    """``url`` with the values of its ``token=``-like query parameters masked, for logs and pages.

    >>> mask_secrets("/memory_hygiene/health?token=abc&x=1")
    '/memory_hygiene/health?token=***&x=1'
    >>> mask_secrets("/my/orders/7?access_token=f00d#frag")
    '/my/orders/7?access_token=***#frag'
    >>> mask_secrets("n/a")
    'n/a'
    """
    return _SECRET_PARAM.sub(r"\1***", str(url))


def thread_info(threads):
    """``{ident: info}`` of Odoo's per-thread attributes, as ``dumpstacks`` reads them."""
    info = {}
    for thread in threads:
        info[thread.ident] = {
            "repr": repr(thread),
            **{name: getattr(thread, name, "n/a") for name in _ATTRS},
            "query_time": getattr(thread, "query_time", None),
            "perf_t0": getattr(thread, "perf_t0", None),
        }
    return info


def header(ident, info, now):
    """The ``# Thread:`` line of one thread.

    >>> header(7, {"repr": "<Thread(w)>", "dbname": "db", "uid": 2, "url": "/web", "query_count": 3,
    ...            "query_time": 0.5, "perf_t0": 100.0}, now=101.25)
    '# Thread: <Thread(w)> (db:db) (uid:2) (url:/web) (qc:3 qt:0.500 pt:0.750)'
    >>> header(8, {}, now=0)
    '# Thread: 8 (db:n/a) (uid:n/a) (url:n/a) (qc:n/a qt:n/a pt:n/a)'

    The URL's tokens are masked (the dump is logged and shown)::

        >>> header(9, {"url": "/memory_hygiene/metrics?token=s3cret"}, now=0)
        '# Thread: 9 (db:n/a) (uid:n/a) (url:/memory_hygiene/metrics?token=***) (qc:n/a qt:n/a pt:n/a)'
    """
    query_time = info.get("query_time")
    perf_t0 = info.get("perf_t0")
    python_time = None
    if query_time is not None and perf_t0:
        python_time = "%.3f" % (now - perf_t0 - query_time)
        query_time = "%.3f" % query_time
    # qc: query count, qt: query time, pt: python time (what is left of the request's time)
    return "# Thread: %s (db:%s) (uid:%s) (url:%s) (qc:%s qt:%s pt:%s)" % (
        info.get("repr", ident),
        info.get("dbname", "n/a"),
        info.get("uid", "n/a"),
        mask_secrets(info.get("url", "n/a")),
        info.get("query_count", "n/a"),
        query_time or "n/a",
        python_time or "n/a",
    )


def frame_lines(frame):
    for filename, lineno, name, line in traceback.extract_stack(frame):
        yield 'File: "%s", line %d, in %s' % (filename, lineno, name)
        if line:
            yield "  %s" % (line.strip(),)


def dump(frames, threads=None, now=None, greenlets=()):
    """The stack dump of ``frames`` (``sys._current_frames()``), as ``dumpstacks`` logs it.

    ``threads`` defaults to ``threading.enumerate()``; ``greenlets`` are the
    live greenlets of an evented (gevent) process.
    """
    info = thread_info(threading.enumerate() if threads is None else threads)
    now = time.time() if now is None else now
    code = []
    for ident, frame in frames.items():
        code.append("\n" + header(ident, info.get(ident, {}), now))
        code.extend(frame_lines(frame))
    for greenlet in greenlets:
        code.append("\n# Greenlet: %r" % (greenlet,))
        code.extend(frame_lines(greenlet.gr_frame))
    return "\n".join(code)


# One record of Odoo's log format: "2024-12-15 20:27:20,902 17172 INFO db logger: message".
_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<pid>\d+) (?P<level>[A-Z]+) (?P<db>\S+) (?P<logger>\S+): "
)


def records(text):
    """``[(pid, logger, message)]`` of the log records in ``text`` (multi-line messages kept whole).

    >>> log = ("2024-12-15 20:27:20,902 17172 INFO db odoo.tools.misc: \\n"
    ...        "# Thread: <T> (db:db) (uid:2) (url:/x) (qc:n/a qt:n/a pt:n/a)\\n"
    ...        'File: "a.py", line 1, in f\\n'
    ...        "2024-12-15 20:27:21,000 17173 INFO db odoo.service.server: Worker alive\\n")
    >>> [(pid, logger, len(msg.splitlines())) for pid, logger, msg in records(log)]
    [(17172, 'odoo.tools.misc', 3), (17173, 'odoo.service.server', 1)]
    """
    found = []
    for line in text.splitlines():
        match = _RECORD.match(line)
        if match:
            found.append([int(match["pid"]), match["logger"], [line[match.end() :]]])
        elif found:
            found[-1][2].append(line)
    return [(pid, logger, "\n".join(lines)) for pid, logger, lines in found]


def find_record(text, pid, logger, marker):
    """The message of the last record of ``pid`` by ``logger`` that contains ``marker``, or ``None``.

    The stack dump of pid 17172 is ``find_record(text, 17172, "odoo.tools.misc", "# Thread:")``.
    """
    for rec_pid, rec_logger, message in reversed(records(text)):
        if rec_pid == pid and rec_logger == logger and marker in message:
            return message
    return None


def live_greenlets():
    """The live greenlets of this process (the gevent process), as ``dumpstacks`` lists them."""
    try:
        from greenlet import greenlet
    except ImportError:
        return []
    import gc

    return [obj for obj in gc.get_objects() if isinstance(obj, greenlet) and obj]

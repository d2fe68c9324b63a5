"""Server-wide powers: who may act beyond the caller's database, and what others' output may show.

One Odoo server often serves several databases (one per customer behind
``dbfilter``): its workers are shared by all of them. A Settings administrator
of one database is trusted with that database, not with the server. So the
diagnostics that reach beyond the caller's database (a signal to another
process, a recycle, another process's stack dump or ORM statistics, the heap
or tracemalloc of a worker that other databases share) are allowed only:

- when the server's operator said so in the server's configuration
  (``memory_hygiene_server_wide = True`` in ``odoo.conf``, or the environment
  variable ``ODOO_MEMORY_HYGIENE_SERVER_WIDE``, which wins); ``False`` there
  refuses them even on a server of one database;
- or, when the configuration says nothing, when the server serves exactly one
  database (then its administrator is the only one the workers serve).

Which databases does a server serve? The ones its HTTP workers accept and the
ones its cron workers run, as Odoo decides them (:func:`served_databases`):

- HTTP: with a ``dbfilter``, the databases of the cluster it matches; a filter
  with ``%h`` or ``%d`` depends on the host name of each request, so the set
  cannot be known: counted as several. Without a filter, the ``-d`` list when
  given, else every database of the cluster.
- Crons: the ``-d`` list when given, else every database of the cluster
  (``cron_database_list``): a ``dbfilter`` alone pins the HTTP side only.

"The cluster" is what Odoo lists (``list_dbs(True)``: the databases the role
owns). So a server counts as one database when ``-d`` names one (with no
dbfilter, or a dbfilter that matches only it), or when the cluster holds one.

What other processes show is redacted in any case (:func:`redact_stack_dump`,
:func:`keep_database_section`): URL query strings and token-like path parts in
stack headers, and, unless server-wide powers are allowed, the threads of other
databases.
"""

import os
import re
from dataclasses import dataclass

CONFIG_OPTION = "memory_hygiene_server_wide"
ENV_VARIABLE = "ODOO_MEMORY_HYGIENE_SERVER_WIDE"

#: Why server-wide actions are allowed or not (the model turns each code into a sentence).
CONFIGURED = "configured"
ONE_DATABASE = "one_database"
CONFIGURED_OFF = "configured_off"
SEVERAL_DATABASES = "several_databases"
BY_HOST_NAME = "by_host_name"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Scope:
    """``allowed``: server-wide actions may run; ``code``: why (see the constants);
    ``count``: databases served when known (never their names)."""

    allowed: bool
    code: str
    count: int | None = None


def flag(value):
    """The operator's answer: ``True``, ``False`` or ``None`` (not said). Odoo 18 parses
    ``True``/``False`` of ``odoo.conf`` into booleans, 19 keeps the text.

    >>> flag(True), flag("yes"), flag(" 0 "), flag(None), flag(False)
    (True, True, False, None, False)
    >>> flag("maybe")
    Traceback (most recent call last):
    ...
    ValueError: memory_hygiene_server_wide must be True or False, got 'maybe'
    """
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{CONFIG_OPTION} must be True or False, got {value!r}")


def configured(config_value, environ=None):
    """The operator's answer from the environment variable (when set) or the config value.

    A value that is neither true nor false counts as not allowed (``False``): a
    typo must not open server-wide powers.

    >>> configured(None, {}), configured("True", {}), configured(True, {ENV_VARIABLE: "0"})
    (None, True, False)
    >>> configured(None, {ENV_VARIABLE: "typo"})
    False
    """
    environ = os.environ if environ is None else environ
    raw = environ[ENV_VARIABLE] if environ.get(ENV_VARIABLE) is not None else config_value
    try:
        return flag(raw)
    except ValueError:
        return False


def served_databases(db_names, dbfilter, cluster):
    """The databases a server serves, sorted; ``None`` when they depend on the request's host name.

    ``db_names``: the ``-d`` / ``db_name`` list; ``dbfilter``: the regular
    expression or ``""``; ``cluster()``: the databases Odoo would list
    (``list_dbs(True)``), called only when needed.

    >>> served_databases(["a"], "", lambda: ["a", "b"])
    ('a',)
    >>> served_databases(["a"], "^a$", lambda: ["a", "b"])
    ('a',)
    >>> served_databases([], "^a$", lambda: ["a", "b"])  # the cron workers run b's crons too
    ('a', 'b')
    >>> served_databases(["a", "b"], "", lambda: ["a", "b", "c"])
    ('a', 'b')
    >>> served_databases(["a"], "^%d$", lambda: ["a", "b"]) is None
    True
    """
    db_names = [name.strip() for name in db_names if name and name.strip()]
    listed = None

    def listing():
        nonlocal listed
        if listed is None:
            listed = list(cluster())
        return listed

    if dbfilter:
        if "%h" in dbfilter or "%d" in dbfilter:
            return None
        pattern = re.compile(dbfilter)
        http = {name for name in listing() if pattern.match(name)}
    else:
        http = set(db_names) if db_names else set(listing())
    crons = set(db_names) if db_names else set(listing())
    return tuple(sorted(http | crons))


def decide(operator, served, current_db):
    """May the administrator of ``current_db`` use server-wide actions?

    ``operator``: :func:`configured`'s answer; ``served``: :func:`served_databases`'s.

    >>> decide(None, ("a",), "a")
    Scope(allowed=True, code='one_database', count=1)
    >>> decide(None, ("a", "b"), "a")
    Scope(allowed=False, code='several_databases', count=2)
    >>> decide(True, None, "a").code, decide(False, ("a",), "a").code, decide(None, None, "a").code
    ('configured', 'configured_off', 'by_host_name')
    """
    count = None if served is None else len(set(served) | {current_db})
    if operator is True:
        return Scope(True, CONFIGURED, count)
    if operator is False:
        return Scope(False, CONFIGURED_OFF, count)
    if served is None:
        return Scope(False, BY_HOST_NAME)
    if count == 1:
        return Scope(True, ONE_DATABASE, 1)
    return Scope(False, SEVERAL_DATABASES, count)


# ----------------------------------------------------------------------
# Redaction of what other processes (or other databases' threads) show
# ----------------------------------------------------------------------
#: A path part that looks like a secret: long, made of token characters, with letters and digits.
_TOKEN_PART = re.compile(r"^(?=[^/]*\d)(?=[^/]*[A-Za-z])[A-Za-z0-9_\-.=~%]{20,}$")
_HEADER = re.compile(
    r"^# Thread: (?P<repr>.*) \(db:(?P<db>[^)]*)\) \(uid:(?P<uid>[^)]*)\) \(url:(?P<url>.*)\)"
    r" (?P<rest>\(qc:.*)$"
)


def redact_url(url):
    """A URL (or path) without its query string, fragment, credentials and token-like path parts.

    >>> redact_url("/web/content/42?access_token=abc&download=true")
    '/web/content/42?...'
    >>> redact_url("https://u:pw@shop.example.com/my/orders/7#x")
    'https://shop.example.com/my/orders/7#...'
    >>> redact_url("/web/signup/4f9a1c2e8b7d6a5f4e3d2c1b0a")
    '/web/signup/...'
    >>> redact_url("n/a")
    'n/a'
    """
    base, question, _query = url.partition("?")
    base, hash_, _fragment = base.partition("#")
    scheme, sep, rest = base.partition("://")
    if sep:
        host, slash, path = rest.partition("/")
        base = f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"
    parts = ["..." if _TOKEN_PART.match(part) else part for part in base.split("/")]
    return "/".join(parts) + ("?..." if question else "") + ("#..." if hash_ and not question else "")


def redact_stack_dump(text, current_db, show_other_databases):
    """A stack dump (``dumpstacks``' format) fit to show to the administrator of ``current_db``.

    Every thread header's URL goes through :func:`redact_url`. A thread busy
    with another database keeps only a placeholder, unless
    ``show_other_databases``; then it keeps its frames and its database's name.
    Lines that are not part of a dump (another process writing to the same log
    in between) are dropped.

    >>> dump = "\\n".join([
    ...     "", "# Thread: <T1> (db:mine) (uid:2) (url:/web?token=s3cret) (qc:1 qt:n/a pt:n/a)",
    ...     'File: "a.py", line 1, in f', "  f()",
    ...     "", "# Thread: <T2> (db:theirs) (uid:9) (url:/shop/cart?x=1) (qc:1 qt:n/a pt:n/a)",
    ...     'File: "b.py", line 2, in g', "  secret_customer_code()",
    ...     "stray line of another process"])
    >>> print(redact_stack_dump(dump, "mine", False))
    <BLANKLINE>
    # Thread: <T1> (db:mine) (uid:2) (url:/web?...) (qc:1 qt:n/a pt:n/a)
    File: "a.py", line 1, in f
      f()
    <BLANKLINE>
    # Thread: <T2> (busy with another database: hidden)
    >>> "theirs" in redact_stack_dump(dump, "mine", True), "s3cret" in redact_stack_dump(dump, "mine", True)
    (True, False)
    """
    out = []
    hidden = False
    for line in text.splitlines():
        match = _HEADER.match(line)
        if match:
            db = match["db"]
            hidden = db not in ("n/a", "", "None", current_db) and not show_other_databases
            if hidden:
                out.append(f"# Thread: {match['repr']} (busy with another database: hidden)")
            else:
                url = redact_url(match["url"])
                out.append(
                    f"# Thread: {match['repr']} (db:{db}) (uid:{match['uid']}) (url:{url}) {match['rest']}"
                )
        elif line.startswith("# Thread:") or line.startswith("# Greenlet:"):
            hidden = False
            out.append(line)
        elif not line.strip():
            out.append("")
        elif line.startswith('File: "') or line.startswith("  "):
            if not hidden:
                out.append(line)
    return "\n".join(out)


_SECTION = re.compile(r"^Database (?P<db>\S+?):?$")


def keep_database_section(text, current_db):
    """ORM cache statistics (``log_ormcache_stats``) with the sections of ``current_db`` only.

    Returns ``(text, other sections left out)``.

    >>> stats = "Caches stats:\\nDatabase mine:\\n * default: 3/10\\nDatabase theirs:\\n * default: 5/9"
    >>> keep_database_section(stats, "mine")
    ('Caches stats:\\nDatabase mine:\\n * default: 3/10', 1)
    """
    out, skipped, keep = [], 0, True
    for line in text.splitlines():
        match = _SECTION.match(line)
        if match:
            keep = match["db"] == current_db
            skipped += not keep
        if keep:
            out.append(line)
    return "\n".join(out), skipped

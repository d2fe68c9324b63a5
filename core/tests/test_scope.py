from core.diagnostics import scope


def test_operator_decides_first_then_the_number_of_databases():
    one, two = ("a",), ("a", "b")
    assert scope.decide(None, one, "a").allowed
    assert not scope.decide(None, two, "a").allowed
    assert scope.decide(True, two, "a").allowed, "the operator allows it on several databases"
    assert not scope.decide(False, one, "a").allowed, "and may refuse it on one"
    assert not scope.decide(None, None, "a").allowed, "databases picked by host name: several"
    # The database of the caller counts even if the listing missed it.
    assert scope.decide(None, ("b",), "a").count == 2


def test_environment_wins_over_the_file_and_typos_refuse():
    env = scope.ENV_VARIABLE
    assert scope.configured("True", {env: "false"}) is False
    assert scope.configured(None, {env: "1"}) is True
    assert scope.configured("sure", {}) is False
    assert scope.configured(None, {}) is None


def test_served_databases_as_odoo_picks_them():
    cluster = ["a", "b", "c"]
    calls = []

    def listing():
        calls.append(1)
        return cluster

    assert scope.served_databases(["a"], "", listing) == ("a",)
    assert calls == [], "the -d list alone decides: the cluster is not listed"
    assert scope.served_databases([], "", listing) == ("a", "b", "c")
    assert scope.served_databases([" a ", ""], "^(a|b)$", listing) == ("a", "b")
    assert scope.served_databases(["a"], "^%h$", listing) is None


def test_stack_dump_redaction_of_urls_and_other_databases():
    dump = "\n".join(
        [
            "",
            "# Thread: <T> (db:mine) (uid:2) (url:https://x.example.com/my/orders/7?access_token=s3cr3t)"
            " (qc:3 qt:0.1 pt:0.2)",
            'File: "/odoo/http.py", line 1, in f',
            "  f()",
            "",
            "# Thread: <U> (db:theirs) (uid:5) (url:/theirs/path) (qc:n/a qt:n/a pt:n/a)",
            'File: "/their_addon/x.py", line 2, in g',
            "",
            "# Thread: <V> (db:n/a) (uid:n/a) (url:n/a) (qc:n/a qt:n/a pt:n/a)",
            'File: "/odoo/service/server.py", line 3, in run',
            "",
            "# Greenlet: <Greenlet at 0x1>",
            'File: "/gevent/hub.py", line 4, in switch',
        ]
    )
    hidden = scope.redact_stack_dump(dump, "mine", False)
    assert "s3cr3t" not in hidden and "/my/orders/7?..." in hidden
    assert "theirs" not in hidden and "their_addon" not in hidden
    assert "# Thread: <U> (busy with another database: hidden)" in hidden
    assert "server.py" in hidden and "gevent/hub.py" in hidden, "threads of no database and greenlets stay"
    shown = scope.redact_stack_dump(dump, "mine", True)
    assert "(db:theirs)" in shown and "their_addon" in shown and "s3cr3t" not in shown


def test_orm_statistics_keep_this_database_in_both_formats():
    odoo18 = "Caches stats:\nDatabase theirs\n  default, 1 entries\nDatabase mine\n  default, 2 entries"
    assert scope.keep_database_section(odoo18, "mine") == (
        "Caches stats:\nDatabase mine\n  default, 2 entries",
        1,
    )
    odoo19 = "Caches stats:\nDatabase mine:\n * default: 1/2\nDetails:\n x\nDatabase theirs:\n * default: 3/4"
    text, skipped = scope.keep_database_section(odoo19, "mine")
    assert skipped == 1 and "theirs" not in text and "Details:" in text

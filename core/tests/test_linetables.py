import sys
import tracemalloc
import warnings

import pytest

from core import linetables

RAN = []

only_311 = pytest.mark.skipif(not linetables.SUPPORTED, reason="line arrays exist on CPython 3.11 only")


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    RAN.clear()
    monkeypatch.setattr(linetables, "_warmed", set())
    monkeypatch.setattr(linetables, "_broken", False)
    yield
    assert sys.getprofile() is None, "a test left a profile function"


def plain():
    RAN.append("plain")


def shapes(a, b=2, /, c=3, *args, d, e=5, **kwargs):
    RAN.append("shapes")


def generator(n):
    RAN.append("generator")
    yield n


def outer():
    cell = []

    def inner(x):
        cell.append(x)
        RAN.append("inner")

    class Body:
        RAN.append("class body")

    RAN.append("outer")
    return inner, Body, [RAN.append("comprehension") for _ in range(1)], lambda: RAN.append("lambda")


async def coroutine():
    RAN.append("coroutine")


def big_function(lines=3000):
    """Source of a function of ``lines`` statements whose last one allocates."""
    body = "".join(f"    x{i} = {i}\n" for i in range(lines))
    source = f"def big():\n{body}    return bytearray(65536)\n"
    namespace = {}
    exec(compile(source, "<big>", "exec"), namespace)  # noqa: S102 - a test fixture
    return namespace["big"], lines + 2


def test_no_body_runs():
    codes = linetables.function_codes([plain, shapes, generator, outer, coroutine])
    names = {code.co_name for code in codes}
    assert {"plain", "shapes", "generator", "outer", "inner", "Body", "<listcomp>", "<lambda>"} <= names
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited would warn
        built = linetables.warm(codes)
    assert RAN == []
    expected = len(codes) - 1 if linetables.SUPPORTED else 0  # the coroutine is skipped
    assert built == expected


def test_finds_functions_and_their_nested_code():
    codes = linetables.function_codes([plain, outer, "not a function", RAN])
    assert {code.co_name for code in codes} == {"plain", "outer", "inner", "Body", "<listcomp>", "<lambda>"}


@only_311
def test_builds_the_line_array_once():
    big, _line = big_function()
    instructions = len(big.__code__.co_code) // 2
    tracemalloc.start(1)
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert linetables.warm([big.__code__]) == 1
        grown = tracemalloc.get_traced_memory()[0] - before
        assert linetables.warm([big.__code__]) == 0  # warmed already
        again = tracemalloc.get_traced_memory()[0] - before - grown
    finally:
        tracemalloc.stop()
    assert grown >= 2 * instructions  # two bytes per instruction at least
    assert again < 2 * instructions


def test_line_numbers_unchanged():
    big, line = big_function()
    linetables.warm([big.__code__])
    tracemalloc.start(1)
    try:
        kept = big()
        traceback = tracemalloc.get_object_traceback(kept)
    finally:
        tracemalloc.stop()
    assert (traceback[0].filename, traceback[0].lineno) == ("<big>", line)


def test_remembers_only_the_code_it_last_saw():
    big, _line = big_function()
    other, _line = big_function(10)
    assert linetables.warm([big.__code__]) == int(linetables.SUPPORTED)
    assert linetables.warm([big.__code__, other.__code__]) == int(linetables.SUPPORTED)  # only the new one
    assert linetables._warmed == ({id(big.__code__), id(other.__code__)} if linetables.SUPPORTED else set())
    linetables.warm([other.__code__])
    assert id(big.__code__) not in linetables._warmed  # dead code objects are not kept in memory


@pytest.mark.parametrize("hook", ["setprofile", "settrace"])
def test_leaves_a_running_profiler_or_debugger_alone(hook):
    def observer(frame, event, arg):
        return None

    big, _line = big_function()
    getattr(sys, hook)(observer)
    try:
        assert not linetables.enabled()
        assert linetables.warm([big.__code__]) == 0
        assert getattr(sys, hook.replace("set", "get"))() is observer
    finally:
        getattr(sys, hook)(None)


def test_nothing_on_other_pythons(monkeypatch):
    monkeypatch.setattr(linetables, "SUPPORTED", False)
    big, _line = big_function()
    assert linetables.warm([big.__code__]) == 0


@only_311
def test_an_interpreter_that_does_not_stop_switches_it_off(monkeypatch, caplog):
    big, _line = big_function()
    real = linetables._warm_one
    monkeypatch.setattr(linetables, "_warm_one", lambda code: False)
    assert linetables.warm([big.__code__]) == 0
    assert "warming disabled" in caplog.text
    monkeypatch.setattr(linetables, "_warm_one", real)
    assert linetables.warm([big.__code__]) == 0  # off for the rest of the process


def test_never_raises(monkeypatch, caplog):
    def boom(objects=None):
        raise RuntimeError("gc is gone")

    monkeypatch.setattr(linetables, "function_codes", boom)
    assert linetables.warm() == 0
    assert ("cannot warm" in caplog.text) == linetables.SUPPORTED

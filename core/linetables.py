"""Line-number tables for tracemalloc: 40 % off what tracing a run costs on CPython 3.11.

tracemalloc records, for every allocation, the line of the innermost frame.
On CPython 3.11 that line comes from ``PyCode_Addr2Line``, which walks the
code object's compressed line table from its start up to the current
instruction unless the code object carries a *line array* (``_co_linearray``),
an instruction-to-line table the interpreter builds the first time the code
object runs under a trace or profile function. Odoo's hot methods are long
(``BaseModel._create``, ``expression.parse``), so without the arrays a third
of a traced cron's time goes into those walks (``perf``:
``_PyCode_CheckLineNumber``, 30 % of the samples of a traced run).

:func:`warm` builds the arrays, before tracing starts, for the code objects
of the process's Python functions: it calls each code object, in a fresh
function with empty globals and ``None`` arguments, under a profile function
that raises at the call event. The interpreter builds the array before it
calls the profile function, and the raise ends the frame before its first
instruction: no body runs. The arrays are what ``sys.settrace`` users
(debuggers, coverage) get anyway; they take two bytes per instruction (about
7 MiB for the functions of an Odoo worker, plus about 3 MiB for the ids of
the warmed code objects) and give the same line numbers.

Only CPython 3.11 has line arrays (3.12 replaced the mechanism): elsewhere,
and whenever a trace or profile function is set on the thread (a debugger,
cProfile, Odoo's profiler), :func:`warm` does nothing.

    >>> def add_one(values):
    ...     values.append(1)
    >>> values = []
    >>> warm([add_one.__code__]) in (0, 1)  # 1 on CPython 3.11
    True
    >>> values  # the body did not run
    []
"""

import gc
import inspect
import logging
import sys
import types

_logger = logging.getLogger(__name__)

#: Where line arrays exist.
SUPPORTED = sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 11)

#: Calling these creates an object instead of running the body; coroutines
#: warn when they are never awaited, so they are not warmed.
_SKIPPED_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE

#: ``id()`` of the code objects warmed by the last call, all alive then (ids, not the code objects:
#: holding them would keep them alive; their own equality ignores their file). An id reused since
#: by a new code object only means that one is warmed a call later.
_warmed = set()
_broken = False


class _Stop(BaseException):
    """Raised by the profile function at the call event: the frame ends before its body."""


def enabled():
    """True where :func:`warm` can build line arrays in this thread now."""
    return SUPPORTED and not _broken and sys.getprofile() is None and sys.gettrace() is None


def function_codes(objects=None):
    """Code objects of the Python functions among ``objects`` (default: ``gc.get_objects()``).

    Nested code objects (comprehensions, lambdas, inner functions) are found
    in their parents' constants. (``co_code`` is not read: on 3.11 reading it
    caches a copy of the bytecode on the code object.)
    """
    found = {}
    stack = [
        obj.__code__
        for obj in (gc.get_objects() if objects is None else objects)
        if type(obj) is types.FunctionType
    ]
    while stack:
        code = stack.pop()
        if id(code) in found:
            continue
        found[id(code)] = code
        stack.extend(const for const in code.co_consts if type(const) is types.CodeType)
    return list(found.values())


def _warm_one(code):
    """Build the line array of ``code``: True if the profile function saw its call event."""
    closure = tuple(types.CellType() for _ in code.co_freevars) or None
    # Empty globals and builtins: should a body ever start, its first name lookup fails.
    function = types.FunctionType(code, {"__builtins__": {}}, code.co_name, None, closure)
    args = (None,) * code.co_argcount
    kwargs = dict.fromkeys(code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount])

    def stop_at_call(frame, event, arg):
        # Other events (the C calls of this function) pass; only the target's own call stops.
        if event == "call" and frame.f_code is code:
            raise _Stop

    sys.setprofile(stop_at_call)
    try:
        started = function(*args, **kwargs)
        if code.co_flags & inspect.CO_GENERATOR:
            # A generator function returns its generator; the frame starts at the first send.
            started.send(None)
    except _Stop:
        return True
    except Exception:  # noqa: BLE001 - a body ran and failed at its first lookup: see warm()
        return False
    finally:
        sys.setprofile(None)
    return False


def warm(codes=None):
    """Build line arrays for ``codes`` (default: :func:`function_codes`); returns how many were built.

    Code objects warmed by the previous call are skipped (they keep their
    array). Never raises: the profiler calls it before every profiled run,
    and a run is only ever slower without it.
    """
    global _broken, _warmed  # noqa: PLW0603 - one switch and one memory for the process
    if not enabled():
        return 0
    built = 0
    try:
        current = {id(code): code for code in (function_codes() if codes is None else codes)}
        warmed = set()
        for key, code in current.items():
            if key in _warmed or code.co_flags & _SKIPPED_FLAGS:
                warmed.add(key)
                continue
            if not _warm_one(code):
                # The profile function was not called, so the body may have started:
                # this interpreter does not behave as expected; never warm again.
                _broken = True
                _logger.warning("Line tables: %s did not stop at its call event; warming disabled", code)
                break
            warmed.add(key)
            built += 1
        _warmed = warmed
    except Exception:
        _logger.exception("Line tables: cannot warm code objects; tracing runs slower")
    return built

"""Who holds what a traced run kept: the module global, class attribute or registry-level object.

tracemalloc names the line that allocated kept memory; an admin also needs
what keeps it alive. Two ways, both bounded in time and objects:

1. **Roots that grew.** Before and after the run, the sizes of the containers
   (``list``, ``dict``, ``set``, ``deque``, ...) held by module globals, by
   attributes of the classes defined in those modules, and by the extra roots
   the caller names (the registry's caches): a container that grew during the
   run and whose new items the run allocated is a holder;
2. **Referrer chains** (objgraph): for kept objects allocated at the run's top
   sites that no grown root explains, objgraph walks their referrers up to a
   module and the chain is written as a path.

Each holder is a line such as
``odoo.addons.x.models.y._cache (dict, +1 000 entries)``::

    >>> import tracemalloc, types, sys
    >>> module = types.ModuleType("demo_leaky"); module.CACHE = {}; sys.modules["demo_leaky"] = module
    >>> tracemalloc.start()
    >>> before = root_sizes()
    >>> module.CACHE.update((i, bytearray(10)) for i in range(1000))
    >>> [h["path"] for h in grown_roots(before, root_sizes())]
    ['demo_leaky.CACHE (dict, +1 000 entries)']
    >>> tracemalloc.stop(); del sys.modules["demo_leaky"]

Nothing here imports Odoo.
"""

import collections
import gc
import sys
import time
import tracemalloc
import types

#: Containers whose growth in entries is looked at.
CONTAINERS = (list, dict, set, collections.deque)
#: Most roots looked at per scan, and seconds per scan.
MAX_ROOTS = 500_000
MAX_SECONDS = 2.0
#: New items of a grown container checked for a traceback of this trace.
SAMPLE = 20
#: Holders reported.
TOP = 5


def _entries(count):
    return f"{count:,}".replace(",", " ")


def root_sizes(extra=None, deadline=None):
    """``{path: (id, type name, len)}`` of the containers held by modules, their classes and ``extra``.

    :param extra: ``{path: object}`` more roots (registry-level objects); a
        dict of containers (``{key: container}``) is looked into one level.
    """
    deadline = deadline or time.monotonic() + MAX_SECONDS
    sizes = {}

    def note(path, value):
        if isinstance(value, CONTAINERS):
            sizes[path] = (id(value), type(value).__name__, len(value))

    for name, module in list(sys.modules.items()):
        if len(sizes) >= MAX_ROOTS or time.monotonic() > deadline:
            break
        if not isinstance(module, types.ModuleType):
            continue
        try:
            namespace = dict(vars(module))
        except TypeError:
            continue
        for attr, value in namespace.items():
            if attr.startswith("__"):
                continue
            note(f"{name}.{attr}", value)
            if isinstance(value, type) and getattr(value, "__module__", None) == name:
                for cls_attr, cls_value in list(vars(value).items()):
                    if not cls_attr.startswith("__"):
                        note(f"{name}.{value.__qualname__}.{cls_attr}", cls_value)
    for path, value in (extra or {}).items():
        note(path, value)
        if isinstance(value, dict) and len(value) < 10_000:
            for key, item in list(value.items()):
                note(f"{path}[{key!r}]", item)
    return sizes


def _new_items(container, count):
    """The last ``count`` items a container received (insertion order where there is one)."""
    if isinstance(container, dict):
        keys = list(container)[-count:]
        return keys + [container[k] for k in keys]
    if isinstance(container, list | collections.deque):
        return list(container)[-count:]
    return list(container)[:count]


def grown_roots(before, after, extra=None):
    """Holders among the roots: containers that grew between the two :func:`root_sizes`, biggest first.

    A grown container counts if some of its newest items were allocated
    under the current trace (tracemalloc has their traceback): items the run
    created, not a cache filled by something else. Returns dicts ``path``
    (the line shown), ``root``, ``type``, ``added`` (entries).
    """
    wanted = {}
    for path, (ident, type_name, size) in after.items():
        old = before.get(path)
        if old and old[0] == ident and size > old[2]:
            wanted[path] = (ident, type_name, size - old[2])
    if not wanted:
        return []
    objects = _resolve(wanted, extra)
    holders = []
    for path, (_ident, type_name, added) in sorted(wanted.items(), key=lambda kv: -kv[1][2]):
        container = objects.get(path)
        if container is None:
            continue
        sample = _new_items(container, min(added, SAMPLE))
        confirmed = _allocated_under_trace(sample)
        if confirmed is False:
            continue
        holders.append(
            {
                "confirmed": confirmed,
                "path": f"{path} ({type_name}, +{_entries(added)} {'entry' if added == 1 else 'entries'})",
                "root": path,
                "type": type_name,
                "added": added,
            }
        )
    # The ones whose new items the run is seen to have allocated first, then by entries added.
    holders.sort(key=lambda h: (h.pop("confirmed") is not True, -h["added"]))
    return holders[:TOP]


def _allocated_under_trace(items):
    """True if tracemalloc traced the allocation of one of ``items``; False if it could tell it did not.

    ``None`` when it cannot tell: objects reused from a free list, or that
    tracemalloc cannot look up on this Python (3.11: objects with a pre-header).
    Only non-container objects (``bytearray``, ``str``...) are a clear "no".
    """
    if not tracemalloc.is_tracing():
        return None
    if any(tracemalloc.get_object_traceback(item) is not None for item in items):
        return True
    if items and not any(gc.is_tracked(item) or isinstance(item, CONTAINERS) for item in items):
        return False
    return None


def _resolve(wanted, extra):
    """The objects behind the wanted paths (looked up again: :func:`root_sizes` keeps only ids)."""
    found = {}
    extra = extra or {}
    for path, (ident, _type, _added) in wanted.items():
        value = _lookup(path, extra)
        if value is not None and id(value) == ident:
            found[path] = value
    return found


def _lookup(path, extra):
    if path in extra:
        return extra[path]
    for root, value in extra.items():
        if path.startswith(root + "[") and isinstance(value, dict):
            for key, item in value.items():
                if path == f"{root}[{key!r}]":
                    return item
    # Longest module name first: "a.b.c.X" may be module "a.b" attribute "c"... or module "a.b.c".
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        value = module
        for attr in parts[cut:]:
            value = vars(value).get(attr) if hasattr(value, "__dict__") else None
            if value is None:
                break
        if value is not None:
            return value
    return None


def referrer_chains(sites, seconds=MAX_SECONDS, sample=3, max_depth=8):
    """Holders found by objgraph from kept objects allocated at ``sites`` (``{(file, line)}``).

    Where tracemalloc can look the objects up (instances of classes on
    Python 3.12 and later; not free-list reuses), looks at the garbage
    collector's objects (bounded by ``seconds``) for up to ``sample`` objects
    whose traceback's newest frame is one of ``sites``,
    then lets ``objgraph.find_backref_chain`` walk their referrers up to a
    module (at most ``max_depth`` steps). Returns dicts ``path``, ``root``,
    ``type``, ``added`` (``None``: unknown). Empty without tracing.
    """
    import objgraph

    if not tracemalloc.is_tracing() or not sites:
        return []
    deadline = time.monotonic() + seconds
    found = []
    for obj in gc.get_objects():
        if time.monotonic() > deadline or len(found) >= sample:
            break
        traceback = tracemalloc.get_object_traceback(obj)
        if traceback is not None and (traceback[0].filename, traceback[0].lineno) in sites:
            found.append(obj)
    holders = []
    for obj in found:
        if time.monotonic() > deadline:
            break
        chain = objgraph.find_backref_chain(obj, objgraph.is_proper_module, max_depth=max_depth)
        path = describe_chain(chain)
        if path and path not in {h["root"] for h in holders}:
            holders.append(
                {
                    "path": f"{path} ({type(obj).__name__} held)",
                    "root": path,
                    "type": type(obj).__name__,
                    "added": None,
                }
            )
    del found
    return holders


def describe_chain(chain):
    """A dotted path for an objgraph back-reference chain ``[module, ..., obj]``; ``None`` if not one.

    >>> import types
    >>> m = types.ModuleType("m"); m.CACHE = {"k": [1]}
    >>> describe_chain([m, vars(m), m.CACHE, m.CACHE["k"]])
    "m.CACHE['k']"
    """
    if not chain or not isinstance(chain[0], types.ModuleType):
        return None
    path, prev = chain[0].__name__, chain[0]
    for holder, held in zip(chain[1:], chain[2:], strict=False):
        if isinstance(holder, dict):
            key = next((k for k, v in holder.items() if v is held), None)
            if key is None:
                break
            namespace = isinstance(prev, type | types.ModuleType) and isinstance(key, str)
            path += f".{key}" if namespace else f"[{key!r}]"
        elif not isinstance(holder, type | types.ModuleType):
            break  # a list, an instance...: the path so far names the root
        prev = holder
    return path

"""The Odoo-free layer must never import odoo: its tests run without a database."""

import ast
import pathlib
import subprocess
import sys

CORE = pathlib.Path(__file__).resolve().parents[1]


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_no_module_of_core_imports_odoo():
    offenders = [
        f"{path.relative_to(CORE)}: {name}"
        for path in CORE.rglob("*.py")
        for name in _imports(path)
        if name == "odoo" or name.startswith("odoo.")
    ]
    assert offenders == []


def _module_name(path):
    """``core/snapshot/sampler.py`` -> ``"snapshot.sampler"``; a package's ``__init__`` is the package."""
    parts = path.relative_to(CORE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_core_module_imports_without_odoo_on_the_path():
    modules = sorted(_module_name(path) for path in CORE.rglob("*.py") if path.parent != CORE / "tests")
    modules.remove("")  # core itself
    assert "snapshot.sampler" in modules and "process.tree" in modules, "the subpackages' modules are found"
    code = (
        "import importlib, sys\n"
        "sys.modules['odoo'] = None  # any import of odoo now raises\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module('core.' + name)\n"
        "assert not any(m == 'odoo' or m.startswith('odoo.') for m in sys.modules if sys.modules[m])\n"
        "print('ok', len(" + repr(modules) + "))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=CORE.parent, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")

"""PEP 517 build backend: whool, on the files that Odoo loads and nothing else.

The repository root is the addon (``__manifest__.py`` sits there), and it also
holds what builds, tests and measures the addon: ``test_addons/``, ``tools/``,
``benchmarks/``, ``.ci/``, ``readme/`` fragments, linter configurations. whool
packs every file git knows, so a wheel built by whool alone carries all of
them into ``odoo/addons/memory_hygiene``. This backend copies the addon's own
files into a folder named after the addon, outside any git checkout, and lets
whool build the wheel there: ``pip wheel .``, ``python -m build`` and
``pip install .`` all get the addon only. sdists and editable installs are
whool's own (an sdist must carry this file to build its wheel).

Kept: every file git tracks (or, outside a checkout, every file) except those
under :data:`EXCLUDED` and the top-level dotfiles; ``pyproject.toml`` is read
by whool for its metadata and left out of the wheel by whool itself.
"""

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import whool.buildapi as _whool

ADDON = "memory_hygiene"

#: Top-level entries of the repository that Odoo never loads.
EXCLUDED = frozenset({"test_addons", "tools", "benchmarks", "readme", "requirements.txt"})


def addon_files(root):
    """Relative paths (str, ``/``-separated) of the files of ``root`` that go into the wheel.

    git's list when ``root`` is a checkout (tracked and untracked, not
    ignored), otherwise every file below ``root``.
    """
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = [name for name in out.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        names = [str(p.relative_to(root).as_posix()) for p in Path(root).rglob("*") if p.is_file()]
    return sorted(name for name in names if _kept(name) and (Path(root) / name).is_file())


def _kept(name):
    top = name.split("/", 1)[0]
    return top not in EXCLUDED and not top.startswith(".") and name != "PKG-INFO"


@contextmanager
def _staged_addon():
    """Work in a copy of the addon's own files, in a folder named after the addon."""
    root = Path.cwd()
    old_git_dir = os.environ.get("GIT_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / ADDON
        for name in addon_files(root):
            target = staged / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, target)
        # whool lists files with `git ls-files` from the current folder; a temp
        # folder could sit inside someone's checkout: no git at all, so whool
        # takes the staged folder as it is.
        os.environ["GIT_DIR"] = os.path.join(tmp, "no-git")
        os.chdir(staged)
        try:
            yield
        finally:
            os.chdir(root)
            if old_git_dir is None:
                os.environ.pop("GIT_DIR", None)
            else:
                os.environ["GIT_DIR"] = old_git_dir


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    wheel_directory = os.path.abspath(wheel_directory)
    with _staged_addon():
        return _whool.build_wheel(wheel_directory, config_settings, metadata_directory)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    metadata_directory = os.path.abspath(metadata_directory)
    with _staged_addon():
        return _whool.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


build_sdist = _whool.build_sdist
build_editable = _whool.build_editable
prepare_metadata_for_build_editable = _whool.prepare_metadata_for_build_editable

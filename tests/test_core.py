"""The Odoo-free layer's tests (``core/``), run by Odoo's own test runner too.

``odoo-bin --test-enable -i memory_hygiene`` (what OCA's CI runs) sees only
Odoo test classes, so this module turns the doctests of every ``core``
module into test methods of :class:`TestCoreDoctests`, and runs ``core/tests``
(plain pytest, no database) from :class:`TestCorePytest`. ``tools/test.sh``
also runs them with pytest on each Python 3.10 to 3.13.
"""

import doctest
import importlib
import io
import os
import pkgutil
import subprocess
import sys
import tempfile
import unittest

from odoo.tests import BaseCase, tagged

from .. import core

CORE_DIR = os.path.dirname(core.__file__)


def _core_modules():
    """Names of the modules of ``core`` (``core.tests`` left out), sorted."""
    return sorted(
        info.name
        for info in pkgutil.walk_packages(core.__path__, prefix=core.__name__ + ".")
        if ".tests" not in info.name
    )


def _doctest_method(module_name):
    def test(self):
        module = importlib.import_module(module_name)
        suite = doctest.DocTestSuite(module)
        if not suite.countTestCases():
            self.skipTest(f"{module_name} has no doctest")
        out = io.StringIO()
        result = unittest.TextTestRunner(stream=out, verbosity=0).run(suite)
        self.assertTrue(result.wasSuccessful(), out.getvalue())

    test.__doc__ = f"The doctests of {module_name} pass."
    return test


@tagged("post_install", "-at_install")
class TestCoreDoctests(BaseCase):
    """One test method per core module: its doctests pass."""


for _name in _core_modules():
    # core.snapshot.sampler -> test_doctest_snapshot_sampler: unique across the subpackages.
    setattr(
        TestCoreDoctests,
        "test_doctest_" + _name.split(".core.", 1)[1].replace(".", "_"),
        _doctest_method(_name),
    )


@tagged("post_install", "-at_install")
class TestCorePytest(BaseCase):
    def test_core_tests_pass_under_pytest(self):
        """core/tests pass, run by pytest in a child process of this Python.

        core/ is reached through a symlink in a folder of its own, where it is
        the top-level package ``core`` (the addon's ``__init__`` imports odoo).
        """
        try:
            import pytest  # noqa: F401 - only asks whether it is installed
        except ImportError:
            self.skipTest("pytest is not installed in this Python")
        with tempfile.TemporaryDirectory(prefix="memory_hygiene_core_") as farm:
            os.symlink(CORE_DIR, os.path.join(farm, "core"))
            env = dict(os.environ, PYTHONPATH=farm)
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", farm, "core"],
                cwd=farm,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        self.assertEqual(done.returncode, 0, done.stdout[-5000:] + done.stderr[-2000:])
        self.assertIn(" passed", done.stdout)

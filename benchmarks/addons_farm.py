"""What the benchmark scripts share: the ``--addons-path`` that makes Odoo find this checkout."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

#: The addon's root (this checkout), whatever its folder is called.
ADDON_DIR = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def addons_path(odoo_src, extra=None):
    """``--addons-path`` for Odoo: the series' addons, this addon under its own name, the test addons.

    Odoo finds an addon by its folder name; a checkout whose folder is not
    ``memory_hygiene`` gets a temporary link of that name, removed when the block ends.
    ``extra``: one more addons folder (or comma-separated folders), last.
    """
    farm = None
    if ADDON_DIR.name == "memory_hygiene":
        own = str(ADDON_DIR.parent)
    else:
        farm = tempfile.mkdtemp(prefix="memory_hygiene_bench_addons_")
        os.symlink(ADDON_DIR, Path(farm) / "memory_hygiene")
        own = farm
    paths = [f"{odoo_src}/addons", f"{odoo_src}/odoo/addons", own, str(ADDON_DIR / "test_addons")]
    if extra:
        paths.append(extra)
    try:
        yield ",".join(paths)
    finally:
        if farm:
            shutil.rmtree(farm, ignore_errors=True)

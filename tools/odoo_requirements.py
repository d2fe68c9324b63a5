"""Print Odoo's requirements.txt rewritten so that it installs on this Python.

Odoo pins the versions its supported distributions ship. Some of those pins do
not build on Python 3.11 with a current setuptools (cbor2 5.4.2, python-ldap
without the LDAP headers, ...). We keep every other pin as Odoo wrote it and
replace only the ones listed here, so the test environment stays as close to
Odoo's own as this machine allows.

Usage: python odoo_requirements.py /opt/odoo/18.0/requirements.txt
"""

import re
import sys

# name (lower case) -> replacement requirement, or None to leave it out.
OVERRIDES = {
    # 5.4.2 needs an old setuptools to build; 5.4.6 is Debian 12's and has wheels.
    "cbor2": "cbor2==5.4.6",
    # Needs libldap2-dev / libsasl2-dev to build; only auth_ldap imports it.
    "python-ldap": None,
    # gevent 22.10.2 / greenlet 2.0.2 have cp311 wheels; kept as pinned.
}


def rewrite(lines):
    out = []
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = re.split(r"[=<>!~; \[]", line, maxsplit=1)[0].strip().lower()
        if name in OVERRIDES:
            marker = line.split(";", 1)[1].strip() if ";" in line else ""
            if not _marker_true(marker):
                continue
            repl = OVERRIDES[name]
            if repl:
                out.append(repl)
            continue
        out.append(line)
    return out


def _marker_true(marker):
    if not marker:
        return True
    try:
        from packaging.markers import Marker
    except ImportError:  # pip vendors packaging
        from pip._vendor.packaging.markers import Marker
    return Marker(marker).evaluate()


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        print("\n".join(rewrite(f.readlines())))

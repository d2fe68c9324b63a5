"""Print Odoo's requirements.txt rewritten so that it installs on this Python.

Odoo pins the versions its supported distributions ship, per Python version
(markers such as ``python_version >= '3.12'``). Some of those pins do not build
here with a current setuptools (cbor2 5.4.2, python-ldap without the LDAP
headers, ...). We keep every other pin as Odoo wrote it, evaluate the markers
for the Python that runs this script (the Python of the virtualenv being
built), and replace only the ones listed here, so the test environment stays
as close to Odoo's own as this machine allows. Odoo's file is never edited.

Usage: python3.12 odoo_requirements.py /opt/odoo/18.0/requirements.txt
"""

import re
import sys

# requirement as Odoo writes it, or name alone (lower case, no spaces, no
# marker) -> replacement requirement, or None to leave it out.
OVERRIDES = {
    # 5.4.2 (18.0 on Python < 3.12) needs an old setuptools to build; 5.4.6 is
    # Debian 12's and has wheels. 5.6.2 (3.12+) is kept as pinned.
    "cbor2==5.4.2": "cbor2==5.4.6",
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
        spec, _sep, marker = line.partition(";")
        marker = marker.strip()
        if not _marker_true(marker):
            continue  # not for this Python: pip would skip it as well
        spec = spec.replace(" ", "").lower()
        name = re.split(r"[=<>!~\[]", spec, maxsplit=1)[0]
        key = spec if spec in OVERRIDES else name
        if key in OVERRIDES:
            repl = OVERRIDES[key]
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

"""Generate README.rst and static/description/index.html from readme/*.md.

The OCA way (oca-gen-addon-readme, which is not on PyPI): the fragments in
readme/ are the source, README.rst is generated, never edited by hand.
Markdown fragments are converted with pandoc (Debian package ``pandoc``).

Usage:
    python tools/gen_readme.py          # write README.rst and index.html
    python tools/gen_readme.py --check  # exit 1 if they are not up to date
"""

import argparse
import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Section order and titles, as oca-gen-addon-readme uses them.
FRAGMENTS = [
    ("DESCRIPTION", None),
    ("INSTALL", "Installation"),
    ("CONFIGURE", "Configuration"),
    ("USAGE", "Usage"),
    ("ROADMAP", "Known issues / Roadmap"),
    ("HISTORY", "Changelog"),
]
CREDITS = [("CONTRIBUTORS", "Contributors")]


def md_to_rst(text):
    done = subprocess.run(
        [
            "pandoc",
            "--from=gfm",
            "--to=rst",
            "--wrap=preserve",
            "--columns=110",
            "--shift-heading-level-by=1",
        ],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip() + "\n"


def fragment(name):
    for ext, convert in ((".md", md_to_rst), (".rst", str)):
        path = ROOT / "readme" / (name + ext)
        if path.exists():
            return convert(path.read_text())
    return None


def title(text, char):
    return f"{text}\n{char * len(text)}\n"


def build_rst():
    manifest = ast.literal_eval((ROOT / "__manifest__.py").read_text())
    name = manifest["name"]
    out = [
        "." * 2 + " !! This file is generated from readme/*.md by tools/gen_readme.py: do not edit it. !!\n",
        "=" * len(name) + "\n" + name + "\n" + "=" * len(name) + "\n",
        f"*{manifest['summary']}*\n",
        f"Odoo 18.0 and 19.0 · License {manifest['license']} · {manifest['author']}\n",
    ]
    description = fragment("DESCRIPTION")
    if description:
        out.append(description)
    out.append("**Table of contents**\n\n.. contents::\n   :local:\n")
    for key, heading in FRAGMENTS[1:]:
        body = fragment(key)
        if body:
            out.append(title(heading, "="))
            out.append(body)
    out.append(title("Credits", "="))
    for key, heading in CREDITS:
        body = fragment(key)
        if body:
            out.append(title(heading, "-"))
            out.append(body)
    return "\n".join(out)


def build_html(rst):
    from docutils.core import publish_string

    html = publish_string(
        rst,
        writer_name="html5",
        settings_overrides={
            "embed_stylesheet": False,
            "stylesheet_path": "",
            "report_level": 2,
            "halt_level": 2,
        },
    )
    # In Odoo's app page, images are served from the addon's static route.
    html = html.replace(b'src="static/description/', b'src="/memory_hygiene/static/description/')
    # Odoo warns about XML declarations in module descriptions since 17.0.
    return "\n".join(line for line in html.decode().splitlines() if not line.startswith("<?xml")) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.rst or index.html is stale")
    args = parser.parse_args()
    rst = build_rst()
    html = build_html(rst)
    targets = {ROOT / "README.rst": rst, ROOT / "static" / "description" / "index.html": html}
    if args.check:
        stale = [
            str(p.relative_to(ROOT)) for p, text in targets.items() if not p.exists() or p.read_text() != text
        ]
        if stale:
            print("stale, run python tools/gen_readme.py:", ", ".join(stale))
            return 1
        print("README.rst and index.html are up to date")
        return 0
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print("wrote", path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())

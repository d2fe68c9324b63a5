#!/usr/bin/env bash
# Provision: install and start what the two commands (tools/run.sh and
# tools/test.sh) need, and nothing else; both call it first. Idempotent: a
# second run checks hashes and says "up to date".
#
#   tools/bootstrap.sh [--for run|test] [--odoo SRC]...
#
#   --for run    PostgreSQL (installed, running, a SUPERUSER role for this
#                user) and the virtualenv of each Odoo source given
#   --for test   the same (default), plus Chromium (the browser tour), pandoc
#                (the README check), an Odoo-free-tests virtualenv for each Python
#                3.10 to 3.13 the machine has, the lint virtualenv and the
#                pre-commit hook environments
#   --odoo SRC   an Odoo source tree whose series gets a virtualenv, on the
#                Python tools/lib.sh chooses (MH_PYTHON_18/19, MH_PYTHON, ...)
set -euo pipefail

# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FOR=test
SRCS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --for)
            [ $# -ge 2 ] || mh_die "--for needs run or test"
            FOR=$2
            shift 2
            ;;
        --odoo)
            [ $# -ge 2 ] || mh_die "--odoo needs an Odoo source tree"
            SRCS+=("$2")
            shift 2
            ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            mh_die "unknown option $1 (see --help)"
            ;;
    esac
done
case "$FOR" in run | test) ;; *) mh_die "--for takes run or test, not $FOR" ;; esac

mkdir -p "$MH_CACHE"
mh_ensure_postgres
for src in "${SRCS[@]}"; do
    mh_ensure_venv "$(mh_odoo_series "$src")" "$src"
done
[ "$FOR" = test ] || exit 0

mh_ensure_chromium
mh_ensure_pandoc
for ver in "${MH_PURE_PYTHONS[@]}"; do
    if py="$(mh_find_python "$ver")"; then
        MH_TOOL_PYTHON="$py" mh_ensure_tool_venv "pure-py$ver" \
            "$MH_REPO/requirements.txt" "$MH_REPO/tools/requirements-test.txt"
    fi
done
mh_ensure_tool_venv lint "$MH_REPO/tools/requirements-lint.txt"
# pre-commit builds each hook's environment from PyPI on first use.
(cd "$MH_REPO" && PRE_COMMIT_HOME="$MH_CACHE/pre-commit" "$(dirname "$MH_TOOL_PY")/pre-commit" install-hooks)
mh_log "provisioned"

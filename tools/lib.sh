# shellcheck shell=bash
# Shared helpers for tools/run.sh and tools/test.sh. Source it, do not run it:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Everything that is downloaded or built (virtualenvs, the addons link farm,
# Odoo data dirs, logs) lives under MH_CACHE, never in the repository.
#
# Environment:
#   MH_CACHE         cache root (default: ~/.cache/memory_hygiene)
#   MH_PYTHON_18     Python that runs Odoo 18.0 (default: see mh_series_python)
#   MH_PYTHON_19     Python that runs Odoo 19.0 (default: see mh_series_python)
#   MH_PYTHON        Python for every series, when MH_PYTHON_<major> is not set
#   ODOO_SRC_18      Odoo 18.0 source tree (default: /opt/odoo/18.0)
#   ODOO_SRC_19      Odoo 19.0 source tree (default: /opt/odoo/19.0)
#   MH_VENV_REBUILD  1 = delete and recreate the series virtualenv

# The repository root is the addon itself (it holds __manifest__.py).
MH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MH_ADDON="memory_hygiene"
MH_CACHE="${MH_CACHE:-$HOME/.cache/memory_hygiene}"
# The machine's default Python, for the small helpers below (reading a
# release.py, finding a free port) and the tool virtualenvs (lint, wheel).
MH_HOST_PYTHON="${MH_HOST_PYTHON:-python3}"
export MH_REPO MH_ADDON MH_CACHE

# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

# mh_log MESSAGE... : progress message on stderr, so that functions whose
# stdout is captured ($(mh_odoo_src ...)) can still talk.
mh_log() {
    printf '[memory_hygiene] %s\n' "$*" >&2
}

mh_die() {
    mh_log "ERROR: $*"
    exit 1
}

# mh_as_root CMD... : run CMD as root (directly, or through sudo).
mh_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        mh_die "need root to run: $* (no sudo available)"
    fi
}

# mh_as_postgres CMD... : run CMD as the postgres system user.
mh_as_postgres() {
    if [ "$(id -un)" = postgres ]; then
        "$@"
    elif [ "$(id -u)" -eq 0 ]; then
        # runuser keeps no terminal games; su is the fallback on minimal images.
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
        fi
    else
        sudo -u postgres "$@"
    fi
}

# mh_pip PYTHON ARGS... : pip without the harmless "Location '...' is ignored"
# warnings this machine's pip configuration prints; keeps pip's exit code.
mh_pip() {
    local py=$1 rc=0
    shift
    "$py" -m pip --disable-pip-version-check "$@" 2>&1 | { grep -v "Location '" || true; } || rc=$?
    return "$rc"
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

# mh_ensure_postgres : PostgreSQL installed, its cluster running, and a
# SUPERUSER LOGIN role for the current user (Odoo connects through the local
# socket as that user). Idempotent; does nothing when all is in place.
mh_ensure_postgres() {
    local user pgver
    user="$(id -un)"
    # psql (client), pg_lsclusters (Debian's cluster tools), the server itself,
    # and pg_config (libpq-dev, to build psycopg2 from Odoo's requirements).
    if ! command -v psql >/dev/null 2>&1 || ! command -v pg_lsclusters >/dev/null 2>&1 \
        || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
        || ! command -v pg_config >/dev/null 2>&1; then
        mh_log "installing PostgreSQL (apt-get)"
        mh_as_root apt-get update
        mh_as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y postgresql postgresql-contrib libpq-dev
    fi

    # Debian creates the cluster "<version> main" when it installs the server.
    pgver="${MH_PG_VERSION:-$(pg_lsclusters --no-header 2>/dev/null | awk 'NR == 1 {print $1}')}"
    pgver="${pgver:-15}"
    if ! pg_lsclusters --no-header 2>/dev/null | awk -v v="$pgver" '$1 == v && $2 == "main"' | grep -q .; then
        mh_log "creating PostgreSQL cluster $pgver main"
        mh_as_root pg_createcluster "$pgver" main
    fi
    if ! pg_lsclusters --no-header | awk -v v="$pgver" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
        mh_log "starting PostgreSQL cluster $pgver main"
        mh_as_root pg_ctlcluster "$pgver" main start
    fi
    # The server may take a moment to accept connections after a start.
    for _ in $(seq 1 30); do
        pg_isready -q && break
        sleep 1
    done
    pg_isready -q || mh_die "PostgreSQL $pgver does not accept connections"

    if ! mh_as_postgres psql -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$user'" | grep -q 1; then
        mh_log "creating PostgreSQL role '$user' (SUPERUSER LOGIN)"
        mh_as_postgres psql -d postgres -v ON_ERROR_STOP=1 -qc "CREATE ROLE \"$user\" SUPERUSER LOGIN"
    fi
}

# mh_ensure_chromium : headless Chromium (Debian's) for the browser tour; without
# it Odoo's HttpCase would skip the tour instead of running it.
mh_ensure_chromium() {
    if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
        mh_log "installing chromium (apt-get) for the browser tour"
        mh_as_root apt-get update
        mh_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
    fi
}

# mh_ensure_pandoc : pandoc (Debian's) converts readme/*.md for tools/gen_readme.py.
mh_ensure_pandoc() {
    if ! command -v pandoc >/dev/null 2>&1; then
        mh_log "installing pandoc (apt-get)"
        mh_as_root apt-get update
        mh_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y pandoc
    fi
}

# mh_db_exists DB : true when the database exists.
mh_db_exists() {
    [ "$(psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$1'")" = 1 ]
}

# mh_drop_db DB : drop the database (and its filestore) if it exists.
mh_drop_db() {
    local db=$1
    psql -d postgres -q -c "SET client_min_messages TO warning" \
        -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
    rm -rf "$MH_CACHE"/data-*/filestore/"$db"
}

# ---------------------------------------------------------------------------
# Odoo source and series
# ---------------------------------------------------------------------------

# mh_odoo_src_candidate SERIES : where the source of SERIES is expected
# ($ODOO_SRC_18 / $ODOO_SRC_19 / ... or /opt/odoo/SERIES), present or not.
mh_odoo_src_candidate() {
    local series=$1 major var
    major="${series%%.*}"
    var="ODOO_SRC_${major}"
    printf '%s\n' "${!var:-/opt/odoo/$series}"
}

# mh_odoo_src SERIES : the source tree of SERIES, or nothing if absent.
mh_odoo_src() {
    local src
    src="$(mh_odoo_src_candidate "$1")"
    if [ -f "$src/odoo/release.py" ]; then
        printf '%s\n' "$src"
    fi
}

# mh_odoo_series SRC : the series ("18.0") of an Odoo source tree, read from
# odoo/release.py without importing odoo.
mh_odoo_series() {
    "$MH_HOST_PYTHON" - "$1/odoo/release.py" <<'EOF'
import sys

namespace = {}
with open(sys.argv[1], encoding="utf-8") as f:
    exec(compile(f.read(), sys.argv[1], "exec"), namespace)
print(namespace["series"])
EOF
}

# mh_odoo_bin SRC : Odoo's launcher in a source tree. A git checkout has
# odoo-bin; the nightly source tarball only ships setup/odoo.
mh_odoo_bin() {
    local src=$1
    if [ -f "$src/odoo-bin" ]; then
        printf '%s\n' "$src/odoo-bin"
    elif [ -f "$src/setup/odoo" ]; then
        printf '%s\n' "$src/setup/odoo"
    else
        mh_die "no odoo-bin nor setup/odoo in $src"
    fi
}

# mh_demo_args SERIES : the options that keep demo data out of new databases.
# 18.0 loads demo data unless told --without-demo=all; from 19.0 on, demo data
# is off by default and --without-demo is a boolean, so nothing is passed.
mh_demo_args() {
    local major="${1%%.*}"
    if [ "$major" -lt 19 ]; then
        printf '%s\n' "--without-demo=all"
    fi
}

# ---------------------------------------------------------------------------
# Addons path
# ---------------------------------------------------------------------------

# _mh_is_addons_dir DIR : true when some subfolder of DIR is an Odoo addon
# (what Odoo itself requires of every addons path entry).
_mh_is_addons_dir() {
    local d
    for d in "$1"/*/; do
        if [ -f "$d/__manifest__.py" ] && [ -f "$d/__init__.py" ]; then
            return 0
        fi
    done
    return 1
}

# mh_link_farm : <farm>/memory_hygiene -> the repository; prints <farm>.
# Odoo names an addon after its folder, and this repository may be checked
# out under any name (main, a CI clone, a git worktree, ...), so Odoo gets a
# folder whose entry has the right name. Each checkout has a farm of its own,
# ${MH_CACHE}/addons/<checkout folder>-<hash of its path>, so that two
# checkouts tested at the same time never swap each other's code.
mh_link_farm() {
    local farm
    farm="$MH_CACHE/addons/$(basename "$MH_REPO")-$(printf '%s' "$MH_REPO" | sha256sum | cut -c1-8)"
    mkdir -p "$farm"
    if [ -e "$farm/$MH_ADDON" ] && [ ! -L "$farm/$MH_ADDON" ]; then
        mh_die "$farm/$MH_ADDON exists and is not a symlink; remove it"
    fi
    ln -sfn "$MH_REPO" "$farm/$MH_ADDON"
    printf '%s\n' "$farm"
}

# mh_addons_path SRC [TEST_ADDONS] : the --addons-path value for the Odoo
# tree SRC:
#   SRC/addons, SRC/odoo/addons, the link farm holding memory_hygiene, and
#   (unless TEST_ADDONS is 0) <repo>/test_addons, the test-only addons such as
#   test_memory_hygiene, which a real server has no use for.
# Entries that are not addons directories are left out, since Odoo refuses
# them (the nightly tarball has no SRC/addons; test_addons may be empty).
mh_addons_path() {
    local src=$1 test_addons=${2:-1} farm entry out=""
    local -a entries
    farm="$(mh_link_farm)"
    entries=("$src/addons" "$src/odoo/addons" "$farm")
    if [ "$test_addons" = 1 ]; then
        entries+=("$MH_REPO/test_addons")
    fi
    for entry in "${entries[@]}"; do
        if [ -d "$entry" ] && _mh_is_addons_dir "$entry"; then
            out="${out:+$out,}$entry"
        fi
    done
    printf '%s\n' "$out"
}

# mh_odoo_args SERIES SRC [TEST_ADDONS] : prints, one per line, the options
# every Odoo command of this repository shares. Read them with mapfile.
mh_odoo_args() {
    local series=$1 src=$2 test_addons=${3:-1}
    printf '%s\n' \
        "--addons-path=$(mh_addons_path "$src" "$test_addons")" \
        "--data-dir=$MH_CACHE/data-$series" \
        "--http-interface=127.0.0.1"
    mh_demo_args "$series"
}

# mh_free_port : a TCP port nobody listens on right now (on 127.0.0.1).
mh_free_port() {
    "$MH_HOST_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# ---------------------------------------------------------------------------
# Virtualenvs
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Pythons
# ---------------------------------------------------------------------------

# The newest Python each series supports (Odoo's setup and requirements:
# 18.0 runs on 3.10 to 3.12, 19.0 on 3.10 to 3.13).
mh_newest_python_of() {
    case "${1%%.*}" in
        18) echo 3.12 ;;
        19) echo 3.13 ;;
        *) echo "" ;;
    esac
}

# mh_find_python X.Y : the path of a working python X.Y, from PATH (pyenv's
# shims answer there only for the versions pyenv has activated) or else from
# pyenv's versions folder (newest patch release first); nothing when absent.
mh_find_python() {
    local ver=$1 cand root
    if cand="$(command -v "python$ver" 2>/dev/null)" \
        && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != tuple(map(int, sys.argv[1].split("."))))' "$ver" \
            >/dev/null 2>&1; then
        printf '%s\n' "$cand"
        return 0
    fi
    root="${PYENV_ROOT:-$HOME/.pyenv}"
    for cand in $(ls -d "$root/versions/$ver".* 2>/dev/null | sort -rV); do
        if [ -x "$cand/bin/python$ver" ] && "$cand/bin/python$ver" -c 'import sys' >/dev/null 2>&1; then
            printf '%s\n' "$cand/bin/python$ver"
            return 0
        fi
    done
    return 1
}

# mh_python_version PYTHON : "3.12.1".
mh_python_version() {
    "$1" -c 'import platform; print(platform.python_version())'
}

# mh_resolve_python NAME_OR_PATH : the path of a Python that runs, for a value
# of MH_PYTHON*: a path, or a command name; a name "pythonX.Y" that does not
# run from PATH (a pyenv shim of a version pyenv has not activated) is looked
# for under pyenv's versions folder. Fails with a plain message otherwise.
mh_resolve_python() {
    local want=$1 path
    if path="$(command -v "$want" 2>/dev/null)" && "$path" -c 'import sys' >/dev/null 2>&1; then
        printf '%s\n' "$path"
    elif [[ "$want" =~ ^python([0-9]+\.[0-9]+)$ ]] && mh_find_python "${BASH_REMATCH[1]}"; then
        :
    else
        mh_die "Python '$want' does not run here (not on PATH, nor under ${PYENV_ROOT:-$HOME/.pyenv}/versions)"
    fi
}

# mh_series_python SERIES : sets MH_SERIES_PYTHON (the Python that runs
# SERIES) and MH_SERIES_PYTHON_WHY (a plain sentence: where it came from).
# In order: $MH_PYTHON_<major> ($MH_PYTHON_18, $MH_PYTHON_19), $MH_PYTHON,
# the newest Python the series supports found by mh_find_python, the
# machine's python3.
mh_series_python() {
    local series=$1 major var newest found
    major="${series%%.*}"
    var="MH_PYTHON_${major}"
    newest="$(mh_newest_python_of "$series")"
    if [ -n "${!var:-}" ]; then
        MH_SERIES_PYTHON="$(mh_resolve_python "${!var}")" || exit 1
        MH_SERIES_PYTHON_WHY="from $var=${!var}"
    elif [ -n "${MH_PYTHON:-}" ]; then
        MH_SERIES_PYTHON="$(mh_resolve_python "$MH_PYTHON")" || exit 1
        MH_SERIES_PYTHON_WHY="from MH_PYTHON=$MH_PYTHON"
    elif [ -n "$newest" ] && found="$(mh_find_python "$newest")"; then
        MH_SERIES_PYTHON="$found"
        MH_SERIES_PYTHON_WHY="the newest Python Odoo $series supports"
    else
        MH_SERIES_PYTHON="$MH_HOST_PYTHON"
        MH_SERIES_PYTHON_WHY="no python$newest on PATH or under ${PYENV_ROOT:-$HOME/.pyenv}/versions: the default $MH_HOST_PYTHON"
    fi
    MH_SERIES_PYTHON_VERSION="$(mh_python_version "$MH_SERIES_PYTHON")"
    MH_SERIES_PYTHON_FOR="$series"
    mh_log "Odoo $series runs on Python $MH_SERIES_PYTHON_VERSION ($MH_SERIES_PYTHON): $MH_SERIES_PYTHON_WHY"
}

# ---------------------------------------------------------------------------
# Virtualenvs
# ---------------------------------------------------------------------------

# _mh_venv_create DIR PYTHON : a fresh virtualenv of PYTHON at DIR unless a
# working one is there.
_mh_venv_create() {
    local venv=$1 py=$2
    if [ "${MH_VENV_REBUILD:-0}" = 1 ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        mh_log "creating virtualenv $venv ($py)"
        rm -rf "$venv"
        mkdir -p "$(dirname "$venv")"
        "$py" -m venv "$venv"
    fi
}

# _mh_stamp PYTHON FILE... : sha256 of the given files plus the interpreter version.
_mh_stamp() {
    local py=$1
    shift
    {
        "$py" -c 'import sys; print(sys.version)'
        cat "$@"
    } | sha256sum | cut -d' ' -f1
}

# mh_ensure_venv SERIES SRC : the virtualenv that runs Odoo SERIES from SRC,
# on the Python mh_series_python chooses: $MH_CACHE/venv-SERIES-pyX.Y.
# Sets MH_PY to its python (and MH_SERIES_PYTHON_VERSION).
#
# Installed, in this order:
#   1. Odoo's requirements.txt, its markers evaluated for that Python and
#      rewritten by tools/odoo_requirements.py for pins that do not build here;
#   2. requirements.txt (the addon's runtime extras) and
#      tools/requirements-test.txt, constrained by (1) so that they can never
#      move one of Odoo's pins (psutil, requests, ...).
# pip runs only when the stamp (sha256 of those three files) changed, so a
# second run costs a hash. MH_VENV_REBUILD=1 starts from an empty venv.
mh_ensure_venv() {
    local series=$1 src=$2
    [ "${MH_SERIES_PYTHON_FOR:-}" = "$series" ] || mh_series_python "$series"
    local short="${MH_SERIES_PYTHON_VERSION%.*}"
    local venv="$MH_CACHE/venv-$series-py$short"
    local odoo_req="$MH_CACHE/odoo-requirements-$series-py$short.txt"
    local stamp_file="$venv/.memory_hygiene-stamp"
    local stamp

    mkdir -p "$MH_CACHE"
    "$MH_SERIES_PYTHON" "$MH_REPO/tools/odoo_requirements.py" "$src/requirements.txt" >"$odoo_req.tmp"
    mv "$odoo_req.tmp" "$odoo_req"
    stamp="$(_mh_stamp "$MH_SERIES_PYTHON" "$odoo_req" "$MH_REPO/requirements.txt" "$MH_REPO/tools/requirements-test.txt")"

    _mh_venv_create "$venv" "$MH_SERIES_PYTHON"
    if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp" ]; then
        mh_log "installing Odoo $series requirements into $venv (takes a while the first time)"
        # Python 3.11's bundled setuptools (65) cannot resolve zope.interface 8
        # for gevent: the long-polling process of a prefork server then dies at
        # start and the master respawns it in a loop. gevent 22 still imports
        # pkg_resources, which setuptools 81 removed: hence the upper bound.
        # (3.12 and 3.13 venvs have no setuptools at all: the same pin.)
        mh_pip "$venv/bin/python" install -q "setuptools>=70,<81"
        mh_pip "$venv/bin/python" install -q -r "$odoo_req"
        mh_log "installing requirements.txt and tools/requirements-test.txt (constrained by Odoo's pins)"
        mh_pip "$venv/bin/python" install -q \
            -r "$MH_REPO/requirements.txt" \
            -r "$MH_REPO/tools/requirements-test.txt" \
            -c "$odoo_req"
        if ! mh_pip "$venv/bin/python" check; then
            mh_log "WARNING: pip check reports conflicts in $venv (see above)"
        fi
        printf '%s\n' "$stamp" >"$stamp_file"
    else
        mh_log "virtualenv $venv is up to date"
    fi
    MH_PY="$venv/bin/python"
    export MH_PY
}

# mh_ensure_tool_venv NAME REQUIREMENTS_FILE... : a virtualenv
# ${MH_CACHE}/venv-NAME of $MH_TOOL_PYTHON (default: the machine's python3)
# with the given requirements, stamped like above. Sets MH_TOOL_PY to its python.
mh_ensure_tool_venv() {
    local name=$1 py="${MH_TOOL_PYTHON:-$MH_HOST_PYTHON}"
    shift
    local venv="$MH_CACHE/venv-$name"
    local stamp_file="$venv/.memory_hygiene-stamp"
    local stamp req
    local -a pip_args=()
    stamp="$(_mh_stamp "$py" "$@")"
    _mh_venv_create "$venv" "$py"
    if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp" ]; then
        for req in "$@"; do
            pip_args+=(-r "$req")
        done
        mh_log "installing $* into $venv"
        mh_pip "$venv/bin/python" install -q "${pip_args[@]}"
        printf '%s\n' "$stamp" >"$stamp_file"
    fi
    MH_TOOL_PY="$venv/bin/python"
    export MH_TOOL_PY
}

# ---------------------------------------------------------------------------
# Provisioned environments (tools/bootstrap.sh makes them; the commands use them)
# ---------------------------------------------------------------------------

# mh_use_venv SERIES : sets MH_PY to the python of the virtualenv that runs
# SERIES (on the Python mh_series_python chooses); fails when
# tools/bootstrap.sh has not made it.
mh_use_venv() {
    local series=$1
    [ "${MH_SERIES_PYTHON_FOR:-}" = "$series" ] || mh_series_python "$series"
    MH_PY="$MH_CACHE/venv-$series-py${MH_SERIES_PYTHON_VERSION%.*}/bin/python"
    [ -x "$MH_PY" ] || mh_die "no virtualenv for Odoo $series on Python $MH_SERIES_PYTHON_VERSION: run tools/bootstrap.sh"
    export MH_PY
}

# mh_use_tool_venv NAME : sets MH_TOOL_PY to the python of ${MH_CACHE}/venv-NAME;
# fails when tools/bootstrap.sh has not made it.
mh_use_tool_venv() {
    MH_TOOL_PY="$MH_CACHE/venv-$1/bin/python"
    [ -x "$MH_TOOL_PY" ] || mh_die "no virtualenv $MH_CACHE/venv-$1: run tools/bootstrap.sh"
    export MH_TOOL_PY
}

# The Pythons the Odoo-free tests (core/) run on, where the machine has them.
MH_PURE_PYTHONS=(3.10 3.11 3.12 3.13)

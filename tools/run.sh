#!/usr/bin/env bash
# Run it: start Odoo with memory_hygiene installed, configured as a small
# production server (2 workers, 1 cron thread, memory limits).
#
#   tools/run.sh          start in the foreground (Ctrl-C stops it)
#   MH_DETACH=1 tools/run.sh
#                         start in the background, return once it answers
#   tools/run.sh stop     stop a server started with MH_DETACH=1
#
# Environment:
#   ODOO_SRC     Odoo source tree (default: /opt/odoo/18.0); downloaded from
#                the Odoo nightly server when missing and reachable
#   ODOO_SERIES  series to download when ODOO_SRC is missing (default: 18.0)
#   MH_DB        database (default: memory_hygiene); created with the addon
#                installed on the first run
#   MH_PORT      HTTP port (default: 8069)
#   MH_GEVENT_PORT  websocket port of the gevent worker (default: MH_PORT + 3)
#   MH_PYTHON_18, MH_PYTHON_19, MH_PYTHON
#                the Python that runs the series (default: the newest it
#                supports that the machine has; see tools/lib.sh)
#   MH_CACHE     see tools/lib.sh
set -euo pipefail

# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ODOO_SRC="${ODOO_SRC:-/opt/odoo/18.0}"
MH_DB="${MH_DB:-memory_hygiene}"
MH_PORT="${MH_PORT:-8069}"
MH_GEVENT_PORT="${MH_GEVENT_PORT:-$((MH_PORT + 3))}"

# stop_detached : stop every server a detached run left a pid file for.
stop_detached() {
    local pidfile pid found=0
    for pidfile in "$MH_CACHE"/odoo-*.pid; do
        [ -f "$pidfile" ] || continue
        found=1
        pid="$(cat "$pidfile")"
        # Only signal the process if it still is the Odoo we started.
        if kill -0 "$pid" 2>/dev/null && grep -qa odoo "/proc/$pid/cmdline" 2>/dev/null; then
            mh_log "stopping Odoo (pid $pid)"
            kill -TERM "$pid"
            for _ in $(seq 1 30); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 1
            done
            if kill -0 "$pid" 2>/dev/null; then
                mh_log "pid $pid still alive after 30 s, sending SIGKILL"
                kill -KILL "$pid"
            fi
        else
            mh_log "pid $pid from $pidfile is not running"
        fi
        rm -f "$pidfile"
    done
    [ "$found" = 1 ] || mh_log "no detached Odoo to stop"
}

# fetch_odoo_source : put the nightly source of ODOO_SERIES into ODOO_SRC,
# or explain where the source is expected and exit 2.
fetch_odoo_source() {
    local series="${ODOO_SERIES:-18.0}"
    local url="https://nightly.odoo.com/$series/nightly/src/odoo_$series.latest.tar.gz"
    if ! curl -fsI --max-time 15 https://nightly.odoo.com >/dev/null 2>&1; then
        cat >&2 <<EOF
[memory_hygiene] No Odoo source at $ODOO_SRC, and nightly.odoo.com cannot be reached.
[memory_hygiene] Put an Odoo $series source tree (a checkout of github.com/odoo/odoo,
[memory_hygiene] branch $series, with odoo-bin and requirements.txt) at $ODOO_SRC,
[memory_hygiene] or point ODOO_SRC at one:  ODOO_SRC=/path/to/odoo tools/run.sh
EOF
        exit 2
    fi
    mh_log "downloading $url"
    local tmp
    tmp="$(mktemp -d)"
    curl -fL --retry 3 -o "$tmp/odoo.tar.gz" "$url"
    mkdir -p "$ODOO_SRC"
    # The tarball holds one top folder (odoo-<version>/); drop it.
    tar -xzf "$tmp/odoo.tar.gz" -C "$ODOO_SRC" --strip-components=1
    rm -rf "$tmp"
}

if [ "${1:-}" = stop ]; then
    stop_detached
    exit 0
elif [ $# -gt 0 ]; then
    echo "usage: $0 [stop]" >&2
    exit 2
fi

if [ ! -f "$ODOO_SRC/odoo/release.py" ]; then
    fetch_odoo_source
fi
SERIES="$(mh_odoo_series "$ODOO_SRC")"
ODOO_BIN="$(mh_odoo_bin "$ODOO_SRC")"
mh_log "Odoo $SERIES from $ODOO_SRC"

# Provisioning (PostgreSQL, the series' virtualenv) is tools/bootstrap.sh's.
bash "$MH_REPO/tools/bootstrap.sh" --for run --odoo "$ODOO_SRC"
mh_use_venv "$SERIES"
# A real server: no test addons in its addons path.
mapfile -t COMMON < <(mh_odoo_args "$SERIES" "$ODOO_SRC" 0)

# First run: create the database with the addon installed. Odoo creates the
# database itself (and the user admin, password admin).
if ! mh_db_exists "$MH_DB"; then
    mh_log "creating database $MH_DB with $MH_ADDON installed"
    if ! "$MH_PY" "$ODOO_BIN" "${COMMON[@]}" -d "$MH_DB" -i "$MH_ADDON" \
        --stop-after-init --log-level=warn; then
        # Leave nothing half-initialised behind: the next run starts over.
        mh_drop_db "$MH_DB"
        mh_die "installing $MH_ADDON into $MH_DB failed (see above)"
    fi
fi

SERVER=(
    "$MH_PY" "$ODOO_BIN" "${COMMON[@]}"
    -d "$MH_DB"
    "--db-filter=^${MH_DB}\$"
    --http-port="$MH_PORT"
    # the websocket / longpolling process the workers need (8072 for 8069)
    --gevent-port="$MH_GEVENT_PORT"
    --workers=2
    --max-cron-threads=1
    --limit-memory-soft=2147483648
    --limit-memory-hard=2684354560
    --limit-time-real=120
    # proxy mode stays off (its default): nothing sits in front of this server.
)

cat <<EOF
[memory_hygiene] Odoo $SERIES with $MH_ADDON
[memory_hygiene]   URL:      http://localhost:$MH_PORT
[memory_hygiene]   login:    admin
[memory_hygiene]   password: admin
[memory_hygiene]   database: $MH_DB
EOF

if [ "${MH_DETACH:-0}" != 1 ]; then
    exec "${SERVER[@]}"
fi

# Detached: background server, log and pid file under MH_CACHE.
LOG="$MH_CACHE/odoo-$SERIES.log"
PIDFILE="$MH_CACHE/odoo-$SERIES.pid"
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    mh_die "a detached Odoo already runs (pid $(cat "$PIDFILE")); tools/run.sh stop"
fi
nohup "${SERVER[@]}" >"$LOG" 2>&1 </dev/null &
echo $! >"$PIDFILE"
mh_log "started in the background: pid $(cat "$PIDFILE"), log $LOG"
for _ in $(seq 1 120); do
    if curl -fs -o /dev/null "http://127.0.0.1:$MH_PORT/web/login"; then
        mh_log "Odoo answers on http://localhost:$MH_PORT (stop it with: tools/run.sh stop)"
        exit 0
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        tail -n 40 "$LOG" >&2
        rm -f "$PIDFILE"
        mh_die "Odoo exited before answering; log: $LOG"
    fi
    sleep 1
done
tail -n 40 "$LOG" >&2
mh_die "Odoo did not answer on port $MH_PORT within 120 s; log: $LOG (still running: tools/run.sh stop)"

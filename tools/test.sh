#!/usr/bin/env bash
# Test it: the one command that checks everything. It first calls
# tools/bootstrap.sh, which installs and starts what the tests need.
#
#   tools/test.sh [--series 18.0]... [--no-lint] [--keep-db]
#
# Steps (each one counts once in the closing "N passed, N failed" line):
#   core tests   pytest over core/ (tests and doctests), no Odoo, no database,
#                once on each Python 3.10 to 3.13 the machine has
#   Odoo SERIES  for 18.0 and 19.0 (or the --series given), when the source is
#                there, on the newest Python the series supports (18.0: 3.12,
#                19.0: 3.13) unless told otherwise: install + update on a fresh
#                database with a clean log, then the addon's test suites;
#                SKIPPED when the source is not
#   lint         pre-commit run --all-files (ruff, pylint-odoo, OCA's XML/CSV/PO
#                checks), and README.rst generated from readme/
#   wheel        the whool-built wheel holds odoo/addons/memory_hygiene
#
# Options:
#   --series S   test only Odoo S (repeatable); default: 18.0 and 19.0
#   --no-lint    skip the lint step
#   --keep-db    keep the test databases (their names are printed)
# Environment:
#   MH_TEST_TAGS  --test-tags value (default: /memory_hygiene,/test_memory_hygiene)
#   MH_PYTHON_18, MH_PYTHON_19  the Python of one series (a name on PATH or a path)
#   MH_PYTHON     the Python of every series not set above
#                 (default: python3.12 for 18.0, python3.13 for 19.0, from PATH or
#                 pyenv's versions folder, else python3; the log says which and why)
#   ODOO_SRC_18, ODOO_SRC_19, MH_CACHE: see tools/lib.sh
set -euo pipefail

# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERIES_LIST=()
LINT=1
KEEP_DB=0
while [ $# -gt 0 ]; do
    case "$1" in
        --series)
            [ $# -ge 2 ] || mh_die "--series needs a value (18.0, 19.0)"
            SERIES_LIST+=("$2")
            shift 2
            ;;
        --series=*)
            SERIES_LIST+=("${1#--series=}")
            shift
            ;;
        --no-lint)
            LINT=0
            shift
            ;;
        --keep-db)
            KEEP_DB=1
            shift
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
[ ${#SERIES_LIST[@]} -gt 0 ] || SERIES_LIST=(18.0 19.0)
TEST_TAGS="${MH_TEST_TAGS:-/$MH_ADDON,/test_$MH_ADDON}"

mkdir -p "$MH_CACHE"
# Logs of this checkout's runs: two checkouts (worktrees) tested at the same
# time never write over each other's logs.
MH_LOGDIR="${MH_LOGDIR:-$MH_CACHE/logs/$(basename "$MH_REPO")}"
mkdir -p "$MH_LOGDIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/memory_hygiene-test.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Results, in order: "PASSED|FAILED|SKIPPED<TAB>step<TAB>detail".
RESULTS=()
FAILURES=()
record() {
    RESULTS+=("$1"$'\t'"$2"$'\t'"${3:-}")
}

# run_step NAME DETAIL FUNCTION ARGS... : run FUNCTION in a subshell with
# errexit on (so that any failing command fails the step), record the result.
run_step() {
    local name=$1 detail=$2 rc=0
    shift 2
    echo
    echo "=============================================================="
    echo "== $name"
    echo "=============================================================="
    set +e
    (
        set -euo pipefail
        "$@"
    )
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        record PASSED "$name" "$detail"
    else
        record FAILED "$name" "${detail:+$detail, }exit $rc"
        mh_log "step '$name' FAILED (exit $rc)"
    fi
}

# ---------------------------------------------------------------------------
# a. core tests (the Odoo-free layer)
# ---------------------------------------------------------------------------
step_core() {
    local py=$1 ver=$2 farm rc=0
    # core/ must import without Odoo: this venv has no odoo on sys.path.
    mh_use_tool_venv "pure-py$ver"
    mh_log "core tests (Odoo-free) with $MH_TOOL_PY"

    # The repository root is the addon, and its __init__.py imports odoo. pytest
    # imports the __init__.py of every package above a test file, so it must not
    # see the root as a package: core/ is reached through a symlink in a folder
    # of its own, where it is the top-level package "core".
    farm="$WORK/pure-$ver"
    mkdir -p "$farm"
    ln -s "$MH_REPO/core" "$farm/core"
    (
        cd "$farm"
        PYTHONPATH="$farm" "$MH_TOOL_PY" -m pytest -q -p no:cacheprovider \
            --rootdir="$farm" --doctest-modules core
    ) || rc=$?
    if [ "$rc" -eq 5 ]; then
        mh_log "pytest collected no test in core/"
    fi
    return "$rc"
}

# ---------------------------------------------------------------------------
# b. one Odoo series
# ---------------------------------------------------------------------------

# check_clean_log LOG... : fail when a log has WARNING / ERROR / CRITICAL
# lines, apart from the known harmless ones.
check_clean_log() {
    local log bad=0 known="Running as user 'root' is a security risk."
    for log in "$@"; do
        if grep -qF "$known" "$log"; then
            mh_log "filtered known line in $(basename "$log"): $known"
        fi
        if grep -vF "$known" "$log" | grep -E ' (WARNING|ERROR|CRITICAL) ' >"$WORK/bad-lines"; then
            mh_log "unexpected WARNING/ERROR/CRITICAL lines in $log:"
            cat "$WORK/bad-lines" >&2
            bad=1
        fi
    done
    return "$bad"
}

# failed_tests LOG: each test (or setUpClass, or subtest) Odoo reported as FAIL
# or ERROR in LOG, with the exception line of its traceback (what the closing
# summary repeats: a CI page may show only the end of the output).
failed_tests() {
    awk '
        function flush() {
            if (name != "") print "  " name (last != "" ? ": " last : "")
            name = ""; last = ""; tb = 0
        }
        /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] / {
            flush()
            # ... ERROR db odoo.addons.x.tests.test_y: FAIL: TestY.test_z
            if (match($0, / odoo\.[A-Za-z0-9_.]+: (ERROR|FAIL): /)) {
                head = substr($0, RSTART, RLENGTH)
                name = (index(head, ": FAIL: ") ? "FAIL: " : "ERROR: ") substr($0, RSTART + RLENGTH)
                sub(/ +$/, "", name)
            }
            next
        }
        name != "" && /^Traceback / { tb = 1; next }
        # The first line of a traceback that is not a frame: the exception (the last one wins
        # when exceptions are chained; the lines of its message after the first are left out).
        name != "" && tb && /^[^ ]/ { last = substr($0, 1, 200); tb = 0 }
        END { flush() }
    ' "$1"
}

step_series() {
    local series=$1 src=$2
    local odoo_bin db port log_install log_update log_test rc summary tests failed errors
    local -a common install_extra=()
    local test_addon="test_$MH_ADDON"

    mh_use_venv "$series"
    odoo_bin="$(mh_odoo_bin "$src")"
    mapfile -t common < <(mh_odoo_args "$series" "$src")
    mh_log "addons path: ${common[0]#--addons-path=}"

    db="mh_test_${series//./}_$$"
    if [ "$KEEP_DB" = 1 ]; then
        trap 'mh_log "kept database '"$db"'"' EXIT
    else
        trap 'mh_log "dropping database '"$db"'"; mh_drop_db '"$db"' || true' EXIT
    fi
    mh_drop_db "$db"
    port="$(mh_free_port)"

    # Step 1: install, then update, on a fresh database: both logs must be clean.
    log_install="$MH_LOGDIR/install-$series.log"
    log_update="$MH_LOGDIR/update-$series.log"
    mh_log "installing $MH_ADDON into $db (log: $log_install)"
    if ! "$MH_PY" "$odoo_bin" "${common[@]}" -d "$db" --http-port="$port" --workers=0 \
        -i "$MH_ADDON" --stop-after-init --log-level=info >"$log_install" 2>&1; then
        tail -n 60 "$log_install" >&2
        mh_die "install of $MH_ADDON failed on Odoo $series"
    fi
    mh_log "updating $MH_ADDON in $db (log: $log_update)"
    if ! "$MH_PY" "$odoo_bin" "${common[@]}" -d "$db" --http-port="$port" --workers=0 \
        -u "$MH_ADDON" --stop-after-init --log-level=info >"$log_update" 2>&1; then
        tail -n 60 "$log_update" >&2
        mh_die "update of $MH_ADDON failed on Odoo $series"
    fi
    check_clean_log "$log_install" "$log_update"
    mh_log "install and update logs are clean"

    # Step 2: the test suites. -u memory_hygiene makes Odoo run its at_install
    # and post_install tests again on this database (Odoo only runs the tests
    # of modules it installs or updates); test_memory_hygiene is installed.
    if [ -f "$MH_REPO/test_addons/$test_addon/__manifest__.py" ]; then
        install_extra=(-i "$test_addon")
    else
        mh_log "no test_addons/$test_addon: running the tests of $MH_ADDON only"
    fi
    log_test="$MH_LOGDIR/test-$series.log"
    mh_log "running tests (tags $TEST_TAGS) on $db (log: $log_test)"
    rc=0
    "$MH_PY" "$odoo_bin" "${common[@]}" -d "$db" --http-port="$port" --workers=0 \
        -u "$MH_ADDON" "${install_extra[@]}" \
        --test-enable --test-tags="$TEST_TAGS" \
        --stop-after-init --log-level=test 2>&1 | tee "$log_test" || rc=$?

    local bad=0
    if [ "$rc" -ne 0 ]; then
        mh_log "Odoo exited with $rc"
        bad=1
    fi
    if grep -E ' (ERROR|CRITICAL) |FAIL:' "$log_test" >"$WORK/bad-lines"; then
        mh_log "ERROR / CRITICAL / FAIL lines in the test log:"
        cat "$WORK/bad-lines" >&2
        bad=1
    fi
    # Named in the closing summary, even when Odoo ended before its own.
    failed_tests "$log_test" >"$MH_LOGDIR/test-$series.failures"
    # Odoo's closing line, same wording in 18.0 and 19.0:
    #   ... odoo.tests.result: 0 failed, 0 error(s) of 42 tests when loading database 'x'
    summary="$(grep -E '[0-9]+ failed, [0-9]+ error\(s\) of [0-9]+ tests' "$log_test" | tail -n 1 || true)"
    if [ -z "$summary" ]; then
        mh_log "no test summary line in the log: did Odoo run any test?"
        bad=1
    else
        tests="$(sed -E 's/.* of ([0-9]+) tests.*/\1/' <<<"$summary")"
        failed="$(sed -E 's/.* ([0-9]+) failed, .*/\1/' <<<"$summary")"
        errors="$(sed -E 's/.* ([0-9]+) error\(s\) of .*/\1/' <<<"$summary")"
        mh_log "Odoo $series: $tests tests, $failed failed, $errors error(s)"
        echo "$tests tests, $failed failed, $errors error(s)" >"$MH_LOGDIR/test-$series.summary"
        if [ "$tests" -lt 1 ]; then
            mh_log "no test ran (tags $TEST_TAGS)"
            bad=1
        fi
        if [ "$failed" -ne 0 ] || [ "$errors" -ne 0 ]; then
            bad=1
        fi
    fi
    return "$bad"
}

# ---------------------------------------------------------------------------
# c. linters
# ---------------------------------------------------------------------------
step_lint() {
    mh_use_tool_venv lint
    local bin bad=0
    bin="$(dirname "$MH_TOOL_PY")"
    cd "$MH_REPO"
    # The hooks of .pre-commit-config.yaml, as OCA's CI runs them: ruff (lint
    # and format), pylint-odoo, OCA's XML / CSV / PO checks. Their environments
    # come from PyPI and are kept under MH_CACHE. A hook that fixes a file
    # fails the step: see `git diff`.
    mh_log "pre-commit run --all-files (.pre-commit-config.yaml)"
    PRE_COMMIT_HOME="$MH_CACHE/pre-commit" "$bin/pre-commit" run --all-files --show-diff-on-failure --color=never || bad=1
    # README.rst and index.html are generated from readme/*.md: never stale.
    mh_log "README.rst generated from readme/ (tools/gen_readme.py --check)"
    "$MH_TOOL_PY" tools/gen_readme.py --check || bad=1
    return "$bad"
}

# ---------------------------------------------------------------------------
# d. wheel
# ---------------------------------------------------------------------------
step_wheel() {
    local dist="$WORK/wheel/dist" wheel listing
    mh_use_tool_venv lint
    mkdir -p "$dist"

    # pyproject.toml's backend (tools/whool_addon_only.py) stages the files Odoo
    # loads in a folder named memory_hygiene and lets whool build from there,
    # so the checkout may be called anything.
    mh_log "building the wheel (whool, addon files only)"
    "$MH_TOOL_PY" -m build --wheel --no-isolation --outdir "$dist" "$MH_REPO" >"$WORK/wheel/build.log" 2>&1 || {
        cat "$WORK/wheel/build.log" >&2
        return 1
    }
    wheel="$(ls "$dist"/*.whl)"
    mh_log "built $(basename "$wheel")"
    listing="$("$MH_TOOL_PY" -m zipfile -l "$wheel")"
    if ! grep -q "odoo/addons/$MH_ADDON/__manifest__.py" <<<"$listing"; then
        printf '%s\n' "$listing" >&2
        mh_die "the wheel has no odoo/addons/$MH_ADDON/__manifest__.py"
    fi
    # What Odoo loads, and its README: nothing that builds, tests or measures it.
    if grep -E "odoo/addons/$MH_ADDON/(test_addons|tools|benchmarks|readme|\.ci|\.github)/|odoo/addons/$MH_ADDON/\.[^/ ]+ |odoo/addons/$MH_ADDON/requirements\.txt" <<<"$listing"; then
        mh_die "the wheel holds files Odoo does not load (above)"
    fi
    mh_log "the wheel holds $(grep -c "odoo/addons/$MH_ADDON/" <<<"$listing") files of the addon, none of test_addons/, tools/, benchmarks/, readme/, .ci/"

    # It must also install (without its dependencies: odoo is not on PyPI).
    "$MH_HOST_PYTHON" -m venv "$WORK/wheel/venv"
    mh_pip "$WORK/wheel/venv/bin/python" install -q --no-deps "$wheel"
    "$WORK/wheel/venv/bin/python" - "$MH_ADDON" <<'EOF'
import pathlib
import sys
import sysconfig

manifest = pathlib.Path(sysconfig.get_paths()["purelib"], "odoo", "addons", sys.argv[1], "__manifest__.py")
assert manifest.is_file(), manifest
print(f"installed: {manifest}")
EOF
}

# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------
# Provisioning first (tools/bootstrap.sh): PostgreSQL, Chromium, pandoc, the
# virtualenvs of each series found and of each Python present. Then only tests.
BOOTSTRAP_ARGS=(--for test)
for series in "${SERIES_LIST[@]}"; do
    src="$(mh_odoo_src "$series")"
    if [ -n "$src" ] && [ "$(mh_odoo_series "$src")" = "$series" ]; then
        BOOTSTRAP_ARGS+=(--odoo "$src")
    fi
done
mh_log "provisioning: tools/bootstrap.sh ${BOOTSTRAP_ARGS[*]}"
bash "$MH_REPO/tools/bootstrap.sh" "${BOOTSTRAP_ARGS[@]}" || mh_die "tools/bootstrap.sh failed (above): nothing was tested"

# The core tests (Odoo-free) run on every supported Python the machine has.
for ver in "${MH_PURE_PYTHONS[@]}"; do
    if py="$(mh_find_python "$ver")"; then
        run_step "core tests (Python $(mh_python_version "$py"))" "core/" step_core "$py" "$ver"
    else
        echo
        echo "SKIPPED core tests on Python $ver: no python$ver on PATH or under pyenv's versions folder"
        record SKIPPED "core tests (Python $ver)" "not on this machine"
    fi
done

for series in "${SERIES_LIST[@]}"; do
    src="$(mh_odoo_src "$series")"
    if [ -z "$src" ]; then
        msg="no source at $(mh_odoo_src_candidate "$series") (set ODOO_SRC_18/ODOO_SRC_19)"
        echo
        echo "SKIPPED Odoo $series: $msg"
        record SKIPPED "Odoo $series" "$msg"
        continue
    fi
    src_series="$(mh_odoo_series "$src")"
    if [ "$src_series" != "$series" ]; then
        record FAILED "Odoo $series" "the source at $src is Odoo $src_series"
        continue
    fi
    mh_series_python "$series"
    run_step "Odoo $series (Python $MH_SERIES_PYTHON_VERSION)" "$src" step_series "$series" "$src"
    if [ -f "$MH_LOGDIR/test-$series.summary" ]; then
        RESULTS[-1]="${RESULTS[-1]}: $(cat "$MH_LOGDIR/test-$series.summary")"
    fi
    if [ -s "$MH_LOGDIR/test-$series.failures" ]; then
        FAILURES+=("Odoo $series (log: $MH_LOGDIR/test-$series.log):" "$(cat "$MH_LOGDIR/test-$series.failures")")
    fi
    rm -f "$MH_LOGDIR/test-$series.summary" "$MH_LOGDIR/test-$series.failures"
done

if [ "$LINT" = 1 ]; then
    run_step "lint" "pre-commit, README" step_lint
else
    record SKIPPED "lint" "--no-lint"
fi

run_step "wheel" "whool" step_wheel

# ---------------------------------------------------------------------------
# e. summary
# ---------------------------------------------------------------------------
passed=0
failed=0
echo
echo "==================== memory_hygiene summary ===================="
for line in "${RESULTS[@]}"; do
    IFS=$'\t' read -r status name detail <<<"$line"
    case "$status" in
        PASSED) passed=$((passed + 1)) ;;
        FAILED) failed=$((failed + 1)) ;;
    esac
    printf '%-8s %-28s %s\n' "$status" "$name" "$detail"
done
echo "================================================================"
if [ "${#FAILURES[@]}" -gt 0 ]; then
    echo "Tests that failed:"
    printf '%s\n' "${FAILURES[@]}"
    echo "================================================================"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

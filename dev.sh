#!/usr/bin/env bash
# The project's two commands, on a fresh machine:
#   ./dev.sh example [ARGS]   install what the READMEs use from .venv (the example app on memory://,
#                             gunicorn, sphinx-build), then run the example app (flask run ARGS)
#   ./dev.sh test [ARGS]      install, then ruff, mypy, the docs build and the whole test suite
#                             (ARGS go to that pytest run, e.g. -k foo), then the compatibility
#                             matrix: the cache, session and cached-view tests on Flask 3.0.x,
#                             3.1.x, Flask main and the lowest redis-py pyproject.toml allows
#   ./dev.sh matrix           only the compatibility matrix
#   ./dev.sh bench [ARGS]     install, then run the benchmarks against the peers, requests/s under
#                             gunicorn + wrk, the near-cache's invalidation delay and memory, and
#                             regenerate docs/performance.rst
#   ./dev.sh install [EXTRA]  only bring .venv up to date (EXTRA: example (default), dev, ...)
#
# Installs are skipped when nothing they depend on changed: each venv keeps a stamp file with a
# hash of pyproject.toml, setup.cfg and what was installed. The package is installed editable, so
# source changes need no reinstall.
#
# Environment:
#   DEV_NO_MATRIX=1 (or ./dev.sh test --no-matrix)  skip the matrix locally; ignored when CI=true
#   FLASK_MAIN_WHEEL=PATH   the Flask main wheel (default: ../shared/wheels/flask-*.dev*.whl beside
#                           the repository); missing: the Flask main leg fails under CI, is skipped otherwise
#   PYTHON=python3.12       the interpreter for new venvs
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD

PY=${PYTHON:-python3}
VENV=.venv
MATRIX_DIR=$VENV/matrix
export PIP_DISABLE_PIP_VERSION_CHECK=1

# The compatibility subset: run on every matrix leg. Files that do not exist (yet) are skipped.
COMPAT_TESTS="tests/test_cache.py tests/test_cache_hardening.py tests/test_fetch.py tests/test_memoize.py tests/test_cached_view.py tests/test_flask_compat.py tests/test_sessions.py tests/test_sessions_lazy.py tests/test_sessions_faults.py tests/test_compat_flask_caching.py tests/test_compat_flask_session.py tests/test_local_cache.py"

say() { echo "dev.sh: $*" >&2; }

# Hash of everything an install depends on: the dependency files and the pip arguments (and the
# contents of any argument that is a file, such as the Flask main wheel).
deps_hash() {
    {
        cat pyproject.toml
        [ ! -f setup.cfg ] || cat setup.cfg
        local arg
        for arg in "$@"; do
            printf '%s\n' "$arg"
            [ ! -f "$arg" ] || sha256sum <"$arg"
        done
    } | sha256sum | cut -d' ' -f1
}

# Run a pip command without the lines this machine's pip.conf causes for every package (an extra
# index directory that lacks it); everything else pip prints is kept. Returns pip's status.
pip_quietly() {
    "$@" 2>&1 | { grep -v "^WARNING: Location 'file:.*' is ignored: it is neither a file nor a directory\.$" || true; } >&2
    return "${PIPESTATUS[0]}"
}

# up_to_date VENV NAME PIP_ARGS...: VENV's stamp for NAME says exactly that was installed.
up_to_date() {
    local venv=$1 name=$2
    shift 2
    local stamp="$venv/.dev-sh-$name.stamp"
    [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(deps_hash "$@")" ]
}

# ensure VENV NAME PIP_ARGS...: create VENV if needed and pip install PIP_ARGS, unless it is
# up to date. (Errors are checked by hand: callers may run it where set -e does not apply.)
ensure() {
    local venv=$1 name=$2
    shift 2
    local stamp="$venv/.dev-sh-$name.stamp" want
    up_to_date "$venv" "$name" "$@" && return 0
    want=$(deps_hash "$@") || return 1
    say "installing $name into $venv (first run, or pyproject.toml/setup.cfg changed)"
    if [ ! -x "$venv/bin/python" ]; then
        "$PY" -m venv "$venv" || return 1
        pip_quietly "$venv/bin/python" -m pip install --quiet --upgrade pip || return 1
    fi
    rm -f "$stamp"
    # setuptools announces every editable install with a warning box; it is information only.
    PYTHONWARNINGS="ignore:Editable installation" pip_quietly "$venv/bin/python" -m pip install --quiet "$@" || return 1
    echo "$want" >"$stamp"
}

# bootstrap EXTRA: .venv with the package (editable) and EXTRA. The dev extra includes everything
# the example extra does, so a venv set up for the tests serves the example as it is.
bootstrap() {
    if [ "$1" = example ] && up_to_date "$VENV" dev -e ".[dev]"; then
        return 0
    fi
    ensure "$VENV" "$1" -e ".[$1]"
}

need_redis_server() {
    if ! command -v redis-server >/dev/null 2>&1; then
        say "redis-server not found; installing it with apt-get"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools
    fi
    redis-server --version
}

# The browser test (tests/test_browser.py) drives Debian's chromium with
# chromedriver; under CI=true a missing browser is a failure, so install it.
need_chromium() {
    if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
        say "chromium or chromedriver not found; installing them with apt-get"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver \
            || say "could not install chromium (the browser test fails under CI=true, skips otherwise)"
    fi
}

# The end-to-end benchmark (benchmarks/e2e.py) loads gunicorn with Debian's wrk.
need_wrk() {
    if ! command -v wrk >/dev/null 2>&1; then
        say "wrk not found; installing it with apt-get"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk
    fi
}

flask_main_wheel() {
    if [ -n "${FLASK_MAIN_WHEEL:-}" ]; then
        echo "$FLASK_MAIN_WHEEL"
        return
    fi
    local wheel
    wheel=$(ls "$(dirname "$ROOT")"/shared/wheels/flask-*.dev*-py3-none-any.whl 2>/dev/null | sort | tail -1 || true)
    echo "$wheel"
}

# matrix_leg NAME PIP_REQUIREMENTS...: install .[test] with those pins into its own venv and run
# the compatibility subset there. Appends a line to $SUMMARY; returns pytest's status.
matrix_leg() {
    local name=$1
    shift
    local venv="$MATRIX_DIR/$name" start status=0
    start=$(date +%s)
    ensure "$venv" test -e ".[test]" "$@" || status=$?
    if [ "$status" -eq 0 ]; then
        local versions
        versions=$("$venv/bin/python" -c 'import importlib.metadata as m; print(" ".join(f"{d}=={m.version(d)}" for d in ("flask", "werkzeug", "redis")))')
        say "matrix $name: $versions"
        # shellcheck disable=SC2086
        "$venv/bin/python" -m pytest -q --tb=line -p no:cacheprovider $compat_files || status=$?
    fi
    printf '%-12s %-6s %4ss  %s\n' "$name" "$([ "$status" -eq 0 ] && echo pass || echo FAIL)" \
        "$(($(date +%s) - start))" "$*" >>"$SUMMARY"
    return "$status"
}

run_matrix() {
    local failed=0 wheel
    compat_files=""
    for f in $COMPAT_TESTS; do
        [ -f "$f" ] && compat_files="$compat_files $f"
    done
    if [ -z "$compat_files" ]; then
        say "ERROR: none of the compatibility tests exist: $COMPAT_TESTS"
        return 1
    fi
    SUMMARY=$(mktemp)
    matrix_leg flask-3.0 "flask==3.0.*" || failed=1
    matrix_leg flask-3.1 "flask==3.1.*" || failed=1
    wheel=$(flask_main_wheel)
    if [ -n "$wheel" ] && [ -f "$wheel" ]; then
        matrix_leg flask-main "$wheel" || failed=1
    elif [ "${CI:-}" = "true" ]; then
        say "ERROR: the Flask main wheel is missing (looked in $(dirname "$ROOT")/shared/wheels; set FLASK_MAIN_WHEEL)"
        echo "flask-main   FAIL      0s  wheel not found" >>"$SUMMARY"
        failed=1
    else
        say "skipping Flask main: no wheel in $(dirname "$ROOT")/shared/wheels (set FLASK_MAIN_WHEEL)"
        echo "flask-main   skip      0s  wheel not found" >>"$SUMMARY"
    fi
    matrix_leg redis-5.0 "redis==5.0.*" || failed=1
    say "compatibility matrix ($compat_files):"
    cat "$SUMMARY" >&2
    rm -f "$SUMMARY"
    return "$failed"
}

case "${1:-}" in
    example)
        bootstrap example
        exec "$VENV/bin/flask" --app examples/catalog/app.py run "${@:2}"
        ;;
    install)
        bootstrap "${2:-example}"
        ;;
    test)
        shift
        matrix=1
        if [ "${1:-}" = "--no-matrix" ]; then
            matrix=0
            shift
        fi
        [ "${DEV_NO_MATRIX:-}" = "1" ] && matrix=0
        if [ "${CI:-}" = "true" ] && [ "$matrix" = 0 ]; then
            say "CI=true: running the compatibility matrix anyway"
            matrix=1
        fi
        started=$(date +%s)
        need_redis_server
        need_chromium
        bootstrap dev
        say "installed in $(($(date +%s) - started))s"
        "$VENV/bin/ruff" check .
        "$VENV/bin/mypy" flask_rediscache benchmarks
        "$VENV/bin/sphinx-build" -W --keep-going -q -b html docs docs/_build/html
        status=0
        "$VENV/bin/python" -m pytest "$@" || status=$?
        say "main run: pytest exit $status after $(($(date +%s) - started))s"
        if [ "$matrix" = 1 ]; then
            run_matrix || status=1
        fi
        say "total $(($(date +%s) - started))s"
        exit "$status"
        ;;
    matrix)
        need_redis_server
        run_matrix
        ;;
    bench)
        # Every benchmark into one JSON (--json PATH, default docs/_static/performance.json):
        # the table against the peers (other ARGS go to it: --quick, --only KEYS, --rounds N),
        # requests/s under gunicorn and wrk, the near-cache's invalidation delay and its memory;
        # then, when the JSON is the docs' one, docs/performance.rst from it.
        need_redis_server
        need_wrk
        bootstrap dev
        shift
        json=docs/_static/performance.json
        quick=()
        args=()
        while [ $# -gt 0 ]; do
            case "$1" in
                --json) json=$2; shift 2 ;;
                --json=*) json=${1#--json=}; shift ;;
                --quick) quick=(--quick); args+=("$1"); shift ;;
                *) args+=("$1"); shift ;;
            esac
        done
        "$VENV/bin/python" -m benchmarks --json "$json" ${args[@]+"${args[@]}"}
        "$VENV/bin/python" -m benchmarks.e2e --json "$json" ${quick[@]+"${quick[@]}"}
        "$VENV/bin/python" -m benchmarks.invalidation --json "$json" ${quick[@]+"${quick[@]}"}
        "$VENV/bin/python" -m benchmarks.rss --json "$json" ${quick[@]+"${quick[@]}"}
        if [ "$json" -ef docs/_static/performance.json ]; then
            "$VENV/bin/python" -m benchmarks.report "$json"
        else
            say "results in $json; docs/performance.rst: $VENV/bin/python -m benchmarks.report $json"
        fi
        ;;
    *)
        echo "usage: ./dev.sh example|test|bench|matrix|install [args]" >&2
        exit 2
        ;;
esac

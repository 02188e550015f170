#!/usr/bin/env bash
# The project's two commands, on a fresh machine:
#   ./dev.sh example   install, then run the example app (memory:// unless REDIS_URL is set)
#   ./dev.sh test      install, then lint, type-check, build the docs and run every test
#   ./dev.sh bench     install, then run the benchmarks against the peers
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv

bootstrap() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[$1]"
}

need_redis_server() {
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "redis-server not found; installing it with apt-get" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools
    fi
    redis-server --version
}

case "${1:-}" in
    example)
        bootstrap memory
        exec "$VENV/bin/flask" --app examples/catalog/app.py run "${@:2}"
        ;;
    test)
        need_redis_server
        bootstrap dev
        "$VENV/bin/ruff" check .
        "$VENV/bin/mypy" flask_rediscache
        "$VENV/bin/sphinx-build" -W --keep-going -q -b html docs docs/_build/html
        exec "$VENV/bin/python" -m pytest "${@:2}"
        ;;
    bench)
        need_redis_server
        bootstrap dev
        exec "$VENV/bin/python" -m benchmarks "${@:2}"
        ;;
    *)
        echo "usage: ./dev.sh example|test|bench [args]" >&2
        exit 2
        ;;
esac

#!/bin/sh
# The container's install and start steps, in one script: the Dockerfile runs it, and so does
# CI (tests/scenario/test_container.py: a fresh virtual environment, as a non-root user), so the recipe
# is exercised even where no container engine runs.
#
#   container.sh install SRC VENV   a virtual environment VENV with Conversant from the source tree
#                                   SRC, every dependency pinned by SRC/requirements.lock
#   container.sh start COMMAND...   `conversant COMMAND` in the foreground (web, worker, migrate, ...)
#   container.sh healthcheck        exit 0 when http://127.0.0.1:$HEALTH_PORT/healthz answers 200
#                                   (HEALTH_PORT defaults to PORT: web; the worker's is METRICS_PORT)
set -eu

venv=${CONVERSANT_VENV:-/opt/conversant}

case "${1:-}" in
install)
    src=$2
    venv=$3
    python3 -m venv "$venv"
    "$venv/bin/pip" install --no-cache-dir --quiet --disable-pip-version-check \
        --constraint "$src/requirements.lock" "$src[postgres]"
    "$venv/bin/conversant" --version
    ;;
start)
    shift
    exec "$venv/bin/conversant" "$@"
    ;;
healthcheck)
    exec "$venv/bin/python" -c '
import os, sys, urllib.request
port = os.environ.get("HEALTH_PORT") or os.environ.get("PORT") or "3000"
try:
    sys.exit(0 if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status == 200 else 1)
except Exception as error:
    sys.exit(f"unhealthy: {type(error).__name__}")
'
    ;;
*)
    echo "usage: container.sh install SRC VENV | start COMMAND... | healthcheck" >&2
    exit 2
    ;;
esac

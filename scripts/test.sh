#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine (venv, CPU torch, Chromium), then runs it.
# Extra arguments go to pytest:  bash scripts/test.sh tests/engine -x
source "$(dirname "$0")/_env.sh" "test,bench"
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
fi
exec "$PY" -m pytest "$@"

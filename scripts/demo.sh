#!/usr/bin/env bash
# Installs gradmagic with JupyterLab into .venv and opens demo.ipynb.
source "$(dirname "$0")/_env.sh" "demo"
ROOT_FLAG=""; [ "$(id -u)" = 0 ] && ROOT_FLAG="--allow-root"
exec "$VENV/bin/jupyter" lab $ROOT_FLAG demo.ipynb "$@"

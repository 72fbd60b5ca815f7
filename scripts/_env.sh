# Shared by scripts/test.sh and scripts/demo.sh: make .venv with CPU torch and gradmagic installed.
# Usage: source scripts/_env.sh EXTRAS   (e.g. "test,bench" or "demo")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${GRADMAGIC_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
PY="$VENV/bin/python"
# torch is pinned here, not in pyproject.toml: this pin takes the CPU build; an unpinned
# torch would pull a multi-GB CUDA build. The package itself accepts any torch>=2.4 (pyproject.toml).
"$PY" -m pip install -q --disable-pip-version-check "torch==${GRADMAGIC_TORCH:-2.13.0}"
"$PY" -m pip install -q --disable-pip-version-check -e ".[$1]"

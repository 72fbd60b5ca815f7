#!/usr/bin/env bash
# The lowest-versions check: a second venv, .venv-min, with every runtime dependency pinned to the
# `>=` bound that pyproject.toml declares (scripts/min_constraints.py reads them; no second list),
# then the suite that needs no browser or JupyterLab. Extra arguments go to pytest.
#   bash scripts/compat.sh                 # what CI runs after scripts/test.sh
#   bash scripts/compat.sh tests/engine -x
# torch: for Linux x86_64, PyPI has only CUDA builds of torch (2.4.0 pulls ~3.5 GB of wheels,
# a 5 GB venv, ~3 min here); the one CPU build this machine installs is the 2.13.0 file that
# scripts/_env.sh takes, so CI replaces the torch pin by GRADMAGIC_MIN_TORCH (default 2.13.0).
# Check the declared torch floor by hand, on the oldest Python too, in a venv outside the repo:
#   GRADMAGIC_MIN_TORCH=floor GRADMAGIC_MIN_VENV=/tmp/floor \
#   GRADMAGIC_MIN_PYTHON=~/.pyenv/versions/3.10.13/bin/python3.10 bash scripts/compat.sh
# GRADMAGIC_MIN_PYTHON: the interpreter of a new venv (default python3; the CPU file is for 3.11).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${GRADMAGIC_MIN_VENV:-.venv-min}
if [ ! -x "$VENV/bin/python" ]; then
  "${GRADMAGIC_MIN_PYTHON:-python3}" -m venv "$VENV"
  echo '*' > "$VENV/.gitignore"   # a throwaway venv keeps itself out of git
fi
PY="$VENV/bin/python"
python3 -m doctest scripts/min_constraints.py   # the pin reader's own examples, < 1 s
MIN_TORCH=${GRADMAGIC_MIN_TORCH:-2.13.0}
TORCH_PIN=()
[ "$MIN_TORCH" = floor ] || TORCH_PIN=(--pin "torch==$MIN_TORCH")
python3 scripts/min_constraints.py "${TORCH_PIN[@]}" > "$VENV/constraints.txt"
# The test tools, with their bounds from the "test" extra (nbformat: the CLI's notebooks;
# ipykernel brings jupyter_client, whose message packer test_widget.py measures).
python3 scripts/min_constraints.py --tools test pytest pytest-timeout hypothesis nbformat \
  ipykernel > "$VENV/tools.txt"
echo "compat: pins from pyproject.toml: $(tr '\n' ' ' < "$VENV/constraints.txt")"
# --no-compile: this venv is for one test run, and byte-compiling all of torch costs ~20 s;
# the modules the tests import are compiled as they are imported.
pip_install() {  # quiet, less the machine's warnings about absent local index folders
  "$PY" -m pip install -q --disable-pip-version-check --no-compile "$@" 2>&1 |
    { grep -v 'is ignored: it is neither a file nor a directory' || true; }
}
# torch first and alone, so that pip takes the pinned build and never resolves a CUDA one for it.
pip_install "$(grep '^torch==' "$VENV/constraints.txt")"
pip_install -c "$VENV/constraints.txt" -e . -r "$VENV/tools.txt"
"$PY" scripts/min_constraints.py --check "$VENV/constraints.txt"
"$PY" -c "import sys, torch, numpy, IPython, ipywidgets, anywidget; print('compat: Python', \
sys.version.split()[0], '| torch', torch.__version__, '| numpy', numpy.__version__, '| IPython', \
IPython.__version__, '| ipywidgets', ipywidgets.__version__, '| anywidget', anywidget.__version__)"
SUITE=(tests/engine tests/recorder tests/viz
       tests/test_magic.py tests/test_report.py tests/test_cli.py tests/test_docstrings.py)
[ "$#" -gt 0 ] && SUITE=("$@")
exec "$PY" -m pytest -q -p no:cacheprovider -m "not browser" "${SUITE[@]}"

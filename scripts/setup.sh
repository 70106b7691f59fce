#!/usr/bin/env bash
# Set up this checkout on a fresh machine: a virtual environment in .venv with the serving,
# training (torch 2.13.0, a CPU build here) and development dependencies, installed editable.
# Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned: an unpinned or ranged torch pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0" -e ".[train,dev]"
echo "ready: .venv/bin/stn --help"

#!/usr/bin/env bash
# The test command (README, CI): set up both environments and run the whole suite.
#  1. the runtime's tests in a venv that has no torch, so "torch-free" is checked, not promised;
#  2. everything (train, export, runtime again) in the development venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

"$PY" -m venv .venv-runtime
.venv-runtime/bin/pip install -q --disable-pip-version-check -e './runtime[serve]' pytest
.venv-runtime/bin/python -c 'import importlib.util as u, sys; sys.exit(u.find_spec("torch") is not None)' \
  || { echo "torch is importable in the runtime venv: the runtime must not depend on it" >&2; exit 1; }
if [ -d tests/runtime ] && ls tests/runtime/test_*.py >/dev/null 2>&1; then
  .venv-runtime/bin/python -m pytest -q tests/runtime
fi

"$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e './runtime[serve]' -e './train[tensorboard]' -e ./export pytest \
  scikit-learn  # its 8x8 digits: the non-CIFAR dataset of tests/train/test_own_images.py
.venv/bin/python -m pytest -q "$@"  # markers slow, install, ray, oldort are off by default (pyproject.toml)

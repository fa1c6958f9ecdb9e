#!/usr/bin/env bash
# Create .venv and install torch-gprof with everything its tests need. Idempotent and quick on re-runs.
# torch is pinned to 2.13.0: pip then takes the local CPU build instead of downloading a CUDA one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
stamp=".venv/.gprof-installed-$(cat pyproject.toml scripts/constraints.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    if ! .venv/bin/python -c "import torch" 2>/dev/null; then
        echo "[setup] installing torch==2.13.0 (CPU build)"
        .venv/bin/pip install -q "torch==2.13.0"
    fi
    echo "[setup] installing torch-gprof (editable) with the test and training-stack extras"
    .venv/bin/pip install -q -c scripts/constraints.txt -e ".[test,stacks]"
    rm -f .venv/.gprof-installed-*
    touch "$stamp"
fi

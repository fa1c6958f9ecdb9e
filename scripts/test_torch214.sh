#!/usr/bin/env bash
# The whole test suite on torch 2.14, the newest torch installable here (README: tested torch range).
# Its own virtualenv (build/venv-torch214, or $GPROF_VENV214), installed without scripts/constraints.txt,
# which pins the main .venv to 2.13.0. PyPI's 2.14 wheel is the CUDA build (~6 GB with its nvidia-*
# packages); it runs on the CPU like the 2.13 CPU build. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GPROF_VENV214:-build/venv-torch214}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[torch 2.14] creating $VENV with $($PY --version)"
    "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import sys, torch; sys.exit(not torch.__version__.startswith('2.14.'))" 2>/dev/null; then
    echo "[torch 2.14] installing torch==2.14.*"
    "$VENV/bin/pip" install -q "torch==2.14.*"
fi
stamp="$VENV/.gprof-installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "[torch 2.14] installing torch-gprof (editable) with the test and training-stack extras"
    "$VENV/bin/pip" install -q -e ".[test,stacks]"
    rm -f "$VENV"/.gprof-installed-*
    touch "$stamp"
fi
bash scripts/system-deps.sh
"$VENV/bin/python" -c "import torch; print('[torch 2.14] torch', torch.__version__)"
export PYTHONUNBUFFERED=1
exec "$VENV/bin/python" -m pytest -q -ra tests "$@"

#!/usr/bin/env bash
# Set up (virtualenv, torch 2.13.0 CPU, chromium, tmux), then ruff, mypy, the import contracts and the
# whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system-deps.sh
export PYTHONUNBUFFERED=1
echo "[test] ruff, mypy, import contracts"
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
exec .venv/bin/python -m pytest -q -ra --durations=15 tests "$@"

#!/usr/bin/env bash
# Set up (virtualenv, torch 2.13.0 CPU, chromium, tmux) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system-deps.sh
export PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest -q -ra --durations=15 tests "$@"

#!/usr/bin/env bash
# Set up, profile a few training steps of the built-in small transformer, write runs/transformer and
# print its report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/transformer.py --logdir runs "$@"

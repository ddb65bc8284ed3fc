#!/usr/bin/env bash
# Set up (if needed), lint, and run the default test suite (slow tests: add -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] ruff"
.venv/bin/ruff check neurolang tests benchmarks examples
echo "[test] pytest"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest -q "$@"

#!/usr/bin/env bash
# Set up (if needed) and run the main job: list the backends, then build one depth-2, T-4
# Spikformer, give every backend the same weights and tokens, and compare every spike.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/neurolang backends
.venv/bin/neurolang parity --backends torch,snntorch,norse --dtype float64 --seed 0 \
    --json outputs/parity.json "$@"

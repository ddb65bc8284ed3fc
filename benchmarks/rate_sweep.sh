#!/usr/bin/env bash
# Accuracy against energy: the spike-driven SST-2 student's stage 2 trained with several
# firing-rate weights ([distill] w_rate) from one stage-1 model, each counted on all dev
# sentences and put on one accuracy-energy plane beside the LIF Spikformer student.
#   bash benchmarks/rate_sweep.sh RUN LIF_RUN [OUT] [WEIGHTS]
# RUN: a finished `neurolang train --config examples/sst2_spike_driven.toml` run folder (its
# teacher and stage-1 model are reused); LIF_RUN: a finished examples/sst2.toml run (its
# energy/ folder, as scripts/main.sh writes it, is the LIF point). OUT (default
# runs/rate_sweep) gets one stage-2 folder per weight, their energy/ folders and the chart.
# WEIGHTS default "0 1 4"; every stage 2 runs 1 epoch (set EPOCHS to change), one after
# another on 2 threads (JOBS=3: side by side, one thread each; on 2 cores that is far slower:
# a stage 2 beside another training job ran 10x slower than alone). RUN's own student is a point too when RUN has
# an energy/ folder (`neurolang energy RUN/distill/best ... --output RUN/energy`).
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?a spike-driven run folder}; lif=${2:?a LIF run folder}
out=${3:-runs/rate_sweep}; weights=${4:-"0 1 4"}; epochs=${EPOCHS:-1}; jobs=${JOBS:-1}
threads=$([ "$jobs" -eq 1 ] && echo 2 || echo 1)
nl=.venv/bin/neurolang
# the run's fine-tuned teacher: as its results say, as its config names it, or its own
teacher=$(python3 -c "
import json, os, sys
run = sys.argv[1]
if os.path.isfile(f'{run}/results.json'):
    print(json.load(open(f'{run}/results.json'))['teacher']['path'])
else:
    print(json.load(open(f'{run}/train_config.json'))['teacher']['finetuned'])" "$run")
[ -d "$teacher" ] || teacher="$run/teacher"
[ -d "$run/predistill/model" ] || { echo "error: $run has no stage-1 model yet" >&2; exit 2; }
mkdir -p "$out"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=$threads
running=0
for w in $weights; do
    "$nl" distill --backend snntorch --config examples/sst2_spike_driven.toml \
        --teacher "$teacher" --stage1 "$run/predistill/model" --output "$out/rate$w" --resume \
        --set distill.epochs="$epochs" --set distill.w_rate="$w" --set run.threads="$threads" \
        > "$out/rate$w.log" 2>&1 &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait
labels=()
reports=()
for w in $weights; do
    "$nl" energy "$out/rate$w/best" --simulators torch --dataset sst2 --split validation \
        --teacher "$teacher" --no-neurobench --output "$out/rate$w/energy" > "$out/energy$w.log"
    reports+=("$out/rate$w/energy"); labels+=(--label "spike-driven w_rate=$w")
done
if [ -d "$run/energy" ]; then
    own=$(python3 -c "import json,sys; c=json.load(open(sys.argv[1]))['distill']; \
e = c['epochs']; \
print(f\"w_rate={c['w_rate']:g}, {e:g} epoch{'' if e == 1 else 's'}\")" "$run/train_config.json")
    reports+=("$run/energy"); labels+=(--label "spike-driven $own")
fi
"$nl" energy-chart "${reports[@]}" "$lif/energy" "${labels[@]}" --label "LIF Spikformer" \
    --output "$out/chart"

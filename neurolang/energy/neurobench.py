"""NeuroBench's synaptic operations of a torch-side run, beside neurolang's own counts.

NeuroBench (``neurobench.metrics.workload.SynapticOperations``) is the community's standard
count: it hooks every ``nn.Linear`` (and convolution), turns each input into ``x != 0``,
and runs a copy of the layer with unit weights on it, so a layer's operations are its
nonzero inputs times their fan-out. A layer whose every input is in ``{-1, 0, 1}`` counts
them as accumulates (``Effective_ACs``), any other as multiply-accumulates
(``Effective_MACs``); ``Dense`` counts every input, zero or not. It counts nothing else (no
attention products, norms, additions or neuron updates) and knows no padding.

neurolang's primitives are not ``nn.Linear``, so each of the model's Linears gets an
``nn.Linear`` twin sharing its weights, and a hook hands the twin what the Linear reads;
NeuroBench's own hooks and metric then count the twins. Samples run one at a time at their
own length, so that no padded token is counted (neurolang counts real tokens only).
``docs/energy.md`` compares the two definitions term by term.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from neurolang.energy.records import CountingError
from neurolang.primitives import Linear, RepresentationTap


def _twins(model: nn.Module) -> tuple[list[str], nn.ModuleList]:
    names, twins = [], nn.ModuleList()
    inside_taps = {f"{n}." for n, m in model.named_modules() if isinstance(m, RepresentationTap)}
    for name, module in model.named_modules():
        if isinstance(module, Linear) and not any(name.startswith(t) for t in inside_taps):
            twin = nn.Linear(module.in_features, module.out_features,
                             bias=module.bias is not None, device="meta")
            twin.weight = module.weight
            if module.bias is not None:
                twin.bias = module.bias
            names.append(name)
            twins.append(twin)
    return names, twins


@torch.no_grad()
def neurobench_synops(model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]]
                      ) -> dict[str, Any]:
    """NeuroBench's ``SynapticOperations`` of ``model`` over ``batches`` (each sample run alone
    at its real length): ``Effective_MACs``, ``Effective_ACs``, ``Dense`` per sample, and the
    same per Linear (``layers``: name -> per-sample ``effective``, ``dense`` and whether
    NeuroBench saw its input as spikes)."""
    try:
        from neurobench.metrics.utils.layers import single_layer_MACs
        from neurobench.metrics.workload import SynapticOperations
        from neurobench.models import TorchModel
    except ImportError as err:
        raise CountingError(f"NeuroBench's count needs the neurobench package ({err}); "
                            "bash scripts/setup.sh installs it") from None
    names, twins = _twins(model)
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(
        lambda module, args, out, twin=twin: twin(args[0])) for name, twin in zip(
            names, twins, strict=True)]
    bench = TorchModel(twins)
    bench.register_hooks()
    metric = SynapticOperations()
    layers = {name: {"effective": 0, "dense": 0, "spiking": True} for name in names}
    samples = 0
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True):
                length = int(mask.sum())
                ids, mask = ids[None, :length], mask[None, :length]
                preds = model(ids, mask)["logits"]
                for name, hook in zip(names, bench.connection_hooks, strict=True):
                    for inputs in hook.inputs:
                        x = inputs[0] if len(inputs) == 1 else inputs
                        ops, spiking = single_layer_MACs(x, hook.layer)
                        dense, _ = single_layer_MACs(x, hook.layer, total=True)
                        layers[name]["effective"] += ops
                        layers[name]["dense"] += dense
                        layers[name]["spiking"] &= bool(spiking)
                metric(bench, preds, (ids,))
                bench.reset_hooks()
                samples += 1
    finally:
        for handle in handles:
            handle.remove()
        bench.cleanup_hooks()
        model.train(was_training)
    totals = metric.compute()
    per_sample = max(samples, 1)
    return {
        "samples": samples,
        **{key: float(value) for key, value in totals.items()},
        "layers": {name: {"effective": v["effective"] / per_sample,
                          "dense": v["dense"] / per_sample, "spiking": v["spiking"]}
                   for name, v in layers.items()},
    }

"""The spike-driven family (block="spike_driven"): every weight multiplication reads spikes,
on every backend, in checkpoints and in the energy table."""

import pytest
import torch
from test_spikformer import realistic_model

from neurolang import build_model, compile, preset
from neurolang.checkpoint import from_pretrained, save_pretrained
from neurolang.config import ConfigError
from neurolang.energy.hooks import count_batches
from neurolang.models import SpikeDriven
from neurolang.parity import RATE_BAND, run_parity
from neurolang.primitives import (
    CoincidenceSum,
    Linear,
    SpikeGate,
    SpikingAttentionProduct,
)

ELASTIC = {"neuron.kind": "elastic_bispike", "attention_neuron.kind": "elastic_bispike"}
# the tiny preset's 16 tokens make small attention sums: lower thresholds keep the SSA
# attention neurons and the SDSA gates firing at realistic rates
SSA = {"attention_neuron.v_threshold": 0.25}
SDSA = {"attention": "sdsa", "attention_neuron.v_threshold": 0.15}


def _config(attention="ssa", neuron="lif", **overrides):
    options = {"block": "spike_driven", "encoding": "repeat", "norm": "batch",
               **(SDSA if attention == "sdsa" else SSA), **(ELASTIC if neuron != "lif" else {})}
    return preset("tiny", **{**options, **overrides})


CASES = [("ssa", "lif"), ("sdsa", "lif"), ("ssa", "elastic"), ("sdsa", "elastic")]


def test_presets_and_config():
    for name in ("spike-driven-small", "spike-driven-base"):
        config = preset(name)
        assert config.block == "spike_driven" and config.norm == "batch"
        assert isinstance(build_model(config.replace(depth=1, vocab_size=64)), SpikeDriven)
    assert preset("spike-driven-base").hidden_size == 768
    with pytest.raises(ConfigError, match="attention 'sdsa' is an attention of block"):
        preset("tiny", attention="sdsa")
    with pytest.raises(ConfigError, match="attention must be one of"):
        preset("tiny", block="spike_driven", attention="softmax")
    with pytest.raises(ValueError, match="block='spike_driven'"):
        SpikeDriven(preset("tiny"))


@pytest.mark.parametrize("attention, neuron", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_backends_match_the_reference_step_functions(attention, neuron, seed):
    report = run_parity(_config(attention, neuron), ["torch", "snntorch", "norse"], seed=seed,
                        dtype=torch.float64, batch_size=4, check_float32=False)
    assert report.total_mismatches == 0
    # an elastic gate fires at |u| >= alpha/2 with alpha from the first batch: no threshold
    # steers it, and on these 16 tokens it fires a little more often than the band allows
    band = {p.name: (0.05, 0.6) if "gate" in p.name and neuron != "lif" else RATE_BAND
            for p in report.populations}
    assert all(band[p.name][0] <= p.rate <= band[p.name][1] for p in report.populations), \
        {p.name: p.rate for p in report.populations}
    assert max(report.logits_max_diff.values()) <= 1e-10
    assert max(report.grad_max_diff.values()) <= 1e-10


def _is_spikes(x: torch.Tensor, neuron: str) -> bool:
    if neuron == "lif":
        return bool(((x == 0) | (x == 1)).all())
    # ternary: alpha[t] * {-1, 0, 1}, one amplitude per step (rows are step-major)
    steps = x.reshape(4, -1)
    amplitude = steps.abs().amax(1, keepdim=True)
    return bool(((steps == 0) | (steps.abs() == amplitude)).all())


@pytest.mark.parametrize("attention, neuron", CASES)
def test_every_multiplication_reads_spikes_and_the_blocks_cost_no_mac(attention, neuron):
    model, ids, mask = realistic_model(_config(attention, neuron), seed=0)
    checked: dict[str, int] = {}

    def check(name):
        def hook(module, args):
            factors = args[:1] if isinstance(module, Linear) else args[:-1]
            if isinstance(module, SpikeGate):
                factors = args
            for x in factors:
                assert _is_spikes(x, neuron), f"{name} reads a non-spike input"
                assert (x != 0).any(), f"{name} reads silence"
            checked[name] = len(factors)
        return hook

    kinds = (Linear, SpikingAttentionProduct, CoincidenceSum, SpikeGate)
    handles = [m.register_forward_pre_hook(check(n)) for n, m in model.named_modules()
               if isinstance(m, kinds) and not n.startswith("taps")]
    with torch.no_grad():
        model(ids, mask)
    for h in handles:
        h.remove()
    linears = [n for n, m in model.named_modules() if isinstance(m, Linear)
               and not n.startswith("taps")]
    assert set(linears) <= set(checked) and len(linears) == 6 * model.config.depth + 1

    counts, _ = count_batches(model, [{"input_ids": ids, "attention_mask": mask}])
    inside = {n: layer for n, layer in counts.layers.items() if n.startswith(("blocks", "add"))}
    assert inside and all(layer.macs == 0 for layer in inside.values()), \
        {n: layer.macs for n, layer in inside.items() if layer.macs}
    assert all(counts.layers[n].role == "synaptic" for n in linears)
    assert all(layer.detail.get("folded") for layer in counts.layers.values()
               if layer.role == "norm")  # every BatchNorm folds into its Linear (or table)
    # the head's classifier reads spikes; its pooling divides once per output
    assert counts.total("macs") == sum(counts.layers[n].macs for n in
                                       ("head.token_mean", "head.time_mean"))


def test_layer_norms_are_counted():
    model, ids, mask = realistic_model(_config(norm="layer"), seed=0)
    counts, _ = count_batches(model, [{"input_ids": ids, "attention_mask": mask}])
    norms = [layer for layer in counts.layers.values() if layer.role == "norm"]
    assert norms and all(layer.macs > 0 and not layer.detail.get("folded") for layer in norms)


@pytest.mark.parametrize("attention, neuron", CASES[:2])
def test_checkpoint_round_trip_on_every_backend(tmp_path, attention, neuron):
    model, ids, mask = realistic_model(_config(attention, neuron), seed=1)
    save_pretrained(model, tmp_path / "model")
    expected = model(ids, mask)["logits"]
    for backend in ("torch", "snntorch", "norse"):
        loaded = from_pretrained(tmp_path / "model", backend).double().eval()
        assert isinstance(loaded, SpikeDriven) and loaded.config == model.config
        assert torch.equal(loaded(ids, mask)["logits"], expected), backend


def test_training_step_moves_every_parameter():
    torch.manual_seed(0)
    model = compile(build_model(_config("sdsa")), "torch")
    ids = torch.randint(1, 512, (4, 12))
    mask = torch.ones_like(ids)
    out = model(ids, mask, output_representations=True)
    loss = out["logits"].logsumexp(-1).mean() + sum(r.square().mean()
                                                   for r in out["representations"])
    loss.backward()
    silent = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not silent, silent

"""A new model family needs no edit in the NIR export, the Lava plan or realistic_init.

The family here lives in this file only: a membrane-shortcut block (the Spike-driven
Transformer's residual in a minimal form) whose block output is a sum with the block input as
one operand, with modules nested at several depths and a Linear named ``output`` directly
under the block (the name of a nested NIR graph's ``Output`` node). It is registered for the
test only (``FAMILIES`` and ``config.BLOCKS`` patched).
"""

import nir
import numpy as np
import pytest
import torch
from torch import nn

from neurolang import config as config_module
from neurolang import models
from neurolang.config import preset
from neurolang.export.nir_export import export_nir, import_nir, to_nir
from neurolang.lava.plan import plan_network
from neurolang.models.base import SpikingClassifier
from neurolang.nir.errors import NIRError
from neurolang.nir.flatten import flatten
from neurolang.nir.io import read_nir
from neurolang.parity import probe_batch, realistic_init, record_spikes
from neurolang.primitives import Linear, Norm, SpikingAttentionProduct, SpikingNeuron

BAND = (0.10, 0.35)


class Mixer(nn.Module):
    """``SN_att(SSA(SN(Norm(W_q s)), ...))``: nested one level below the block."""

    def __init__(self, config):
        super().__init__()
        d, t = config.hidden_size, config.time_steps
        self.query, self.key, self.value = (Linear(d, d) for _ in range(3))
        self.norms = nn.ModuleList(Norm(config.norm, d, config.norm_eps) for _ in range(3))
        self.neurons = nn.ModuleList(SpikingNeuron(config.neuron, t) for _ in range(3))
        self.product = SpikingAttentionProduct(config.num_heads, config.attention_scale,
                                               config.padding_mask)
        self.attention_neuron = SpikingNeuron(config.attention_neuron, t)

    def forward(self, s, mask):
        q, k, v = (n(norm(lin(s), mask)) for lin, norm, n in
                   zip((self.query, self.key, self.value), self.norms, self.neurons,
                       strict=True))
        return self.attention_neuron(self.product(q, k, v, mask))


class MembraneBlock(nn.Module):
    """``u = u + W_o Mix(SN(u)); u = u + W_2 SN(W_1 SN(u))``."""

    def __init__(self, config):
        super().__init__()
        d, t = config.hidden_size, config.time_steps
        self.stream_neuron = SpikingNeuron(config.neuron, t)
        self.mix = Mixer(config)
        self.output = Linear(d, d)  # the nested graph's "output" is taken
        self.mlp_neuron = SpikingNeuron(config.neuron, t)
        self.fc1 = Linear(d, config.mlp_hidden_size)
        self.hidden_neuron = SpikingNeuron(config.neuron, t)
        self.fc2 = Linear(config.mlp_hidden_size, d)

    def forward(self, u, mask):
        u = u + self.output(self.mix(self.stream_neuron(u), mask))
        return u + self.fc2(self.hidden_neuron(self.fc1(self.mlp_neuron(u))))


class MembraneShortcut(SpikingClassifier):
    def __init__(self, config):
        super().__init__(config)
        self.add_encoding()
        self.blocks = nn.ModuleList(MembraneBlock(config) for _ in range(config.depth))
        self.finish()


@pytest.fixture
def membrane(monkeypatch):
    """The family registered as ``membrane_test`` (for this test only)."""
    monkeypatch.setitem(models.FAMILIES, "membrane_test", MembraneShortcut)
    monkeypatch.setattr(config_module, "BLOCKS", (*config_module.BLOCKS, "membrane_test"))
    config = preset("tiny", block="membrane_test", encoding="repeat")
    torch.manual_seed(0)
    model = models.build_model(config).double()
    with torch.no_grad():  # embeddings large enough that the stream neurons fire
        model.embedding.weight.mul_(50)
        model.position.weight.mul_(50)
    ids, mask, _ = probe_batch(config, 4, 0)
    rates = realistic_init(model, ids, mask, 0)
    return model.eval(), ids, mask, rates


def test_rate_controls_are_found_in_the_graph_and_steered_into_the_band(membrane):
    model, _, _, rates = membrane
    controls = dict(model.rate_controls())
    mix = "blocks.0.mix"
    assert controls[f"{mix}.neurons.0"] is model.blocks[0].mix.norms[0]  # Norm-fed
    assert controls["blocks.0.hidden_neuron"] is model.blocks[0].fc1  # Linear-fed
    # fed by the stream (the encoder, a residual sum) or the product: not steered
    for free in ("stream_neuron", "mlp_neuron", "mix.attention_neuron"):
        assert f"blocks.0.{free}" not in controls
    assert len(controls) == 8 and len(rates) == 14
    for name in controls:
        assert BAND[0] <= rates[name] <= BAND[1], (name, rates[name])
    assert rates["blocks.0.stream_neuron"] > 0.02 and rates["blocks.1.stream_neuron"] > 0.02


def test_nir_round_trip_of_a_membrane_shortcut_family(membrane, tmp_path):
    model, ids, mask, _ = membrane
    path = export_nir(model, tmp_path / "m.nir")
    graph = read_nir(path)
    block = graph.nodes["blocks.0"]
    assert isinstance(block, nir.NIRGraph)
    assert isinstance(block.nodes["output"], nir.Affine)  # the module keeps its name
    boundary = {k: type(n).__name__ for k, n in block.nodes.items()
                if isinstance(n, (nir.Input, nir.Output))}
    assert boundary == {"input": "Input", "output_1": "Output"}
    assert isinstance(block.nodes["output.residual"], nir.Scale)
    assert isinstance(block.nodes["fc2.residual"], nir.Scale)
    flat = flatten(graph)
    assert "blocks.0.mix.neurons.2" in flat.nodes and "blocks.0.output" in flat.nodes
    # the block input feeds the stream neuron and the first sum (the membrane shortcut)
    into_sum = flat.sources("blocks.0.output.residual")
    assert sorted(into_sum) == ["blocks.0.output", "position"]
    back = import_nir(path)
    with torch.no_grad(), record_spikes(model) as ref:
        logits = model(ids, mask)["logits"]
    with torch.no_grad(), record_spikes(back) as got:
        logits_back = back(ids, mask)["logits"]
    assert torch.equal(logits, logits_back)
    assert set(ref) == set(got)
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_lava_plan_of_a_membrane_shortcut_family(membrane):
    model, *_ = membrane
    graph = to_nir(model)
    plan = plan_network(graph)
    # the neurons reading the stream get no input gain from a dense layer: ReferenceLIF
    for name in ("blocks.0.stream_neuron", "blocks.0.mlp_neuron", "blocks.1.stream_neuron"):
        assert plan.steps[name].kind == "ref_lif"
    assert plan.steps["blocks.0.hidden_neuron"].kind == "lif"
    assert len(plan.populations) == 14
    # in fixed point they run as Lava's LIF, fed by the stream's current port
    fixed = plan_network(graph, fixed_point=True)
    for name in ("blocks.0.stream_neuron", "blocks.0.mlp_neuron", "blocks.1.stream_neuron"):
        assert fixed.steps[name].kind == "lif" and fixed.steps[name].ports == {0: "c_out"}


def test_lava_float_matches_torch_for_a_membrane_shortcut_family(membrane, tmp_path):
    from neurolang.lava.driver import compare, simulate_lava, torch_reference
    from neurolang.lava.env import is_ready, venv_path

    if not is_ready(venv_path()):
        pytest.skip("no Lava environment (neurolang setup-lava); tests/test_lava.py makes one")
    model, ids, mask, _ = membrane
    path = export_nir(model, tmp_path / "m.nir")
    ids_np, lengths = ids.numpy(), mask.sum(1).numpy()
    lava = simulate_lava(path, ids_np, lengths, progress=False)
    report = compare(torch_reference(model, ids_np, lengths), lava)
    assert len(report["layers"]) == 14
    assert report["total_count_mismatches"] == 0, report["layers"]
    assert report["prediction_agreement"] == 1.0
    assert report["logits_max_abs_diff"] < 1e-9


def test_flatten_refuses_edges_out_of_a_nested_output():
    inner = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])),
                                "a": nir.Scale(np.ones(2)),
                                "output": nir.Output(np.array([2]))},
                         edges=[("input", "a"), ("a", "output"), ("output", "a")],
                         type_check=False)
    outer = nir.NIRGraph(nodes={"x": nir.Input(np.array([2])), "b": inner,
                                "y": nir.Output(np.array([2]))},
                         edges=[("x", "b"), ("b", "y")], type_check=False)
    with pytest.raises(NIRError, match="leaves its Output"):
        flatten(outer)
    bad = nir.NIRGraph(nodes={"x": nir.Input(np.array([2])), "y": nir.Output(np.array([2]))},
                       edges=[("x", "z")], type_check=False)
    with pytest.raises(NIRError, match="no node 'z'"):
        flatten(bad)


def test_lava_parity_lives_on_the_torch_side():
    import neurolang.lava.driver as driver
    from neurolang.parity_lava import lava_parity

    assert callable(lava_parity)
    assert not hasattr(driver, "lava_parity")

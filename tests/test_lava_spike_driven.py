"""The spike-driven family (``block = "spike_driven"``) through NIR and Lava: SSA, and SDSA
with its coincidence sum and spike gate as extension nodes; LIF and elastic bi-spiking
neurons; the NIR round trip, Lava floating point spike for spike against torch, the energy
counts of Lava's run, and fixed point (stream neurons, head and embedding norm included).

Realistic models (``tests/test_spikformer.realistic_model``: every population fires 10-35%)
of the configs of ``tests/test_spike_driven.py``. Each model is built once (``_model``) and
each case's floating-point Lava run is shared by its tests (``float_runs``), so the file
stays within about a minute on one core; the 512-sample fixed-point check is marked slow.
"""

from __future__ import annotations

import copy
import json

import nir
import numpy as np
import pytest
import torch
from test_spikformer import realistic_model

from neurolang.config import preset
from neurolang.energy.from_spikes import counts_from_spikes
from neurolang.energy.hooks import count_batches
from neurolang.energy.records import first_difference
from neurolang.export import export_nir, import_nir, read_nir, to_nir
from neurolang.lava.driver import compare, simulate_lava, torch_reference
from neurolang.lava.env import LavaEnvError, find_python310, is_ready, setup_lava, venv_path
from neurolang.lava.plan import plan_network
from neurolang.lava.plan_types import LavaModelError
from neurolang.nir import NIRError, flatten, write_nir
from neurolang.nir.nodes import CoincidenceSum, SpikeGate
from neurolang.parity import probe_batch, record_spikes

ELASTIC = {"neuron.kind": "elastic_bispike", "attention_neuron.kind": "elastic_bispike"}
SSA = {"attention_neuron.v_threshold": 0.25}
SDSA = {"attention": "sdsa", "attention_neuron.v_threshold": 0.15}
CASES = [("ssa", "lif"), ("sdsa", "lif"), ("ssa", "elastic"), ("sdsa", "elastic")]
FLOAT_SAMPLES, FIXED_SAMPLES = 8, 128


def _config(attention="ssa", neuron="lif", **overrides):
    options = {"block": "spike_driven", "encoding": "repeat", "norm": "batch",
               **(SDSA if attention == "sdsa" else SSA), **(ELASTIC if neuron != "lif" else {})}
    return preset("tiny", **{**options, **overrides})


_MODELS: dict[tuple, tuple] = {}


def _model(attention="ssa", neuron="lif", norm="batch"):
    """(model, its NIR graph) of a case, built once per test session."""
    key = (attention, neuron, norm)
    if key not in _MODELS:
        model, _, _ = realistic_model(_config(attention, neuron, norm=norm), seed=0)
        _MODELS[key] = model, to_nir(model)
    return _MODELS[key]


def _samples(config, n, seed=123):
    ids, mask, _ = probe_batch(config, n, seed)
    return ids, mask


@pytest.fixture(scope="module")
def lava_env():
    if not is_ready(venv_path()):
        try:
            find_python310()
        except LavaEnvError as err:
            pytest.skip(str(err))
        setup_lava(log=lambda _m: None)
    return venv_path()


def _populations(attention):
    per_block = ["attention.stream_neuron", "attention.query.neuron", "attention.key.neuron",
                 "attention.value.neuron", "mlp.stream_neuron", "mlp.fc1.neuron"]
    per_block += (["attention.gate_neuron", "attention.gate"] if attention == "sdsa"
                  else ["attention.attention_neuron"])
    return {f"blocks.{i}.{p}" for i in range(2) for p in per_block} | {"head.neuron"}


# --------------------------------------------------------------------------------------------
# NIR


def test_sdsa_is_written_with_coincidence_sum_and_spike_gate_nodes(tmp_path):
    model, graph = _model("sdsa")
    block = graph.nodes["blocks.0"]
    coincidence, gate = block.nodes["attention.coincidence"], block.nodes["attention.gate"]
    assert isinstance(coincidence, CoincidenceSum) and isinstance(gate, SpikeGate)
    assert coincidence.operand_names == ["attention.key.neuron", "attention.value.neuron"]
    assert gate.operand_names == ["attention.query.neuron", "attention.gate_neuron"]
    assert float(coincidence.scale[0]) == model.config.attention_scale
    assert int(coincidence.masked[0]) == 1
    assert isinstance(block.nodes["attention.gate_neuron"], nir.LIF)  # a standard LIF, one row
    extensions = json.loads(graph.metadata["neurolang.extensions"])
    assert {"neurolang.CoincidenceSum", "neurolang.SpikeGate"} <= set(extensions)
    # edges into the operand nodes are their operands (checked against the operand lists)
    flat = flatten(graph)
    assert flat.operands("blocks.1.attention.gate") == ["blocks.1.attention.query.neuron",
                                                       "blocks.1.attention.gate_neuron"]
    path = export_nir(model, tmp_path / "sdsa.nir")
    back = read_nir(path).nodes["blocks.0"].nodes["attention.coincidence"]
    assert back.operand_names == coincidence.operand_names and back.scale[0] == 0.25
    with pytest.raises(AssertionError):  # a reader that does not know the extensions fails
        nir.read(path)
    with pytest.raises(NIRError, match="CoincidenceSum.*SpikeGate"):
        to_nir(model, strict=True)
    with pytest.raises(NIRError, match="operands must name 2 distinct nodes"):
        SpikeGate(json.dumps(["a", "a"]), np.array([4]))
    with pytest.raises(NIRError, match="operands must name 2 distinct nodes"):
        CoincidenceSum(np.array([1.0]), np.array([1]), json.dumps(["k"]), np.array([4]))


@pytest.mark.parametrize("attention, neuron", CASES)
def test_nir_round_trip_gives_the_same_spikes_and_logits(tmp_path, attention, neuron):
    model, _ = _model(attention, neuron)
    ids, mask = _samples(model.config, 4, seed=0)
    back = import_nir(export_nir(model, tmp_path / "m.nir"))
    with torch.no_grad(), record_spikes(model) as ref:
        logits = model(ids, mask)["logits"]
    with torch.no_grad(), record_spikes(back) as got:
        logits_back = back(ids, mask)["logits"]
    assert torch.equal(logits, logits_back)
    assert set(ref) == set(got) and all(torch.equal(ref[k], got[k]) for k in ref)


def test_import_checks_the_coincidence_sum_against_the_configuration(tmp_path):
    model, _ = _model("sdsa")
    graph = to_nir(model)
    graph.nodes["blocks.0"].nodes["attention.coincidence"].scale = np.array([0.5])
    path = write_nir(graph, tmp_path / "bad.nir")
    with pytest.raises(NIRError, match="coincidence-sum parameters"):
        import_nir(path)


# --------------------------------------------------------------------------------------------
# The plan


def test_plan_floating_point_and_fixed_point():
    _, graph = _model("sdsa")
    plan = plan_network(graph)
    steps = plan.steps
    # the embedding norm runs in the encoder; the stream neurons as ReferenceLIF (they read
    # a residual sum or the encoder, no dense layer applies their input gain)
    assert steps["embedding_norm"].kind == "encoder" and steps["embedding_norm"].params["norm"][0] \
        == "affine"
    assert steps["blocks.0.attention.stream_neuron"].kind == "ref_lif"
    assert steps["blocks.0.attention.coincidence"].kind == "coincidence"
    assert steps["blocks.0.attention.gate_neuron"].kind == "lif"
    assert steps["blocks.0.attention.gate_neuron"].params["rows"] == 1
    assert steps["blocks.0.attention.gate"].kind == "gate"
    assert set(plan.populations) == _populations("sdsa")
    assert plan.populations["blocks.0.attention.gate"] == ("blocks.0.attention.output.linear", 0)

    fixed = plan_network(graph, fixed_point=True)
    lifs = {name for name, s in fixed.steps.items() if s.kind == "lif"}
    assert lifs == _populations("sdsa") - {"blocks.0.attention.gate", "blocks.1.attention.gate"}
    stream = fixed.steps["blocks.1.mlp.stream_neuron"]
    assert stream.ports == {0: "c_out"} and stream.inputs == ["blocks.1.attention.residual"]
    q = fixed.quantisation
    assert q["blocks.0.attention.stream_neuron"]["x_scale"] == q["stream"]["x_scale"]
    assert q["blocks.0.attention.output.linear"]["a_scale"] == q["stream"]["x_scale"]
    assert q["blocks.0.attention.coincidence"]["a_scale"] * 0.25 * 0.5 >= 1  # exact counts

    _, elastic = _model("sdsa", "elastic")
    with pytest.raises(LavaModelError, match="fixed point is not supported for elastic"):
        plan_network(elastic, fixed_point=True)


# --------------------------------------------------------------------------------------------
# Lava


@pytest.fixture(scope="module")
def float_runs(lava_env, tmp_path_factory):
    """Each case's model, samples, and Lava floating-point run (computed on first use)."""
    runs = {}

    def run(attention, neuron):
        if (attention, neuron) not in runs:
            model, _ = _model(attention, neuron)
            ids, mask = _samples(model.config, FLOAT_SAMPLES)
            path = export_nir(model, tmp_path_factory.mktemp("nir") / "m.nir")
            lengths = mask.sum(1).numpy()
            lava = simulate_lava(path, ids.numpy(), lengths, progress=False)
            runs[attention, neuron] = model, path, ids, mask, lava
        return runs[attention, neuron]

    return run


@pytest.mark.parametrize("attention, neuron", CASES)
def test_lava_float_matches_torch_spike_for_spike(float_runs, attention, neuron):
    model, path, ids, mask, lava = float_runs(attention, neuron)
    ids_np, lengths = ids.numpy(), mask.sum(1).numpy()
    assert lengths.min() < lengths.max()
    folded = copy.deepcopy(model)
    folded.fold_batch_norms()  # the inference form the energy command's torch runs use
    for reference in (torch_reference(model, ids_np, lengths),
                      torch_reference(folded, ids_np, lengths),
                      torch_reference(import_nir(path), ids_np, lengths)):
        report = compare(reference, lava)
        assert {row["population"] for row in report["layers"]} == _populations(attention)
        for row in report["layers"]:
            assert row["count_mismatches"] == 0, row
            assert row[reference.simulator] > 100, row  # every population is active
        for name, counts in reference.spike_counts.items():  # per sample and step
            np.testing.assert_array_equal(counts, lava.spike_counts[name], err_msg=name)
        assert report["prediction_agreement"] == 1.0
        assert report["logits_max_abs_diff"] < 1e-9


@pytest.mark.parametrize("attention, neuron", CASES)
def test_energy_counts_of_the_lava_run_equal_the_torch_run(float_runs, attention, neuron):
    model, _, ids, mask, lava = float_runs(attention, neuron)
    torch_counts, _ = count_batches(model, [{"input_ids": ids, "attention_mask": mask}])
    attention_sops = lava.info["attention_sops"]
    kind = "coincidence" if attention == "sdsa" else "product"
    assert set(attention_sops) == {f"blocks.{i}.attention.{kind}" for i in range(2)}
    counts = counts_from_spikes(model, lava.spike_counts, mask.sum(1).tolist(),
                                attention=attention_sops)
    assert counts.estimated == []
    assert first_difference(torch_counts, counts) is None
    if attention == "sdsa":  # the gate's output spikes feed the output projection's SOPs
        gate = counts.layers["blocks.0.attention.gate"]
        out = counts.layers["blocks.0.attention.output.linear"]
        assert gate.detail["passed_spikes"] == int(lava.spike_counts["blocks.0.attention.gate"]
                                                   .sum())
        assert out.sops == gate.detail["passed_spikes"] * model.config.hidden_size > 0
        coincidence = counts.layers["blocks.0.attention.coincidence"]
        assert coincidence.sops == attention_sops["blocks.0.attention.coincidence"]["sops"] > 0


def test_the_energy_command_counts_lava_like_torch(lava_env, tmp_path):
    """``measure_lava`` (the energy command's Lava side) on a saved SDSA model."""
    from neurolang.checkpoint import save_pretrained
    from neurolang.energy.simulators import measure_lava

    model, _ = _model("sdsa")
    ids, mask = _samples(model.config, 4, seed=7)
    batch = {"input_ids": ids, "attention_mask": mask}
    run = measure_lava(save_pretrained(model, tmp_path / "model"), [batch], None)
    torch_counts, logits = count_batches(model, [batch])
    assert run.counts.estimated == [] and not run.notes
    assert first_difference(torch_counts, run.counts) is None
    assert run.predictions == logits.argmax(-1).tolist()


@pytest.mark.parametrize("attention", ["ssa", "sdsa"])
def test_lava_fixed_point_agrees_with_torch(lava_env, tmp_path, attention):
    model, _ = _model(attention)
    ids, mask = _samples(model.config, FIXED_SAMPLES)
    ids_np, lengths = ids.numpy(), mask.sum(1).numpy()
    path = export_nir(model, tmp_path / "m.nir")
    fixed = simulate_lava(path, ids_np, lengths, fixed_point=True, progress=False)
    assert fixed.info["mode"] == "fixed_pt"
    report = compare(torch_reference(model, ids_np, lengths), fixed)
    layers = {row["population"]: row for row in report["layers"]}
    assert set(layers) == _populations(attention)
    # the first stream neurons read the embeddings' stream, rounded only to their currents
    assert layers["blocks.0.attention.stream_neuron"]["agreement"] > 0.999
    for name, row in layers.items():
        floor = 0.95 if name.startswith("blocks.0.") else 0.75
        assert row["agreement"] > floor, row
    assert report["prediction_agreement"] >= 0.99, report["prediction_agreement"]


def test_lava_layer_norm_variant(lava_env, tmp_path):
    """LayerNorms: the embedding norm on the host in the encoder, the others fused into the
    dense layers; floating point spike for spike, fixed point close."""
    model, graph = _model("sdsa", norm="layer")
    assert plan_network(graph).steps["embedding_norm"].params["norm"][0] == "layer"
    ids, mask = _samples(model.config, 16)
    ids_np, lengths = ids.numpy(), mask.sum(1).numpy()
    path = export_nir(model, tmp_path / "m.nir")
    reference = torch_reference(model, ids_np, lengths)
    lava = simulate_lava(path, ids_np, lengths, progress=False)
    report = compare(reference, lava)
    assert report["total_count_mismatches"] == 0 and report["prediction_agreement"] == 1.0
    fixed = compare(reference, simulate_lava(path, ids_np, lengths, fixed_point=True,
                                             progress=False))
    assert all(row["agreement"] > 0.75 for row in fixed["layers"]), fixed["layers"]
    assert fixed["prediction_agreement"] >= 15 / 16


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["ssa", "sdsa"])
def test_lava_fixed_point_agreement_on_many_samples(lava_env, tmp_path, attention):
    model, _ = _model(attention)
    ids, mask = _samples(model.config, 512, seed=5)
    ids_np, lengths = ids.numpy(), mask.sum(1).numpy()
    path = export_nir(model, tmp_path / "m.nir")
    fixed = simulate_lava(path, ids_np, lengths, fixed_point=True, progress=False)
    report = compare(torch_reference(model, ids_np, lengths), fixed)
    assert report["prediction_agreement"] >= 0.99, report["prediction_agreement"]


def _arrays(graph):
    """Every array of every node of a (flattened) NIR graph, by node and attribute."""
    out = {}
    for name, node in flatten(graph).nodes.items():
        for key, value in vars(node).items():
            if isinstance(value, np.ndarray):
                out[name, key] = value
    return out


def test_the_inference_form_holds_the_numbers_of_the_nir_file():
    """``fold_batch_norms`` folds every BatchNorm after a Linear into it exactly as the export
    does: the folded model's NIR file is the same, array for array, so torch-side runs of the
    folded model and Lava's floating-point run compute the same numbers."""
    from neurolang.checkpoint import CheckpointError, save_pretrained
    from neurolang.primitives import Norm

    model, graph = _model("sdsa")
    folded = copy.deepcopy(model)
    names = folded.fold_batch_norms()
    norms = {name for name, m in model.named_modules() if isinstance(m, Norm)}
    assert set(names) == norms - {"embedding_norm"}  # the embeddings' norm stays an Affine
    assert folded.fold_batch_norms() == []
    ours, theirs = _arrays(to_nir(folded)), _arrays(graph)
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        np.testing.assert_array_equal(ours[key], value, err_msg=str(key))
    ids, mask = _samples(model.config, 8)
    with torch.no_grad():
        a, b = model(ids, mask)["logits"], folded(ids, mask)["logits"]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    with pytest.raises(CheckpointError, match="folded"):
        save_pretrained(folded, "unused")
    folded.train()
    with pytest.raises(RuntimeError, match="folded"):
        folded(ids, mask)


@pytest.mark.parametrize("preset_name", ["sdsa", "spikformer"])
def test_eight_bit_weights_are_the_fixed_point_weights(preset_name):
    """``snap_weights`` puts every Affine on the grid fixed point quantises it to: planned in
    fixed point, the snapped graph's integer weights times their scales give back the
    snapped weights, so float and fixed point hold the same weights."""
    from neurolang.lava.quantise import snap_weights

    if preset_name == "sdsa":
        model, _ = _model("sdsa")
    else:  # the Spikformer: a classifier after the mean over tokens (Lava's Dense)
        model, _, _ = realistic_model(preset("tiny"), seed=0)
    graph = to_nir(model)
    flat = flatten(graph)
    changes = snap_weights(flat)
    affines = [n for n, node in flat.nodes.items() if isinstance(node, nir.Affine)
               and (node.metadata or {}).get("neurolang.op") != "batch_norm"]
    assert sorted(changes) == sorted(affines)
    assert 0 < max(changes.values()) <= 0.5 / 127 + 1e-12  # half a step of the largest weight
    again = snap_weights(flatten(graph))
    assert max(again.values()) < 1e-12  # on the grid already
    plan = plan_network(graph, fixed_point=True)
    checked = 0
    for step in plan.steps.values():
        if step.kind == "dense":
            scale = step.params["quant"]["w_scale"][:, None]
        elif step.kind == "classifier" and not step.name.endswith(".identity"):
            scale = step.params["quant"]["w_scale"]
        else:
            continue
        node = flat.nodes[step.name]
        if not isinstance(node, nir.Affine):  # a LayerNorm fused after its Affine
            node = flat.nodes[flat.sources(step.name)[0]]
        np.testing.assert_allclose(step.params["weight"] * scale, node.weight, rtol=1e-12,
                                   atol=0)
        checked += 1
    assert checked == len(affines)

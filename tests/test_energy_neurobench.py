"""NeuroBench's SynapticOperations beside neurolang's count, on the same runs (real NeuroBench,
padded batches: NeuroBench counts each sample alone at its own length)."""

import pytest
from test_spikformer import realistic_model

from neurolang import preset
from neurolang.energy.hooks import count_batches

pytest.importorskip("neurobench")

from neurolang.energy.neurobench import neurobench_synops  # noqa: E402

SPIKE_DRIVEN = {"block": "spike_driven", "encoding": "repeat", "norm": "batch",
                "attention_neuron.v_threshold": 0.25}
ELASTIC = {"neuron.kind": "elastic_bispike", "attention_neuron.kind": "elastic_bispike"}


def _both(config, seed=0):
    model, ids, mask = realistic_model(config, seed)
    assert not bool(mask.all())  # the probe batch is padded
    batches = [{"input_ids": ids, "attention_mask": mask}]
    ours, _ = count_batches(model, batches)
    return ours, neurobench_synops(model, batches)


@pytest.mark.parametrize("seed", [0, 1])
def test_spike_driven_effective_acs_equal_our_synaptic_operations(seed):
    ours, theirs = _both(preset("tiny", **SPIKE_DRIVEN), seed)
    assert theirs["samples"] == 4 and theirs["Effective_MACs"] == 0
    per_sample = {name: layer.sops / 4 for name, layer in ours.layers.items()
                  if layer.role == "synaptic"}
    assert set(theirs["layers"]) == set(per_sample)  # every Linear, each fed by spikes
    for name, layer in theirs["layers"].items():
        assert layer["spiking"] and layer["effective"] == per_sample[name], name
    assert theirs["Effective_ACs"] == sum(per_sample.values())


def test_graded_spikes_are_macs_to_neurobench_with_the_same_count():
    ours, theirs = _both(preset("tiny", **SPIKE_DRIVEN, **ELASTIC))
    assert theirs["Effective_ACs"] == 0  # alpha * {-1, 0, 1} is not {-1, 0, 1}
    for name, layer in theirs["layers"].items():
        assert not layer["spiking"] and layer["effective"] == ours.layers[name].sops / 4


def test_spikformer_stream_linears_skip_zeros_in_neurobench_only():
    ours, theirs = _both(preset("tiny", encoding="repeat"))
    dense = [n for n, layer in ours.layers.items() if layer.role == "dense"]
    assert dense and theirs["Effective_MACs"] > 0
    for name in dense:
        layer, nb = ours.layers[name], theirs["layers"][name]
        out_features = layer.macs // layer.input_elements
        assert nb["effective"] * 4 == layer.input_nonzero * out_features  # nonzero inputs only
        assert nb["dense"] * 4 == layer.macs  # NeuroBench's Dense is our dense count

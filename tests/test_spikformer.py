"""The model definition: shapes, masking, encodings, norms, config handling, the graph."""

import pytest
import torch

from neurolang import SpikformerConfig, build_model, compile, preset
from neurolang.config import ConfigError, load_model_config, parse_override
from neurolang.graph import trace
from neurolang.parity import probe_batch, realistic_init, record_spikes


def _model(seed=0, **overrides):
    return realistic_model(preset("tiny", **overrides), seed)


def realistic_model(config, seed=0):
    """A float64 model of ``config`` in eval mode whose populations all fire (10-35%), with
    its probe batch: (model, ids, mask)."""
    torch.manual_seed(seed)
    model = build_model(config).double()
    ids, mask, _ = probe_batch(config, 4, seed)
    realistic_init(model, ids, mask, seed)
    return model.eval(), ids, mask


def test_outputs_and_representation_taps():
    model, ids, mask = _model()
    out = model(ids, mask, output_representations=True)
    config = model.config
    assert out["logits"].shape == (4, config.num_labels)
    assert out["logits_per_step"].shape == (config.time_steps * 4, config.num_labels)
    assert torch.allclose(out["logits"], out["logits_per_step"].reshape(4, 4, -1).mean(0))
    assert len(out["representations"]) == config.depth
    assert out["representations"][0].shape == (4, ids.shape[1], config.hidden_size)


@pytest.mark.parametrize("norm", ["layer", "batch"])
@pytest.mark.parametrize("seed", [0, 1])
def test_padding_mask_makes_each_sample_independent_of_padding(norm, seed):
    model, ids, mask = _model(seed, norm=norm)
    with record_spikes(model) as batched:
        logits = model(ids, mask)["logits"]
    for i in range(ids.shape[0]):
        n = int(mask[i].sum())
        with record_spikes(model) as alone:
            single = model(ids[i : i + 1, :n])["logits"]
        assert torch.allclose(single, logits[i : i + 1], atol=1e-12, rtol=0)
        for name, spikes in alone.items():
            per_sample = batched[name].reshape(4, 4, *batched[name].shape[1:])[:, i, :n]
            assert torch.equal(spikes.reshape(per_sample.shape), per_sample), name


def test_unmasked_model_lets_padding_change_the_result():
    model, ids, mask = _model(padding_mask=False)
    short = int(mask[1].sum())
    padded = model(ids[1:2], mask[1:2])["logits"]
    alone = model(ids[1:2, :short])["logits"]
    assert not torch.allclose(padded, alone)


def test_heaviside_encoding_is_binary_and_repeat_is_not():
    model, ids, mask = _model(encoding="heaviside")
    with record_spikes(model) as rec:
        model(ids, mask)
    assert set(rec["encode"].unique().tolist()) == {0.0, 1.0}
    model, ids, mask = _model(encoding="repeat")
    with record_spikes(model) as rec:
        model(ids, mask)
    assert "encode" not in rec


def test_position_embedding_switch():
    with_pos = build_model(preset("tiny", position_embedding=True))
    without = build_model(preset("tiny", position_embedding=False))
    assert "position.weight" in with_pos.state_dict()
    assert "position.weight" not in without.state_dict()
    with pytest.raises(ValueError, match="longer than max_length 16"):
        with_pos(torch.ones(1, 17, dtype=torch.long))


def test_time_is_folded_into_the_batch_for_linear_layers():
    model, ids, mask = _model()
    seen = []
    model.blocks[0].attention.query.linear.register_forward_hook(
        lambda m, i, o: seen.append(i[0].shape))
    model(ids, mask)
    assert seen == [(model.config.time_steps * 4, ids.shape[1], model.config.hidden_size)]


def test_batchnorm_folds_into_the_preceding_linear():
    model, ids, mask = _model(norm="batch")
    proj = model.blocks[0].mlp.fc1
    x = torch.randn(3, 5, proj.linear.in_features, dtype=torch.float64)
    scale, shift = proj.norm.affine()
    folded = torch.nn.functional.linear(
        x, proj.linear.weight * scale[:, None], proj.linear.bias * scale + shift)
    assert torch.allclose(folded, proj.norm(proj.linear(x), torch.ones(3, 5)), atol=1e-12)


def test_state_dict_loads_strictly_into_every_backend():
    model, ids, mask = _model()
    state = model.state_dict()
    for backend in ("torch", "snntorch", "norse"):
        compiled = compile(build_model(model.config), backend).double().eval()
        compiled.load_state_dict(state, strict=True)
        assert set(compiled.state_dict()) == set(state)
        assert torch.equal(compiled(ids, mask)["logits"], model(ids, mask)["logits"])


def test_graph_is_complete_and_executes_like_the_model():
    for overrides in ({}, {"norm": "batch", "encoding": "repeat", "position_embedding": False}):
        model, ids, mask = _model(**overrides)
        graph = trace(model)
        ops = {node.op for node in graph.nodes.values()}
        assert {"embedding", "encode", "linear", "norm", "neuron", "attention_product",
                "add", "token_mean", "time_mean"} <= ops
        assert len(graph.by_op("neuron")) == model.config.depth * 7
        assert len(graph.by_op("add")) == model.config.depth * 2
        assert torch.equal(graph.run(ids, mask)["logits"], model(ids, mask)["logits"])
        for node in graph.nodes.values():
            assert all(i in graph.nodes for i in node.inputs)


def test_config_round_trip_and_overrides(tmp_path):
    config = preset("small").with_overrides({"depth": 2, "neuron.tau": 10.0})
    assert config.depth == 2 and config.neuron.beta == pytest.approx(0.9)
    config.save(tmp_path / "config.json")
    assert SpikformerConfig.load(tmp_path / "config.json") == config
    toml = tmp_path / "model.toml"
    toml.write_text('[model]\npreset = "tiny"\ndepth = 3\n[model.neuron]\nreset = "subtract"\n')
    loaded = load_model_config(toml)
    assert loaded.depth == 3 and loaded.neuron.reset == "subtract" and loaded.hidden_size == 32
    assert parse_override("neuron.tau=10") == ("neuron.tau", 10)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"depth": 0}, "depth must be a positive integer"),
        ({"hidden_size": 30}, "not divisible by num_heads"),
        ({"norm": "group"}, "norm must be one of"),
        ({"colour": 1}, "unknown model option"),
        ({"neuron.sharpness": 1}, "unknown neuron option 'sharpness'"),
        ({"neuron.reset": "soft"}, "reset must be one of"),
    ],
)
def test_bad_config_values_are_clear_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        preset("tiny").with_overrides(change)


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="no configuration file"):
        load_model_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_model_config(bad)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")

"""SpikeLM's block (block="spikelm"): the model, its config, backends, checkpoints, graph,
energy counting and NIR export."""

import pytest
import torch
from test_spikformer import realistic_model
from typer.testing import CliRunner

from neurolang import Spikformer, build_model, compile, preset
from neurolang.checkpoint import from_pretrained, save_pretrained
from neurolang.cli import app
from neurolang.config import ConfigError, load_model_config
from neurolang.distill.config import load_train_config
from neurolang.graph import trace
from neurolang.models import SpikeLM
from neurolang.parity import record_spikes

ELASTIC = {"neuron.kind": "elastic_bispike", "attention_neuron.kind": "elastic_bispike"}
LIF = {"attention_neuron.v_threshold": 0.25}


def _config(neuron=None, **overrides):
    return preset("tiny", block="spikelm", encoding="repeat", **(neuron or ELASTIC), **overrides)


def _model(seed=0, neuron=None, **overrides):
    return realistic_model(_config(neuron, **overrides), seed)


def test_config_selects_the_block():
    config = preset("spikelm-small")
    assert config.block == "spikelm" and config.neuron.kind == "elastic_bispike"
    model = build_model(config)
    assert isinstance(model, SpikeLM) and len(model.blocks) == config.depth
    assert type(build_model(preset("small"))) is Spikformer
    assert config.replace(block="spikformer").block == "spikformer"
    with pytest.raises(ConfigError, match="block must be one of"):
        preset("tiny", block="bert")
    with pytest.raises(ConfigError, match="norm must be 'layer'"):
        preset("spikelm-small", norm="batch")
    with pytest.raises(ValueError, match="block='spikelm'"):
        SpikeLM(preset("tiny"))


def test_toml_model_table_and_training_config(tmp_path):
    path = tmp_path / "model.toml"
    path.write_text('[model]\npreset = "tiny"\nblock = "spikelm"\nencoding = "repeat"\n')
    config = load_model_config(path)
    assert config.block == "spikelm" and isinstance(build_model(config), SpikeLM)
    train = load_train_config("examples/sst2_spikelm.toml")
    assert train.model.block == "spikelm" and train.model.neuron.kind == "elastic_bispike"
    lif = load_train_config("examples/sst2.toml", {"data.max_train_samples": 3000,
                                                   "distill.epochs": 3,
                                                   "predistill.enabled": False})
    # the LIF comparison run differs from the SpikeLM one in the model only
    for section in ("teacher", "data", "predistill", "distill", "run"):
        assert getattr(lif, section) == getattr(train, section), section


def test_every_linear_of_a_block_reads_spikes_and_softmax_is_real():
    model, ids, mask = _model()
    graph = trace(model)
    nodes = graph.nodes
    block_linears = [n for n in nodes.values() if n.op == "linear" and n.name.startswith("blocks")]
    assert len(block_linears) == 6 * model.config.depth  # q, k, v, out, fc1, fc2
    for node in block_linears:
        assert nodes[node.inputs[0]].op == "neuron", node.name
    attention = graph.by_op("softmax_attention")
    assert len(attention) == model.config.depth and len(graph.by_op("gelu")) == model.config.depth
    q, k, v = (nodes[i] for i in attention[0].inputs[:3])
    assert (q.op, k.op, v.op) == ("linear", "neuron", "neuron")  # K and V re-spiked, Q not
    assert len(graph.by_op("neuron")) == 6 * model.config.depth
    # the graph computes what the model computes
    assert torch.equal(graph.run(ids, mask)["logits"], model(ids, mask)["logits"])
    # spikes are ternary {-alpha, 0, +alpha}; the Linear inputs are spikes, not real values
    with record_spikes(model) as rec:
        model(ids, mask)
    spikes = rec["blocks.0.attention.input_neuron"]
    alpha = model.blocks[0].attention.input_neuron.alpha
    levels = spikes.reshape(model.config.time_steps, -1).abs()
    for t in range(model.config.time_steps):
        assert set(levels[t].unique().tolist()) == {0.0, float(alpha[t])}
    assert (spikes < 0).any() and (spikes > 0).any()


def test_outputs_taps_and_the_real_valued_attention_by_hand():
    model, ids, mask = _model()
    out = model(ids, mask, output_representations=True)
    c = model.config
    assert out["logits"].shape == (4, c.num_labels)
    assert out["logits_per_step"].shape == (c.time_steps * 4, c.num_labels)
    assert torch.allclose(out["logits"], out["logits_per_step"].reshape(c.time_steps, 4, -1).mean(0))
    assert [r.shape for r in out["representations"]] == [(4, ids.shape[1], c.hidden_size)] * c.depth
    # softmax attention of one head against a direct computation, padding excluded
    attention = model.blocks[0].attention.attention
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 5, c.hidden_size, generator=gen, dtype=torch.float64)
               for _ in range(3))
    folded = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    y = attention(q, k, v, folded)
    d = c.head_dim
    scores = q[0, :, :d] @ k[0, :3, :d].T / d ** 0.5
    expected = torch.softmax(scores, -1) @ v[0, :3, :d]
    assert torch.allclose(y[0, :, :d], expected, atol=1e-12)


@pytest.mark.parametrize("neuron", [ELASTIC, LIF], ids=["elastic", "lif"])
def test_each_sample_is_independent_of_padding(neuron):
    model, ids, mask = _model(1, neuron)
    logits = model(ids, mask)["logits"]
    for i in range(ids.shape[0]):
        n = int(mask[i].sum())
        single = model(ids[i : i + 1, :n])["logits"]
        assert torch.allclose(single, logits[i : i + 1], atol=1e-10, rtol=0)


@pytest.mark.parametrize("backend", ["torch", "snntorch", "norse"])
def test_compiles_on_every_backend_and_checkpoint_round_trip(tmp_path, backend):
    model, ids, mask = _model(2)
    expected = model(ids, mask)["logits"]
    compiled = compile(model, backend).eval()
    assert isinstance(compiled, SpikeLM) and compiled.backend == backend
    assert torch.equal(compiled(ids, mask)["logits"], expected)
    # checkpoints hold float32 weights, as a trained model has
    model = model.float()
    expected = model(ids, mask)["logits"]
    save_pretrained(model, tmp_path / "model")
    loaded = from_pretrained(tmp_path / "model", backend=backend)
    assert isinstance(loaded, SpikeLM) and loaded.config == model.config
    # the first-batch amplitudes travel with the weights
    assert bool(loaded.blocks[0].ffn.hidden_neuron.alpha_initialized)
    assert torch.equal(loaded.blocks[0].ffn.hidden_neuron.alpha,
                       model.blocks[0].ffn.hidden_neuron.alpha)
    assert torch.equal(loaded(ids, mask)["logits"], expected)


def test_compile_from_config_and_checkpoint_of_another_block_is_refused(tmp_path):
    assert isinstance(compile(_config(), "norse"), SpikeLM)
    model, _, _ = _model()
    save_pretrained(model, tmp_path / "model")
    from neurolang.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="another model"):
        from_pretrained(tmp_path / "model", config=model.config.replace(block="spikformer"))


def test_energy_counting_refuses_with_one_clear_error():
    from neurolang.energy.hooks import OpCounter
    from neurolang.energy.records import CountingError

    model, ids, mask = _model(neuron=LIF)
    with pytest.raises(CountingError, match="softmax_attention .*block='spikelm'"):
        OpCounter(model)
    # the Spikformer is still counted
    spikformer = build_model(preset("tiny")).double().eval()
    with OpCounter(spikformer) as counter:
        counter.run(ids, mask)
    assert counter.counts.total("sops") > 0


def test_nir_export_refuses_with_one_clear_error(tmp_path):
    pytest.importorskip("nir")
    from neurolang.export.nir_export import export_nir
    from neurolang.nir import NIRError

    model, _, _ = _model(neuron=LIF)
    with pytest.raises(NIRError, match="SpikeLM"):
        export_nir(model, tmp_path / "model.nir")
    save_pretrained(model, tmp_path / "model")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "model"), "-o",
                                      str(tmp_path / "out.nir")])
    assert result.exit_code != 0
    assert "SpikeLM" in result.output and "Traceback" not in result.output


def test_distillation_pipeline_trains_and_reloads_spikelm(tmp_path, tiny_teacher, tiny_data_dir):
    config = tmp_path / "train.toml"
    config.write_text(f"""
[model]
preset = "tiny"
block = "spikelm"
encoding = "repeat"
hidden_size = 32
num_heads = 4
depth = 2
time_steps = 2
max_length = 32
[model.neuron]
kind = "elastic_bispike"
[model.attention_neuron]
kind = "elastic_bispike"
[teacher]
name = "{tiny_teacher}"
finetuned = "{tiny_teacher}"
[data]
task = "sst2"
data_dir = "{tiny_data_dir}"
max_length = 32
unlabelled = ["task"]
max_unlabelled_samples = 64
[predistill]
epochs = 1
batch_size = 16
[distill]
epochs = 1
batch_size = 16
[run]
threads = 1
""")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--config", str(config), "-o", str(out),
                                      "--backend", "snntorch"])
    assert result.exit_code == 0, result.output
    import json

    distill = json.loads((out / "distill" / "results.json").read_text())
    # stage 2 loaded the SpikeLM of stage 1 strictly, amplitudes included
    assert distill["stage1"]["initialised"] == []
    assert "blocks.0.attention.input_neuron.alpha" in distill["stage1"]["carried_over"]
    model = from_pretrained(out / "distill" / "best", backend="norse")
    assert isinstance(model, SpikeLM) and bool(model.blocks[1].ffn.hidden_neuron.alpha_initialized)
    # set from the first training batch (a fresh population holds ones)
    assert not torch.equal(model.blocks[0].attention.input_neuron.alpha,
                           torch.ones(model.config.time_steps))

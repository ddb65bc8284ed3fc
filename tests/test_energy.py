"""Energy counting: a hand-worked network, simulators' reports, the teacher, models, the CLI.

The hand network (``_hand_model``): 1 block, D 4, one head, L 3, T 2, mlp_ratio 1, Heaviside
encoder, BatchNorm set to the identity, attention scale 1, neurons LIF with tau 2 and no input
decay (``h = v/2 + x``, threshold 1; attention neuron threshold 0.5), so a constant input x
fires at both steps if x > 1, only at step 2 if 2/3 < x <= 1, never if x <= 2/3.

Embeddings (the encoder spikes where e > 0): token 1 -> s = 1000, token 2 -> 0100,
token 3 -> 1100, pad token 0 -> 1111 (it would spike everywhere if padding were counted).
Samples: A = [1, 2, 3] (3 real tokens), B = [3, 1, pad] (2 real tokens): 5 real tokens.

Weights: W_q = 1.5 I (Q = s at both steps), W_k = 0.8 I (K = s at step 2 only), W_v = 1.5 P
(P swaps features 0 and 1: V = P s at both steps), W_o = 1.5 I, W_1 = 0.6 I, W_2 = 1.5 I.

Worked by hand (real tokens only):
* encoder: A 4 + B 3 = 7 spikes per step, 14 in all; Q 14; K 7 (step 2); V 14.
* Q/K/V Linears: 14 input spikes x 4 outputs = 56 SOPs each.
* attention, step 1: K = 0, no accumulates. Step 2, A: channel counts nq = nk = (2, 2, 0, 0),
  Q K^T pairs 2*2 + 2*2 = 8; scores [[1,0,1],[0,1,1],[1,1,2]], 7 non-zero; V spikes per token
  (1, 1, 2): A V = (1+2) + (1+2) + (1+1+2) = 10. B: nq = nk = (2, 1, 0, 0), pairs 4 + 1 = 5;
  scores [[2,1],[1,1]]; V spikes (2, 1): A V = 3 + 3 = 6. Total 8 + 10 + 5 + 6 = 29 (Q K^T 13,
  A V 16). Other association: K^T V pairs A 1+1+4, B 4+1; Q spikes times non-zeros of the K^T V
  rows: A 2+2+4, B 4+2: 6 + 8 + 5 + 6 = 25.
* Y = A V at step 2: A rows 1200, 2100, 3300; B rows 2300, 1200: the attention neuron fires on
  features 0 and 1 of every real token: 10 spikes; the output projection 10 x 4 = 40 SOPs, its
  neuron 10 spikes; the residual add 10 SOPs.
* x1 = s + o: fc1 (dense, fed by the integer stream) 2 steps x 5 tokens x 4 x 4 = 160 MACs;
  it fires where s = 1 at step 2 (0.3 + 1.2 = 1.5): 7 spikes. |x1| sums to 7 + 17 = 24:
  decomposed 24 x 4 = 96. fc2: 7 x 4 = 28 SOPs, 7 spikes; the residual add 7 SOPs.
* norms (BatchNorm): the six after a Linear fold into it (0); the head's, after the residual
  add, costs 1 MAC per element: 40 MACs. Token mean: 40
  additions + 2 steps x 2 samples x 4 = 16 MACs. Classifier: 4 rows x 4 x 2 = 32 MACs. Time
  mean: 2 x 2 x 2 = 8 additions, 2 x 2 = 4 MACs.
* totals: spikes 14+14+7+14+10+10+7+7 = 83; neuron updates 8 populations x 40 = 320;
  SOPs 168 + 29 + 40 + 10 + 28 + 7 = 282; MACs 40 + 160 + 16 + 32 + 4 = 252; additions 48.
"""

from __future__ import annotations

import json

import pytest
import torch

from neurolang.backends import BACKENDS
from neurolang.backends import compile as compile_model
from neurolang.config import SpikformerConfig
from neurolang.energy.from_spikes import counts_from_spikes
from neurolang.energy.hooks import count_batches
from neurolang.energy.models import (
    BUILTIN_MODELS,
    EnergyConfigError,
    load_energy_models,
    select_models,
)
from neurolang.energy.records import CountingError, first_difference
from neurolang.energy.rules import estimate_attention_sops
from neurolang.energy.teacher import transformer_counts
from neurolang.models import SpikingClassifier, build_model
from neurolang.neurons import NeuronSpec

SIMULATORS = [b for b in ("torch", "snntorch", "norse") if BACKENDS[b].available()]

HAND_TOTALS = {"spikes": 83, "neuron_updates": 320, "sops": 282, "macs": 252, "adds": 48}
HAND_LAYERS = {  # name: (spikes, neuron updates, SOPs, MACs, additions)
    "embedding": (0, 0, 0, 0, 0),
    "encode": (14, 40, 0, 0, 0),
    "blocks.0.attention.query.linear": (0, 0, 56, 0, 0),
    "blocks.0.attention.query.norm": (0, 0, 0, 0, 0),  # folded into the Linear
    "blocks.0.attention.query.neuron": (14, 40, 0, 0, 0),
    "blocks.0.attention.key.linear": (0, 0, 56, 0, 0),
    "blocks.0.attention.key.neuron": (7, 40, 0, 0, 0),
    "blocks.0.attention.value.linear": (0, 0, 56, 0, 0),
    "blocks.0.attention.value.neuron": (14, 40, 0, 0, 0),
    "blocks.0.attention.product": (0, 0, 29, 0, 0),
    "blocks.0.attention.attention_neuron": (10, 40, 0, 0, 0),
    "blocks.0.attention.output.linear": (0, 0, 40, 0, 0),
    "blocks.0.attention.output.neuron": (10, 40, 0, 0, 0),
    "add": (0, 0, 10, 0, 0),
    "blocks.0.mlp.fc1.linear": (0, 0, 0, 160, 0),
    "blocks.0.mlp.fc1.neuron": (7, 40, 0, 0, 0),
    "blocks.0.mlp.fc2.linear": (0, 0, 28, 0, 0),
    "blocks.0.mlp.fc2.neuron": (7, 40, 0, 0, 0),
    "add_1": (0, 0, 7, 0, 0),
    "head.norm": (0, 0, 0, 40, 0),
    "head.token_mean": (0, 0, 0, 16, 40),
    "head.classifier": (0, 0, 0, 32, 0),
    "head.time_mean": (0, 0, 0, 4, 8),
}


def _hand_config() -> SpikformerConfig:
    neuron = NeuronSpec(tau=2.0, decay_input=False, v_threshold=1.0)
    return SpikformerConfig(
        vocab_size=4, hidden_size=4, depth=1, num_heads=1, mlp_ratio=1, time_steps=2,
        num_labels=2, max_length=3, position_embedding=False, encoding="heaviside",
        norm="batch", attention_scale=1.0, padding_mask=True, neuron=neuron,
        attention_neuron=neuron.replace(v_threshold=0.5), representation_taps=False,
        norm_eps=0.0)


def _hand_model(config: SpikformerConfig | None = None) -> SpikingClassifier:
    model = build_model(config or _hand_config()).double().eval()
    eye = torch.eye(4, dtype=torch.float64)
    swap = eye[[1, 0, 2, 3]]
    with torch.no_grad():
        model.embedding.weight.copy_(torch.tensor(
            [[1, 1, 1, 1], [1, -1, -1, -1], [-1, 1, -1, -1], [1, 1, -1, -1]],
            dtype=torch.float64))
        block = model.blocks[0]
        weights = {block.attention.query: 1.5 * eye, block.attention.key: 0.8 * eye,
                   block.attention.value: 1.5 * swap, block.attention.output: 1.5 * eye,
                   block.mlp.fc1: 0.6 * eye, block.mlp.fc2: 1.5 * eye}
        for projection, weight in weights.items():
            projection.linear.weight.copy_(weight)
            projection.linear.bias.zero_()
        model.head.classifier.weight.copy_(torch.arange(8.0).reshape(2, 4) / 8)
        model.head.classifier.bias.zero_()
    return model


def _hand_batch() -> dict[str, torch.Tensor]:
    return {"input_ids": torch.tensor([[1, 2, 3], [3, 1, 0]]),
            "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]])}


def _layer_tuple(layer):
    return (layer.spikes, layer.neuron_updates, layer.sops, layer.macs, layer.adds)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_counts_match_the_hand_worked_network(simulator):
    model = compile_model(_hand_model(), simulator)
    counts, logits = count_batches(model, [_hand_batch()], simulator)
    assert logits.shape == (2, 2)
    assert (counts.samples, counts.tokens) == (2, 5)
    found = {name: _layer_tuple(layer) for name, layer in counts.layers.items()}
    assert {name: found[name] for name in HAND_LAYERS} == HAND_LAYERS
    assert {key: counts.total(key) for key in HAND_TOTALS} == HAND_TOTALS
    product = counts.layers["blocks.0.attention.product"]
    assert product.detail == {"sops_qk": 13, "sops_av": 16, "sops_kv_first": 25}
    fc1 = counts.layers["blocks.0.mlp.fc1.linear"]
    assert fc1.role == "dense" and fc1.detail == {"decomposed_accumulates": 96}
    assert (fc1.input_nonzero, fc1.input_elements) == (17, 40)
    assert counts.layers["blocks.0.attention.query.linear"].role == "synaptic"
    assert counts.layers["add"].name == "blocks.0.attention.residual"
    assert counts.firing_rate == pytest.approx(83 / 320)


def test_padding_costs_nothing():
    """The padded batch counts exactly what the two samples count run alone, unpadded."""
    model = _hand_model()
    padded, _ = count_batches(model, [_hand_batch()])
    alone, _ = count_batches(model, [
        {"input_ids": torch.tensor([[1, 2, 3]]), "attention_mask": torch.tensor([[1, 1, 1]])},
        {"input_ids": torch.tensor([[3, 1]]), "attention_mask": torch.tensor([[1, 1]])}])
    assert first_difference(padded, alone) is None
    # and the pad token does spike: counting it would add its 4 encoder spikes per step
    everything, _ = count_batches(model, [{"input_ids": torch.tensor([[3, 1, 0]]),
                                           "attention_mask": torch.tensor([[1, 1, 1]])}])
    assert everything.layers["encode"].spikes == 2 * (3 + 4)


def test_counts_from_reported_spikes_reproduce_the_run():
    model = _hand_model()
    counts, _ = count_batches(model, [_hand_batch()])
    spikes = {layer.name: layer.spikes for layer in counts.populations()}
    spikes["blocks.0.attention.query.neuron"] = [7, 7]  # a list per step is summed
    attention = {"blocks.0.attention.product": {"sops_qk": 13, "sops_av": 16}}
    exact = counts_from_spikes(_hand_config(), spikes, [3, 2], attention=attention)
    assert first_difference(counts, exact) is None
    # loose spellings of the population names are matched
    loose = {name.replace(".", "_"): value for name, value in spikes.items()}
    assert first_difference(counts, counts_from_spikes(model, loose, [3, 2],
                                                       attention=attention)) is None
    # without the simulator's attention count: an independence estimate, marked as such
    estimate = counts_from_spikes(_hand_config(), spikes, [3, 2])
    layer = estimate.layers["blocks.0.attention.product"]
    assert layer.estimated and estimate.estimated == ["blocks.0.attention.product"]
    assert layer.sops == estimate_attention_sops(14 / 40, 7 / 40, 14 / 40, [3, 2], 4, 1, 2)
    assert first_difference(counts, estimate) is None  # estimated layers are skipped
    assert first_difference(counts, estimate, skip_estimated=False)["layer"] == (
        "blocks.0.attention.product")


def test_a_real_valued_encoder_makes_the_first_projections_dense():
    config = _hand_config().replace(encoding="repeat", position_embedding=True)
    model = _hand_model(config)
    with torch.no_grad():
        model.position.weight.fill_(0.25)
    counts, _ = count_batches(model, [_hand_batch()])
    layers = counts.layers
    assert layers["position"].adds == 5 * 4 and layers["encode"].role == "encode"
    query = layers["blocks.0.attention.query.linear"]
    assert query.role == "dense" and query.macs == 2 * 5 * 4 * 4 and query.sops == 0
    assert "non_integer_input" in layers["blocks.0.mlp.fc1.linear"].detail
    spikes = {layer.name: layer.spikes for layer in counts.populations()}
    assert "encode" not in spikes and sum(spikes.values()) > 0
    attention = {"blocks.0.attention.product": layers["blocks.0.attention.product"].detail}
    again = counts_from_spikes(config, spikes, [3, 2], attention=attention)
    assert first_difference(counts, again) is None


def test_counts_from_spikes_refuses_incomplete_reports():
    with pytest.raises(CountingError, match="no spike count"):
        counts_from_spikes(_hand_config(), {"encode": 14}, [3, 2])
    spikes = {name: 0 for name in HAND_LAYERS if name.endswith("neuron") or name == "encode"}
    spikes["encode"] = 41
    with pytest.raises(CountingError, match="more than"):
        counts_from_spikes(_hand_config(), spikes, [3, 2])


def test_non_binary_input_to_a_synaptic_layer_is_refused():
    model = _hand_model()
    model.blocks[0].attention.query.neuron.register_forward_hook(lambda m, i, o: o * 2)
    with pytest.raises(CountingError, match="holds the value 2"):
        count_batches(model, [_hand_batch()])


def test_graded_spikes_count_as_events():
    """SpikeLM's elastic bi-spiking neurons: every nonzero spike (+alpha or -alpha) is one
    event; recorded independently with hooks and compared with the counter's SOPs."""
    from neurolang.config import preset
    from neurolang.energy.rules import attention_sops
    from neurolang.parity import probe_batch, realistic_init
    from neurolang.primitives import fold_mask

    config = preset("tiny", num_labels=2).with_overrides(
        {"neuron.kind": "elastic_bispike", "attention_neuron.kind": "elastic_bispike"})
    ids, mask, *_ = probe_batch(config, 3, seed=1)
    model = build_model(config).double()
    realistic_init(model, ids, mask, seed=1)
    model.eval()
    seen: dict[str, torch.Tensor] = {}
    block = model.blocks[0]
    for name, module in (("fc2_in", block.mlp.fc2.linear), ("product", block.attention.product)):
        module.register_forward_hook(
            lambda m, args, out, name=name: seen.__setitem__(name, [a.clone() for a in args[:3]]))
    counts, _ = count_batches(model, [{"input_ids": ids, "attention_mask": mask}])
    keep = fold_mask(mask, config.time_steps).bool()           # (T*B, L)
    x = seen["fc2_in"][0]
    assert bool((x < 0).any()) and bool((x > 0).any()), "the probe should spike both ways"
    events = int(((x != 0) & keep[..., None]).sum())
    assert counts.layers["blocks.0.mlp.fc2.linear"].sops == events * config.hidden_size
    q, k, v = ((t != 0).double() for t in seen["product"])
    expected = attention_sops(q, k, v, keep, config.num_heads)
    assert counts.layers["blocks.0.attention.product"].sops == (
        expected["sops_qk"] + expected["sops_av"])
    assert counts.layers["blocks.0.mlp.fc1.neuron"].spikes == events


def test_energy_models_price_the_hand_counts():
    model = _hand_model()
    counts, _ = count_batches(model, [_hand_batch()])
    cmos = BUILTIN_MODELS["cmos45"].breakdown_pj(counts)
    assert cmos["total"] == pytest.approx(4.6 * 252 + 0.9 * (282 + 48))
    loihi = BUILTIN_MODELS["loihi"].breakdown_pj(counts)
    assert loihi["total"] == pytest.approx(4.6 * 252 + 0.9 * 48 + 23.6 * 282 + 81 * 320
                                           + 1.7 * 83)
    assert BUILTIN_MODELS["cmos45-lif"].per_sample_pj(counts) == pytest.approx(
        (cmos["total"] + 4.6 * 320) / 2)


def test_energy_config_file(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "energy.toml"
    models = load_energy_models(example)
    assert models and all(m.source for m in models.values())
    path = tmp_path / "e.toml"
    path.write_text('[models.chip]\nbase = "cmos45"\nsop_pj = 0.1\n')
    chip = select_models(["chip", "loihi"], path)["chip"]
    assert (chip.mac_pj, chip.sop_pj) == (4.6, 0.1)
    for text, message in (('[models.x]\nmac_pj = -1\nadd_pj = 1\nsop_pj = 1\n', "non-negative"),
                          ('[models.x]\nmac_pj = 1\n', "needs"),
                          ('[models.x]\nbase = "cmos45"\nwatts = 1\n', "unknown key"),
                          ('[other]\n', "unknown table")):
        path.write_text(text)
        with pytest.raises(EnergyConfigError, match=message):
            load_energy_models(path)
    with pytest.raises(EnergyConfigError, match="unknown energy model"):
        select_models(["nope"])


def test_teacher_linear_macs_match_a_run_of_the_model():
    """The formula's Linear MACs equal those of a hooked run of a small BERT, by hand too."""
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=16,
                                     max_position_embeddings=16, num_labels=3)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    seen = []
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_hook(lambda m, i, o: seen.append(
                i[0].numel() // m.in_features * m.in_features * m.out_features))
    with torch.no_grad():
        model(torch.randint(1, 50, (1, 5)))
    from neurolang.energy.teacher import head_linears

    counts = transformer_counts(config, [5], head=head_linears(model))
    linear = sum(layer.macs for layer in counts.layers.values() if layer.op == "linear")
    # by hand: 2 layers x (4 x 5 x 8 x 8 + 2 x 5 x 8 x 16) + pooler 8 x 8 + classifier 8 x 3
    assert linear == sum(seen) == 2 * (1280 + 1280) + 64 + 24
    scores = counts.layers["layer.0.attention.scores"].macs
    assert scores == 5 * 5 * 8


def _available(names):
    return [n for n in names if BACKENDS[n].available()]


def test_energy_command_end_to_end(tmp_path, tiny_data_dir, tiny_teacher):
    typer = pytest.importorskip("typer")
    from transformers import AutoTokenizer
    from typer.testing import CliRunner

    from neurolang.checkpoint import save_pretrained
    from neurolang.config import preset
    from neurolang.energy.commands import register
    from neurolang.parity import realistic_init

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_teacher))
    config = preset("tiny", vocab_size=tokenizer.vocab_size, max_length=32,
                    representation_taps=False)
    torch.manual_seed(0)
    model = build_model(config).double()
    texts = ["a gripping , funny film .", "dull and far too long .", "not bad at all"]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    realistic_init(model, enc["input_ids"], enc["attention_mask"], 0)
    model_dir = save_pretrained(model.float(), tmp_path / "model", tokenizer=tokenizer,
                                metadata={"teacher": str(tiny_teacher)})

    app = typer.Typer()

    @app.callback()
    def _main() -> None:
        pass

    def fail(message: str) -> None:
        typer.echo(f"error: {message}")
        raise typer.Exit(2)

    register(app, fail)
    runner = CliRunner()
    simulators = ",".join(SIMULATORS)
    out = tmp_path / "energy"
    result = runner.invoke(app, ["energy", str(model_dir), "--simulators", simulators,
                                 "--samples", "6", "--data-dir", str(tiny_data_dir),
                                 "--split", "dev", "--output", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "energy.json").read_text())
    assert (out / "firing_rates.png").stat().st_size > 0 and (out / "energy.png").is_file()
    assert report["samples"] == 6 and report["teacher"]["accuracy"] is not None
    runs = report["simulators"]
    first = runs[SIMULATORS[0]]["counts"]
    assert first["spikes_total"] > 0 and first["sops_total"] > 0
    for name in SIMULATORS[1:]:
        assert runs[name]["counts"]["layers"] == first["layers"]
    assert all(d["first_difference"] is None for d in report["differences"])
    ratio = runs[SIMULATORS[0]]["ratio_to_teacher"]["cmos45"]
    assert ratio == pytest.approx(runs[SIMULATORS[0]]["energy_per_sample_pj"]["cmos45"]["total"]
                                  / report["teacher"]["energy_per_sample_pj"]["cmos45"]["total"])
    assert "identical counts" in result.output

    bad = runner.invoke(app, ["energy", str(model_dir), "--simulators", "torch,loihi-chip"])
    assert bad.exit_code == 2 and "unknown simulator" in bad.output

    # NeuroBench's count of the same run, Linear by Linear, beside ours
    nb = report["neurobench"]
    assert nb["samples"] == 6 and nb["simulator"] == SIMULATORS[0]
    assert set(nb["layers"]) == {n for n, layer in ((x["name"], x) for x in first["layers"])
                                 if layer["role"] in ("synaptic", "dense")}
    synaptic = [v for v in nb["layers"].values() if v["neurolang_kind"] == "sops"]
    assert synaptic and all(v["equal"] for v in synaptic)  # binary spikes: the same count
    assert "NeuroBench SynapticOperations" in result.output

    # the accuracy-energy plane: this student twice (two labels), the teacher at 100%
    chart = tmp_path / "tradeoff"
    result = runner.invoke(app, ["energy-chart", str(out), str(out / "energy.json"),
                                 "--label", "a", "--label", "b", "-o", str(chart)])
    assert result.exit_code == 0, result.output
    assert (chart / "tradeoff.png").stat().st_size > 0
    table = (chart / "tradeoff.md").read_text()
    assert f"{ratio:.1%}" in table and "| teacher |" in table and "| a |" in table
    again = runner.invoke(app, ["energy-chart", str(out), "-o", str(chart)])
    assert again.exit_code == 0  # its own folder is replaced
    refused = runner.invoke(app, ["energy-chart", str(out), "-o", str(out)])
    assert refused.exit_code == 2 and "already exists" in refused.output
    missing = runner.invoke(app, ["energy-chart", str(tmp_path / "nothing"), "-o",
                                  str(tmp_path / "c2")])
    assert missing.exit_code == 2 and "not an energy report" in missing.output


def test_lava_counts_come_from_lavas_run(tmp_path):
    """Lava's own run gives the hand-worked counts, attention accumulates included (counted
    inside its attention process, not estimated)."""
    try:
        from neurolang.lava.env import is_ready, venv_path
    except ImportError:
        pytest.skip("no Lava side in this installation")
    if not is_ready(venv_path()):
        pytest.skip("no Lava environment (neurolang setup-lava)")
    from neurolang.checkpoint import save_pretrained
    from neurolang.energy.simulators import measure_lava

    model_dir = save_pretrained(_hand_model().float(), tmp_path / "hand")
    run = measure_lava(model_dir, [_hand_batch()], [0, 1])
    found = {name: _layer_tuple(layer) for name, layer in run.counts.layers.items()}
    assert {name: found[name] for name in HAND_LAYERS} == HAND_LAYERS
    product = run.counts.layers["blocks.0.attention.product"]
    assert (product.detail["sops_qk"], product.detail["sops_av"]) == (13, 16)
    assert run.counts.estimated == [] and not run.notes

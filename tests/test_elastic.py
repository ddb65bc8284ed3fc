"""SpikeLM's elastic bi-spiking neuron (``kind="elastic_bispike"``) everywhere: the reference
step function by hand, every backend against it, whole-model parity, configuration, NIR,
Lava and a training run."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_lava import lava_env  # noqa: F401  (the session fixture that makes .venv-lava)
from test_parity import _check
from test_training import _config_file
from typer.testing import CliRunner

from neurolang.backends import BACKENDS, compile, get_backend
from neurolang.cli import app
from neurolang.config import load_model_config, preset
from neurolang.export import NIRError, export_nir, import_nir, read_nir
from neurolang.models import Spikformer
from neurolang.neurons import (
    NeuronSpec,
    elastic_bispike_init_alpha,
    elastic_bispike_step,
    elastic_spike,
    run_reference,
)
from neurolang.parity import probe_batch, realistic_init, record_spikes, run_parity
from neurolang.primitives import SpikingNeuron

ELASTIC = NeuronSpec(kind="elastic_bispike")
BOTH = {"neuron.kind": "elastic_bispike", "attention_neuron.kind": "elastic_bispike"}
ALL = ["torch", "snntorch", "norse"]


def f64(values):
    return torch.tensor(values, dtype=torch.float64)


# ---- the reference step function, by hand ------------------------------------------------


def test_step_by_hand():
    x = f64([1.0, 0.2, -3.0, 0.5])[:, None]
    alpha = f64([1.0, 1.0, 2.0, 1.0])
    # t0: u = 1, u/a = 1 -> s = 1; c = 0.25 (1 - 1) 1 = 0
    # t1: u = 0.2 -> s = 0;        c = 0.25 (1 - 0) 0.2 = 0.05
    # t2: u = -2.95, u/a = -1.475 -> round -1 -> s = -2; c = 0.25 (2 + 2) (-2.95) = -2.95
    # t3: u = -2.45, u/a = -2.45 -> round -2, clamped -1 -> s = -1
    assert run_reference(x, ELASTIC, alpha)[:, 0].tolist() == [1.0, 0.0, -2.0, -1.0]
    c = torch.zeros(1, dtype=torch.float64)
    carries = []
    for t in range(4):
        _, c = elastic_bispike_step(x[t], c, ELASTIC, alpha[t])
        carries.append(c.item())
    assert carries == pytest.approx([0.0, 0.05, -2.95, 0.25 * 2 * -2.45])


def test_rounding_ties_and_straight_through_gradient():
    alpha = f64(2.0)
    u = f64([1.0, -1.0, 3.0, 2.0, 2.2, -4.0, 0.4]).requires_grad_()
    # u/a = 0.5 and -0.5 round half to even (0), 1.5 -> 2 clamped to 1, 1 -> 1, 2 -> clamped
    s = elastic_spike(u, alpha)
    assert s.tolist() == [0.0, 0.0, 2.0, 2.0, 2.0, -2.0, 0.0]
    (g,) = torch.autograd.grad(s.sum(), u)
    # straight through where |u/a| <= 1 (u = 2 and 1.5 a = 3 included/excluded as written)
    assert g.tolist() == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]


def test_learned_alpha_gets_the_lsq_gradient():
    alpha = f64(1.0).requires_grad_()
    u = f64([0.3, 2.0, -0.8])
    (g,) = torch.autograd.grad(elastic_spike(u, alpha).sum(), alpha)
    # inside: q - u/a = 0 - 0.3 and -1 + 0.8; outside: q = 1
    assert g.item() == pytest.approx(-0.3 + 1.0 - 0.2)


def test_first_batch_alpha_by_hand():
    x = f64([[1.0, -3.0], [1.0, 2.0]])
    # a0 = 2 mean(1, 3) = 4; u/a = 0.25, -0.75 -> s = 0, -4; c = 0.25 (4, 8) (1, -3) = (1, -6)
    # u1 = (2, -4): a1 = 2 * 3 = 6
    assert elastic_bispike_init_alpha(x, ELASTIC).tolist() == [4.0, 6.0]
    # a silent step gets alpha 1
    assert elastic_bispike_init_alpha(torch.zeros(2, 3), ELASTIC).tolist() == [1.0, 1.0]


def test_spec_and_population_state():
    with pytest.raises(ValueError, match="learn_alpha"):
        NeuronSpec(learn_alpha=True)
    neuron = SpikingNeuron(ELASTIC, time_steps=3).double()
    assert set(neuron.state_dict()) == {"alpha", "alpha_initialized"}
    assert not neuron.alpha_initialized
    x = torch.randn(3 * 5, 7, dtype=torch.float64)
    s = neuron(x)
    expected = elastic_bispike_init_alpha(x.reshape(3, 5, 7), ELASTIC)
    assert torch.equal(neuron.alpha, expected) and neuron.alpha_initialized
    neuron(3 * x)  # frozen after the first batch
    assert torch.equal(neuron.alpha, expected)
    values = set(s.unique().tolist()) - {0.0}
    assert values <= {a * sign for a in expected.tolist() for sign in (1, -1)} and values
    learned = SpikingNeuron(ELASTIC.replace(learn_alpha=True), time_steps=3)
    assert [n for n, _ in learned.named_parameters()] == ["alpha"]
    assert set(SpikingNeuron(NeuronSpec(), 3).state_dict()) == set()  # LIF: no new state


# ---- every backend against the reference step function ----------------------------------


def _currents(seed, shape=(6, 8, 40)):
    gen = torch.Generator().manual_seed(seed)
    return (0.8 * torch.randn(shape[1:], generator=gen, dtype=torch.float64)
            + 0.6 * torch.randn(shape, generator=gen, dtype=torch.float64) + 0.2)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("learn", [False, True])
def test_backend_neuron_matches_reference_step_function(backend, seed, learn):
    spec = ELASTIC.replace(learn_alpha=learn)
    impl = get_backend(backend)
    assert impl.problems(spec) == []
    x = _currents(seed).requires_grad_()
    alpha = elastic_bispike_init_alpha(x.detach(), spec)
    if seed == 2:  # amplitudes drifted from the first batch (as after training)
        alpha = alpha * f64([0.6, 1.0, 1.3, 0.8, 2.0, 1.1])
    alpha = alpha.clone().requires_grad_(learn)
    weights = torch.linspace(-1, 1, 40, dtype=torch.float64)
    reference = run_reference(x, spec, alpha)
    rate = (reference != 0).double().mean().item()
    assert 0.05 < rate < 0.5, rate
    assert (reference < 0).any() and (reference > 0).any()
    grads_ref = torch.autograd.grad((reference * weights).sum(), [x, alpha] if learn else [x])
    out = impl.lower(spec)(x, alpha)
    assert torch.equal(out, reference)
    grads = torch.autograd.grad((out * weights).sum(), [x, alpha] if learn else [x])
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert g_ref.abs().max() > 0
        assert (g - g_ref).abs().max().item() < 1e-10


def test_backends_mark_the_neuron_as_neurolangs():
    assert BACKENDS["torch"].own_kinds == ()
    for name in ("snntorch", "norse"):
        assert BACKENDS[name].own_kinds == ("elastic_bispike",)
    result = CliRunner().invoke(app, ["backends"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert text.count("(neurolang's)") == 2 and "NOT snnTorch's" in text
    assert "NOT Norse's" in text


# ---- the whole model ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spikformer_parity_all_backends_float64(seed):
    _check(run_parity(preset("tiny", **BOTH), ALL, seed=seed, check_float32=False), ALL)


@pytest.mark.parametrize("overrides", [
    {**BOTH, "neuron.learn_alpha": True, "attention_neuron.learn_alpha": True},
    {"neuron.kind": "elastic_bispike", "norm": "batch", "encoding": "repeat"},  # LIF attention
])
def test_spikformer_parity_variants(overrides):
    report = run_parity(preset("tiny", **overrides), ALL, seed=4, check_float32=False)
    _check(report, ALL)


def test_learned_alpha_is_trained_state():
    config = preset("tiny", **BOTH, **{"neuron.learn_alpha": True})
    torch.manual_seed(0)
    model = compile(Spikformer(config), "snntorch").double()
    ids, mask, labels = probe_batch(config, 4, 0)
    realistic_init(model, ids, mask, 0)
    loss = torch.nn.functional.cross_entropy(model(ids, mask)["logits"], labels)
    loss.backward()
    neuron = model.blocks[0].mlp.fc1.neuron
    assert neuron.alpha.grad is not None and neuron.alpha.grad.abs().max() > 0
    assert model.blocks[0].attention.attention_neuron.alpha.grad is None  # frozen there


def test_config_toml_and_cli(tmp_path):
    path = tmp_path / "model.toml"
    path.write_text('[model]\npreset = "tiny"\n[model.neuron]\nkind = "elastic_bispike"\n'
                    'learn_alpha = true\n[model.attention_neuron]\nkind = "elastic_bispike"\n')
    config = load_model_config(path)
    assert config.neuron.kind == config.attention_neuron.kind == "elastic_bispike"
    assert config.neuron.learn_alpha and not config.attention_neuron.learn_alpha
    out = tmp_path / "parity.json"
    result = CliRunner().invoke(app, [
        "parity", "--set", "model.neuron.kind=elastic_bispike",
        "--set", "model.attention_neuron.kind=elastic_bispike", "--seed", "5",
        "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["config"]["neuron"]["kind"] == "elastic_bispike"
    assert report["total_mismatches"] == 0 and report["rates_in_band"]


# ---- NIR ------------------------------------------------------------------------------------


def realistic_model(seed=0, batch=8, **overrides):
    config = preset("tiny", **{**BOTH, **overrides})
    torch.manual_seed(seed)
    model = Spikformer(config).double().eval()
    ids, mask, _ = probe_batch(config, batch, seed)
    rates = realistic_init(model, ids, mask, seed)
    assert all(0.05 < r < 0.5 for r in rates.values()), rates
    return model, ids, mask


@pytest.mark.parametrize("backend", ["torch", "norse"])
def test_nir_round_trip_gives_identical_spikes_in_float64(tmp_path, backend):
    model, ids, mask = realistic_model(seed=1)
    path = export_nir(model, tmp_path / "model.nir")
    graph = read_nir(path)
    node = graph.nodes["blocks.0"].nodes["mlp.fc1.neuron"]
    assert type(node).__name__ == "ElasticBiSpike" and node.alpha.shape == (4,)
    assert json.loads(graph.metadata["neurolang.extensions"]).count(
        "neurolang.ElasticBiSpike") == 1
    back = import_nir(path, backend=backend)
    with record_spikes(model) as a:
        out_a = model(ids, mask)
    with record_spikes(back) as b:
        out_b = back(ids, mask)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert torch.equal(out_a["logits"], out_b["logits"])
    np.testing.assert_array_equal(
        back.blocks[1].attention.attention_neuron.alpha.numpy(),
        model.blocks[1].attention.attention_neuron.alpha.numpy())


def test_nir_strict_refuses_and_uninitialised_alpha_is_refused(tmp_path):
    model, _, _ = realistic_model()
    with pytest.raises(NIRError) as err:
        export_nir(model, tmp_path / "s.nir", strict=True)
    assert "blocks.1.mlp.fc2.neuron (neurolang.ElasticBiSpike" in str(err.value)
    with pytest.raises(NIRError, match="alpha are not initialised"):
        export_nir(Spikformer(preset("tiny", **BOTH)), tmp_path / "f.nir")
    result = CliRunner().invoke(app, ["parity", "--set", "neuron.kind=elastic_bispike",
                                      "--backends", "torch", "--seed", "1"])
    assert result.exit_code == 0, result.output


# ---- Lava ------------------------------------------------------------------------------------


def test_lava_plan_and_fixed_point_refusal(tmp_path):
    from neurolang.lava.plan import plan_network
    from neurolang.lava.plan_types import LavaModelError

    model, _, _ = realistic_model(seed=2, batch=6)
    path = export_nir(model, tmp_path / "model.nir")
    plan = plan_network(read_nir(path))
    assert [s.kind for s in plan.steps.values()].count("elastic") == 14
    with pytest.raises(LavaModelError, match="fixed point is not supported for elastic"):
        plan_network(read_nir(path), fixed_point=True)


def test_lava_float_parity(lava_env, tmp_path):  # noqa: F811
    from neurolang.lava.driver import compare, simulate_lava, torch_reference

    model, ids, mask = realistic_model(seed=2, batch=6)
    path = export_nir(model, tmp_path / "model.nir")
    lengths = mask.sum(1).numpy()
    assert lengths.min() < lengths.max()
    lava = simulate_lava(path, ids.numpy(), lengths, progress=False)
    reference = torch_reference(model, ids.numpy(), lengths)
    report = compare(reference, lava)
    assert report["total_count_mismatches"] == 0
    assert report["prediction_agreement"] == 1.0 and report["logits_max_abs_diff"] < 1e-9
    for name, counts in reference.spike_counts.items():
        assert counts.sum() > 300, name
        np.testing.assert_array_equal(counts, lava.spike_counts[name])


# ---- training --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_train_on_every_backend(backend, tmp_path, tiny_teacher, tiny_data_dir):
    config = _config_file(tmp_path, tiny_teacher, tiny_data_dir)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--config", str(config), "-o", str(out), "--backend", backend,
        "--set", "model.neuron.kind=elastic_bispike",
        "--set", "model.attention_neuron.kind=elastic_bispike",
        "--set", "predistill.epochs=1", "--set", "distill.epochs=1"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["backend"] == backend
    accuracy = results["student"]["dev"]["accuracy"]
    assert 0.0 <= accuracy <= 1.0 and np.isfinite(accuracy)
    weights = load_file(str(out / "distill" / "best" / "model.safetensors"))
    alpha = weights["blocks.0.mlp.fc1.neuron.alpha"]
    assert bool(weights["blocks.0.mlp.fc1.neuron.alpha_initialized"])
    assert alpha.shape == (2,) and torch.all(alpha > 0) and not torch.all(alpha == 1)
    stage2 = json.loads((out / "distill" / "results.json").read_text())
    assert "blocks.0.mlp.fc1.neuron.alpha" in stage2["stage1"]["carried_over"]


def test_first_batch_alpha_under_ddp_is_the_whole_batchs(tmp_path):
    """2 gloo processes, each with half of the batch, set the same amplitudes: those one
    process sets from the whole batch (a frozen alpha would otherwise be rank 0's share's, a
    learned one would differ between processes)."""
    spec = NeuronSpec(kind="elastic_bispike")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, 5, 8, generator=gen, dtype=torch.float64) + 0.3  # (T, B, L, D)
    whole = elastic_bispike_init_alpha(x, spec)
    shares = [elastic_bispike_init_alpha(x[:, r::2], spec) for r in (0, 1)]
    assert not torch.allclose(shares[0], whole, rtol=0, atol=1e-6)  # a share alone differs
    manager = torch.multiprocessing.get_context("spawn").Manager()
    out = manager.dict()
    address = f"file://{tmp_path / 'rendezvous'}"
    per_rank = x.transpose(0, 1)  # (B, T, ...): rank r takes rows r::2, as the trainer does
    torch.multiprocessing.spawn(
        _init_alpha_shares, args=(2, address, per_rank, spec, out), nprocs=2, join=True)
    assert torch.equal(out[0], out[1])
    torch.testing.assert_close(out[0], whole, rtol=0, atol=1e-12)


def _init_alpha_shares(rank, world, address, per_rank, spec, out):
    share = per_rank[rank::world].transpose(0, 1).contiguous()  # back to (T, b, ...)
    torch.distributed.init_process_group("gloo", init_method=address, rank=rank,
                                         world_size=world)
    try:
        out[rank] = elastic_bispike_init_alpha(share, spec)
    finally:
        torch.distributed.destroy_process_group()

"""The fused LIF of the ``torch`` backend, the hand-written baseline, and ``neurolang bench``."""

import itertools
import json
import warnings

import pytest
import torch
import typer
from typer.testing import CliRunner

from neurolang import Spikformer, compile, preset
from neurolang.backends import get_backend
from neurolang.backends import pytorch as torch_backend
from neurolang.backends.pytorch import FusedLIF, MultiStepLIF, lif_multistep
from neurolang.bench import HandwrittenSpikformer, build_variants, register
from neurolang.cli import _fail as cli_fail
from neurolang.neurons import NeuronSpec, run_reference
from neurolang.parity import firing_rates, probe_batch, record_spikes
from neurolang.primitives import Norm, ReferenceDynamics, fold_mask

SPECS = [
    NeuronSpec(reset=reset, decay_input=decay, threshold_comparison=comparison,
               surrogate=surrogate, detach_reset=detach, tau=tau, v_threshold=th)
    for reset, decay, comparison, surrogate, detach, tau, th in itertools.product(
        ("zero", "subtract"), (True, False), (">", ">="),
        ("atan", "sigmoid", "triangle", "straight_through"), (False, True), (2.0, 3.0),
        (1.0, 0.5))
]


def _currents(spec, shape, seed=0, dtype=torch.float64):
    """10-40% firing, with inputs that land exactly on the threshold at the first step."""
    gen = torch.Generator().manual_seed(seed)
    x = 1.5 * (0.9 * torch.randn(shape[1:], generator=gen, dtype=torch.float64)
               + 0.5 * torch.randn(shape, generator=gen, dtype=torch.float64) + 0.3)
    x = x * spec.v_threshold if spec.decay_input else x * spec.v_threshold * (1 - spec.beta)
    x.view(shape[0], -1)[0, ::7] = spec.v_threshold * (spec.tau if spec.decay_input else 1.0)
    return x.to(dtype)


def _check(spec, kernel, dtype=torch.float64, shape=(6, 5, 37), seed=0, tolerance=1e-10):
    x = _currents(spec, shape, seed, dtype).requires_grad_()
    weights = torch.rand(shape, generator=torch.Generator().manual_seed(seed + 1), dtype=dtype)
    reference = run_reference(x, spec)
    (g_ref,) = torch.autograd.grad((reference * weights).sum(), x)
    out = lif_multistep(x, spec, kernel)
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.equal(out, reference), f"spikes differ for {spec}"
    (g,) = torch.autograd.grad((out * weights).sum(), x)
    error = ((g - g_ref).abs().max() / g_ref.abs().max().clamp(min=1)).item()
    assert error < tolerance, f"gradients differ by {error} for {spec}"
    with torch.inference_mode():
        assert torch.equal(lif_multistep(x.detach(), spec, kernel), reference)
    return reference.mean().item()


def test_eager_kernel_matches_reference_for_every_spec():
    for spec in SPECS:
        rate = _check(spec, "eager")
        assert 0.05 < rate < 0.6, f"unrealistic rate {rate} for {spec}"


# Compiling costs seconds per kernel: two specs between them take every branch, one of them
# SpikeBERT's neuron in float32 (what the models run), the other in float64.
COMPILED = [
    (NeuronSpec(tau=2.0, v_threshold=1.0, reset="zero", surrogate="triangle"), torch.float32),
    (NeuronSpec(tau=3.0, decay_input=False, v_threshold=0.5, reset="subtract",
                threshold_comparison=">=", surrogate="atan", surrogate_alpha=2.0,
                detach_reset=True), torch.float64),
]


@pytest.mark.parametrize("spec, dtype", COMPILED)
def test_compiled_kernel_matches_reference(spec, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback to eager allowed here
        _check(spec, "compile", dtype, shape=(4, 8, 1031),
               tolerance=1e-10 if dtype == torch.float64 else 1e-5)
    kernels = torch_backend._kernels(spec)
    assert all(kernels._compiled[(which, dtype, torch.device("cpu"), 4)] is not None
               for which in ("forward", "backward", "infer"))


def test_failed_compilation_falls_back_to_exact_eager_kernels(monkeypatch):
    spec = NeuronSpec(tau=2.0, surrogate="sigmoid", reset="subtract", surrogate_alpha=4.0)

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setitem(torch_backend._KERNELS, spec, torch_backend._Kernels(spec))
    with pytest.warns(RuntimeWarning, match="no C.. compiler"):
        _check(spec, "compile")


def _saved(fn):
    """Shapes of the tensors autograd saves while ``fn()`` runs."""
    shapes = []

    def pack(t):
        shapes.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return shapes, out


@pytest.mark.parametrize("steps", [2, 4, 16])
def test_fused_neuron_saves_one_sequence_tensor(steps):
    spec = NeuronSpec(tau=2.0, surrogate="atan", detach_reset=False)
    x = _currents(spec, (steps, 3, 20)).requires_grad_()
    shapes, out = _saved(lambda: FusedLIF(spec, "eager")(x))
    assert shapes == [(steps, 60)]  # the membranes h, one (T, N) tensor
    stepwise, _ = _saved(lambda: ReferenceDynamics(spec)(x))
    assert len(stepwise) >= 3 * steps  # what the per-step autograd graph keeps instead
    assert out.grad_fn is not None


def test_inference_saves_nothing():
    spec = NeuronSpec(tau=2.0)
    x = _currents(spec, (4, 3, 20)).requires_grad_()
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            shapes, out = _saved(lambda: FusedLIF(spec)(x))
        assert shapes == [] and out.grad_fn is None
    shapes, out = _saved(lambda: FusedLIF(spec)(x.detach()))
    assert shapes == [] and out.grad_fn is None


def test_non_contiguous_input_and_kernel_choice(monkeypatch):
    spec = NeuronSpec(tau=2.0)
    x = _currents(spec, (5, 20, 3)).transpose(1, 2).requires_grad_()
    assert not x.is_contiguous()
    out = lif_multistep(x, spec, "eager")
    assert torch.equal(out, run_reference(x, spec))
    with pytest.raises(ValueError, match="kernel"):
        FusedLIF(spec, "triton")
    monkeypatch.setenv("NEUROLANG_LIF_KERNEL", "nope")
    with pytest.raises(ValueError, match="NEUROLANG_LIF_KERNEL"):
        lif_multistep(x, spec)


def test_torch_backend_lowers_to_fused_and_keeps_stepwise():
    backend = get_backend("torch")
    spec = NeuronSpec()
    assert isinstance(backend.lower(spec), FusedLIF)
    assert isinstance(backend.lower(spec, fused=False), ReferenceDynamics)
    assert MultiStepLIF is FusedLIF


@pytest.mark.parametrize("name", ["tiny", "spikebert-reference"])
@pytest.mark.parametrize("fused", [True, False])
def test_handwritten_baseline_equals_neurolang(name, fused):
    config = preset(name) if name == "tiny" else preset(
        name, hidden_size=32, depth=2, num_heads=4, mlp_ratio=2, vocab_size=512, max_length=16)
    torch.manual_seed(0)
    model = Spikformer(config).double()
    with torch.no_grad():  # norm shifts that make every population fire
        for norm in model.modules():
            if isinstance(norm, Norm):
                norm.bias.normal_(0.6, 0.4)
    ids, mask = probe_batch(config, 4, seed=0)[:2]
    ours = compile(model, "torch")
    with record_spikes(ours) as record:
        ours(ids, mask)
    rates = firing_rates(record, fold_mask(mask, config.time_steps))
    assert all(0.02 < r < 0.9 for r in rates.values()), rates
    if not fused:
        for neuron in ours.modules():
            if hasattr(neuron, "set_dynamics"):
                neuron.set_dynamics(ReferenceDynamics(neuron.spec))
    hand = HandwrittenSpikformer(config, fused=fused).double().load_from(model)
    for train in (False, True):
        ours.train(train)
        hand.train(train)
        a, b = ours(ids, mask)["logits"], hand(ids, mask)
        assert torch.equal(a, b)
    a.sum().backward()
    b.sum().backward()
    grads = dict(hand.named_parameters())
    for pname, p in ours.named_parameters():
        if p.grad is not None:
            assert (p.grad - grads[pname].grad).abs().max().item() < 1e-10, pname


def test_bench_command_writes_every_field(tmp_path):
    app = typer.Typer()
    register(app, cli_fail)

    @app.command()
    def other() -> None:  # a second command, so that "bench" stays a sub-command
        pass

    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "--preset", "tiny", "--repeats", "1",
                                      "--warmup", "1", "--batch-size", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    variants = [row["variant"] for row in data["rows"]]
    assert variants == ["torch", "torch-stepwise", "snntorch", "norse", "handwritten",
                        "handwritten-stepwise"]
    for row in data["rows"]:
        for key in ("train_step_s", "train_samples_per_s", "train_tokens_per_s", "infer_s",
                    "infer_samples_per_s", "infer_tokens_per_s", "train_peak_mib",
                    "infer_peak_mib", "train_vs_handwritten", "infer_vs_handwritten"):
            assert isinstance(row[key], float) and row[key] >= 0, (row["variant"], key)
        assert row["train_peak_mib"] > 0
    for phase in ("train", "infer"):
        assert set(data["ratios"][phase]) == {
            "torch_time_over_handwritten", "fused_speedup", "handwritten_fused_speedup",
            "torch_vs_snntorch", "torch_vs_norse", "torch_vs_handwritten_stepwise"}
    assert set(data["targets"]) == {"overhead_vs_handwritten_below_5pct",
                                    "fused_speedup_at_least_1.5x",
                                    "torch_vs_snntorch_at_least_2x"}
    assert data["baseline_checks"] == {"handwritten==torch": True,
                                       "handwritten-stepwise==torch-stepwise": True}
    assert (data["batch_size"], data["length"], data["tokens_per_batch"]) == (2, 16, 32)
    assert "torch" in result.output and "fused_speedup" in result.output


def test_bench_rejects_unknown_backend():
    app = typer.Typer()
    register(app, cli_fail)

    @app.command()
    def other() -> None:
        pass

    result = CliRunner().invoke(app, ["bench", "--backends", "torch,jax", "--preset", "tiny"])
    assert result.exit_code == 2 and "unknown backend 'jax'" in result.output


def test_bench_variants_share_one_set_of_weights():
    variants = build_variants(preset("tiny"), ["torch", "snntorch"], True, True,
                              torch.device("cpu"), torch.float32)
    assert list(variants) == ["torch", "torch-stepwise", "snntorch", "handwritten",
                              "handwritten-stepwise"]
    weights = [dict(v.model.named_parameters()) for v in variants.values()]
    for name in ("embedding.weight", "blocks.1.mlp.fc2.linear.bias", "head.classifier.weight"):
        assert all(w[name] is weights[0][name] for w in weights)
    assert len({id(v.optimizer) for v in variants.values()}) == 1


def test_bench_compares_a_second_family_in_the_same_rounds():
    from neurolang.bench import run_bench

    data = run_bench(["torch", "snntorch"], "tiny", repeats=2, warmup=0, batch_size=2,
                     length=8, baseline=False, stepwise=False, compare="spike-driven-small",
                     dtype="bf16")
    assert [row["variant"] for row in data["rows"]] == [
        "torch", "snntorch", "spike-driven-small/torch", "spike-driven-small/snntorch"]
    assert data["compare"] == "spike-driven-small" and data["dtype"] == "bf16 (autocast)"
    for phase in ("train", "infer"):
        for backend in ("torch", "snntorch"):
            ratio = data["ratios"][phase][f"spike-driven-small_over_tiny/{backend}"]
            rows = {r["variant"]: r for r in data["rows"]}
            assert ratio > 0 and rows[f"spike-driven-small/{backend}"][f"{phase}_s" if phase
                                                                       == "infer" else
                                                                       "train_step_s"] > 0

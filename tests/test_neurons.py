"""The neuron specification, the reference step function, and every backend against it."""

import itertools

import pytest
import torch

from neurolang.backends import BACKENDS, BackendError, compile, get_backend
from neurolang.config import preset
from neurolang.neurons import NeuronSpec, lif_step, run_reference


def test_lif_step_by_hand_decay_input_zero_reset():
    spec = NeuronSpec(tau=2.0, decay_input=True, v_threshold=1.0, reset="zero")
    x = torch.tensor([1.5, 1.5, 1.5, 0.0, 3.0], dtype=torch.float64)
    # h = v + (x - v)/2:  0.75 (no spike), 1.125 (spike, v=0), 0.75, 0.375, 1.6875 (spike)
    spikes = run_reference(x[:, None], spec)[:, 0]
    assert spikes.tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]


def test_lif_step_by_hand_subtract_and_beta_form():
    spec = NeuronSpec(beta=0.5, decay_input=False, v_threshold=1.0, reset="subtract")
    v = torch.tensor([0.0], dtype=torch.float64)
    s, v = lif_step(torch.tensor([2.5], dtype=torch.float64), v, spec)  # h = 2.5 -> spike
    assert (s.item(), v.item()) == (1.0, 1.5)
    s, v = lif_step(torch.tensor([0.0], dtype=torch.float64), v, spec)  # h = 0.75
    assert (s.item(), v.item()) == (0.0, 0.75)


def test_threshold_comparison_at_equality():
    x = torch.tensor([[2.0]], dtype=torch.float64)  # decay_input, tau 2: h = 1.0 == threshold
    strict = NeuronSpec(tau=2.0, threshold_comparison=">")
    inclusive = NeuronSpec(tau=2.0, threshold_comparison=">=")
    assert run_reference(x, strict).item() == 0.0
    assert run_reference(x, inclusive).item() == 1.0


def test_detach_reset_changes_only_the_gradient():
    torch.manual_seed(0)
    x = (torch.randn(6, 50, dtype=torch.float64) + 1.0).requires_grad_()
    grads, spikes = [], []
    for detach in (False, True):
        spec = NeuronSpec(tau=2.0, detach_reset=detach, surrogate="atan", surrogate_alpha=2.0)
        s = run_reference(x, spec)
        (g,) = torch.autograd.grad(s.sum(), x)
        grads.append(g)
        spikes.append(s)
    assert torch.equal(spikes[0], spikes[1])
    assert not torch.allclose(grads[0], grads[1])


def test_spec_validation_and_tau_beta():
    assert NeuronSpec(tau=4.0).beta == pytest.approx(0.75)
    assert NeuronSpec(tau=None, beta=0.75).tau == pytest.approx(4.0)
    assert NeuronSpec(tau=2.0).replace(tau=10.0).beta == pytest.approx(0.9)
    with pytest.raises(ValueError, match="reset"):
        NeuronSpec(reset="soft")
    with pytest.raises(ValueError, match="surrogate"):
        NeuronSpec(surrogate="gauss")
    with pytest.raises(ValueError, match="tau=2.0 gives beta=0.5"):
        NeuronSpec(tau=2.0, beta=0.9)


SPECS = [
    NeuronSpec(**dict(zip(("reset", "decay_input", "threshold_comparison", "surrogate",
                           "detach_reset", "tau"), combo, strict=True)))
    for combo in itertools.product(
        ("zero", "subtract"), (True, False), (">", ">="),
        ("atan", "sigmoid", "triangle", "straight_through"), (False, True), (2.0, 3.0)
    )
]


def _currents(seed, spec, shape=(8, 6, 40)):
    gen = torch.Generator().manual_seed(seed)
    # constant drive plus noise: 10-25% firing, neither silent nor saturated
    x = 1.5 * (0.9 * torch.randn(shape[1:], generator=gen, dtype=torch.float64)
               + 0.5 * torch.randn(shape, generator=gen, dtype=torch.float64) + 0.3)
    return x if spec.decay_input else x * (1 - spec.beta)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backend_neuron_matches_reference_step_function(backend, seed):
    impl = get_backend(backend)
    checked = 0
    for spec in SPECS:
        if impl.problems(spec):
            continue
        x = _currents(seed, spec).requires_grad_()
        reference = run_reference(x, spec)
        rate = reference.mean().item()
        assert 0.05 < rate < 0.5, f"unrealistic rate {rate} for {spec}"
        (g_ref,) = torch.autograd.grad((reference * torch.linspace(0, 1, 40)).sum(), x)
        lowered = impl.lower(spec)
        out = lowered(x)
        assert out.dtype == torch.float64
        assert torch.equal(out, reference), f"{backend} spikes differ for {spec}"
        (g,) = torch.autograd.grad((out * torch.linspace(0, 1, 40)).sum(), x)
        assert (g - g_ref).abs().max().item() < 1e-10, f"{backend} gradients differ for {spec}"
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize(
    "backend, change, setting",
    [
        ("snntorch", {"reset": "subtract"}, "reset='subtract'"),
        ("snntorch", {"detach_reset": True}, "detach_reset=True"),
        ("norse", {"surrogate": "atan"}, "surrogate='atan'"),
        ("norse", {"threshold_comparison": ">="}, "threshold_comparison='>='"),
    ],
)
def test_backends_refuse_what_they_cannot_compute(backend, change, setting):
    config = preset("tiny")
    config = config.replace(neuron=config.neuron.replace(**change))
    with pytest.raises(BackendError) as err:
        compile(config, backend)
    message = str(err.value)
    assert setting in message and backend in message and "blocks.0" in message


def test_reference_preset_runs_only_on_torch():
    config = preset("spikebert-reference", hidden_size=16, depth=1, num_heads=2,
                    vocab_size=50, max_length=8)
    compile(config, "torch")
    for backend in ("snntorch", "norse"):
        with pytest.raises(BackendError):
            compile(config, backend)


def test_unknown_backend():
    with pytest.raises(BackendError, match="unknown backend 'jax'; known: torch, snntorch, norse"):
        compile(preset("tiny"), "jax")


def test_backends_use_the_real_libraries():
    import norse.torch
    import snntorch

    snn_model = compile(preset("tiny"), "snntorch")
    norse_model = compile(preset("tiny"), "norse")
    neuron = snn_model.blocks[0].attention.query.neuron
    assert isinstance(neuron.dynamics.leaky, snntorch.Leaky)
    assert neuron.dynamics.leaky.reset_delay is False
    neuron = norse_model.blocks[0].mlp.fc1.neuron
    assert isinstance(neuron.dynamics.cell, norse.torch.LIFBoxCell)

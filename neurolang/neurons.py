"""Neuron kinds: one specification, one pure reference step function per kind.

A :class:`NeuronSpec` says exactly what a population of neurons computes. Each kind has one
reference step function ``step(x, state, spec) -> (spikes, state)``; its docstring is the
definition every backend is tested against. Backends lower the same specification to their
own library (``neurolang.backends``) and refuse settings they cannot compute exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from neurolang.surrogate import COMPARISONS, SURROGATES, spike
from neurolang.validation import check_bool, check_choice, check_number

RESETS = ("zero", "subtract")


@dataclass(frozen=True)
class NeuronSpec:
    """What one population of spiking neurons computes.

    Attributes:
        kind: neuron kind, a key of :data:`NEURON_KINDS`: ``"lif"`` or ``"elastic_bispike"``
            (SpikeLM's elastic bi-spiking neuron, :func:`elastic_bispike_step`; it uses only
            ``kind`` and ``learn_alpha``: the LIF settings below do not apply to it, though a
            Heaviside encoder still takes its comparison and surrogate from ``config.neuron``).
        tau: membrane time constant in steps (>= 1); the decay is ``beta = 1 - 1/tau``.
        beta: the decay itself, in [0, 1); give ``tau`` or ``beta`` (both only if they agree:
            ``beta == 1 - 1/tau``, else it is an error).
        decay_input: scale the input by ``1/tau`` as SpikingJelly's ``LIFNode`` (SpikeBERT).
        v_threshold: firing threshold (> 0).
        reset: ``"zero"`` (hard reset to 0) or ``"subtract"`` (subtract the threshold).
        threshold_comparison: ``">"`` (snnTorch, Norse, Lava, NIR) or ``">="`` (SpikingJelly).
        surrogate: surrogate gradient name (``neurolang.surrogate``).
        surrogate_alpha: its sharpness ``alpha`` (> 0).
        detach_reset: cut the gradient through the reset (SpikingJelly ``detach_reset=True``).
        learn_alpha: ``elastic_bispike`` only: the spike amplitudes ``alpha`` (one per time
            step) are trained (LSQ gradient) after their first-batch initialisation, instead of
            staying frozen as in SpikeLM's reference.
    """

    kind: str = "lif"
    tau: float | None = 2.0
    beta: float | None = None
    decay_input: bool = True
    v_threshold: float = 1.0
    reset: str = "zero"
    threshold_comparison: str = ">"
    surrogate: str = "triangle"
    surrogate_alpha: float = 1.0
    detach_reset: bool = False
    learn_alpha: bool = False

    def __post_init__(self) -> None:
        # the errors are ValueErrors (ConfigError) naming the option; neurolang.config adds
        # the population ("neuron: tau must be ...")
        check_choice("", "kind", self.kind, sorted(NEURON_KINDS))
        if self.tau is None and self.beta is None:
            raise ValueError("a neuron needs tau or beta")
        if self.tau is not None:  # tau >= 1: beta = 1 - 1/tau in [0, 1)
            check_number("", "tau", self.tau, at_least=1)
        if self.beta is not None:
            check_number("", "beta", self.beta, at_least=0, less_than=1)
        if self.tau is not None:
            beta = 1.0 - 1.0 / self.tau
            if beta >= 1:
                raise ValueError(f"tau={self.tau} is too large: beta = 1 - 1/tau rounds to 1")
            if self.beta is not None and not math.isclose(beta, self.beta, rel_tol=1e-12):
                raise ValueError(f"tau={self.tau} gives beta={beta}, but beta={self.beta} was given")
            object.__setattr__(self, "beta", beta)
        else:
            object.__setattr__(self, "tau", 1.0 / (1.0 - self.beta))
        for name in ("decay_input", "detach_reset", "learn_alpha"):
            check_bool("", name, getattr(self, name))
        check_choice("", "reset", self.reset, RESETS)
        check_choice("", "threshold_comparison", self.threshold_comparison, COMPARISONS)
        check_choice("", "surrogate", self.surrogate, SURROGATES)
        check_number("", "v_threshold", self.v_threshold, greater_than=0)
        check_number("", "surrogate_alpha", self.surrogate_alpha, greater_than=0)
        if self.learn_alpha and not NEURON_KINDS[self.kind].amplitude:
            raise ValueError(f"learn_alpha applies to neurons with spike amplitudes "
                             f"(elastic_bispike), not to {self.kind!r}")

    def replace(self, **changes: Any) -> NeuronSpec:
        """A copy with ``changes``; changing ``tau`` or ``beta`` re-derives the other."""
        if "tau" in changes and "beta" not in changes:
            changes["beta"] = None
        elif "beta" in changes and "tau" not in changes:
            changes["tau"] = None
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# LIF


def lif_initial_state(x: torch.Tensor, spec: NeuronSpec) -> torch.Tensor:
    """The membrane before the first step: zeros shaped like one step of input."""
    return torch.zeros_like(x)


def lif_step(
    x: torch.Tensor, v: torch.Tensor, spec: NeuronSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of a leaky integrate-and-fire population (the reference).

    With input ``x[t]``, membrane ``v[t-1]`` (``v[-1] = 0``), ``beta = 1 - 1/tau``,
    threshold ``th``, in this order::

        charge:   h[t] = v[t-1] + (x[t] - v[t-1]) / tau     if decay_input  (SpikingJelly form)
                  h[t] = beta * v[t-1] + x[t]               otherwise       (snnTorch form)
        fire:     s[t] = H(h[t] - th)     H(z) = [z > 0], or [z >= 0] for comparison ">="
                  (backward: dS/dz of the surrogate)
        reset:    v[t] = h[t] * (1 - r[t])                  reset "zero"
                  v[t] = h[t] - r[t] * th                   reset "subtract"
                  where r[t] = s[t], detached from the graph if detach_reset

    Both decay forms are ``beta * v + (1 - beta) * x`` (resp. ``+ x``) in exact arithmetic;
    the written form fixes the floating-point rounding. Reset happens in the same step as the
    spike (snnTorch ``reset_delay=False``). Returns ``(s[t], v[t])``.
    """
    if spec.decay_input:
        h = v + (x - v) / spec.tau
    else:
        h = spec.beta * v + x
    s = spike(h - spec.v_threshold, spec.surrogate, spec.surrogate_alpha, spec.threshold_comparison)
    r = s.detach() if spec.detach_reset else s
    if spec.reset == "zero":
        v_next = h * (1 - r)
    else:
        v_next = h - r * spec.v_threshold
    return s, v_next


# --------------------------------------------------------------------------------------------
# Elastic bi-spiking (SpikeLM, Xing et al., ICML 2024)


class _ElasticSpike(torch.autograd.Function):
    """``s = alpha * clamp(round(u / alpha), -1, 1)`` with the straight-through gradient."""

    @staticmethod
    def forward(ctx, u, alpha):  # noqa: D102
        ratio = u / alpha
        q = torch.clamp(torch.round(ratio), -1, 1)
        ctx.save_for_backward(ratio, q)
        ctx.alpha_shape = alpha.shape
        return alpha * q

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        ratio, q = ctx.saved_tensors
        inside = (ratio.abs() <= 1).to(grad.dtype)
        grad_u = grad * inside
        grad_alpha = None
        if ctx.needs_input_grad[1]:
            # LSQ: d(alpha q)/d alpha = q - u/alpha where |u/alpha| <= 1, q outside
            grad_alpha = (grad * (q - ratio * inside)).sum_to_size(ctx.alpha_shape)
        return grad_u, grad_alpha


def elastic_spike(u: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Ternary spikes ``alpha * clamp(round(u / alpha), -1, 1)`` in {-alpha, 0, +alpha}.

    ``round`` is round-half-to-even (``torch.round``, ``numpy.rint``): ``|u/alpha| = 0.5``
    gives 0, ``1.5`` gives 2 (clamped to 1). Backward (straight-through, clipped):
    ``ds/du = 1`` where ``|u/alpha| <= 1``, else 0; for a learned ``alpha`` the LSQ gradient
    ``ds/dalpha = q - u/alpha`` where ``|u/alpha| <= 1``, else ``q`` (``q = s/alpha``), summed
    over the population.
    """
    return _ElasticSpike.apply(u, alpha)


def elastic_bispike_initial_state(x: torch.Tensor, spec: NeuronSpec) -> torch.Tensor:
    """The decayed membrane carried into the first step: zeros (so ``u[0] = x[0]``)."""
    return torch.zeros_like(x)


def elastic_bispike_step(
    x: torch.Tensor, carry: torch.Tensor, spec: NeuronSpec, alpha: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of an elastic bi-spiking population (SpikeLM's ``ElasticBiSpiking``).

    With input ``x[t]``, the amplitude ``alpha[t]`` of this step (one number for the whole
    population) and the carried, already decayed membrane
    ``c[t-1] = 0.25 * (alpha[t-1] - s[t-1]) * u[t-1]`` (``c[-1] = 0``), in this order::

        integrate:  u[t] = c[t-1] + x[t]                  (u[0] = x[0])
        fire:       s[t] = alpha[t] * clamp(round(u[t] / alpha[t]), -1, 1)
                    ternary spikes {-alpha[t], 0, +alpha[t]}; round half to even
        decay:      c[t] = 0.25 * (alpha[t] - s[t]) * u[t]     evaluated as (0.25 * (alpha - s)) * u

    The decay depends on the spike: none is kept after a positive spike, ``0.25 alpha`` of
    the membrane without a spike, ``0.5 alpha`` after a negative one. Backward: the
    straight-through gradient of :func:`elastic_spike` (1 where ``|u/alpha| <= 1``); the
    gradient flows through every term of the decay, ``s[t-1]`` and ``u[t-1]`` included.
    ``alpha`` is set once from the first batch (:func:`elastic_bispike_init_alpha`) and then
    frozen, or learned (``learn_alpha``). Returns ``(s[t], c[t])``.
    """
    u = carry + x
    s = elastic_spike(u, alpha)
    return s, 0.25 * (alpha - s) * u


@torch.no_grad()
def _global_mean_abs(u: torch.Tensor) -> torch.Tensor:
    """``mean |u|``, over all processes' ``u`` when a process group of several is running."""
    distributed = torch.distributed
    if not (distributed.is_available() and distributed.is_initialized()
            and distributed.get_world_size() > 1):
        return u.abs().mean()
    sums = torch.stack([u.abs().sum(dtype=torch.float64),
                        torch.tensor(u.numel(), dtype=torch.float64, device=u.device)])
    distributed.all_reduce(sums)
    return (sums[0] / sums[1]).to(u.dtype)


def elastic_bispike_init_alpha(x_seq: torch.Tensor, spec: NeuronSpec,
                               dtype: torch.dtype | None = None) -> torch.Tensor:
    """SpikeLM's first-batch amplitudes: ``alpha[t] = 2 * mean |u[t]|`` over the population.

    Runs :func:`elastic_bispike_step` over ``x_seq`` (T, ...) and sets each ``alpha[t]`` from
    that step's membrane before firing, so ``u[t]`` already used ``alpha[t-1]``. The mean is
    over every element of the step (batch, tokens and features, padding included). Each
    value is rounded to ``dtype`` (the buffer that will hold it) before it is used. A step
    with no signal (mean 0, or not finite) gets ``alpha = 1``. Returns a (T,) tensor.

    Under ``torch.distributed`` (DDP: each process holds a share of the batch) the mean is
    over every process's elements (their sums and counts are all-reduced at each step), so
    every process sets the same amplitudes, those of the whole batch.
    """
    dtype = dtype or x_seq.dtype
    carry = elastic_bispike_initial_state(x_seq[0], spec)
    alphas = []
    for t in range(x_seq.shape[0]):
        u = carry + x_seq[t]
        alpha = (2 * _global_mean_abs(u)).to(dtype)
        if not bool(alpha > 0) or not bool(torch.isfinite(alpha)):
            alpha = torch.ones((), dtype=dtype, device=x_seq.device)
        alphas.append(alpha)
        _, carry = elastic_bispike_step(x_seq[t], carry, spec, alpha.to(x_seq.dtype))
    return torch.stack(alphas)


# --------------------------------------------------------------------------------------------
# Registry of kinds


@dataclass(frozen=True)
class NeuronKind:
    """A neuron kind: its reference step function and how its state starts.

    Kinds with ``amplitude`` (graded spikes ``alpha[t] * {-1, 0, 1}``) take the step's
    amplitude as a fourth argument, ``step(x, state, spec, alpha[t])``; the population holds
    the (T,) amplitudes as state (``SpikingNeuron.alpha``), set from the first batch by
    ``init_amplitude(x_seq, spec, dtype)``.
    """

    name: str
    step: Callable[..., tuple[torch.Tensor, Any]]
    initial_state: Callable[[torch.Tensor, NeuronSpec], Any]
    binary: bool  # spikes are in {0, 1}
    amplitude: bool = False
    init_amplitude: Callable[..., torch.Tensor] | None = None


NEURON_KINDS: dict[str, NeuronKind] = {
    "lif": NeuronKind("lif", lif_step, lif_initial_state, binary=True),
    "elastic_bispike": NeuronKind(
        "elastic_bispike", elastic_bispike_step, elastic_bispike_initial_state, binary=False,
        amplitude=True, init_amplitude=elastic_bispike_init_alpha,
    ),
}


def run_reference(x_seq: torch.Tensor, spec: NeuronSpec,
                  alpha: torch.Tensor | None = None) -> torch.Tensor:
    """Run the reference step function of ``spec.kind`` over ``x_seq`` of shape (T, ...).

    ``alpha`` (T,): the spike amplitudes of a kind that has them; if not given, the
    first-batch initialisation on ``x_seq`` itself.
    """
    kind = NEURON_KINDS[spec.kind]
    state = kind.initial_state(x_seq[0], spec)
    if kind.amplitude:
        if alpha is None:
            alpha = kind.init_amplitude(x_seq, spec)
        if alpha.shape != (x_seq.shape[0],):
            raise ValueError(f"alpha must have one value per time step ({x_seq.shape[0]}), "
                             f"got shape {tuple(alpha.shape)}")
    spikes = []
    for t in range(x_seq.shape[0]):
        if kind.amplitude:
            s, state = kind.step(x_seq[t], state, spec, alpha[t])
        else:
            s, state = kind.step(x_seq[t], state, spec)
        spikes.append(s)
    return torch.stack(spikes)

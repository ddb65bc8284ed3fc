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

RESETS = ("zero", "subtract")


@dataclass(frozen=True)
class NeuronSpec:
    """What one population of spiking neurons computes.

    Attributes:
        kind: neuron kind, a key of :data:`NEURON_KINDS` (``"lif"``).
        tau: membrane time constant in steps; the decay is ``beta = 1 - 1/tau``.
        beta: the decay itself; give ``tau`` or ``beta``. ``tau`` wins if both are given and
            they disagree is an error.
        decay_input: scale the input by ``1/tau`` as SpikingJelly's ``LIFNode`` (SpikeBERT).
        v_threshold: firing threshold.
        reset: ``"zero"`` (hard reset to 0) or ``"subtract"`` (subtract the threshold).
        threshold_comparison: ``">"`` (snnTorch, Norse, Lava, NIR) or ``">="`` (SpikingJelly).
        surrogate: surrogate gradient name (``neurolang.surrogate``).
        surrogate_alpha: its sharpness ``alpha``.
        detach_reset: cut the gradient through the reset (SpikingJelly ``detach_reset=True``).
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

    def __post_init__(self) -> None:
        if self.kind not in NEURON_KINDS:
            raise ValueError(f"unknown neuron kind {self.kind!r}; known: {sorted(NEURON_KINDS)}")
        if self.tau is None and self.beta is None:
            raise ValueError("a neuron needs tau or beta")
        if self.tau is not None:
            if self.tau < 1:
                raise ValueError(f"tau must be >= 1 (beta = 1 - 1/tau in [0, 1)), got {self.tau}")
            beta = 1.0 - 1.0 / self.tau
            if self.beta is not None and not math.isclose(beta, self.beta, rel_tol=1e-12):
                raise ValueError(f"tau={self.tau} gives beta={beta}, but beta={self.beta} was given")
            object.__setattr__(self, "beta", beta)
        else:
            if not 0 <= self.beta < 1:
                raise ValueError(f"beta must be in [0, 1), got {self.beta}")
            object.__setattr__(self, "tau", 1.0 / (1.0 - self.beta))
        if self.reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {self.reset!r}")
        if self.threshold_comparison not in COMPARISONS:
            raise ValueError(
                f"threshold_comparison must be one of {COMPARISONS}, got {self.threshold_comparison!r}"
            )
        if self.surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {self.surrogate!r}")
        if self.v_threshold <= 0:
            raise ValueError(f"v_threshold must be > 0, got {self.v_threshold}")

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
# Registry of kinds


@dataclass(frozen=True)
class NeuronKind:
    """A neuron kind: its reference step function and how its state starts."""

    name: str
    step: Callable[[torch.Tensor, Any, NeuronSpec], tuple[torch.Tensor, Any]]
    initial_state: Callable[[torch.Tensor, NeuronSpec], Any]
    binary: bool  # spikes are in {0, 1}


NEURON_KINDS: dict[str, NeuronKind] = {
    "lif": NeuronKind("lif", lif_step, lif_initial_state, binary=True),
}


def run_reference(x_seq: torch.Tensor, spec: NeuronSpec) -> torch.Tensor:
    """Run the reference step function of ``spec.kind`` over ``x_seq`` of shape (T, ...)."""
    kind = NEURON_KINDS[spec.kind]
    state = kind.initial_state(x_seq[0], spec)
    spikes = []
    for t in range(x_seq.shape[0]):
        s, state = kind.step(x_seq[t], state, spec)
        spikes.append(s)
    return torch.stack(spikes)

"""Surrogate gradients: a Heaviside step forward, a smooth derivative backward.

Every function here takes ``x = v - v_threshold`` (or the encoder's input) and returns spikes
in ``x.dtype`` (0.0 or 1.0). The forward comparison is part of the neuron specification:
``">"`` gives ``H(x) = 1 if x > 0`` (snnTorch, Norse, Lava and NIR), ``">="`` gives
``H(x) = 1 if x >= 0`` (SpikingJelly, and so SpikeBERT's reference code).

Backward derivatives ``dS/dx`` (``alpha`` from the specification):

=================  ===============================================  ======================
name               dS/dx                                            source
=================  ===============================================  ======================
atan               alpha / 2 / (1 + (pi/2 * alpha * x)^2)            SpikingJelly ATan
sigmoid            alpha * sig(alpha x) * (1 - sig(alpha x))          SpikingJelly Sigmoid
triangle           alpha * max(0, 1 - |x|)                            Esser et al. 2016 (Norse)
straight_through   1                                                  Bengio et al. 2013
=================  ===============================================  ======================

The functions keep the input dtype in both directions (snnTorch's own surrogates cast spikes to
float32, which loses float64 gradient precision), so float64 gradients of every backend agree
to rounding.
"""

from __future__ import annotations

import math

import torch

SURROGATES = ("atan", "sigmoid", "triangle", "straight_through")
COMPARISONS = (">", ">=")


def heaviside(x: torch.Tensor, comparison: str = ">") -> torch.Tensor:
    """The step function of ``comparison`` in ``x.dtype``, no gradient."""
    if comparison == ">":
        return (x > 0).to(x.dtype)
    if comparison == ">=":
        return (x >= 0).to(x.dtype)
    raise ValueError(f"threshold comparison must be one of {COMPARISONS}, got {comparison!r}")


def surrogate_derivative(x: torch.Tensor, name: str, alpha: float) -> torch.Tensor:
    """``dS/dx`` of surrogate ``name`` at ``x`` (the table in the module docstring)."""
    if name == "atan":
        return alpha / 2 / (1 + (math.pi / 2 * alpha * x) ** 2)
    if name == "sigmoid":
        sig = torch.sigmoid(alpha * x)
        return alpha * sig * (1 - sig)
    if name == "triangle":
        return alpha * torch.relu(1 - x.abs())
    if name == "straight_through":
        return torch.ones_like(x)
    raise ValueError(f"surrogate must be one of {SURROGATES}, got {name!r}")


class _SurrogateSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, name, alpha, comparison):  # noqa: D102
        ctx.save_for_backward(x)
        ctx.name, ctx.alpha = name, alpha
        return heaviside(x, comparison)

    @staticmethod
    def backward(ctx, grad_output):  # noqa: D102
        (x,) = ctx.saved_tensors
        return grad_output * surrogate_derivative(x, ctx.name, ctx.alpha), None, None, None


def spike(x: torch.Tensor, name: str, alpha: float, comparison: str = ">") -> torch.Tensor:
    """Heaviside of ``x`` forward, surrogate ``name`` backward."""
    return _SurrogateSpike.apply(x, name, alpha, comparison)


def spike_function(name: str, alpha: float, comparison: str = ">"):
    """A one-argument spike function, the form snnTorch's ``spike_grad`` takes."""

    def fire(x: torch.Tensor) -> torch.Tensor:
        return spike(x, name, alpha, comparison)

    fire.__name__ = f"{name}_surrogate"
    return fire

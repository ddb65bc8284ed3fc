"""Spikes kept for the backward pass in the smallest exact dtype.

Autograd saves the inputs of a matrix product to compute the weight gradient. Where those
inputs are binary spikes, a float32 copy spends 4 bytes (float64: 8) on one bit of
information. The two products of the Spikformer that read spikes use the functions here
instead of ``F.linear`` and ``@`` while gradients are recorded:

:func:`spike_linear`
    ``y = x W^T + b`` for spike inputs (the attention output and second MLP projections);
:func:`spike_attention`
    ``(Q K^T) V * scale`` with binary Q, K, V and the padding mask.

Their forward is the plain product. They save the spikes as ``torch.bool``, which is exact
for binary spikes: ``unpack`` gives back the same 0.0/1.0 values, so the backward computes
the same products on the same numbers (the same gradients up to the summation order of the
matrix kernels: within 1e-12 in float64, ``tests/test_spikes.py``). The inputs must be
binary: the model builders call these functions only where the population feeding them is of
a kind whose spikes are 0/1 (``NeuronKind.binary``); graded spikes (the elastic bi-spiking
neuron) go through the plain products. Testing every input instead would cost more than the
conversions (an elementwise comparison is slower on CPU than the bool round trip). Without
gradients (evaluation, ``torch.inference_mode``) they are the plain product and save nothing.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


def pack(x: torch.Tensor) -> torch.Tensor:
    """Binary spikes ``x`` as ``torch.bool`` (1 byte a spike; exact for 0/1 values)."""
    return x.to(torch.bool)


def unpack(saved: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Undo :func:`pack`. (Through ``uint8``: on CPU that conversion is about 3x faster than
    ``bool -> float``.)"""
    return saved.view(torch.uint8).to(dtype)


def _recording(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# Under autocast the forward products run in the autocast dtype; the backward then computes in
# the dtype of the incoming gradient and returns each gradient in its input's dtype, as the
# cast nodes autocast records would.


class _SpikeLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(pack(x), weight)
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        return torch.nn.functional.linear(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        saved, weight = ctx.saved_tensors
        x_dtype, w_dtype, b_dtype = ctx.dtypes
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = (grad @ weight.to(grad.dtype)).to(x_dtype)
        flat = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[1]:
            x = unpack(saved, grad.dtype)
            gw = (flat.t() @ x.reshape(-1, x.shape[-1])).to(w_dtype)
        if b_dtype is not None and ctx.needs_input_grad[2]:
            gb = flat.sum(0).to(b_dtype)
        return gx, gw, gb


def spike_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """``F.linear(x, weight, bias)``, saving binary ``x`` as ``torch.bool`` for backward."""
    if not _recording(x, weight, bias):
        return torch.nn.functional.linear(x, weight, bias)
    return _SpikeLinear.apply(x, weight, bias)


def _attend(q, k, v):
    """``(q k^T) v`` in the cheaper association; returns (y, the inner product)."""
    if q.shape[-2] > q.shape[-1]:  # L > d: Q (K^T V), inner (d x d)
        inner = k.transpose(-2, -1) @ v
        return q @ inner, inner
    inner = q @ k.transpose(-2, -1)  # (Q K^T) V, inner (L x L)
    return inner @ v, inner


class _SpikeAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, scale):
        y, inner = _attend(q, k, v)
        ctx.save_for_backward(pack(q), pack(k), pack(v), inner)
        ctx.dtypes, ctx.scale = (q.dtype, k.dtype, v.dtype), scale
        return y * scale

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        q, k, v, inner = ctx.saved_tensors
        q, k, v = (unpack(t, grad.dtype) for t in (q, k, v))
        inner = inner.to(grad.dtype)
        g = grad * ctx.scale
        if q.shape[-2] > q.shape[-1]:  # y = q @ inner, inner = k^T v
            gq = g @ inner.transpose(-2, -1)
            g_inner = q.transpose(-2, -1) @ g
            gk = v @ g_inner.transpose(-2, -1)
            gv = k @ g_inner
        else:  # y = inner @ v, inner = q k^T
            g_inner = g @ v.transpose(-2, -1)
            gv = inner.transpose(-2, -1) @ g
            gq = g_inner @ k
            gk = g_inner.transpose(-2, -1) @ q
        return (*(t.to(d) for t, d in zip((gq, gk, gv), ctx.dtypes, strict=True)), None)


def spike_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float):
    """``(q k^T) v * scale`` over (..., L, d) heads, saving binary q, k, v as ``torch.bool``.

    Callers zero padded keys and values before the call (a multiplication by the 0/1 mask
    keeps them binary)."""
    if not _recording(q, k, v):
        return _attend(q, k, v)[0] * scale
    return _SpikeAttention.apply(q, k, v, scale)

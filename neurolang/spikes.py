"""Spikes kept for the backward pass in the smallest exact dtype.

Autograd saves the inputs of a matrix product to compute the weight gradient. Where those
inputs are spikes, a float32 copy spends 4 bytes (float64: 8) on one of two or three values.
The products of the models that read spikes use the functions here instead of ``F.linear``
and ``@`` while gradients are recorded:

:func:`spike_linear`
    ``y = x W^T + b`` for spike inputs (the Spikformer's attention output and second MLP
    projections; SpikeLM's attention output and both FFN projections);
:func:`spike_attention`
    the Spikformer's ``(Q K^T) V * scale`` with spiking Q, K, V and the padding mask.

Their forward is the plain product. What they save depends on the spike format of the
population that feeds them (:func:`spike_format`, from its neuron kind):

``"binary"`` (LIF: 0/1)
    ``torch.bool``, one byte a spike;
``"ternary"`` (elastic bi-spiking: ``alpha[t] * {-1, 0, 1}``, one amplitude per step)
    the signs as ``torch.int8`` and one amplitude per row of the folded ``(T*B, ...)`` layout
    (the row's largest ``|x|``, which is ``alpha[t]``).

Both are exact: :func:`unpack` gives back the same values (``+-alpha * 1`` is exact), so the
backward computes the same products on the same numbers (the same gradients up to the
summation order of the matrix kernels: within 1e-12 in float64, ``tests/test_spikes.py``).
The inputs must have the declared format: the model builders pass the format of the kind of
the population feeding each product, never for real-valued inputs. Testing every input instead
would cost more than the conversions (an elementwise comparison is slower on CPU than the bool
round trip). Without gradients (evaluation, ``torch.inference_mode``) the functions are the
plain product and save nothing.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from neurolang.neurons import NEURON_KINDS, NeuronSpec

FORMATS = ("binary", "ternary")


def spike_format(spec: NeuronSpec) -> str:
    """The format of the spikes of ``spec``'s kind: ``"binary"`` (0/1) or ``"ternary"``
    (``alpha[t] * {-1, 0, 1}``)."""
    kind = NEURON_KINDS[spec.kind]
    if kind.binary:
        return "binary"
    if kind.amplitude:
        return "ternary"
    raise ValueError(f"neuron kind {spec.kind!r} declares no spike format")


def pack(x: torch.Tensor, fmt: str = "binary") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Spikes ``x`` of format ``fmt`` as (codes, amplitudes): ``(bool, None)`` for binary,
    ``(int8 signs, (rows, 1, ...) amplitudes)`` for ternary, rows along dim 0."""
    if fmt == "binary":
        return x.to(torch.bool), None
    if fmt == "ternary":
        rows = tuple(range(1, x.dim()))
        amplitude = x.abs().amax(dim=rows, keepdim=True)  # 5x faster than an inf-norm on CPU
        return torch.sign(x).to(torch.int8), amplitude
    raise ValueError(f"unknown spike format {fmt!r}; known: {', '.join(FORMATS)}")


def unpack(codes: torch.Tensor, amplitude: torch.Tensor | None,
           dtype: torch.dtype) -> torch.Tensor:
    """Undo :func:`pack`. (Binary through ``uint8``: on CPU that conversion is about 3x
    faster than ``bool -> float``.)"""
    if amplitude is None:
        return codes.view(torch.uint8).to(dtype)
    return codes.to(dtype).mul_(amplitude.to(dtype))


def _recording(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# Under autocast the forward products run in the autocast dtype; the backward then computes in
# the dtype of the incoming gradient and returns each gradient in its input's dtype, as the
# cast nodes autocast records would.


class _SpikeLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, fmt):
        ctx.save_for_backward(*pack(x, fmt), weight)
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        return torch.nn.functional.linear(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        codes, amplitude, weight = ctx.saved_tensors
        x_dtype, w_dtype, b_dtype = ctx.dtypes
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = (grad @ weight.to(grad.dtype)).to(x_dtype)
        flat = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[1]:
            x = unpack(codes, amplitude, grad.dtype)
            gw = (flat.t() @ x.reshape(-1, x.shape[-1])).to(w_dtype)
        if b_dtype is not None and ctx.needs_input_grad[2]:
            gb = flat.sum(0).to(b_dtype)
        return gx, gw, gb, None


def spike_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 fmt: str | None = "binary"):
    """``F.linear(x, weight, bias)``, keeping spikes ``x`` of format ``fmt`` packed
    (:func:`pack`) for backward; ``fmt=None``: a real-valued ``x``, the plain product."""
    if fmt is None or not _recording(x, weight, bias):
        return torch.nn.functional.linear(x, weight, bias)
    return _SpikeLinear.apply(x, weight, bias, fmt)


def _attend(q, k, v):
    """``(q k^T) v`` in the cheaper association; returns (y, the inner product)."""
    if q.shape[-2] > q.shape[-1]:  # L > d: Q (K^T V), inner (d x d)
        inner = k.transpose(-2, -1) @ v
        return q @ inner, inner
    inner = q @ k.transpose(-2, -1)  # (Q K^T) V, inner (L x L)
    return inner @ v, inner


class _SpikeAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, scale, fmt):
        y, inner = _attend(q, k, v)
        ctx.save_for_backward(*pack(q, fmt), *pack(k, fmt), *pack(v, fmt), inner)
        ctx.dtypes, ctx.scale = (q.dtype, k.dtype, v.dtype), scale
        return y * scale

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        *packed, inner = ctx.saved_tensors
        q, k, v = (unpack(packed[i], packed[i + 1], grad.dtype) for i in (0, 2, 4))
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
        grads = (t.to(d) for t, d in zip((gq, gk, gv), ctx.dtypes, strict=True))
        return (*grads, None, None)


def spike_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                    fmt: str | None = "binary"):
    """``(q k^T) v * scale`` over (rows, heads, L, d), keeping spikes q, k, v of format
    ``fmt`` packed (:func:`pack`) for backward; ``fmt=None``: the plain products.

    Callers zero padded keys and values before the call (a multiplication by the 0/1 mask
    keeps the format)."""
    if fmt is None or not _recording(q, k, v):
        return _attend(q, k, v)[0] * scale
    return _SpikeAttention.apply(q, k, v, scale, fmt)

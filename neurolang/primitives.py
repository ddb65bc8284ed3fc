"""The primitives a spiking language model is built from.

Every primitive is a small ``torch.nn.Module`` that knows no backend and no file format. The
model is a graph of these (``neurolang.graph.trace``): exporters and simulators walk that
graph, backends replace only what must differ, the dynamics of :class:`SpikingNeuron`.

Layout: non-neuron layers see the time steps folded into the batch, ``(T*B, L, D)`` with the
step index major, so one matmul covers all steps; only neurons unfold ``(T, B, L, D)`` and
step through time. ``mask`` is the padding mask folded the same way, ``(T*B, L)``, 1 for real
tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from neurolang.neurons import NEURON_KINDS, NeuronSpec, run_reference
from neurolang.spikes import spike_attention, spike_linear
from neurolang.surrogate import spike


class Primitive(nn.Module):
    """Base class: a leaf of the model graph. ``op`` names what it computes."""

    op: str = "primitive"


class TokenEmbedding(Primitive):
    """``e = E[ids]``: the word-embedding lookup, (B, L) ids -> (B, L, D)."""

    op = "embedding"

    def __init__(self, vocab_size: int, hidden_size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(input_ids, self.weight)


class PositionEmbedding(Primitive):
    """``e + P[0:L]``: a learned position embedding added to the token embedding."""

    op = "position_embedding"

    def __init__(self, max_length: int, hidden_size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_length, hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.weight.shape[0]:
            raise ValueError(
                f"sequence of {x.shape[1]} tokens is longer than max_length {self.weight.shape[0]}"
            )
        return x + self.weight[: x.shape[1]]


class Encode(Primitive):
    """Direct coding over ``time_steps``: (B, L, D) -> (T*B, L, D), the same input each step.

    With ``encoding="heaviside"`` the input is spiked first, ``H(x)`` with the comparison and
    surrogate of ``spec`` (SpikeBERT's binary encoder input).
    """

    op = "encode"

    def __init__(self, time_steps: int, encoding: str, spec: NeuronSpec):
        super().__init__()
        self.time_steps, self.encoding, self.spec = time_steps, encoding, spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoding == "heaviside":
            s = self.spec
            x = spike(x, s.surrogate, s.surrogate_alpha, s.threshold_comparison)
        return x.unsqueeze(0).expand(self.time_steps, *x.shape).reshape(-1, *x.shape[1:])


class Linear(Primitive):
    """``y = x W^T + b`` applied to every token at every step (one weight matrix).

    ``spikes`` marks a Linear that reads a spiking population's output and names its format
    (``"binary"``, ``"ternary"``: :func:`neurolang.spikes.spike_format`): in training it keeps
    that input for backward packed into one byte a spike (:func:`neurolang.spikes.spike_linear`);
    the results and gradients are the same. ``None``: a real-valued input.
    """

    op = "linear"

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 spikes: str | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.spikes = spikes
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spike_linear(x, self.weight, self.bias, self.spikes)


class Norm(Primitive):
    """Per-feature normalisation of each token: LayerNorm or BatchNorm.

    ``kind="layer"``: ``y = (x - mean_D x) / sqrt(var_D x + eps) * weight + bias`` per token.
    ``kind="batch"``: ``y = (x - mu) / sqrt(sigma^2 + eps) * weight + bias`` with per-feature
    statistics over the real (unmasked) tokens of all steps in training, and the running
    estimates (momentum 0.1, unbiased variance) in evaluation, where it is the affine map
    ``y = x * scale + shift`` (:meth:`affine`, computed as the NIR export computes it) that
    folds into the preceding :class:`Linear`. ``folded`` (set by
    :meth:`~neurolang.models.base.SpikingClassifier.fold_batch_norms`): that Linear already
    holds it, so it passes its input on, in evaluation only.
    """

    op = "norm"

    def __init__(self, kind: str, features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.kind, self.features, self.eps, self.momentum = kind, features, eps, momentum
        self.folded = False
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        if kind == "batch":
            self.register_buffer("running_mean", torch.zeros(features))
            self.register_buffer("running_var", torch.ones(features))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "layer":
            return nn.functional.layer_norm(x, (self.features,), self.weight, self.bias, self.eps)
        if self.folded:
            if self.training:
                raise RuntimeError("this BatchNorm is folded into the Linear before it (an "
                                   "inference form): load the model again to train it")
            return x
        if self.training:
            real = mask.reshape(-1).bool()
            tokens = x.reshape(-1, self.features)[real]
            mean = tokens.mean(0)
            var = tokens.var(0, unbiased=False)
            with torch.no_grad():
                n = tokens.shape[0]
                unbiased = var * n / max(n - 1, 1)
                # under autocast the statistics may be bfloat16; the estimates stay float32
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype),
                                        self.momentum)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype),
                                       self.momentum)
            return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        scale, shift = self.affine()
        return x * scale + shift

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The evaluation-mode BatchNorm as ``y = x * scale + shift``."""
        if self.kind != "batch":
            raise ValueError("only a BatchNorm is an affine map per feature")
        scale = self.weight / torch.sqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale


class SpikingNeuron(Primitive):
    """A population of spiking neurons: (T*B, ...) input currents -> (T*B, ...) spikes.

    ``spec`` defines what it computes (``neurolang.neurons``). ``dynamics`` runs the
    population over the unfolded (T, B, ...) input; by default the reference step function of
    the kind, replaced by a backend's lowering (``neurolang.compile``). Neuron parameters that
    are learned live here, never in ``dynamics``, so every backend shares one ``state_dict``.

    Kinds with graded spikes (``elastic_bispike``) hold their amplitudes here: ``alpha``, one
    per time step (a buffer, or a parameter with ``spec.learn_alpha``), and
    ``alpha_initialized``; both are in the ``state_dict``. The first forward call sets
    ``alpha`` from its input (SpikeLM: ``2 * mean |u[t]|``, the kind's ``init_amplitude``),
    the same on every backend; the dynamics are then called as ``dynamics(x_seq, alpha)``.
    """

    op = "neuron"

    def __init__(self, spec: NeuronSpec, time_steps: int):
        super().__init__()
        self.spec, self.time_steps = spec, time_steps
        self.kind = NEURON_KINDS[spec.kind]
        if self.kind.amplitude:
            alpha = torch.ones(time_steps)
            if spec.learn_alpha:
                self.alpha = nn.Parameter(alpha)
            else:
                self.register_buffer("alpha", alpha)
            self.register_buffer("alpha_initialized", torch.zeros((), dtype=torch.bool))
        self.set_dynamics(ReferenceDynamics(spec))

    @property
    def dynamics(self) -> nn.Module:
        return self.__dict__["_dynamics"]

    def set_dynamics(self, dynamics: nn.Module) -> None:
        """Install a lowering. It is kept out of ``state_dict`` and ``.to()``: dynamics hold
        no learned state and follow the dtype and device of their input."""
        object.__setattr__(self, "_dynamics", dynamics)

    @torch.no_grad()
    def initialize_alpha(self, x_seq: torch.Tensor) -> None:
        """Set ``alpha`` from the (T, B, ...) input currents ``x_seq`` (done by the first
        forward call; call it again, or :meth:`reset_alpha`, to re-initialise)."""
        alpha = self.kind.init_amplitude(x_seq.detach(), self.spec, dtype=self.alpha.dtype)
        self.alpha.copy_(alpha.to(self.alpha.device))
        self.alpha_initialized.fill_(True)

    def reset_alpha(self) -> None:
        """Have the next forward call set ``alpha`` from its input again."""
        self.alpha_initialized.fill_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = x.reshape(self.time_steps, -1, *x.shape[1:])
        if not self.kind.amplitude:
            return self.dynamics(x_seq).reshape(x.shape)
        if not bool(self.alpha_initialized):
            self.initialize_alpha(x_seq)
        return self.dynamics(x_seq, self.alpha.to(x_seq.dtype)).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"{self.spec}, dynamics={type(self.dynamics).__name__}"


class ReferenceDynamics(nn.Module):
    """The reference step function of ``spec.kind`` looped over time (no backend)."""

    def __init__(self, spec: NeuronSpec):
        super().__init__()
        self.spec = spec

    def forward(self, x_seq: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        return run_reference(x_seq, self.spec, alpha)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(T*B, L, D) -> (T*B, heads, L, D / heads)."""
    tb, length, width = x.shape
    return x.reshape(tb, length, heads, width // heads).transpose(1, 2)


class SpikingAttentionProduct(Primitive):
    """SpikeBERT's attention without softmax: ``Y = (Q K^T) V * scale`` per head.

    Q, K, V are (T*B, L, D) spikes, split into ``num_heads`` heads of D / num_heads. Padded
    keys and values (``mask == 0``) are zeroed, so a token attends to real tokens only. With
    binary spikes every product is an integer count and the result is exact in either
    association; ``Q (K^T V)`` is used when it is cheaper (L > D / heads). ``spikes``, the
    format of Q, K, V (``neurolang.spikes``), has training keep them for backward packed into
    one byte a spike (:func:`neurolang.spikes.spike_attention`); ``None``: plain products.
    """

    op = "attention_product"

    def __init__(self, num_heads: int, scale: float, masked: bool, spikes: str | None = None):
        super().__init__()
        self.num_heads, self.scale, self.masked = num_heads, scale, masked
        self.spikes = spikes

    def forward(self, q, k, v, mask: torch.Tensor) -> torch.Tensor:
        tb, length, width = q.shape
        heads = self.num_heads
        q, k, v = (split_heads(x, heads) for x in (q, k, v))
        if self.masked:
            keep = mask.to(k.dtype)[:, None, :, None]
            k, v = k * keep, v * keep
        y = spike_attention(q, k, v, self.scale, self.spikes)
        return y.transpose(1, 2).reshape(tb, length, width)


class CoincidenceSum(Primitive):
    """The key-value half of spike-driven self-attention (SDSA, Yao et al. 2023):
    ``g = scale * sum_tokens K * V`` per channel, (T*B, L, D) spikes -> (T*B, 1, D).

    ``K * V`` of spikes is an AND (with ternary spikes a sign product); the sum over the real
    tokens (``mask``, if ``masked``) is an addition per coincidence, so the cost is linear in
    the sequence length. A spiking neuron then turns ``g`` into one gate spike per channel.
    """

    op = "coincidence_sum"

    def __init__(self, scale: float, masked: bool):
        super().__init__()
        self.scale, self.masked = scale, masked

    def forward(self, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        kv = k * v
        if self.masked:
            kv = kv * mask.to(kv.dtype).unsqueeze(-1)
        return kv.sum(1, keepdim=True) * self.scale


class SpikeGate(Primitive):
    """The query half of SDSA: ``Y = Q * G``, the spikes of Q kept in the channels whose gate
    spiked; (T*B, L, D) and (T*B, 1, D) spikes -> (T*B, L, D) spikes (a mask: no arithmetic).
    """

    op = "spike_gate"

    def __init__(self, spikes: str = "binary"):
        super().__init__()
        self.spikes = spikes  # the format of Q's spikes, which the output keeps

    def forward(self, q: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return q * gate


class SoftmaxAttention(Primitive):
    """Real-valued multi-head attention (BERT's): ``Y = softmax(Q K^T / sqrt(d_h)) V`` per head.

    Q, K, V are (T*B, L, D), split into ``num_heads`` heads of ``d_h = D / num_heads``; every
    step attends within itself (the steps are folded into the batch). With ``masked``, padded
    keys (``mask == 0``) get the lowest finite score, so their weight is 0 for any sequence
    with a real token. No spikes: Q, K, V may be real-valued or spikes of any amplitude.
    """

    op = "softmax_attention"

    def __init__(self, num_heads: int, masked: bool):
        super().__init__()
        self.num_heads, self.masked = num_heads, masked

    def forward(self, q, k, v, mask: torch.Tensor) -> torch.Tensor:
        tb, length, width = q.shape
        heads = self.num_heads
        q, k, v = (split_heads(x, heads) for x in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) * (width // heads) ** -0.5
        if self.masked:
            padded = (mask == 0)[:, None, None, :]
            scores = scores.masked_fill(padded, torch.finfo(scores.dtype).min)
        y = torch.softmax(scores, dim=-1) @ v
        return y.transpose(1, 2).reshape(tb, length, width)


class GELU(Primitive):
    """``y = x * Phi(x)``, the exact (erf) GELU of BERT, elementwise."""

    op = "gelu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(x)


class TokenMean(Primitive):
    """Mean over tokens: (T*B, L, D) -> (T*B, D); over real tokens only if ``masked``."""

    op = "token_mean"

    def __init__(self, masked: bool):
        super().__init__()
        self.masked = masked

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.masked:
            return x.mean(1)
        weights = mask.to(x.dtype).unsqueeze(-1)
        return (x * weights).sum(1) / weights.sum(1).clamp(min=1)


class TimeMean(Primitive):
    """Mean over time steps: (T*B, ...) -> (B, ...)."""

    op = "time_mean"

    def __init__(self, time_steps: int):
        super().__init__()
        self.time_steps = time_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.time_steps, -1, *x.shape[1:]).mean(0)


class RepresentationTap(Primitive):
    """SpikeBERT's distillation tap after a block: ``LN(W mean_T(x) + b)``, (B, L, D).

    Used by the distillation losses only; it is not on the path to the logits.
    """

    op = "representation_tap"

    def __init__(self, time_steps: int, hidden_size: int, eps: float):
        super().__init__()
        self.time_mean = TimeMean(time_steps)
        self.linear = Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(self.time_mean(x)))


def fold_mask(attention_mask: torch.Tensor, time_steps: int) -> torch.Tensor:
    """(B, L) padding mask -> (T*B, L), matching the folded layout."""
    return attention_mask.unsqueeze(0).expand(time_steps, *attention_mask.shape).reshape(
        -1, attention_mask.shape[-1]
    )

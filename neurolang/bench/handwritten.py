"""The hand-written network of ``neurolang bench``: the Spikformer written directly in plain
PyTorch (``nn.Linear``, ``nn.LayerNorm``, no neurolang layer), with neurolang's parameter
names so that it loads a neurolang model's ``state_dict``.

With ``fused=True`` it runs around the same kernels as the ``torch`` backend (the fused LIF,
the products that keep binary spikes as ``torch.bool``): the difference to ``torch`` is what
neurolang's abstraction costs. With ``fused=False`` its neurons run the reference step
function step by step and its products are plain ones (float spikes kept for backward), as
SpikeBERT's reference code runs (SpikingJelly's multi-step LIF in its ``torch`` back-end).
"""

from __future__ import annotations

import torch
from torch import nn

from neurolang.backends.pytorch import lif_multistep
from neurolang.config import SpikformerConfig
from neurolang.neurons import NeuronSpec, run_reference
from neurolang.spikes import spike_attention, spike_linear
from neurolang.surrogate import spike


class PlainLIF(nn.Module):
    """Multi-step LIF over (T*B, ...) inputs, one autograd step at a time (SpikingJelly's
    ``LIFNode`` in multi-step mode with its ``torch`` back-end)."""

    def __init__(self, spec: NeuronSpec, time_steps: int, fused: bool):
        super().__init__()
        self.spec, self.time_steps, self.fused = spec, time_steps, fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = x.reshape(self.time_steps, -1, *x.shape[1:])
        if self.fused:
            return lif_multistep(x_seq, self.spec).reshape(x.shape)
        return run_reference(x_seq, self.spec).reshape(x.shape)

class _Projection(nn.Module):
    def __init__(self, d_in: int, d_out: int, eps: float, spec: NeuronSpec, steps: int,
                 fused: bool, spike_input: bool = False):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.norm = nn.LayerNorm(d_out, eps=eps)
        self.neuron = PlainLIF(spec, steps, fused)
        self.bool_spikes = fused and spike_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bool_spikes:
            return self.neuron(self.norm(spike_linear(x, self.linear.weight,
                                                      self.linear.bias)))
        return self.neuron(self.norm(self.linear(x)))

class _Attention(nn.Module):
    def __init__(self, c: SpikformerConfig, fused: bool):
        super().__init__()
        d, eps, steps = c.hidden_size, c.norm_eps, c.time_steps
        self.query = _Projection(d, d, eps, c.neuron, steps, fused)
        self.key = _Projection(d, d, eps, c.neuron, steps, fused)
        self.value = _Projection(d, d, eps, c.neuron, steps, fused)
        self.attention_neuron = PlainLIF(c.attention_neuron, steps, fused)
        self.output = _Projection(d, d, eps, c.neuron, steps, fused, spike_input=True)
        self.heads, self.scale, self.masked = c.num_heads, c.attention_scale, c.padding_mask
        self.fused = fused

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query(x), self.key(x), self.value(x)
        tb, length, width = q.shape
        q, k, v = (t.reshape(tb, length, self.heads, width // self.heads).transpose(1, 2)
                   for t in (q, k, v))
        if self.masked:
            keep = mask.to(k.dtype)[:, None, :, None]
            k, v = k * keep, v * keep
        if self.fused:
            y = spike_attention(q, k, v, self.scale)
        elif length > width // self.heads:
            y = q @ (k.transpose(-2, -1) @ v) * self.scale
        else:
            y = (q @ k.transpose(-2, -1)) @ v * self.scale
        y = y.transpose(1, 2).reshape(tb, length, width)
        return self.output(self.attention_neuron(y))

class _Block(nn.Module):
    def __init__(self, c: SpikformerConfig, fused: bool):
        super().__init__()
        self.attention = _Attention(c, fused)
        self.mlp = nn.Module()
        self.mlp.fc1 = _Projection(c.hidden_size, c.mlp_hidden_size, c.norm_eps, c.neuron,
                                   c.time_steps, fused)
        self.mlp.fc2 = _Projection(c.mlp_hidden_size, c.hidden_size, c.norm_eps, c.neuron,
                                   c.time_steps, fused, spike_input=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(x, mask)
        return x + self.mlp.fc2(self.mlp.fc1(x))

class HandwrittenSpikformer(nn.Module):
    """SpikeBERT's Spikformer written directly in PyTorch: ``forward(ids, mask) -> logits``.

    Same computation, in the same floating-point order, and the same parameter names as
    :class:`neurolang.Spikformer` (without the distillation taps), so it loads that model's
    ``state_dict`` (:meth:`load_from`) and returns the same logits. LayerNorm models only.
    ``fused``: the kernels of the ``torch`` backend (fused LIF, spikes kept as
    ``torch.bool`` for backward), else the stepwise :class:`PlainLIF` and plain products.
    LIF models only (binary spikes).
    """

    def __init__(self, config: SpikformerConfig, fused: bool = True):
        super().__init__()
        if config.norm != "layer":
            raise ValueError("the hand-written baseline implements LayerNorm models only")
        if {config.neuron.kind, config.attention_neuron.kind} != {"lif"}:
            raise ValueError("the hand-written baseline implements LIF models only")
        self.config = c = config
        self.embedding = nn.Embedding(c.vocab_size, c.hidden_size)
        if c.position_embedding:
            self.position = nn.Module()
            self.position.weight = nn.Parameter(torch.empty(c.max_length, c.hidden_size))
        self.blocks = nn.ModuleList(_Block(c, fused) for _ in range(c.depth))
        self.head = nn.Module()
        self.head.norm = nn.LayerNorm(c.hidden_size, eps=c.norm_eps)
        self.head.classifier = nn.Linear(c.hidden_size, c.num_labels)

    def load_from(self, model: nn.Module) -> HandwrittenSpikformer:
        """Load the weights of a neurolang Spikformer (strict, its taps aside)."""
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("taps.")}
        self.load_state_dict(state, strict=True)
        return self

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        c = self.config
        steps = c.time_steps
        mask = attention_mask.unsqueeze(0).expand(steps, *attention_mask.shape)
        mask = mask.reshape(-1, attention_mask.shape[-1])
        x = self.embedding(ids)
        if c.position_embedding:
            x = x + self.position.weight[: x.shape[1]]
        if c.encoding == "heaviside":
            n = c.neuron
            x = spike(x, n.surrogate, n.surrogate_alpha, n.threshold_comparison)
        x = x.unsqueeze(0).expand(steps, *x.shape).reshape(-1, *x.shape[1:])
        for block in self.blocks:
            x = block(x, mask)
        x = self.head.norm(x)
        if c.padding_mask:
            weights = mask.to(x.dtype).unsqueeze(-1)
            x = (x * weights).sum(1) / weights.sum(1).clamp(min=1)
        else:
            x = x.mean(1)
        logits = self.head.classifier(x)
        return logits.reshape(steps, -1, logits.shape[-1]).mean(0)

"""SpikeBERT's Spikformer for language (Lv et al., arXiv 2308.15122), in the paper's order.

    x = Embedding(ids) [+ position]             word embedding (no position in SpikeBERT)
    x = Encode(x)                               repeat over T steps [, Heaviside]
    for each block:
        x = x + SpikingSelfAttention(x)         Q, K, V = LIF(Norm(Linear x)); Y = (Q K^T) V * s
        x = x + MLP(x)                          LIF(Norm(W2 LIF(Norm(W1 x))))
    logits = mean_T Linear(mean_tokens Norm(x))

Built from ``neurolang.primitives`` only; backends lower the neurons (``neurolang.compile``).
The embedding, encoding, head and taps are every family's (``neurolang.models.base``).
"""

from __future__ import annotations

import torch
from torch import nn

from neurolang.config import SpikformerConfig
from neurolang.models.base import SpikingClassifier
from neurolang.primitives import Linear, Norm, SpikingAttentionProduct, SpikingNeuron
from neurolang.spikes import spike_format


class SpikingProjection(nn.Module):
    """``LIF(Norm(W x + b))``: the unit every projection of the Spikformer is made of."""

    def __init__(self, config: SpikformerConfig, in_features: int, out_features: int,
                 spikes: str | None = None):
        super().__init__()
        self.linear = Linear(in_features, out_features, spikes=spikes)
        self.norm = Norm(config.norm, out_features, config.norm_eps)
        self.neuron = SpikingNeuron(config.neuron, config.time_steps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.norm(self.linear(x), mask))


class SpikingSelfAttention(nn.Module):
    """Spiking self-attention: binary Q, K, V; ``(Q K^T) V * scale``, no softmax."""

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        d = config.hidden_size
        self.query = SpikingProjection(config, d, d)
        self.key = SpikingProjection(config, d, d)
        self.value = SpikingProjection(config, d, d)
        self.product = SpikingAttentionProduct(
            config.num_heads, config.attention_scale, config.padding_mask,
            spikes=spike_format(config.neuron),
        )
        self.attention_neuron = SpikingNeuron(config.attention_neuron, config.time_steps)
        self.output = SpikingProjection(config, d, d, spikes=spike_format(config.attention_neuron))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query(x, mask), self.key(x, mask), self.value(x, mask)
        attended = self.attention_neuron(self.product(q, k, v, mask))
        return self.output(attended, mask)


class MLP(nn.Module):
    """Two spiking projections, D -> mlp_ratio * D -> D."""

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        self.fc1 = SpikingProjection(config, config.hidden_size, config.mlp_hidden_size)
        self.fc2 = SpikingProjection(config, config.mlp_hidden_size, config.hidden_size,
                                     spikes=spike_format(config.neuron))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x, mask), mask)


class Block(nn.Module):
    """``x = x + SSA(x); x = x + MLP(x)``: residual sums, so the stream is integer-valued."""

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        self.attention = SpikingSelfAttention(config)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(x, mask)
        return x + self.mlp(x, mask)


class Spikformer(SpikingClassifier):
    """The spiking Transformer classifier (the interface of :class:`SpikingClassifier`)."""

    def __init__(self, config: SpikformerConfig):
        if config.block != "spikformer":
            raise ValueError(f"Spikformer needs block='spikformer', got {config.block!r}; "
                             "neurolang.models.build_model(config) builds any family")
        super().__init__(config)
        self.add_encoding()
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.finish()

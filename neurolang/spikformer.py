"""SpikeBERT's Spikformer for language (Lv et al., arXiv 2308.15122), in the paper's order.

    x = Embedding(ids) [+ position]             word embedding (no position in SpikeBERT)
    x = Encode(x)                               repeat over T steps [, Heaviside]
    for each block:
        x = x + SpikingSelfAttention(x)         Q, K, V = LIF(Norm(Linear x)); Y = (Q K^T) V * s
        x = x + MLP(x)                          LIF(Norm(W2 LIF(Norm(W1 x))))
    logits = mean_T Linear(mean_tokens Norm(x))

Built from ``neurolang.primitives`` only; backends lower the neurons (``neurolang.compile``).
"""

from __future__ import annotations

import torch
from torch import nn

from neurolang.config import SpikformerConfig
from neurolang.primitives import (
    Encode,
    Linear,
    Norm,
    PositionEmbedding,
    RepresentationTap,
    SpikingAttentionProduct,
    SpikingNeuron,
    TimeMean,
    TokenEmbedding,
    TokenMean,
    fold_mask,
)
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


class ClassificationHead(nn.Module):
    """Norm, mean over (real) tokens, Linear at each step, mean of the logits over T."""

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        self.norm = Norm(config.norm, config.hidden_size, config.norm_eps)
        self.token_mean = TokenMean(config.padding_mask)
        self.classifier = Linear(config.hidden_size, config.num_labels)
        self.time_mean = TimeMean(config.time_steps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits_per_step = self.classifier(self.token_mean(self.norm(x, mask), mask))
        return self.time_mean(logits_per_step), logits_per_step


class Spikformer(nn.Module):
    """The spiking Transformer classifier. ``forward`` returns a dict:

    ``logits`` (B, C); ``logits_per_step`` (T*B, C); with ``output_representations``, also
    ``representations``: SpikeBERT's taps ``rep_i`` (B, L, D), one per block.

    ``Spikformer(config)`` builds the model ``config.block`` names: with ``"spikelm"`` it
    returns a :class:`neurolang.spikelm.SpikeLM` (same interface), so every caller that builds
    a model from a configuration (training, checkpoints, backends, parity) builds either.
    """

    def __new__(cls, config: SpikformerConfig | None = None, *args, **kwargs):
        if cls is Spikformer and config is not None and config.block == "spikelm":
            from neurolang.spikelm import SpikeLM

            return SpikeLM(config)
        return super().__new__(cls)

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        self.config = config
        self.embedding = TokenEmbedding(config.vocab_size, config.hidden_size)
        if config.position_embedding:
            self.position = PositionEmbedding(config.max_length, config.hidden_size)
        self.encode = Encode(config.time_steps, config.encoding, config.neuron)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.head = ClassificationHead(config)
        if config.representation_taps:
            self.taps = nn.ModuleList(
                RepresentationTap(config.time_steps, config.hidden_size, config.norm_eps)
                for _ in range(config.depth)
            )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """SpikeBERT's init: Linear and embeddings N(0, initializer_range), biases 0, norms 1/0."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (Linear, TokenEmbedding, PositionEmbedding)):
                nn.init.normal_(module.weight, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (Norm, nn.LayerNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_representations: bool = False,
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        x, attention_mask = embed_tokens(self, input_ids, attention_mask, output_representations)
        x = self.encode(x)
        mask = fold_mask(attention_mask, self.config.time_steps)
        return blocks_and_head(self, x, mask, output_representations)


def embed_tokens(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                 output_representations: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """What precedes the encoding in every block type (``Spikformer``, ``SpikeLM``): the
    argument checks, the default all-ones mask, the word (and position) embedding. Returns
    the (B, L, D) embeddings and the (B, L) mask."""
    if output_representations and not model.config.representation_taps:
        raise ValueError("this model was built with representation_taps=False")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    x = model.embedding(input_ids)
    if model.config.position_embedding:
        x = model.position(x)
    return x, attention_mask


def blocks_and_head(model: nn.Module, x: torch.Tensor, mask: torch.Tensor,
                    output_representations: bool) -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """What follows the encoding in every block type (``Spikformer``, ``SpikeLM``): the
    blocks, each block's representation tap when asked, and the classification head."""
    representations = []
    for i, block in enumerate(model.blocks):
        x = block(x, mask)
        if output_representations:
            representations.append(model.taps[i](x))
    logits, logits_per_step = model.head(x, mask)
    out = {"logits": logits, "logits_per_step": logits_per_step}
    if output_representations:
        out["representations"] = representations
    return out

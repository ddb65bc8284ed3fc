"""The spike-driven family: the Spike-driven Transformer's membrane shortcut for language
(Yao et al., NeurIPS 2023; Meta-SpikeFormer, ICLR 2024; SpikingMiniLM, 2024).

The residual stream ``u`` is a membrane: it only ever enters additions, and a spiking neuron
stands before every weight multiplication, so every Linear and both factors of every
attention product read spikes::

    u = Norm(Embedding(ids) [+ position])           per token, once (a BatchNorm folds
                                                    into the embedding table)
    u = Encode(u)                                   repeated over T steps
    for each block:
        s = SN(u)                                   the stream's spikes
        Q, K, V = SN(Norm(W_q s)), SN(Norm(W_k s)), SN(Norm(W_v s))
        A = SN_att((Q K^T) V * scale)               SSA (SpikeBERT's attention), or
        A = Q * SN_att(scale * sum_tokens K * V)    SDSA: a gate per channel, linear in L
        u = u + Norm(W_o A)                         the shortcut adds, never multiplies
        u = u + Norm(W_2 SN(Norm(W_1 SN(u))))
    logits = mean_T mean_tokens W_c SN(u)           the head reads spikes too

``SN`` is ``config.neuron`` (binary LIF, or ternary elastic bi-spikes), ``SN_att``
``config.attention_neuron``; ``Norm`` is ``config.norm``: ``"batch"`` folds into the Linear
before it at inference (and in the NIR export) and costs nothing, ``"layer"`` is counted.
``config.attention`` picks SSA or SDSA. Padding: keys and values of padded tokens are zeroed
in both attentions and the head pools real tokens only, as in the Spikformer. SpikeBERT's
distillation taps read ``u`` after each block.
"""

from __future__ import annotations

import torch
from torch import nn

from neurolang.config import SpikformerConfig
from neurolang.models.base import SpikingClassifier
from neurolang.primitives import (
    CoincidenceSum,
    Linear,
    Norm,
    SpikeGate,
    SpikingAttentionProduct,
    SpikingNeuron,
    TimeMean,
    TokenMean,
)
from neurolang.spikes import spike_format


class SpikeDrivenProjection(nn.Module):
    """``Norm(W s + b)`` of spikes ``s``; with ``neuron``, ``SN(Norm(W s + b))``."""

    def __init__(self, config: SpikformerConfig, in_features: int, out_features: int,
                 spikes: str, neuron: bool):
        super().__init__()
        self.linear = Linear(in_features, out_features, spikes=spikes)
        self.norm = Norm(config.norm, out_features, config.norm_eps)
        if neuron:
            self.neuron = SpikingNeuron(config.neuron, config.time_steps)

    def forward(self, s: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.linear(s), mask)
        return self.neuron(y) if hasattr(self, "neuron") else y


class SpikeDrivenSelfAttention(nn.Module):
    """``Norm(W_o A)`` with ``A`` the SSA or SDSA of the spikes of ``SN(u)``."""

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        d, fmt = config.hidden_size, spike_format(config.neuron)
        self.stream_neuron = SpikingNeuron(config.neuron, config.time_steps)
        self.query = SpikeDrivenProjection(config, d, d, fmt, neuron=True)
        self.key = SpikeDrivenProjection(config, d, d, fmt, neuron=True)
        self.value = SpikeDrivenProjection(config, d, d, fmt, neuron=True)
        self.sdsa = config.attention == "sdsa"
        if self.sdsa:
            self.coincidence = CoincidenceSum(config.attention_scale, config.padding_mask)
            self.gate_neuron = SpikingNeuron(config.attention_neuron, config.time_steps)
            self.gate = SpikeGate(fmt)
            out_format = fmt
        else:
            self.product = SpikingAttentionProduct(config.num_heads, config.attention_scale,
                                                   config.padding_mask, spikes=fmt)
            self.attention_neuron = SpikingNeuron(config.attention_neuron, config.time_steps)
            out_format = spike_format(config.attention_neuron)
        self.output = SpikeDrivenProjection(config, d, d, out_format, neuron=False)

    def forward(self, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = self.stream_neuron(u)
        q, k, v = self.query(s, mask), self.key(s, mask), self.value(s, mask)
        if self.sdsa:
            attended = self.gate(q, self.gate_neuron(self.coincidence(k, v, mask)))
        else:
            attended = self.attention_neuron(self.product(q, k, v, mask))
        return self.output(attended, mask)


class SpikeDrivenMLP(nn.Module):
    """``Norm(W_2 SN(Norm(W_1 SN(u))))``, hidden width ``mlp_ratio * D``."""

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        fmt = spike_format(config.neuron)
        self.stream_neuron = SpikingNeuron(config.neuron, config.time_steps)
        self.fc1 = SpikeDrivenProjection(config, config.hidden_size, config.mlp_hidden_size,
                                         fmt, neuron=True)
        self.fc2 = SpikeDrivenProjection(config, config.mlp_hidden_size, config.hidden_size,
                                         fmt, neuron=False)

    def forward(self, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(self.stream_neuron(u), mask), mask)


class SpikeDrivenBlock(nn.Module):
    """``u = u + Attn(SN(u)); u = u + MLP(SN(u))``: the membrane shortcut."""

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        self.attention = SpikeDrivenSelfAttention(config)
        self.mlp = SpikeDrivenMLP(config)

    def forward(self, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        u = u + self.attention(u, mask)
        return u + self.mlp(u, mask)


class SpikingHead(nn.Module):
    """``mean_T mean_tokens W_c SN(u)``: the classifier reads spikes, token by token (the
    same logits as ``W_c`` of the pooled rates, since both means are linear)."""

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        self.neuron = SpikingNeuron(config.neuron, config.time_steps)
        self.classifier = Linear(config.hidden_size, config.num_labels,
                                 spikes=spike_format(config.neuron))
        self.token_mean = TokenMean(config.padding_mask)
        self.time_mean = TimeMean(config.time_steps)

    def forward(self, u: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits_per_step = self.token_mean(self.classifier(self.neuron(u)), mask)
        return self.time_mean(logits_per_step), logits_per_step


class SpikeDriven(SpikingClassifier):
    """The spike-driven classifier (the interface of :class:`SpikingClassifier`)."""

    head_class = SpikingHead

    def __init__(self, config: SpikformerConfig):
        if config.block != "spike_driven":
            raise ValueError(f"SpikeDriven needs block='spike_driven', got {config.block!r}; "
                             "neurolang.models.build_model(config) builds any family")
        super().__init__(config)
        self.embedding_norm = Norm(config.norm, config.hidden_size, config.norm_eps)
        self.add_encoding()
        self.blocks = nn.ModuleList(SpikeDrivenBlock(config) for _ in range(config.depth))
        self.finish()

    def before_encoding(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The embedding norm: token embeddings (a teacher's are ~0.05) scaled to currents
        that make the first stream neurons fire."""
        return self.embedding_norm(x, attention_mask)

    def rate_controls(self) -> list[tuple[str, nn.Module]]:
        """(population, the Norm steering its rate) in forward order: every population fed by
        a Norm is steered by it; each stream neuron ``SN(u)`` by the last Norm added into
        ``u`` before it (the embedding norm, then the branch outputs)."""
        controls: list[tuple[str, nn.Module]] = []
        last: nn.Module = self.embedding_norm
        for i, block in enumerate(self.blocks):
            for part, branch in (("attention", block.attention), ("mlp", block.mlp)):
                controls.append((f"blocks.{i}.{part}.stream_neuron", last))
                for name, unit in branch.named_children():
                    if isinstance(unit, SpikeDrivenProjection) and hasattr(unit, "neuron"):
                        controls.append((f"blocks.{i}.{part}.{name}.neuron", unit.norm))
                last = branch.output.norm if part == "attention" else branch.fc2.norm
        controls.append(("head.neuron", last))
        return controls

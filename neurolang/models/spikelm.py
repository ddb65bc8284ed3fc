"""SpikeLM's encoder (Xing et al., ICML 2024): BERT whose every Linear reads spikes.

    x = LN(Embedding(ids) + Position)             BERT's embeddings
    x = Encode(x)                                 repeat over T steps
    for each block (BERT's post-LayerNorm layer):
        s = SN(x)                                 spikes into Wq, Wk, Wv
        q, k, v = Wq s, SN(Wk s), SN(Wv s)        K and V are re-spiked
        c = SN_att(softmax(q k^T / sqrt(d_h)) v)  real-valued softmax; spikes into Wo
        x = LN(x + Wo c)
        x = LN(x + W2 SN(GELU(W1 SN(x))))         spikes into both FFN Linears
    logits = mean_T Linear(mean_tokens Norm(x))   the Spikformer's head

``SN`` is ``config.neuron`` (SpikeLM: the elastic bi-spiking neuron), ``SN_att`` is
``config.attention_neuron``. SpikeLM's code spikes the input of Wq, Wk and Wv with three
neurons of identical input; one population feeds all three here. Softmax, LayerNorm, GELU
and the position embedding stay real-valued, as in SpikeLM. Built from
``neurolang.primitives`` only, so the backends lower its neurons and ``neurolang.graph``
traces it. ``neurolang.models.build_model(config)`` builds it when ``config.block ==
"spikelm"``.
"""

from __future__ import annotations

import torch
from torch import nn

from neurolang.config import SpikformerConfig
from neurolang.models.base import SpikingClassifier
from neurolang.primitives import GELU, Linear, Norm, SoftmaxAttention, SpikingNeuron
from neurolang.spikes import spike_format


class SpikeLMSelfAttention(nn.Module):
    """``Wo SN_att(softmax(Wq s (SN(Wk s))^T / sqrt(d_h)) SN(Wv s))`` with ``s = SN(x)``."""

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        d, steps = config.hidden_size, config.time_steps
        self.input_neuron = SpikingNeuron(config.neuron, steps)
        # Q, K, V read the same spikes, saved once for all three as they are: three packed
        # copies would save little memory for three conversions.
        self.query = Linear(d, d)
        self.key = Linear(d, d)
        self.value = Linear(d, d)
        self.key_neuron = SpikingNeuron(config.neuron, steps)
        self.value_neuron = SpikingNeuron(config.neuron, steps)
        self.attention = SoftmaxAttention(config.num_heads, config.padding_mask)
        self.context_neuron = SpikingNeuron(config.attention_neuron, steps)
        self.output = Linear(d, d, spikes=spike_format(config.attention_neuron))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = self.input_neuron(x)
        q = self.query(s)
        k = self.key_neuron(self.key(s))
        v = self.value_neuron(self.value(s))
        return self.output(self.context_neuron(self.attention(q, k, v, mask)))


class SpikeLMFeedForward(nn.Module):
    """``W2 SN(GELU(W1 SN(x)))``, hidden width ``mlp_ratio * D``."""

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        steps, spikes = config.time_steps, spike_format(config.neuron)
        self.input_neuron = SpikingNeuron(config.neuron, steps)
        self.fc1 = Linear(config.hidden_size, config.mlp_hidden_size, spikes=spikes)
        self.gelu = GELU()
        self.hidden_neuron = SpikingNeuron(config.neuron, steps)
        self.fc2 = Linear(config.mlp_hidden_size, config.hidden_size, spikes=spikes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.hidden_neuron(self.gelu(self.fc1(self.input_neuron(x)))))


class SpikeLMBlock(nn.Module):
    """BERT's layer, post-LayerNorm: ``x = LN(x + Attn(x)); x = LN(x + FFN(x))``."""

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        d, eps = config.hidden_size, config.norm_eps
        self.attention = SpikeLMSelfAttention(config)
        self.attention_norm = Norm("layer", d, eps)
        self.ffn = SpikeLMFeedForward(config)
        self.ffn_norm = Norm("layer", d, eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attention_norm(x + self.attention(x, mask), mask)
        return self.ffn_norm(x + self.ffn(x, mask), mask)


class SpikeLM(SpikingClassifier):
    """The SpikeLM classifier, with the interface of :class:`SpikingClassifier`; its taps are
    ``LN(W mean_T(block_i output) + b)`` (B, L, D), one per block."""

    def __init__(self, config: SpikformerConfig):
        if config.block != "spikelm":
            raise ValueError(f"SpikeLM needs block='spikelm', got {config.block!r}")
        super().__init__(config)
        self.embedding_norm = Norm("layer", config.hidden_size, config.norm_eps)
        self.add_encoding()
        self.blocks = nn.ModuleList(SpikeLMBlock(config) for _ in range(config.depth))
        self.finish()

    def before_encoding(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """BERT's embedding LayerNorm."""
        return self.embedding_norm(x, attention_mask)

    def rate_controls(self) -> list[tuple[str, nn.Module]]:
        """(population, the Norm or Linear whose bias shifts its input), in forward order:
        what ``neurolang.parity.realistic_init`` turns to set firing rates. The context
        population has none: its input averages V spikes with the softmax weights."""
        controls = []
        stream = "embedding_norm"
        for i, block in enumerate(self.blocks):
            p = f"blocks.{i}"
            controls += [
                (f"{p}.attention.input_neuron", self.get_submodule(stream)),
                (f"{p}.attention.key_neuron", block.attention.key),
                (f"{p}.attention.value_neuron", block.attention.value),
                (f"{p}.ffn.input_neuron", block.attention_norm),
                (f"{p}.ffn.hidden_neuron", block.ffn.fc1),
            ]
            stream = f"{p}.ffn_norm"
        return controls

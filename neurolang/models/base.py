"""What every token-level model family shares: embedding, encoding, taps, head, init.

A family (``neurolang.models.spikformer``, ``neurolang.models.spikelm``) subclasses
:class:`SpikingClassifier`, builds its own blocks and, if it needs one, a step between the
embedding and the encoding (:meth:`SpikingClassifier.before_encoding`)::

    x = Embedding(ids) [+ position]         the word (and position) embedding
    x = Encode(before_encoding(x))          over T steps
    for each block:  x = block(x)           the family's own blocks
    logits = mean_T Linear(mean_tokens Norm(x))
    representations: tap_i(block_i output)  SpikeBERT's distillation taps

Every family reads a :class:`~neurolang.config.SpikformerConfig` and has the same outputs,
module names and state-dict conventions, so training, checkpoints, backends, parity, NIR and
energy take any of them.
"""

from __future__ import annotations

import torch
from torch import nn

from neurolang.config import SpikformerConfig
from neurolang.graph import trace
from neurolang.primitives import (
    Encode,
    Linear,
    Norm,
    PositionEmbedding,
    RepresentationTap,
    TimeMean,
    TokenEmbedding,
    TokenMean,
    fold_mask,
)

FORMAT = "neurolang-spikformer"  # the model folder format of every token-level family


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


class SpikingClassifier(nn.Module):
    """The base of every family. ``forward`` returns a dict: ``logits`` (B, C);
    ``logits_per_step`` (T*B, C); with ``output_representations``, also ``representations``:
    SpikeBERT's taps ``rep_i`` (B, L, D), one per block.

    A subclass's ``__init__`` calls ``super().__init__(config)`` (the embeddings), adds what
    comes before its blocks, sets ``self.blocks``, then calls :meth:`finish` (head, taps,
    init), so that modules are registered (and initialised) in forward order.
    """

    folder_format = FORMAT
    head_class: type[nn.Module] = ClassificationHead  # a family may read its own head

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        self.config = config
        self.embedding = TokenEmbedding(config.vocab_size, config.hidden_size)
        if config.position_embedding:
            self.position = PositionEmbedding(config.max_length, config.hidden_size)

    def add_encoding(self) -> None:
        self.encode = Encode(self.config.time_steps, self.config.encoding, self.config.neuron)

    def finish(self) -> None:
        """The head and the representation taps after the blocks, then the init."""
        config = self.config
        self.head = self.head_class(config)
        if config.representation_taps:
            self.taps = nn.ModuleList(
                RepresentationTap(config.time_steps, config.hidden_size, config.norm_eps)
                for _ in range(config.depth)
            )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """SpikeBERT's (BERT's) init: Linear and embeddings N(0, initializer_range), biases 0,
        norms 1/0."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (Linear, TokenEmbedding, PositionEmbedding)):
                nn.init.normal_(module.weight, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (Norm, nn.LayerNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def rate_controls(self) -> list[tuple[str, nn.Module]]:
        """(population, the Norm or Linear whose bias shifts its input), in forward order:
        what ``neurolang.parity.realistic_init`` turns to set firing rates.

        By default every population that reads a Norm or a Linear directly, found in the
        traced graph (``neurolang.graph.trace``), whatever the family's module names: the
        Spikformer's ``LIF(Norm(W x))``, a bare ``LIF(W x)``. A population fed by anything
        else (the attention product, a residual sum, the encoder: a membrane shortcut's
        neuron reading the stream ``u``) has no control: its rate follows from the
        populations and weights before it. A family whose populations read something else
        (SpikeLM: a Norm two steps back) names its own. A Norm or Linear feeding several
        populations steers the first; the others follow.
        """
        graph = trace(self)
        controls, taken = [], set()
        for node in graph.nodes.values():
            # (a population called twice, ``name#1``, is recorded under one name: skipped)
            if node.op != "neuron" or "#" in node.name or len(node.inputs) != 1:
                continue
            feeder = graph.nodes[node.inputs[0]]
            if feeder.op in ("norm", "linear") and id(feeder.module) not in taken:
                taken.add(id(feeder.module))  # one feeding several: it steers the first
                controls.append((node.name, feeder.module))
        return controls

    def fold_batch_norms(self) -> list[str]:
        """The inference form, in place: every BatchNorm that alone reads a Linear is folded
        into it, ``W' = diag(scale) W``, ``b' = scale * b + shift`` (``Norm.affine``), in the
        model's dtype and exactly as the NIR export folds it, so that every backend and
        simulator runs the same numbers (Lava's Affines hold the folded weights). Other
        BatchNorms (on the embeddings) compute ``x * scale + shift``, as the export's Affine
        does. Returns the folded norms' names. A folded model is for inference (and export)
        only: training it, or saving it, is refused."""
        graph = trace(self)
        readers = graph.consumers()
        folded = []
        with torch.no_grad():
            for node in graph.by_op("norm"):
                norm = node.module
                if norm.kind != "batch" or norm.folded:
                    continue
                feeder = graph.nodes[node.inputs[0]]
                if feeder.op != "linear" or readers[feeder.name] != [node.name]:
                    continue
                linear = feeder.module
                scale, shift = norm.affine()
                linear.weight.copy_(linear.weight * scale[:, None])
                if linear.bias is None:
                    linear.bias = nn.Parameter(shift.clone())
                else:
                    linear.bias.copy_(linear.bias * scale + shift)
                norm.folded = True
                folded.append(node.name)
        return folded

    def before_encoding(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """What a family computes on the (B, L, D) embeddings before the encoding (none)."""
        return x

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_representations: bool = False,
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        if output_representations and not self.config.representation_taps:
            raise ValueError("this model was built with representation_taps=False")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        x = self.embedding(input_ids)
        if self.config.position_embedding:
            x = self.position(x)
        x = self.encode(self.before_encoding(x, attention_mask))
        mask = fold_mask(attention_mask, self.config.time_steps)
        representations = []
        for i, block in enumerate(self.blocks):
            x = block(x, mask)
            if output_representations:
                representations.append(self.taps[i](x))
        logits, logits_per_step = self.head(x, mask)
        out = {"logits": logits, "logits_per_step": logits_per_step}
        if output_representations:
            out["representations"] = representations
        return out

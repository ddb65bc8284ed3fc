"""The teacher's operation counts: a BERT-family encoder, from its config and the real lengths.

Every sample is counted at its own real length L (no padding), with the Hugging Face config's
shapes: hidden H, layers N, heads h, intermediate I. Per sample:

* embeddings: lookups 0; summing the word, position (and token-type) embeddings: one addition
  per element per extra table; LayerNorm (3 MACs + 2 additions per element, as the student's).
* per layer: Q, K, V and output projections ``4 L H^2`` MACs; scores ``Q K^T``: ``L^2 H`` MACs
  (the 1/sqrt(d) scale folded into W_Q: 0); softmax per score: exp counted as 1 MAC (a lower
  bound), the sum 1 addition, the normalisation 1 MAC; ``A V``: ``L^2 H`` MACs; the
  feed-forward ``2 L H I`` MACs; its activation 1 MAC per element (GELU, a lower bound); two
  residual additions ``2 L H``; two LayerNorms.
* the classification head (with one): every Linear outside the encoder applied once per sample
  (BERT's pooler and classifier, RoBERTa's dense and out_proj), ``in x out`` MACs each, plus
  one MAC per element of a hidden activation (tanh) between them.

Biases are not counted (as for the student). Counting exp and GELU as one operation each
under-counts the teacher, which makes the student's ratio to it larger (conservative).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from neurolang.energy.records import LayerCounts, ModelCounts
from neurolang.energy.rules import NORM_COST


def _get(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)
        if value is not None:
            return value
    return default


def transformer_shapes(config: Any) -> dict[str, Any]:
    """Hidden size, layers, heads, intermediate size and embedding tables of a BERT-family
    config (a ``transformers`` config or a dict; DistilBERT's names are understood)."""
    shapes = {
        "hidden_size": _get(config, "hidden_size", "dim"),
        "num_layers": _get(config, "num_hidden_layers", "n_layers"),
        "num_heads": _get(config, "num_attention_heads", "n_heads"),
        "intermediate_size": _get(config, "intermediate_size", "hidden_dim"),
        "model_type": _get(config, "model_type", default="bert"),
    }
    missing = [k for k, v in shapes.items() if v is None]
    if missing:
        raise ValueError(f"the teacher's config has no {missing}; only BERT-family encoders "
                         "(BERT, RoBERTa, DistilBERT, ...) can be counted")
    tables = 2  # word + position
    if int(_get(config, "type_vocab_size", default=0) or 0) > 0:
        tables += 1
    if _get(config, "position_embedding_type", default="absolute") != "absolute":
        tables -= 1  # relative positions are not added to the input
    shapes["embedding_tables"] = tables
    return shapes


def transformer_counts(config: Any, lengths: Sequence[int], *,
                       head: Sequence[tuple[int, int]] | None = None,
                       name: str = "teacher") -> ModelCounts:
    """MACs and additions of a BERT-family encoder on samples of the given real lengths.

    ``head``: the (in, out) features of the Linear layers applied once per sample after the
    encoder, in order (e.g. ``[(H, H), (H, 2)]`` for BERT's pooler and classifier); None or
    empty for a bare encoder.
    """
    s = transformer_shapes(config)
    hidden, inter, heads = s["hidden_size"], s["intermediate_size"], s["num_heads"]
    lengths = [int(n) for n in lengths]
    tokens = sum(lengths)
    squares = sum(n * n for n in lengths)
    counts = ModelCounts(name, 1, len(lengths), tokens)
    norm_macs, norm_adds = NORM_COST["layer"]

    def put(layer: str, op: str, macs: int = 0, adds: int = 0, width: int = hidden) -> None:
        counts.layers[layer] = LayerCounts(layer, op, "dense" if op == "linear" else op, [],
                                           width, macs=macs, adds=adds)

    put("embeddings.sum", "add", adds=(s["embedding_tables"] - 1) * tokens * hidden)
    put("embeddings.norm", "norm", macs=norm_macs * tokens * hidden,
        adds=norm_adds * tokens * hidden)
    for i in range(s["num_layers"]):
        p = f"layer.{i}"
        for proj in ("query", "key", "value"):
            put(f"{p}.attention.{proj}", "linear", macs=tokens * hidden * hidden)
        put(f"{p}.attention.scores", "matmul", macs=squares * hidden)
        put(f"{p}.attention.softmax", "softmax", macs=2 * heads * squares,
            adds=heads * squares, width=heads)
        put(f"{p}.attention.context", "matmul", macs=squares * hidden)
        put(f"{p}.attention.output", "linear", macs=tokens * hidden * hidden)
        put(f"{p}.attention.residual", "add", adds=tokens * hidden)
        put(f"{p}.attention.norm", "norm", macs=norm_macs * tokens * hidden,
            adds=norm_adds * tokens * hidden)
        put(f"{p}.intermediate", "linear", macs=tokens * hidden * inter, width=inter)
        put(f"{p}.activation", "activation", macs=tokens * inter, width=inter)
        put(f"{p}.output", "linear", macs=tokens * inter * hidden)
        put(f"{p}.output.residual", "add", adds=tokens * hidden)
        put(f"{p}.output.norm", "norm", macs=norm_macs * tokens * hidden,
            adds=norm_adds * tokens * hidden)
    for j, (fan_in, fan_out) in enumerate(head or []):
        put(f"head.{j}", "linear", macs=len(lengths) * fan_in * fan_out, width=fan_out)
        if j + 1 < len(head):
            put(f"head.{j}.activation", "activation", macs=len(lengths) * fan_out,
                width=fan_out)
    return counts


def head_linears(model: Any) -> list[tuple[int, int]]:
    """(in, out) of the Linear layers of a ``transformers`` model outside its encoder and
    embeddings (pooler, classifier), in module order."""
    from torch import nn

    found = []
    for qualified, module in model.named_modules():
        parts = qualified.split(".")
        if isinstance(module, nn.Linear) and not {"encoder", "embeddings", "transformer"} & set(
                parts):
            found.append((module.in_features, module.out_features))
    return found


def teacher_counts(teacher: Any, lengths: Sequence[int]) -> ModelCounts:
    """Counts of a loaded :class:`~neurolang.teachers.Teacher` on the given lengths."""
    model = teacher.model
    head = head_linears(model) if teacher.has_head else []
    return transformer_counts(model.config, lengths, head=head,
                              name=f"teacher ({teacher.source})")


BERT_BASE = {
    "model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "type_vocab_size": 2,
}
"""BERT-base (Devlin et al., 2019), the reference of SpikeBERT's 27.82%."""

"""The NIR export's rules, one per op of the traced graph (``neurolang.graph.trace``).

``EXPORT_RULES`` covers every op of ``neurolang.graph.primitive_ops()``: a rule, or a
refusal with the reason. A rule takes the shared :class:`ExportContext` and one traced node,
and adds the NIR nodes and edges that compute it: a standard NIR node where NIR can express
the primitive exactly, else a ``neurolang.*`` extension node, recorded in
``ctx.problems`` so that a strict export can name it (``docs/nir-extensions.md``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import nir
import numpy as np
import torch

from neurolang.graph import Graph, Node, OpTable
from neurolang.neurons import NeuronSpec
from neurolang.nir.errors import NIRError
from neurolang.nir.lif import lif_parameters
from neurolang.nir.nodes import (
    LIF,
    CoincidenceSum,
    ElasticBiSpike,
    Embedding,
    LayerNorm,
    PositionEmbedding,
    SpikeAttention,
    SpikeGate,
    Threshold,
    TokenMean,
)

# ops that compute each token from its inputs alone, the same at every step: computed before
# the encoder, they are static (the file repeats the input at its boundary)
_STATELESS = ("embedding", "position_embedding", "linear", "norm", "add")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy().copy()


def _spec_json(spec: NeuronSpec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True)


@dataclass
class ExportContext:
    """What the rules of one export share: the traced graph and the NIR graph being built.

    ``alias`` maps a traced node to the NIR node that produces its value (a node that
    computes nothing in the file, such as a repeat encoder, aliases its input); ``width`` is
    the features per token of each traced node; ``static`` the traced nodes computed before
    the encoder (the same value at every step).
    """

    graph: Graph
    dt: float
    time_steps: int
    consumers: dict[str, list[str]] = field(default_factory=dict)
    nodes: dict[str, nir.NIRNode | None] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    alias: dict[str, str] = field(default_factory=dict)
    width: dict[str, int] = field(default_factory=dict)
    folded: set[str] = field(default_factory=set)  # BatchNorms folded into their Linear
    static: set[str] = field(default_factory=set)
    data_inputs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # layers that need an extension node
    time_mean_of: dict[str, str] = field(default_factory=dict)

    masks: set[str] = field(default_factory=set)  # the padding mask, folded or not

    def __post_init__(self):
        self.consumers = self.graph.consumers()
        # the padding mask: the folding nodes and the graph input they fold (which a
        # primitive before the encoder may take as it is, a norm of the embeddings)
        for node in self.graph.by_op("fold_mask"):
            self.masks.add(node.name)
            self.masks.update(i for i in node.inputs if self.graph.nodes[i].op == "input")

    def note_static(self, node: Node) -> None:
        """After ``node``'s rule: a stateless per-token op whose data inputs are all static
        (a norm or a Linear on the embeddings, before the encoder) is static too."""
        data_in = self.data_in(node)
        if (node.op in _STATELESS and data_in and all(i in self.static for i in data_in)):
            self.static.add(node.name)

    def with_op(self, names: list[str], op: str) -> list[str]:
        """The traced nodes of ``names`` whose op is ``op``."""
        return [n for n in names if self.graph.nodes[n].op == op]

    def data_in(self, node: Node) -> list[str]:
        """The node's inputs that carry data (not the padding mask, folded or not)."""
        return [i for i in node.inputs if i not in self.masks]

    def connect(self, src_traced: str, dst: str) -> None:
        edge = (self.alias[src_traced], dst)
        if edge in self.edges:
            raise NIRError(f"{dst} takes the same value twice; not expressible as NIR edges")
        self.edges.append(edge)

    def add(self, name: str, node: nir.NIRNode, width: int, sources: list[str],
            problem: str | None = None) -> None:
        """Add the NIR node ``name`` fed by the traced nodes ``sources`` (in order)."""
        self.nodes[name] = node
        self.width[name] = width
        for src in sources:
            self.connect(src, name)
        self.alias[name] = name
        if problem:
            self.problems.append(f"{name} ({problem})")


# --------------------------------------------------------------------------------------------
# Rules


def _input(ctx: ExportContext, node: Node) -> None:
    name = node.name
    if name in ctx.masks:
        return  # the padding mask: implicit (a sequence is its real tokens)
    ctx.nodes[name] = None  # shape known once a consumer is seen (finish_inputs)
    ctx.alias[name] = name
    ctx.data_inputs.append(name)
    ctx.static.add(name)


def _fold_mask(ctx: ExportContext, node: Node) -> None:
    """Nothing in the file: a sequence is its real tokens."""


def _embedding(ctx: ExportContext, node: Node) -> None:
    weight = node.module.weight
    src = ctx.data_in(node)[0]
    ctx.width[src] = 1
    ctx.add(node.name, Embedding(_np(weight)), weight.shape[1], [src],
            "neurolang.Embedding: embedding lookup")
    ctx.static.add(node.name)


def _position_embedding(ctx: ExportContext, node: Node) -> None:
    weight = node.module.weight
    ctx.add(node.name, PositionEmbedding(_np(weight)), weight.shape[1], ctx.data_in(node)[:1],
            "neurolang.PositionEmbedding: position embedding")
    ctx.static.add(node.name)


def _encode(ctx: ExportContext, node: Node) -> None:
    name, module = node.name, node.module
    src = ctx.data_in(node)[0]
    if src not in ctx.static:
        raise NIRError(f"{name}: an encoder after time-dependent layers cannot be "
                       "exported (the input is repeated at the graph's boundary)")
    d = ctx.width.get(src)
    if d is None:  # the encoder reads a graph input directly: its width from below
        d = next(ctx.graph.nodes[c].module.in_features
                 for c in ctx.with_op(ctx.consumers[name], "linear"))
        ctx.width[src] = d
    if module.encoding != "heaviside":  # repeat: the boundary convention, not a node
        ctx.width[name] = d
        ctx.alias[name] = ctx.alias[src]
        return
    comparison = module.spec.threshold_comparison
    if comparison == ">":
        ctx.add(name, nir.Threshold(np.zeros(d)), d, [src])
    else:
        ctx.add(name, Threshold(np.zeros(d), comparison), d, [src],
                "neurolang.Threshold: Heaviside with '>='")


def _linear(ctx: ExportContext, node: Node) -> None:
    name, module = node.name, node.module
    w, b = _np(module.weight), (_np(module.bias) if module.bias is not None
                                else np.zeros(module.out_features))
    meta = {}
    users = ctx.consumers[name]
    norm_users = ctx.with_op(users, "norm")
    if (len(users) == 1 and norm_users
            and ctx.graph.nodes[norm_users[0]].module.kind == "batch"):
        norm = ctx.graph.nodes[norm_users[0]].module
        if not norm.folded:  # (a model in its inference form holds it already)
            scale, shift = (_np(t) for t in norm.affine())
            w, b = w * scale[:, None], b * scale + shift
        ctx.folded.add(norm_users[0])
        meta["neurolang.folded"] = norm_users[0]
    ctx.add(name, nir.Affine(w, b, metadata=meta), module.out_features, ctx.data_in(node)[:1])


def _norm(ctx: ExportContext, node: Node) -> None:
    name, module = node.name, node.module
    src = ctx.data_in(node)[0]
    if name in ctx.folded:  # into the Linear before it
        ctx.width[name] = module.features
        ctx.alias[name] = ctx.alias[src]
        return
    if module.kind == "batch":
        scale, shift = (_np(t) for t in module.affine())
        ctx.add(name, nir.Affine(np.diag(scale), shift, metadata={"neurolang.op": "batch_norm"}),
                module.features, [src])
    else:
        ctx.add(name, LayerNorm(_np(module.weight), _np(module.bias),
                                np.array([module.eps], dtype=np.float64)),
                module.features, [src], "neurolang.LayerNorm")


def _neuron(ctx: ExportContext, node: Node) -> None:
    if node.module.kind.amplitude:
        _elastic_bispike(ctx, node)
    else:
        _lif(ctx, node)


def _elastic_bispike(ctx: ExportContext, node: Node) -> None:
    name, module = node.name, node.module
    if not bool(module.alpha_initialized):
        raise NIRError(f"{name}: its spike amplitudes alpha are not initialised yet "
                       "(they are set by the model's first forward pass on data)")
    if module.alpha.shape != (ctx.time_steps,):
        raise NIRError(f"{name}: alpha has shape {tuple(module.alpha.shape)}, not one "
                       "value per time step")
    src = ctx.data_in(node)[0]
    d = ctx.width[src]
    ctx.add(name, ElasticBiSpike(_np(module.alpha), np.array([d]),
                                 metadata={"neurolang.neuron": _spec_json(module.spec)}),
            d, [src], "neurolang.ElasticBiSpike: graded signed spikes")


def _lif(ctx: ExportContext, node: Node) -> None:
    name, spec = node.name, node.module.spec
    if spec.kind != "lif":
        raise NIRError(f"{name}: neuron kind {spec.kind!r} has no NIR mapping")
    src = ctx.data_in(node)[0]
    d = ctx.width[src]
    p = lif_parameters(spec.to_dict(), ctx.dt, d)
    meta = {"neurolang.neuron": _spec_json(spec)}
    if spec.reset == "zero" and spec.threshold_comparison == ">":
        ctx.add(name, nir.LIF(**p, metadata=meta), d, [src])
    else:
        ctx.add(name, LIF(p["tau"], p["r"], p["v_leak"], p["v_threshold"], spec.reset,
                          spec.threshold_comparison, metadata=meta), d, [src],
                f"neurolang.LIF: reset {spec.reset!r}, comparison "
                f"{spec.threshold_comparison!r}")


def _add(ctx: ExportContext, node: Node) -> None:
    data_in = ctx.data_in(node)
    d = ctx.width[data_in[0]]
    if len(data_in) != 2 or ctx.width[data_in[1]] != d:
        raise NIRError(f"{node.name}: a sum of {len(data_in)} inputs of widths "
                       f"{[ctx.width[i] for i in data_in]}")
    ctx.add(node.name, nir.Scale(np.ones(d), metadata={"neurolang.op": "add"}), d, data_in)


def _attention_product(ctx: ExportContext, node: Node) -> None:
    module, data_in = node.module, ctx.data_in(node)
    d = ctx.width[data_in[0]]
    operands = [ctx.alias[i] for i in data_in]
    ctx.add(node.name, SpikeAttention(
        np.array([module.num_heads]), np.array([module.scale], dtype=np.float64),
        np.array([int(module.masked)]), json.dumps(operands), np.array([d])), d, data_in,
        "neurolang.SpikeAttention: (Q K^T) V product of spikes")


def _coincidence_sum(ctx: ExportContext, node: Node) -> None:
    """SDSA's ``scale * sum_tokens K * V``: a ``neurolang.CoincidenceSum`` with the sources of
    K and V as its operands; its value (and the gate neuron's after it) has no token axis."""
    module, data_in = node.module, ctx.data_in(node)
    if len(data_in) != 2:
        raise NIRError(f"{node.name}: a coincidence sum takes K and V, got {len(data_in)} inputs")
    d = ctx.width[data_in[0]]
    operands = [ctx.alias[i] for i in data_in]
    ctx.add(node.name, CoincidenceSum(
        np.array([module.scale], dtype=np.float64), np.array([int(module.masked)]),
        json.dumps(operands), np.array([d])), d, data_in,
        "neurolang.CoincidenceSum: sum over tokens of K * V spikes (SDSA)")


def _spike_gate(ctx: ExportContext, node: Node) -> None:
    """SDSA's ``Q * G``: a ``neurolang.SpikeGate`` with the sources of Q and G as operands."""
    data_in = ctx.data_in(node)
    if len(data_in) != 2:
        raise NIRError(f"{node.name}: a spike gate takes Q and G, got {len(data_in)} inputs")
    d = ctx.width[data_in[0]]
    operands = [ctx.alias[i] for i in data_in]
    ctx.add(node.name, SpikeGate(json.dumps(operands), np.array([d])), d, data_in,
            "neurolang.SpikeGate: Q spikes gated per channel (SDSA)")


def _token_mean(ctx: ExportContext, node: Node) -> None:
    data_in = ctx.data_in(node)
    d = ctx.width[data_in[0]]
    ctx.add(node.name, TokenMean(np.array([d]), np.array([int(node.module.masked)])), d,
            data_in[:1], "neurolang.TokenMean: mean over tokens")


def _time_mean(ctx: ExportContext, node: Node) -> None:
    """Not a node: the mean over time of the model's output is the ``Output``'s readout."""
    name, src = node.name, ctx.data_in(node)[0]
    if ctx.consumers[name]:
        raise NIRError(f"{name}: a mean over time can only be the model's output "
                       "(it becomes the output's readout)")
    ctx.time_mean_of[name] = src
    ctx.alias[name] = ctx.alias[src]
    ctx.width[name] = ctx.width[src]


def _output(ctx: ExportContext, node: Node) -> None:
    """The graph's outputs (``node.inputs``): one ``Output`` per source node (nirtorch-based
    importers take a single output): the per-step values, with the mean over time as the
    readout when the model has one."""
    outputs = ctx.graph.outputs
    by_source: dict[str, dict[str, str]] = {}
    for key, traced in outputs.items():
        kind_of = "time_mean" if traced in ctx.time_mean_of else "per_step"
        by_source.setdefault(ctx.alias[traced], {})[kind_of] = key
    for source, keys in by_source.items():
        name = keys.get("time_mean", keys.get("per_step"))
        meta = {"neurolang.readout": "time_mean" if "time_mean" in keys else "per_step"}
        if "time_mean" in keys and "per_step" in keys:
            meta["neurolang.per_step_output"] = keys["per_step"]
        width = next(ctx.width[t] for t in outputs.values() if ctx.alias[t] == source)
        ctx.nodes[name] = nir.Output(np.array([width]), metadata=meta)
        ctx.edges.append((source, name))


def finish_inputs(ctx: ExportContext) -> None:
    """The ``Input`` nodes, once every consumer has given them a width."""
    for name in ctx.data_inputs:
        is_ids = bool(ctx.with_op(ctx.consumers[name], "embedding"))
        ctx.nodes[name] = nir.Input(np.array([ctx.width[name]]), metadata={
            "neurolang.input": "token_ids" if is_ids else "features"})


EXPORT_RULES = OpTable(
    "NIR export",
    rules={
        "input": _input, "fold_mask": _fold_mask, "embedding": _embedding,
        "position_embedding": _position_embedding, "encode": _encode, "linear": _linear,
        "norm": _norm, "neuron": _neuron, "add": _add,
        "attention_product": _attention_product, "coincidence_sum": _coincidence_sum,
        "spike_gate": _spike_gate, "token_mean": _token_mean,
        "time_mean": _time_mean, "output": _output,
    },
    refused={
        "softmax_attention": "SpikeLM's softmax attention is real-valued (exponentials, a "
                             "division per row): NIR has no node for it and neurolang no "
                             "extension",
        "gelu": "SpikeLM's GELU is a real-valued activation: NIR has no node for it and "
                "neurolang no extension",
        "representation_tap": "a distillation tap is not on the path to the logits and is "
                              "not exported",
    },
    error=NIRError,
)

"""What each op of the model graph costs: one rule per op, used by both counters.

:data:`COUNTING_RULES` holds one :class:`Rule` per op of ``neurolang.graph.trace(model)``.
A rule states once what its node is to the counters (whether it emits spikes, its width, what
its rows are, its role) and what it costs, from what a counter knows of one run
(:class:`~neurolang.energy.records.Seen`: the module, the real rows, the spike events of its
inputs). :class:`~neurolang.energy.hooks.OpCounter` measures those from the tensors of a run;
:func:`~neurolang.energy.from_spikes.counts_from_spikes` derives them from a simulator's
spike counts. Adding a primitive means adding its row here (or a refusal, with the reason).

The rules are the classes below, one per kind of node (``docs/energy.md`` works them through
on an example). Only real tokens count: a padded position costs nothing, as if every sample
ran alone at its own length. **Graded spikes** (SpikeLM's elastic bi-spiking neurons,
``alpha[t] * {-1, 0, 1}``): a nonzero spike is one event (a graded spike on Loihi 2 carries
its value) and costs what a binary spike costs; the amplitude, one number per population and
step, scales a result once per output, like a bias: not counted. Every rule then holds with
``[x != 0]`` in place of the binary spike. Biases are not counted (once per output, like the
teacher's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from neurolang.energy.records import CountingError, LayerCounts, Seen
from neurolang.graph import Graph, OpTable

NORM_COST = {"layer": (3, 2), "batch": (1, 0)}
"""(MACs, additions) per element of a norm; see the module docstring."""

# how many rows a node's output has: tokens once, tokens at every step, samples at every step,
# samples once
TOKEN, TOKEN_STEP, SAMPLE_STEP, SAMPLE = "token", "token_step", "sample_step", "sample"

LINEAR_ROLES = ("synaptic", "dense")
"""The roles of a Linear's layer: fed by spikes, fed by real values."""


class Rule:
    """What one op is to the counters and what it costs.

    ``role`` names the rule of its layer (``LayerCounts.role``); ``rows`` what its output rows
    are (None: its first input's); ``layer = False`` for graph nodes that are no layer of the
    table (the model's inputs, the folded padding mask). :meth:`count` adds what the node cost
    over one run to its layer; by default nothing."""

    role: str = ""
    rows: str | None = None
    layer: bool = True

    def spiking(self, module: nn.Module | None) -> bool:
        """Whether the node emits spikes (a population)."""
        return False

    def graded(self, module: nn.Module | None) -> bool:
        """Whether its spikes carry an amplitude, ``alpha[t] * {-1, 0, 1}``."""
        return False

    def width(self, module: nn.Module | None) -> int | None:
        """Features of its output; None: its first input's."""
        return None

    def role_of(self, module: nn.Module | None, fed_by_spikes: bool) -> str:
        return self.role

    def for_node(self, graph: Graph, name: str) -> Rule:
        """The rule for node ``name`` of ``graph`` where it depends on the node's neighbours
        (a BatchNorm folded into the Linear before it); by default this one."""
        return self

    def count(self, layer: LayerCounts, seen: Seen) -> None:
        pass


class NotALayer(Rule):
    """The graph's inputs and the folded padding mask: not layers, nothing to count."""

    layer = False


class Lookup(Rule):
    """**Embedding lookup**: 0 (a memory read, no arithmetic)."""

    role, rows = "embedding", TOKEN

    def width(self, module):
        return int(module.weight.shape[1])


class PositionAdd(Lookup):
    """**Position embedding**: one addition per real element."""

    role = "position"

    def count(self, layer, seen):
        layer.adds += seen.rows * seen.width


class Population(Rule):
    """**Spiking population** (a ``neuron``): ``spikes`` it emitted, ``neuron_updates`` =
    features x real tokens x T (one membrane update per neuron per step)."""

    role = "population"

    def spiking(self, module):
        return True

    def graded(self, module):
        return bool(module.kind.amplitude)

    def count(self, layer, seen):
        layer.spikes += seen.events
        layer.neuron_updates += seen.rows * seen.width


class Encoder(Population):
    """**Encode**: with ``repeat`` 0 (a copy); with ``heaviside`` a spiking population."""

    rows = TOKEN_STEP

    def spiking(self, module):
        return module.encoding == "heaviside"

    def graded(self, module):
        return False

    def role_of(self, module, fed_by_spikes):
        return "population" if self.spiking(module) else "encode"

    def count(self, layer, seen):
        if self.spiking(seen.module):
            super().count(layer, seen)


class Projection(Rule):
    """**Linear fed by spikes** (input from a population): every input spike costs
    ``out_features`` accumulates: ``sops = input spikes x out_features`` (the input is checked
    to be binary at run time). **Linear fed by real values** (the embedding under
    ``encoding="repeat"``, the integer residual stream, the pooled vector of the head): dense
    ``macs = rows x in x out``, rows = the real tokens at every step (or the samples at every
    step in the head). Zeros in the input are not skipped; their fraction is reported
    (``input_density``), and ``decomposed_accumulates`` = sum of |input| x out_features says
    what it would cost to feed an integer input as that many unit spikes."""

    def width(self, module):
        return int(module.out_features)

    def role_of(self, module, fed_by_spikes):
        synaptic, dense = LINEAR_ROLES
        return synaptic if fed_by_spikes else dense

    def count(self, layer, seen):
        m, x = seen.module, seen.inputs[0]
        layer.input_elements += x.rows * m.in_features
        if x.events is not None:
            layer.input_nonzero = (layer.input_nonzero or 0) + x.events
        if x.spiking:
            layer.sops += x.events * m.out_features
            return
        layer.macs += x.rows * m.in_features * m.out_features
        if "non_integer_input" in layer.detail or x.non_integer:
            layer.detail.pop("decomposed_accumulates", None)
            layer.detail["non_integer_input"] = 1
        elif x.abs_sum is not None:
            layer.detail["decomposed_accumulates"] = layer.detail.get(
                "decomposed_accumulates", 0) + x.abs_sum * m.out_features


class Normalisation(Rule):
    """**Norm**, per real element (:data:`NORM_COST`): LayerNorm 3 MACs + 2 additions (mean
    sum; subtract the mean; variance MAC; multiply by 1/sigma; affine MAC; the per-token square
    root is not counted), BatchNorm in evaluation 1 MAC (``x * scale + shift``; 0 if folded
    into the Linear before)."""

    role = "norm"

    def width(self, module):
        return int(module.features)

    def for_node(self, graph, name):
        node = graph.nodes[name]
        if node.module.kind != "batch":
            return self
        data = [i for i in node.inputs if graph.nodes[i].op not in ("fold_mask", "input")]
        users = [n for n in graph.nodes.values() if data and data[0] in n.inputs]
        tables = ("linear", "embedding", "position_embedding")
        if len(data) == 1 and graph.nodes[data[0]].op in tables and len(users) == 1:
            return FOLDED_NORM
        return self

    def count(self, layer, seen):
        macs, adds = NORM_COST[seen.module.kind]
        elements = seen.rows * seen.width
        layer.macs += macs * elements
        layer.adds += adds * elements


class FoldedNorm(Normalisation):
    """**BatchNorm folded** into the Linear (or embedding tables) that alone feeds it: at
    inference ``W' = diag(scale) W``, ``b' = scale * b + shift``, so it costs nothing (the
    NIR export folds it the same way); ``detail["folded"]`` marks it."""

    def for_node(self, graph, name):
        return self

    def count(self, layer, seen):
        layer.detail["folded"] = 1


FOLDED_NORM = FoldedNorm()


class AttentionProduct(Rule):
    """**Attention product** ``(Q K^T) V`` of spikes, per head, step and sample, over real
    tokens (:func:`attention_sops`): ``Q K^T`` costs one accumulate per pair of coincident
    spikes, AND then accumulate: ``sum_c nq_c * nk_c`` with ``nq_c`` the real tokens whose Q
    spiked in channel ``c``. Then every V spike of token ``j`` adds ``A_ij`` into ``Y_i`` for
    every ``i`` with ``A_ij != 0``: ``sum_ij [A_ij != 0] * nv_j``. The scale is folded into the
    threshold of the attention neuron (exact for zero and subtract resets) and costs nothing.
    The other association ``Q (K^T V)``, which the model computes when L > head width, gives
    the same result; its count is kept in ``detail["sops_kv_first"]``.

    Counted from a run's spikes, or taken from a simulator that counted it inside its
    attention process, or, with neither, estimated from the spike rates
    (:func:`estimate_attention_sops`) and marked ``estimated``."""

    role = "attention"

    def count(self, layer, seen):
        q, k, v = seen.inputs[:3]
        heads = seen.module.num_heads
        found = seen.attention
        if found is None and q.spikes is not None:
            found = attention_sops(q.spikes, k.spikes, v.spikes, q.keep, heads)
        if found is None:
            sites = q.rows * q.width
            rates = [x.events / sites if sites else 0.0 for x in (q, k, v)]
            layer.sops += estimate_attention_sops(*rates, seen.lengths, q.width // heads,
                                                  heads, seen.time_steps)
            layer.estimated = True
        elif isinstance(found, Mapping):
            layer.sops += int(found["sops_qk"]) + int(found["sops_av"])
            for key, value in found.items():
                layer.detail[key] = layer.detail.get(key, 0) + int(value)
        else:
            layer.sops += int(found)


class Coincidences(Rule):
    """**Coincidence sum** of SDSA, ``scale * sum_tokens K * V``: ``K * V`` of spikes is an
    AND (a sign product for ternary spikes), each coincidence (both nonzero, real token) one
    accumulate into its channel's sum: ``sops = sum [k != 0][v != 0]``. The scale folds into
    the threshold of the gate neuron after it. Its output is one row per sample and step.
    Counted from a run's spikes, taken from a simulator that counted it, or, with neither,
    estimated from the K and V spike rates (``L r_k r_v D`` per sample and step) and marked
    ``estimated``."""

    role, rows = "attention", SAMPLE_STEP

    def count(self, layer, seen):
        k, v = seen.inputs[:2]
        found = seen.attention
        if found is None and k.spikes is not None:
            found = int(((k.spikes != 0) & (v.spikes != 0) & k.keep[..., None]).sum())
        if found is None:
            sites = k.rows * k.width
            rate_k, rate_v = (x.events / sites if sites else 0.0 for x in (k, v))
            layer.sops += round(sites * rate_k * rate_v)
            layer.estimated = True
        else:
            layer.sops += int(found if not isinstance(found, Mapping) else found["sops"])


class Gate(Rule):
    """**Spike gate** of SDSA, ``Q * G``: a mask (an AND per element), no arithmetic: 0. Its
    output is spikes (those of Q that pass); ``detail["passed_spikes"]`` counts them."""

    role = "gate"

    def spiking(self, module):
        return True

    def graded(self, module):
        return module.spikes == "ternary"

    def count(self, layer, seen):
        if seen.events is not None:
            layer.detail["passed_spikes"] = layer.detail.get("passed_spikes", 0) + seen.events


class Residual(Rule):
    """**Residual add** ``x + branch`` with a spiking branch: each branch spike is one
    accumulate into the stream (a synapse of fan-out 1): ``sops = branch spikes``. A
    real-valued operand other than the stream costs one addition per element."""

    role = "residual"

    def count(self, layer, seen):
        for x in seen.inputs[1:]:
            if x.spiking:
                layer.sops += x.events
            else:
                layer.adds += x.rows * x.width


class Mean(Rule):
    """**Means** (over tokens, over time): one addition per real input element and one
    multiplication (counted as a MAC) per output."""

    role = "pooling"

    def __init__(self, rows: str):
        self.rows = rows

    def count(self, layer, seen):
        x = seen.inputs[0]
        layer.adds += x.rows * x.width
        layer.macs += seen.rows * seen.width


def attention_sops(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor,
                   heads: int) -> dict[str, int]:
    """Accumulates of ``(Q K^T) V`` with binary ``q, k, v`` (rows, L, D), over real tokens
    (``keep`` (rows, L) bool), per head: ``sops_qk``, ``sops_av``, and the other association's
    ``sops_kv_first`` (``K^T V`` pairs, then each Q spike adds a row of it, zeros skipped)."""
    rows, length, width = q.shape
    real = keep.to(torch.float64)[:, None, :, None]

    def split(x):
        return x.to(torch.float64).reshape(rows, length, heads, width // heads).transpose(1, 2) * real

    q, k, v = split(q), split(k), split(v)
    nq, nk = q.sum(2), k.sum(2)                       # (rows, heads, d) tokens per channel
    sops_qk = (nq * nk).sum()
    scores = q @ k.transpose(-2, -1)                  # (rows, heads, L, L) integer counts
    nv = v.sum(-1)                                    # (rows, heads, L) V spikes per token
    sops_av = ((scores != 0).to(torch.float64) @ nv.unsqueeze(-1)).sum()
    pairs_kv = (k.sum(-1) * nv).sum()                 # K^T V: coincident (k_jc, v_jc') pairs
    kv = k.transpose(-2, -1) @ v                      # (rows, heads, d, d)
    row_nonzero = (kv != 0).sum(-1).to(torch.float64)  # (rows, heads, d)
    sops_q_kv = (q.sum(2) * row_nonzero).sum()
    return {"sops_qk": int(sops_qk), "sops_av": int(sops_av),
            "sops_kv_first": int(pairs_kv + sops_q_kv)}


def estimate_attention_sops(rate_q: float, rate_k: float, rate_v: float, lengths: Sequence[int],
                            head_width: int, heads: int, time_steps: int) -> int:
    """Expected accumulates of ``(Q K^T) V`` if every spike were independent with the given
    rates: per head, step and sample of L tokens, ``d (r_q L)(r_k L)`` coincidences for
    ``Q K^T``, and ``L^2 (1 - (1 - r_q r_k)^d) r_v d`` for ``A V`` (a non-zero score times the
    V spikes of its token)."""
    d = head_width
    nonzero_score = 1.0 - (1.0 - rate_q * rate_k) ** d
    per_length = sum(d * rate_q * rate_k * n * n + n * n * nonzero_score * rate_v * d
                     for n in lengths)
    return round(per_length * heads * time_steps)


COUNTING_RULES = OpTable(
    "energy counting",
    {
        "input": NotALayer(),
        "fold_mask": NotALayer(),
        "output": NotALayer(),
        "embedding": Lookup(),
        "position_embedding": PositionAdd(),
        "encode": Encoder(),
        "neuron": Population(),
        "linear": Projection(),
        "norm": Normalisation(),
        "attention_product": AttentionProduct(),
        "coincidence_sum": Coincidences(),
        "spike_gate": Gate(),
        "add": Residual(),
        "token_mean": Mean(SAMPLE_STEP),
        "time_mean": Mean(SAMPLE),
    },
    refused={
        "softmax_attention": "SpikeLM's real-valued softmax attention is not counted",
        "gelu": "SpikeLM's real-valued GELU is not counted",
        "representation_tap": "a distillation tap is not on the path to the logits; count the "
                              "model's inference graph (output_representations=False)",
    },
    error=CountingError,
)
"""The rule of every op; ``refused`` says why an op cannot be counted."""

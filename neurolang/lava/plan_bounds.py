"""The fixed-point numeric analysis of a Lava plan (``neurolang.lava.plan``; numpy only): an
upper bound of every node's ``|value|`` from the parameters alone (:func:`value_bounds`), the
one power-of-two scale of the real-valued residual stream (:func:`stream_scale`), and the
longest token sequence the bounds assume (:func:`max_length`).
"""

from __future__ import annotations

import math

import nir
import numpy as np

from neurolang.lava.quantise import STREAM_LIMIT, pow2_floor
from neurolang.nir.flatten import FlatGraph
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
)


def value_bounds(flat: FlatGraph, order: list[str]) -> dict[str, float]:
    """An upper bound of ``|value|`` for every node, in topological order, from the
    parameters alone (binary spikes are bounded by 1): what fixed point scales by."""
    nodes, max_len = flat.nodes, max_length(flat.nodes)
    bound: dict[str, float] = {}
    for name in order:
        node = nodes[name]
        ins = [bound[s] for s in flat.operands(name)]
        x = sum(ins)  # the sum of the incoming edges (NIR), or the first operand
        if isinstance(node, Embedding):
            b = float(np.max(np.abs(node.weight)))
        elif isinstance(node, PositionEmbedding):
            b = x + float(np.max(np.abs(node.weight)))
        elif isinstance(node, nir.Affine):
            w, bias = np.asarray(node.weight, np.float64), np.asarray(node.bias, np.float64)
            b = float(np.max(np.abs(w).sum(1) * x + np.abs(bias)))
        elif isinstance(node, LayerNorm):
            d = int(np.asarray(node.weight).size)
            b = (math.sqrt(max(d - 1, 1)) * float(np.max(np.abs(node.weight)))
                 + float(np.max(np.abs(node.bias))))
        elif isinstance(node, (nir.LIF, LIF, nir.Threshold, Threshold)):
            b = 1.0
        elif isinstance(node, ElasticBiSpike):
            b = float(np.max(node.alpha))
        elif isinstance(node, nir.Scale):
            b = x * float(np.max(np.abs(node.scale)))
        elif isinstance(node, SpikeAttention):
            head = int(node.features[0]) // int(node.num_heads[0])
            b = float(np.prod(ins)) * max_len * head * abs(float(node.scale[0]))
        elif isinstance(node, CoincidenceSum):
            b = float(np.prod(ins)) * max_len * abs(float(node.scale[0]))
        elif isinstance(node, SpikeGate):
            b = float(np.prod(ins))
        else:  # Input (ids: not a value), TokenMean and Output (their input's bound)
            b = x
        bound[name] = b
    return bound


def stream_scale(flat: FlatGraph, bound: dict[str, float], encoded: str) -> float:
    """The one power-of-two scale of the real-valued residual stream (fixed point): every
    residual sum and the encoder's output (``encoded``) within 24-bit payloads."""
    sums = [bound[k] for k, n in flat.nodes.items() if isinstance(n, nir.Scale)]
    return pow2_floor(STREAM_LIMIT / (max([bound[encoded], *sums]) + 1e-12))


def max_length(nodes) -> int:
    """The longest token sequence of a graph: its position embedding's rows (512 without)."""
    for n in nodes.values():
        if isinstance(n, PositionEmbedding):
            return int(n.weight.shape[0])
    return 512

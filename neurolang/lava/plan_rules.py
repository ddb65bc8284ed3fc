"""The rules of a Lava plan, one per NIR node type (``PLAN_RULES``; numpy only, no Lava needed).

A rule, ``(planner, node name, node)``, adds the processes that compute the node, or claims
nodes that a neighbour's process computes (``fused``); which process each node type becomes
is listed in ``neurolang.lava.plan``, which runs the rules in topological order.
"""

from __future__ import annotations

import math
from typing import Any

import nir
import numpy as np

from neurolang.lava.plan_bounds import max_length, stream_scale
from neurolang.lava.plan_types import LavaModelError, PlannedProcess, Planner
from neurolang.lava.quantise import (
    CURRENT_LIMIT,
    current_scale,
    pow2_floor,
    quantise_dense,
    quantise_readout,
    quantise_stream_current,
    value_scale,
)
from neurolang.nir.nodes import (
    LIF,
    STANDARD_TYPES,
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
from neurolang.op_table import OpTable


def lif_gain(spec: dict[str, Any]) -> float:
    """NIR's input gain ``r dt / tau`` of a neuron: ``1 - beta`` or 1."""
    return 1.0 - float(spec["beta"]) if spec["decay_input"] else 1.0


def _embedding_norm(node) -> tuple | None:
    """The encoder's form of a norm of the embeddings: ``("affine", scale, shift)`` for an
    evaluation BatchNorm (a diagonal ``Affine``), ``("layer", weight, bias, eps)``; None for
    anything else."""
    if isinstance(node, LayerNorm):
        return ("layer", node.weight, node.bias, float(node.eps.reshape(-1)[0]))
    if isinstance(node, nir.Affine) and (node.metadata or {}).get("neurolang.op") == "batch_norm":
        w = np.asarray(node.weight, np.float64)
        if w.ndim == 2 and w.shape[0] == w.shape[1] and np.array_equal(w, np.diag(np.diag(w))):
            return ("affine", np.diag(w).copy(), np.asarray(node.bias, np.float64))
    return None


def _token_encoder(ctx: Planner, name: str, node) -> None:
    """``Input`` (ids) -> ``Embedding`` [-> ``PositionEmbedding``] [-> a norm of the
    embeddings] [-> Heaviside]: one ``TokenEncoder``, computed on the host (the norm too: a
    BatchNorm is an affine map of the input, a LayerNorm runs before the encoding as the
    input's own computation)."""
    nodes = ctx.nodes
    if (node.metadata or {}).get("neurolang.input") != "token_ids":
        ctx.fail(name, "the Lava runner takes token ids as input")

    def only_consumer(n: str) -> str | None:
        users = ctx.consumers(n)
        return users[0] if len(users) == 1 else None

    chain = [name]
    first = only_consumer(name)
    if first is None or not isinstance(nodes[first], Embedding):
        ctx.fail(name, "token ids must feed a neurolang.Embedding")
    chain.append(first)
    params = {"embedding": nodes[first].weight, "position": None, "norm": None,
              "heaviside": None}
    stages = (
        lambda n: isinstance(n, PositionEmbedding),
        lambda n: _embedding_norm(n) is not None,
        lambda n: isinstance(n, (nir.Threshold, Threshold)),
    )
    for accepts in stages:
        nxt = only_consumer(chain[-1])
        if nxt is not None and accepts(nodes[nxt]):
            chain.append(nxt)
    for c in chain[2:]:
        n = nodes[c]
        if isinstance(n, PositionEmbedding):
            params["position"] = n.weight
        elif isinstance(n, (nir.Threshold, Threshold)):
            if np.any(np.asarray(n.threshold) != 0):
                ctx.fail(c, "only a Heaviside at 0 is supported")
            params["heaviside"] = getattr(n, "comparison", ">")
            ctx.spiking.add(c)
        else:
            params["norm"] = _embedding_norm(n)
    last = chain[-1]
    # a real-valued stream: graded integers in units of 1 / stream_scale (fixed point)
    ctx.stream_scale = stream_scale(ctx.flat, ctx.bound, last)
    ctx.scale[last] = 1.0 if params["heaviside"] else ctx.stream_scale
    params["x_scale"] = ctx.scale[last] if ctx.fixed_point else 1.0
    ctx.steps[last] = PlannedProcess(last, "encoder", [], params)
    ctx.fused.update(chain)
    for c in chain:
        ctx.made[c] = last
    if params["heaviside"]:
        ctx.register(last, last, 0)


def _affine(ctx: Planner, name: str, node) -> None:
    if ((node.metadata or {}).get("neurolang.op") == "batch_norm"
            and ctx.consumer_types(name) == ["neurolang.TokenMean"]):
        return  # folded into the readout (_token_readout)
    nodes = ctx.nodes
    src = ctx.source(name)
    if isinstance(nodes[src], TokenMean):
        ctx.fail(name, "internal: classifier not claimed by its readout")
    out, layer_norm = name, None
    users = ctx.consumers(name)
    if len(users) == 1 and isinstance(nodes[users[0]], LayerNorm):
        out = users[0]
        ln = nodes[out]
        layer_norm = (ln.weight, ln.bias, float(ln.eps.reshape(-1)[0]))
        ctx.fused.add(out)
    _dense(ctx, name, out, src, np.asarray(node.weight, np.float64),
           np.asarray(node.bias, np.float64), layer_norm)


def _dense(ctx: Planner, name: str, out: str, src: str, weight: np.ndarray, bias: np.ndarray,
           layer_norm) -> None:
    """A ``TokenDense`` computing ``out`` (``name``, or the LayerNorm fused after it) from
    ``src``: the input gain of the LIF it alone feeds applied, the spikes it reads counted.

    Fixed point: integer currents for the Lava LIF it feeds; a layer that feeds residual sums
    only (a membrane shortcut's branch, ``u + Norm(W s)``) sends graded integers in the
    stream's units, one that feeds the mean over tokens (a head ``mean_tokens W s``) in units
    of its own bound."""
    spec = ctx.feeds_lif(out)
    gain = lif_gain(spec) if spec else 1.0
    count = src in ctx.spiking and src not in ctx.populations
    params = {"weight": weight, "bias": bias, "layer_norm": layer_norm, "gain": gain,
              "count": count}
    if ctx.fixed_point:
        out_scale = None
        users = ctx.consumer_types(out)
        if spec is None and users and all(u == "Scale" for u in users):
            out_scale = ctx.stream_scale
        elif spec is None and users == [TokenMean.TYPE]:
            out_scale = value_scale(ctx.bound[out])
        params.update(quantise_dense(name, params, ctx.bound.get(src, math.inf),
                                     ctx.scale.get(src, 1.0), spec, ctx.fail, out_scale))
        if out_scale is not None:
            ctx.scale[out] = out_scale
    ctx.steps[out] = PlannedProcess(out, "dense", [ctx.made[src]], params)
    if count:
        ctx.register(src, out, 0)
    ctx.made[name] = ctx.made[out] = out


def _layer_norm(ctx: Planner, name: str, node) -> None:
    """Fused into the dense layer before it (``_affine``), into the encoder (a norm of the
    embeddings, ``_token_encoder``) or into the readout after it; any other LayerNorm is a
    ``TokenDense`` of identity weights with the LayerNorm fused in (``x I^T + 0 = x``
    exactly)."""
    if ctx.consumer_types(name) == ["neurolang.TokenMean"]:
        return
    src = ctx.source(name)
    d = int(np.asarray(node.weight).size)
    _dense(ctx, name, name, src, np.eye(d), np.zeros(d),
           (node.weight, node.bias, float(node.eps.reshape(-1)[0])))


def _threshold(ctx: Planner, name: str, node) -> None:
    """A Heaviside the ``TokenEncoder`` does not hold (one after a norm of the embeddings):
    neurolang's ``ReferenceLIF`` with ``beta = 0`` and threshold 0, so ``h = 0 * v + x = x``
    exactly and ``s = [x > 0]`` (or ``>=``); floating point only."""
    if np.any(np.asarray(node.threshold) != 0):
        ctx.fail(name, "only a Heaviside at 0 is supported")
    if ctx.fixed_point:
        ctx.fail(name, "fixed point runs a Heaviside in the token encoder only (right after "
                       "the embeddings)")
    src = ctx.source(name)
    spec = {"tau": 1.0, "beta": 0.0, "decay_input": False, "v_threshold": 0.0,
            "reset": "zero", "threshold_comparison": getattr(node, "comparison", ">")}
    ctx.steps[name] = PlannedProcess(name, "ref_lif", [ctx.made[src]],
                                     {"spec": spec, "features": int(node.threshold.size)})
    ctx.made[name] = name
    ctx.spiking.add(name)
    ctx.bound[name], ctx.scale[name] = 1.0, 1.0


def _encoder_part(ctx: Planner, name: str, node) -> None:
    """Embeddings run in the ``TokenEncoder`` of the input they follow
    (``_token_encoder``); anywhere else they have no process."""
    ctx.fail(name, "no Lava process for this node type")


def _elastic_bispike(ctx: Planner, name: str, node) -> None:
    src = ctx.source(name)
    alpha = np.asarray(node.alpha, dtype=np.float64).reshape(-1)
    if alpha.size != ctx.time_steps:
        ctx.fail(name, f"{alpha.size} spike amplitudes for {ctx.time_steps} time steps")
    ctx.steps[name] = PlannedProcess(name, "elastic", [ctx.made[src]],
                                     {"alpha": alpha, "features": int(node.features[0]),
                                      "rows": _rows(ctx, name, src)})
    ctx.made[name] = name
    ctx.spiking.add(name)


def _rows(ctx: Planner, name: str, src: str) -> int | None:
    """1 for a population on a value without token axis (an SDSA gate), else None (one row
    per token slot); ``name`` inherits it from ``src``."""
    if src in ctx.single_row:
        ctx.single_row.add(name)
        return 1
    return None


def _lif(ctx: Planner, name: str, node) -> None:
    src = ctx.source(name)
    spec = ctx.spec_of(name)
    standard = isinstance(node, nir.LIF) and not ctx.exact_lif
    if not standard and ctx.fixed_point:
        ctx.fail(name, "fixed point runs Lava's bit-accurate LIF: zero reset and '>' only")
    producer = ctx.steps[ctx.made[src]]
    port, quant = None, None
    # Lava's LIF takes its input gain from the process feeding it: a dense layer, attention
    # product or coincidence sum whose only consumer it is (``feeds_lif``). Fed by anything
    # else (a residual sum, the encoder: a membrane shortcut's neuron reading the stream ``u``)
    # it runs, in floating point, as neurolang's ReferenceLIF, whose own formula applies the
    # gain; in fixed point as Lava's LIF fed by the stream process's second port, ``c_out``,
    # which sends the current ``round(u * gain * a_scale)`` besides the stream.
    if standard and (producer.kind not in ("dense", "attention", "coincidence")
                     or ctx.feeds_lif(src) is None):
        if not ctx.fixed_point:
            standard = False
        elif producer.kind in ("encoder", "residual"):
            quant = quantise_stream_current(spec["v_threshold"], lif_gain(spec),
                                            ctx.bound[src], ctx.scale.get(src, 1.0))
            if producer.params.get("current") not in (None, quant):
                ctx.fail(name, f"{src!r} already sends the current of another LIF "
                               "population, with other parameters")
            producer.params["current"] = quant
            port = "c_out"
        else:
            ctx.fail(name, f"fixed point runs Lava's LIF, whose input gain the dense layer or "
                           f"attention product feeding only it applies; {src!r} "
                           f"({producer.kind}) feeds it")
    params = {"spec": spec, "features": int(node.v_threshold.size),
              "rows": _rows(ctx, name, src)}
    if ctx.fixed_point:
        q = quant if quant is not None else producer.params["quant"]
        params["vth"] = int(round(spec["v_threshold"] * q["a_scale"]))
        params["dv"] = int(round((1.0 - spec["beta"]) * 4096))
    ctx.steps[name] = PlannedProcess(name, "lif" if standard else "ref_lif", [ctx.made[src]],
                                     params, ports={0: port} if port else {})
    ctx.made[name] = name
    ctx.spiking.add(name)
    ctx.scale[name] = 1.0


def _spike_attention(ctx: Planner, name: str, node) -> None:
    ops = ctx.flat.operands(name)
    for op in ops:
        if op not in ctx.spiking:
            ctx.fail(name, f"operand {op!r} is not a spike population")
    spec = ctx.feeds_lif(name)
    d = int(node.features[0])
    params = {"num_heads": int(node.num_heads[0]), "scale": float(node.scale[0]),
              "gain": lif_gain(spec) if spec else 1.0, "features": d}
    if ctx.fixed_point:
        if spec is None:
            ctx.fail(name, "fixed point needs Lava's LIF after the attention product")
        # |(Q K^T) V| <= L * head_dim for binary spikes
        max_len = max_length(ctx.nodes)
        b = max_len * (d // params["num_heads"]) * params["scale"] * params["gain"]
        a_scale = pow2_floor(min(CURRENT_LIMIT / spec["v_threshold"], CURRENT_LIMIT / b))
        params["quant"] = {"a_scale": a_scale, "a_limit": CURRENT_LIMIT}
    ctx.steps[name] = PlannedProcess(name, "attention", [ctx.made[o] for o in ops], params)
    for i, op in enumerate(ops):
        ctx.register(op, name, i)
    ctx.made[name] = name


def _coincidence_sum(ctx: Planner, name: str, node) -> None:
    """SDSA's ``scale * sum_tokens K * V``: neurolang's ``CoincidenceSum`` (K and V counted,
    the coincidences too), one row per step, the input gain of the gate neuron applied."""
    ops = ctx.flat.operands(name)
    for op in ops:
        if op not in ctx.spiking:
            ctx.fail(name, f"operand {op!r} is not a spike population")
        if op in ctx.single_row:
            ctx.fail(name, f"operand {op!r} has no token axis")
    spec = ctx.feeds_lif(name)
    params = {"scale": float(node.scale[0]), "gain": lif_gain(spec) if spec else 1.0,
              "features": int(node.features[0])}
    if ctx.fixed_point:
        if spec is None:
            ctx.fail(name, "fixed point needs Lava's LIF after the coincidence sum")
        # |scale * sum_l K V| <= L * scale for binary spikes
        top = max_length(ctx.nodes) * abs(params["scale"]) * params["gain"]
        params["quant"] = {"a_scale": current_scale(spec["v_threshold"], top),
                           "a_limit": CURRENT_LIMIT}
    ctx.steps[name] = PlannedProcess(name, "coincidence", [ctx.made[o] for o in ops], params)
    for i, op in enumerate(ops):
        ctx.register(op, name, i)
    ctx.made[name] = name
    ctx.single_row.add(name)


def _spike_gate(ctx: Planner, name: str, node) -> None:
    """SDSA's ``Q * G``: neurolang's ``SpikeGate`` (Q and G counted); its output is a spike
    population, counted by the layer that reads it."""
    ops = ctx.flat.operands(name)
    for op in ops:
        if op not in ctx.spiking:
            ctx.fail(name, f"operand {op!r} is not a spike population")
    q, g = ops
    if q in ctx.single_row or g not in ctx.single_row:
        ctx.fail(name, f"it gates the tokens of {q!r} by one row, {g!r}: the gate must follow "
                       "a coincidence sum")
    ctx.steps[name] = PlannedProcess(name, "gate", [ctx.made[q], ctx.made[g]],
                                     {"features": int(node.features[0])})
    for i, op in enumerate(ops):
        ctx.register(op, name, i)
    ctx.made[name] = name
    ctx.spiking.add(name)
    ctx.scale[name] = 1.0


def _residual(ctx: Planner, name: str, node) -> None:
    srcs = ctx.flat.sources(name)
    if len(srcs) != 2 or np.any(np.asarray(node.scale) != 1):
        ctx.fail(name, "only residual sums (Scale of ones, two inputs) are supported")
    uncounted = [s for s in srcs if s in ctx.spiking and s not in ctx.populations]
    b = uncounted[0] if uncounted else srcs[1]
    a = srcs[0] if b == srcs[1] else srcs[1]
    if not uncounted and ctx.scale.get(b, 1.0) > ctx.scale.get(a, 1.0):
        a, b = b, a  # fixed point: the finer operand sets the sum's units
    for s in (a, b):
        if s not in ctx.made:
            ctx.fail(name, f"its input {s!r} is not computed by any process")
    b_scale = ctx.scale.get(a, 1.0) / ctx.scale.get(b, 1.0)
    if ctx.fixed_point and b_scale != round(b_scale):
        ctx.fail(name, "fixed point needs the branch's stream scale to divide the stream's")
    ctx.steps[name] = PlannedProcess(name, "residual", [ctx.made[a], ctx.made[b]],
                                     {"features": int(node.scale.size),
                                      "b_scale": float(b_scale) if ctx.fixed_point else 1.0})
    ctx.register(b, name, 0)
    ctx.made[name] = name
    ctx.scale[name] = ctx.scale.get(a, 1.0)


def _token_readout(ctx: Planner, name: str, node) -> None:
    """The mean over tokens with the norm before it, the classifier after it (Lava's
    ``Dense``) and the logits."""
    nodes = ctx.nodes
    src = ctx.flat.sources(name)
    if len(src) != 1:
        ctx.fail(name, "it must have one input")
    pre, params = src[0], {"layer_norm": None, "affine": None,
                           "features": int(node.features[0])}
    if isinstance(nodes[pre], LayerNorm):
        ln = nodes[pre]
        params["layer_norm"] = (ln.weight, ln.bias, float(ln.eps.reshape(-1)[0]))
        pre = ctx.source(pre)
    elif isinstance(nodes[pre], nir.Affine) and pre not in ctx.made:  # BatchNorm (_affine)
        aff = nodes[pre]
        params["affine"] = (np.asarray(aff.weight, np.float64),
                            np.asarray(aff.bias, np.float64))
        pre = ctx.source(pre)
    elif pre not in ctx.made:
        ctx.fail(name, f"its input {pre!r} is not computed by any process")
    users = ctx.consumers(name)
    if users and all(isinstance(nodes[u], nir.Output) for u in users):
        # the classifier came before the mean (a head ``mean_tokens W s`` reading spikes):
        # the mean is the logits, which Lava's Dense passes on with identity weights
        clf_name, outs, d = f"{name}.identity", users, params["features"]
        weight, bias = np.eye(d), np.zeros(d)
    else:
        if len(users) != 1 or not isinstance(nodes[users[0]], nir.Affine):
            ctx.fail(name, "the mean over tokens must feed one classifier Affine or the "
                           "graph's Output")
        clf_name = users[0]
        clf = nodes[clf_name]
        outs = ctx.consumers(clf_name)
        if not outs or not all(isinstance(nodes[o], nir.Output) for o in outs):
            ctx.fail(clf_name, "the classifier must feed the graph's Output")
        weight, bias = np.asarray(clf.weight, np.float64), np.asarray(clf.bias, np.float64)
    ctx.classes = weight.shape[0]
    cparams = {"weight": weight, "bias": bias}
    if ctx.fixed_point:
        quantise_readout(params, cparams, ctx.bound.get(pre, math.inf), ctx.fail, name)
        params["quant"]["x_scale"] = ctx.scale.get(pre, 1.0)
    ctx.steps[name] = PlannedProcess(name, "readout", [ctx.made[pre]], params)
    ctx.steps[clf_name] = PlannedProcess(clf_name, "classifier", [name], cparams)
    ctx.steps["logits"] = PlannedProcess("logits", "logits", [clf_name], {
        "bias": cparams["bias"], "classes": ctx.classes,
        "out_scale": cparams.get("out_scale", 1.0)}, latency=1)
    ctx.fused.update([clf_name, *outs] if clf_name in nodes else outs)
    ctx.made[name] = name


def _output(ctx: Planner, name: str, node) -> None:
    """Claimed by the readout (``_token_readout``) when it follows the classifier."""
    ctx.fail(name, "outputs must come from a classifier after a mean over tokens")


_STANDARD_RULES = {"Input": _token_encoder, "Affine": _affine, "LIF": _lif,
                   "Scale": _residual, "Threshold": _threshold, "Output": _output}
PLAN_RULES = OpTable(
    "Lava",
    rules={
        **_STANDARD_RULES,
        Embedding.TYPE: _encoder_part, PositionEmbedding.TYPE: _encoder_part,
        Threshold.TYPE: _threshold, LayerNorm.TYPE: _layer_norm,
        SpikeAttention.TYPE: _spike_attention, CoincidenceSum.TYPE: _coincidence_sum,
        SpikeGate.TYPE: _spike_gate, TokenMean.TYPE: _token_readout,
        LIF.TYPE: _lif, ElasticBiSpike.TYPE: _elastic_bispike,
    },
    # standard types neurolang never writes (NIRGraph: flattened before planning)
    refused={t: "no Lava process for this node type" for t in STANDARD_TYPES
             if t not in _STANDARD_RULES},
    error=LavaModelError,
)

"""A neurolang NIR graph as a plan of Lava processes (numpy only, no Lava needed).

``plan_network`` walks the flattened graph (``neurolang.nir.flatten``) in topological order
and hands every node to its rule, ``PLAN_RULES[node type]``: every type the exporter can emit
(standard NIR and neurolang's extensions) has a rule or a refusal. A rule adds the processes
that compute the node, or claims nodes that a neighbour's process computes (``fused``):

- ``Input`` (token ids) -> ``neurolang.Embedding`` [-> ``PositionEmbedding``] [-> Heaviside
  ``Threshold``]: one ``TokenEncoder`` process;
- ``Affine`` [-> ``neurolang.LayerNorm``] on the token stream: ``TokenDense`` (one weight
  matrix for every token; the LayerNorm fused in);
- ``LIF`` (zero reset, ``>``): Lava's own ``LIFReset`` (``du = 1``, ``dv = 1 - beta``,
  ``vth = v_threshold``, reset every ``time_steps`` steps at each sample's first step); the
  input gain of NIR's LIF, ``r dt / tau`` (``1 - beta`` for SpikingJelly's input decay), is
  applied by the process that feeds it; ``neurolang.LIF`` (subtract reset, ``>=``):
  neurolang's ``ReferenceLIF``; ``neurolang.ElasticBiSpike`` (SpikeLM, graded signed
  spikes): neurolang's ``ElasticBiSpike`` (floating point only);
- ``neurolang.SpikeAttention``: ``SpikeAttention``; ``Scale`` of ones with two inputs (the
  residual sum): ``Residual``;
- [``LayerNorm`` | ``Affine`` (BatchNorm)] -> ``neurolang.TokenMean``: ``TokenReadout``;
  then the classifier ``Affine``: Lava's own ``Dense`` (graded input, the bias added after)
  -> ``LogitsReadout``, which stores the logits of every sample and step.

Latency: Lava's ``Dense`` sends the previous step's result, one step late; each process
knows the number of ``Dense`` before it (``latency``) and files what it receives under the step
it belongs to, so every count and logit is aligned with the torch backend's step index.
Fixed point (``fixed_point=True``): integer spikes and currents between processes, with the
scales of ``neurolang.lava.quantise`` (``docs/lava.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from neurolang.lava.quantise import (
    CURRENT_LIMIT,
    STREAM_LIMIT,
    pow2_floor,
    quantise_dense,
    quantise_readout,
    summary,
)
from neurolang.nir.errors import NIRError
from neurolang.nir.flatten import FlatGraph, flatten
from neurolang.nir.io import read_metadata
from neurolang.nir.lif import lif_spec
from neurolang.nir.nodes import (
    LIF,
    STANDARD_TYPES,
    ElasticBiSpike,
    Embedding,
    LayerNorm,
    PositionEmbedding,
    SpikeAttention,
    Threshold,
    TokenMean,
    node_type,
)
from neurolang.op_table import OpTable


class LavaModelError(ValueError):
    """The graph contains something the Lava runner cannot simulate."""


@dataclass
class PlannedProcess:
    """One Lava process of the plan."""

    name: str  # the graph node whose value this process outputs
    kind: str  # encoder, dense, lif, ref_lif, elastic, attention, residual, readout,
    # classifier, logits
    inputs: list[str]  # the planned processes feeding its ports, in port order
    params: dict[str, Any] = field(default_factory=dict)
    latency: int = 0


@dataclass
class Plan:
    """The processes of a network, by name (``steps``: one Lava process each, in the order
    they are built), and the populations they count (population -> (process, port))."""

    steps: dict[str, PlannedProcess]
    populations: dict[str, tuple[str, int]]
    time_steps: int
    dt: float
    fixed_point: bool
    classes: int
    quantisation: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def max_latency(self) -> int:
        return max(s.latency for s in self.steps.values())


def lif_gain(spec: dict[str, Any]) -> float:
    """NIR's input gain ``r dt / tau`` of a neuron: ``1 - beta`` or 1."""
    return 1.0 - float(spec["beta"]) if spec["decay_input"] else 1.0


@dataclass
class Planner:
    """What the rules of one plan share: the graph, and the plan being built.

    ``made`` maps a node to the process that produces its value; ``spiking`` holds the nodes
    whose value is a spike population; ``bound`` and ``scale`` (fixed point) the largest
    ``|value|`` of each stream and its integer units per 1.0.
    """

    flat: FlatGraph
    dt: float
    time_steps: int
    fixed_point: bool
    exact_lif: bool
    steps: dict[str, PlannedProcess] = field(default_factory=dict)
    made: dict[str, str] = field(default_factory=dict)
    populations: dict[str, tuple[str, int]] = field(default_factory=dict)
    spiking: set[str] = field(default_factory=set)
    bound: dict[str, float] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    fused: set[str] = field(default_factory=set)
    classes: int = 0

    @property
    def nodes(self) -> dict[str, nir.NIRNode]:
        return self.flat.nodes

    def fail(self, name: str, why: str):
        raise LavaModelError(f"the Lava runner cannot run {name!r} "
                             f"({node_type(self.nodes[name])}): {why}")

    def consumers(self, name: str) -> list[str]:
        return self.flat.targets(name)

    def consumer_types(self, name: str) -> list[str]:
        return [node_type(self.nodes[u]) for u in self.consumers(name)]

    def source(self, name: str) -> str:
        """The one input of ``name``, which a process must compute."""
        src = self.flat.sources(name)
        if len(src) != 1:
            self.fail(name, f"it sums {len(src)} inputs")
        if src[0] not in self.made:
            self.fail(name, f"its input {src[0]!r} is not computed by any process")
        return src[0]

    def spec_of(self, name: str) -> dict[str, Any]:
        return lif_spec(self.nodes[name], self.dt, name)

    def feeds_lif(self, name: str) -> dict | None:
        """The spec of the only consumer if that is a LIF run by Lava's LIF, else None."""
        users = self.consumers(name)
        if len(users) == 1 and isinstance(self.nodes[users[0]], nir.LIF) and not self.exact_lif:
            return self.spec_of(users[0])
        return None

    def register(self, pop: str, step: str, port: int) -> None:
        """``step`` counts the spikes of ``pop`` on ``port`` (the first process to ask)."""
        if pop in self.spiking and pop not in self.populations:
            self.populations[pop] = (step, port)


# --------------------------------------------------------------------------------------------
# Rules: (planner, node name, node)


def _token_encoder(ctx: Planner, name: str, node) -> None:
    nodes = ctx.nodes
    if (node.metadata or {}).get("neurolang.input") != "token_ids":
        ctx.fail(name, "the Lava runner takes token ids as input")
    chain = [name]
    while True:
        users = ctx.consumers(chain[-1])
        nxt = users[0] if len(users) == 1 else None
        allowed = (Embedding,) if len(chain) == 1 else (PositionEmbedding, nir.Threshold,
                                                         Threshold)
        if nxt is None or not isinstance(nodes[nxt], allowed):
            break
        chain.append(nxt)
        if isinstance(nodes[nxt], (nir.Threshold, Threshold)):
            break
    if len(chain) < 2:
        ctx.fail(name, "token ids must feed a neurolang.Embedding")
    params = {"embedding": nodes[chain[1]].weight, "position": None, "heaviside": None}
    for c in chain[2:]:
        n = nodes[c]
        if isinstance(n, PositionEmbedding):
            params["position"] = n.weight
        else:
            if np.any(np.asarray(n.threshold) != 0):
                ctx.fail(c, "only a Heaviside at 0 is supported")
            params["heaviside"] = getattr(n, "comparison", ">")
            ctx.spiking.add(c)
    last = chain[-1]
    if params["heaviside"]:
        ctx.bound[last], ctx.scale[last] = 1.0, 1.0
    else:  # a real-valued stream: graded integers in units of 1/x_scale
        top = float(np.max(np.abs(params["embedding"])))
        if params["position"] is not None:
            top += float(np.max(np.abs(params["position"])))
        residuals = sum(isinstance(n, nir.Scale) for n in nodes.values())
        ctx.bound[last] = top
        ctx.scale[last] = pow2_floor(STREAM_LIMIT / (top + residuals + 1e-12))
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
    spec = ctx.feeds_lif(out)
    gain = lif_gain(spec) if spec else 1.0
    count = src in ctx.spiking and src not in ctx.populations
    params = {"weight": np.asarray(node.weight, np.float64),
              "bias": np.asarray(node.bias, np.float64), "layer_norm": layer_norm,
              "gain": gain, "count": count}
    if ctx.fixed_point:
        params.update(quantise_dense(name, params, ctx.bound.get(src, math.inf),
                                     ctx.scale.get(src, 1.0), spec, ctx.fail))
    ctx.steps[out] = PlannedProcess(out, "dense", [ctx.made[src]], params)
    if count:
        ctx.register(src, out, 0)
    ctx.made[name] = ctx.made[out] = out


def _layer_norm(ctx: Planner, name: str, node) -> None:
    """Fused into the dense layer before it (``_affine``) or into the readout after it; any
    other LayerNorm has no process."""
    if ctx.consumer_types(name) != ["neurolang.TokenMean"]:
        ctx.fail(name, "no Lava process for this node type")


def _encoder_part(ctx: Planner, name: str, node) -> None:
    """Embeddings and Heavisides run in the ``TokenEncoder`` of the input they follow
    (``_token_encoder``); anywhere else they have no process."""
    ctx.fail(name, "no Lava process for this node type")


def _elastic_bispike(ctx: Planner, name: str, node) -> None:
    src = ctx.source(name)
    alpha = np.asarray(node.alpha, dtype=np.float64).reshape(-1)
    if alpha.size != ctx.time_steps:
        ctx.fail(name, f"{alpha.size} spike amplitudes for {ctx.time_steps} time steps")
    ctx.steps[name] = PlannedProcess(name, "elastic", [ctx.made[src]],
                                     {"alpha": alpha, "features": int(node.features[0])})
    ctx.made[name] = name
    ctx.spiking.add(name)


def _lif(ctx: Planner, name: str, node) -> None:
    src = ctx.source(name)
    spec = ctx.spec_of(name)
    standard = isinstance(node, nir.LIF) and not ctx.exact_lif
    if not standard and ctx.fixed_point:
        ctx.fail(name, "fixed point runs Lava's bit-accurate LIF: zero reset and '>' only")
    producer = ctx.steps[ctx.made[src]]
    if standard and producer.kind not in ("dense", "attention"):
        ctx.fail(name, "a LIF must follow a dense layer or an attention product")
    params = {"spec": spec, "features": int(node.v_threshold.size)}
    if ctx.fixed_point:
        q = producer.params["quant"]
        params["vth"] = int(round(spec["v_threshold"] * q["a_scale"]))
        params["dv"] = int(round((1.0 - spec["beta"]) * 4096))
    ctx.steps[name] = PlannedProcess(name, "lif" if standard else "ref_lif", [ctx.made[src]],
                                     params)
    ctx.made[name] = name
    ctx.spiking.add(name)
    ctx.bound[name], ctx.scale[name] = 1.0, 1.0


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
        max_len = _max_len(ctx.nodes)
        b = max_len * (d // params["num_heads"]) * params["scale"] * params["gain"]
        a_scale = pow2_floor(min(CURRENT_LIMIT / spec["v_threshold"], CURRENT_LIMIT / b))
        params["quant"] = {"a_scale": a_scale, "a_limit": CURRENT_LIMIT}
    ctx.steps[name] = PlannedProcess(name, "attention", [ctx.made[o] for o in ops], params)
    for i, op in enumerate(ops):
        ctx.register(op, name, i)
    ctx.made[name] = name


def _residual(ctx: Planner, name: str, node) -> None:
    srcs = ctx.flat.sources(name)
    if len(srcs) != 2 or np.any(np.asarray(node.scale) != 1):
        ctx.fail(name, "only residual sums (Scale of ones, two inputs) are supported")
    uncounted = [s for s in srcs if s in ctx.spiking and s not in ctx.populations]
    b = uncounted[0] if uncounted else srcs[1]
    a = srcs[0] if b == srcs[1] else srcs[1]
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
    ctx.bound[name] = ctx.bound.get(a, math.inf) + ctx.bound.get(b, math.inf)
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
    elif isinstance(nodes[pre], nir.Affine):
        aff = nodes[pre]
        params["affine"] = (np.asarray(aff.weight, np.float64),
                            np.asarray(aff.bias, np.float64))
        pre = ctx.source(pre)
    elif pre not in ctx.made:
        ctx.fail(name, f"its input {pre!r} is not computed by any process")
    users = ctx.consumers(name)
    if len(users) != 1 or not isinstance(nodes[users[0]], nir.Affine):
        ctx.fail(name, "the mean over tokens must feed one classifier Affine")
    clf_name = users[0]
    clf = nodes[clf_name]
    outs = ctx.consumers(clf_name)
    if not outs or not all(isinstance(nodes[o], nir.Output) for o in outs):
        ctx.fail(clf_name, "the classifier must feed the graph's Output")
    weight = np.asarray(clf.weight, np.float64)
    ctx.classes = weight.shape[0]
    cparams = {"weight": weight, "bias": np.asarray(clf.bias, np.float64)}
    if ctx.fixed_point:
        quantise_readout(params, cparams, ctx.bound.get(pre, math.inf), ctx.fail, name)
        params["quant"]["x_scale"] = ctx.scale.get(pre, 1.0)
    ctx.steps[name] = PlannedProcess(name, "readout", [ctx.made[pre]], params)
    ctx.steps[clf_name] = PlannedProcess(clf_name, "classifier", [name], cparams)
    ctx.steps["logits"] = PlannedProcess("logits", "logits", [clf_name], {
        "bias": cparams["bias"], "classes": ctx.classes,
        "out_scale": cparams.get("out_scale", 1.0)}, latency=1)
    ctx.fused.update([clf_name, *outs])
    ctx.made[name] = name


def _output(ctx: Planner, name: str, node) -> None:
    """Claimed by the readout (``_token_readout``) when it follows the classifier."""
    ctx.fail(name, "outputs must come from a classifier after a mean over tokens")


_STANDARD_RULES = {"Input": _token_encoder, "Affine": _affine, "LIF": _lif,
                   "Scale": _residual, "Threshold": _encoder_part, "Output": _output}
PLAN_RULES = OpTable(
    "Lava",
    rules={
        **_STANDARD_RULES,
        Embedding.TYPE: _encoder_part, PositionEmbedding.TYPE: _encoder_part,
        Threshold.TYPE: _encoder_part, LayerNorm.TYPE: _layer_norm,
        SpikeAttention.TYPE: _spike_attention, TokenMean.TYPE: _token_readout,
        LIF.TYPE: _lif, ElasticBiSpike.TYPE: _elastic_bispike,
    },
    # standard types neurolang never writes (NIRGraph: flattened before planning)
    refused={t: "no Lava process for this node type" for t in STANDARD_TYPES
             if t not in _STANDARD_RULES},
    error=LavaModelError,
)


def plan_network(graph: nir.NIRGraph, fixed_point: bool = False,
                 exact_lif: bool = False) -> Plan:
    """Map a neurolang NIR graph onto Lava processes (no Lava needed; raises
    :class:`LavaModelError` naming what cannot run)."""
    try:
        meta = read_metadata(graph)
    except NIRError as err:
        raise LavaModelError(str(err)) from None
    flat = flatten(graph)
    order = flat.topological_order()
    ctx = Planner(flat, float(meta["dt"]), int(meta["time_steps"]), fixed_point, exact_lif)
    if fixed_point:
        elastic = [k for k, n in flat.nodes.items() if isinstance(n, ElasticBiSpike)]
        if elastic:
            raise LavaModelError(
                f"fixed point is not supported for elastic bi-spiking neurons ({len(elastic)} "
                f"populations, e.g. {elastic[0]!r}: graded, signed spikes scaled by a per-step "
                "alpha); run the model in floating point")
    for name in order:
        if name in ctx.fused:
            continue
        kind = node_type(flat.nodes[name])
        if kind in PLAN_RULES.refused:
            ctx.fail(name, PLAN_RULES.refused[kind])
        PLAN_RULES[kind](ctx, name, flat.nodes[name])
    if "logits" not in ctx.steps:
        raise LavaModelError("the graph has no classifier readout (TokenMean -> Affine -> "
                             "Output) for the Lava runner")
    missing = sorted(ctx.spiking - set(ctx.populations))
    if missing:
        raise LavaModelError(f"spike populations {missing} feed no process that counts them")
    quant = {}
    if fixed_point:
        for s in ctx.steps.values():
            q = s.params.get("quant")
            if q:
                quant[s.name] = {k: summary(v) for k, v in q.items()}
    return Plan(ctx.steps, ctx.populations, ctx.time_steps, ctx.dt, fixed_point, ctx.classes,
                quant)


def _max_len(nodes) -> int:
    for n in nodes.values():
        if isinstance(n, PositionEmbedding):
            return int(n.weight.shape[0])
    return 512

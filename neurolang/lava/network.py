"""A neurolang NIR graph as a Lava network: the plan (numpy only) and the build (Lava).

Mapping of the flattened graph (``neurolang.export.nir_format.flatten``):

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

Latency: neurolang's processes and Lava's LIF receive and send in the same step; Lava's
``Dense`` sends the previous step's result, one step late. Each process knows the number of
``Dense`` processes before it (``latency``) and files what it receives at time step ``tau``
under global step ``tau - 1 - latency``; the run lasts ``N * T + max latency`` steps. So every
count and logit is aligned with the torch backend's step index.

Fixed point (``fixed_point=True``): Lava's bit-accurate ``LIFReset`` and ``Dense`` models, and
integer spikes and currents between processes. neurolang chooses per layer: 8-bit weights
(token-wise layers: one scale per output feature, ``w_scale = max|W_row| / 127``, undone on
the integer accumulator before the norm; the classifier in Lava ``Dense``'s mixed-sign format
with one scale, even values in [-254, 254]), a power-of-two current scale ``a_scale`` from a bound on the layer's output
(``|current| * a_scale <= 2^16``, ``v_threshold * a_scale <= 2^16``), ``vth =
round(v_threshold * a_scale)`` (17-bit), ``dv = round((1 - beta) * 4096)``, ``du = 4095``.
Norms run in float64 on the dequantised accumulator (Loihi has no norm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from neurolang.export.nir_format import (
    LIF as ExtLIF,
)
from neurolang.export.nir_format import (
    ElasticBiSpike,
    Embedding,
    LayerNorm,
    NIRError,
    PositionEmbedding,
    SpikeAttention,
    Threshold,
    TokenMean,
    flatten,
    lif_spec,
    node_type,
    read_metadata,
)

CURRENT_LIMIT = 2 ** 16  # |a_in| and vth (17-bit) budget of Lava's bit-accurate LIF
STREAM_LIMIT = 2 ** 23  # graded spikes of the residual stream: 24-bit signed payloads
POOLED_LIMIT = 2 ** 15


class LavaModelError(ValueError):
    """The graph contains something the Lava runner cannot simulate."""


@dataclass
class Step:
    """One Lava process of the plan."""

    name: str  # the graph node whose value this process outputs
    kind: str  # encoder, dense, lif, ref_lif, attention, residual, readout, classifier, logits
    inputs: list[str]  # step names feeding its ports, in port order
    params: dict[str, Any] = field(default_factory=dict)
    latency: int = 0


@dataclass
class Plan:
    steps: dict[str, Step]
    populations: dict[str, tuple[str, int]]  # population -> (counting step, port)
    time_steps: int
    dt: float
    fixed_point: bool
    classes: int
    quantisation: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def max_latency(self) -> int:
        return max(s.latency for s in self.steps.values())


def exact_dv(beta: float) -> float:
    """``dv`` with ``1 - dv == beta`` exactly in float64 (Lava computes ``v * (1 - dv)``)."""
    dv = 1.0 - beta
    for _ in range(64):
        if 1.0 - dv == beta:
            return dv
        dv = math.nextafter(dv, 2.0) if 1.0 - dv > beta else math.nextafter(dv, -1.0)
    return 1.0 - beta


def lif_gain(spec: dict[str, Any]) -> float:
    """NIR's input gain ``r dt / tau`` of a neuron: ``1 - beta`` or 1."""
    return 1.0 - float(spec["beta"]) if spec["decay_input"] else 1.0


def _pow2_floor(x: float) -> float:
    return 2.0 ** math.floor(math.log2(x))


def plan_network(graph: nir.NIRGraph, fixed_point: bool = False,
                 exact_lif: bool = False) -> Plan:
    """Map a neurolang NIR graph onto Lava processes (no Lava needed; raises
    :class:`LavaModelError` naming what cannot run)."""
    try:
        meta = read_metadata(graph)
    except NIRError as err:
        raise LavaModelError(str(err)) from None
    dt, T = float(meta["dt"]), int(meta["time_steps"])
    flat = flatten(graph)
    order = flat.topological_order()
    nodes = flat.nodes
    steps: dict[str, Step] = {}
    made: dict[str, str] = {}  # node -> step producing its value
    populations: dict[str, tuple[str, int]] = {}
    spiking: set[str] = set()  # nodes whose value is a spike population
    bound: dict[str, float] = {}  # max |value| of each stream (fixed point)
    scale: dict[str, float] = {}  # fixed point: integer units per 1.0 of each stream
    fused: set[str] = set()
    classes = 0

    def fail(name: str, why: str):
        raise LavaModelError(f"the Lava runner cannot run {name!r} ({node_type(nodes[name])}): "
                             f"{why}")

    def consumers(name):
        return flat.targets(name)

    def source(name):
        src = flat.sources(name)
        if len(src) != 1:
            fail(name, f"it sums {len(src)} inputs")
        if src[0] not in made:
            fail(name, f"its input {src[0]!r} is not computed by any process")
        return src[0]

    if fixed_point:
        elastic = [k for k, n in nodes.items() if isinstance(n, ElasticBiSpike)]
        if elastic:
            raise LavaModelError(
                f"fixed point is not supported for elastic bi-spiking neurons ({len(elastic)} "
                f"populations, e.g. {elastic[0]!r}: graded, signed spikes scaled by a per-step "
                "alpha); run the model in floating point")

    def spec_of(name):
        return lif_spec(nodes[name], dt, name)

    def feeds_lif(name) -> dict | None:
        """The spec of the only consumer if that is a LIF run by Lava's LIF, else None."""
        users = consumers(name)
        if len(users) == 1 and isinstance(nodes[users[0]], nir.LIF) and not exact_lif:
            return spec_of(users[0])
        return None

    def register(pop, step, port):
        if pop in spiking and pop not in populations:
            populations[pop] = (step, port)

    for name in order:
        node = nodes[name]
        if name in fused:
            continue
        if isinstance(node, nir.Input):
            if (node.metadata or {}).get("neurolang.input") != "token_ids":
                fail(name, "the Lava runner takes token ids as input")
            chain = [name]
            while True:
                users = consumers(chain[-1])
                nxt = users[0] if len(users) == 1 else None
                allowed = (Embedding,) if len(chain) == 1 else (PositionEmbedding, nir.Threshold,
                                                                 Threshold)
                if nxt is None or not isinstance(nodes[nxt], allowed):
                    break
                chain.append(nxt)
                if isinstance(nodes[nxt], (nir.Threshold, Threshold)):
                    break
            if len(chain) < 2:
                fail(name, "token ids must feed a neurolang.Embedding")
            params = {"embedding": nodes[chain[1]].weight, "position": None, "heaviside": None}
            for c in chain[2:]:
                n = nodes[c]
                if isinstance(n, PositionEmbedding):
                    params["position"] = n.weight
                else:
                    if np.any(np.asarray(n.threshold) != 0):
                        fail(c, "only a Heaviside at 0 is supported")
                    params["heaviside"] = getattr(n, "comparison", ">")
                    spiking.add(c)
            last = chain[-1]
            if params["heaviside"]:
                bound[last], scale[last] = 1.0, 1.0
            else:  # a real-valued stream: graded integers in units of 1/x_scale
                top = float(np.max(np.abs(params["embedding"])))
                if params["position"] is not None:
                    top += float(np.max(np.abs(params["position"])))
                residuals = sum(isinstance(n, nir.Scale) for n in nodes.values())
                bound[last] = top
                scale[last] = _pow2_floor(STREAM_LIMIT / (top + residuals + 1e-12))
            params["x_scale"] = scale[last] if fixed_point else 1.0
            steps[last] = Step(last, "encoder", [], params)
            fused.update(chain)
            for c in chain:
                made[c] = last
            if params["heaviside"]:
                register(last, last, 0)
        elif isinstance(node, nir.Affine) and (node.metadata or {}).get(
                "neurolang.op") == "batch_norm" and [node_type(nodes[u]) for u in
                                                     consumers(name)] == ["neurolang.TokenMean"]:
            continue  # folded into the readout below
        elif isinstance(node, LayerNorm) and [node_type(nodes[u]) for u in consumers(name)] == [
                "neurolang.TokenMean"]:
            continue  # folded into the readout below
        elif isinstance(node, nir.Affine):
            src = source(name)
            if isinstance(nodes[src], TokenMean):
                fail(name, "internal: classifier not claimed by its readout")
            out, layer_norm = name, None
            users = consumers(name)
            if len(users) == 1 and isinstance(nodes[users[0]], LayerNorm):
                out = users[0]
                ln = nodes[out]
                layer_norm = (ln.weight, ln.bias, float(ln.eps.reshape(-1)[0]))
                fused.add(out)
            spec = feeds_lif(out)
            gain = lif_gain(spec) if spec else 1.0
            count = src in spiking and src not in populations
            params = {"weight": np.asarray(node.weight, np.float64),
                      "bias": np.asarray(node.bias, np.float64), "layer_norm": layer_norm,
                      "gain": gain, "count": count}
            if fixed_point:
                params.update(_quantise_dense(name, params, bound.get(src, math.inf),
                                              scale.get(src, 1.0), spec, fail))
            steps[out] = Step(out, "dense", [made[src]], params)
            if count:
                register(src, out, 0)
            made[name] = made[out] = out
        elif isinstance(node, ElasticBiSpike):
            src = source(name)
            alpha = np.asarray(node.alpha, dtype=np.float64).reshape(-1)
            if alpha.size != T:
                fail(name, f"{alpha.size} spike amplitudes for {T} time steps")
            steps[name] = Step(name, "elastic", [made[src]],
                               {"alpha": alpha, "features": int(node.features[0])})
            made[name] = name
            spiking.add(name)
        elif isinstance(node, (nir.LIF, ExtLIF)):
            src = source(name)
            spec = spec_of(name)
            standard = isinstance(node, nir.LIF) and not exact_lif
            if not standard and fixed_point:
                fail(name, "fixed point runs Lava's bit-accurate LIF: zero reset and '>' only")
            producer = steps[made[src]]
            if standard and producer.kind not in ("dense", "attention"):
                fail(name, "a LIF must follow a dense layer or an attention product")
            params = {"spec": spec, "features": int(node.v_threshold.size)}
            if fixed_point:
                q = producer.params["quant"]
                params["vth"] = int(round(spec["v_threshold"] * q["a_scale"]))
                params["dv"] = int(round((1.0 - spec["beta"]) * 4096))
            steps[name] = Step(name, "lif" if standard else "ref_lif", [made[src]], params)
            made[name] = name
            spiking.add(name)
            bound[name], scale[name] = 1.0, 1.0
        elif isinstance(node, SpikeAttention):
            ops = flat.operands(name)
            for op in ops:
                if op not in spiking:
                    fail(name, f"operand {op!r} is not a spike population")
            spec = feeds_lif(name)
            d = int(node.features[0])
            params = {"num_heads": int(node.num_heads[0]), "scale": float(node.scale[0]),
                      "gain": lif_gain(spec) if spec else 1.0, "features": d}
            if fixed_point:
                if spec is None:
                    fail(name, "fixed point needs Lava's LIF after the attention product")
                # |(Q K^T) V| <= L * head_dim for binary spikes
                max_len = _max_len(nodes)
                b = max_len * (d // params["num_heads"]) * params["scale"] * params["gain"]
                a_scale = _pow2_floor(min(CURRENT_LIMIT / spec["v_threshold"], CURRENT_LIMIT / b))
                params["quant"] = {"a_scale": a_scale, "a_limit": CURRENT_LIMIT}
            steps[name] = Step(name, "attention", [made[o] for o in ops], params)
            for i, op in enumerate(ops):
                register(op, name, i)
            made[name] = name
        elif isinstance(node, nir.Scale):
            srcs = flat.sources(name)
            if len(srcs) != 2 or np.any(np.asarray(node.scale) != 1):
                fail(name, "only residual sums (Scale of ones, two inputs) are supported")
            uncounted = [s for s in srcs if s in spiking and s not in populations]
            b = uncounted[0] if uncounted else srcs[1]
            a = srcs[0] if b == srcs[1] else srcs[1]
            for s in (a, b):
                if s not in made:
                    fail(name, f"its input {s!r} is not computed by any process")
            b_scale = scale.get(a, 1.0) / scale.get(b, 1.0)
            if fixed_point and b_scale != round(b_scale):
                fail(name, "fixed point needs the branch's stream scale to divide the stream's")
            steps[name] = Step(name, "residual", [made[a], made[b]],
                               {"features": int(node.scale.size),
                                "b_scale": float(b_scale) if fixed_point else 1.0})
            register(b, name, 0)
            made[name] = name
            bound[name] = bound.get(a, math.inf) + bound.get(b, math.inf)
            scale[name] = scale.get(a, 1.0)
        elif isinstance(node, TokenMean):
            src = flat.sources(name)
            if len(src) != 1:
                fail(name, "it must have one input")
            pre, params = src[0], {"layer_norm": None, "affine": None,
                                   "features": int(node.features[0])}
            if isinstance(nodes[pre], LayerNorm):
                ln = nodes[pre]
                params["layer_norm"] = (ln.weight, ln.bias, float(ln.eps.reshape(-1)[0]))
                pre = source(pre)
            elif isinstance(nodes[pre], nir.Affine):
                aff = nodes[pre]
                params["affine"] = (np.asarray(aff.weight, np.float64),
                                    np.asarray(aff.bias, np.float64))
                pre = source(pre)
            elif pre not in made:
                fail(name, f"its input {pre!r} is not computed by any process")
            users = consumers(name)
            if len(users) != 1 or not isinstance(nodes[users[0]], nir.Affine):
                fail(name, "the mean over tokens must feed one classifier Affine")
            clf_name = users[0]
            clf = nodes[clf_name]
            outs = consumers(clf_name)
            if not outs or not all(isinstance(nodes[o], nir.Output) for o in outs):
                fail(clf_name, "the classifier must feed the graph's Output")
            weight = np.asarray(clf.weight, np.float64)
            classes = weight.shape[0]
            cparams = {"weight": weight, "bias": np.asarray(clf.bias, np.float64)}
            if fixed_point:
                _quantise_readout(params, cparams, bound.get(pre, math.inf), fail, name)
                params["quant"]["x_scale"] = scale.get(pre, 1.0)
            steps[name] = Step(name, "readout", [made[pre]], params)
            steps[clf_name] = Step(clf_name, "classifier", [name], cparams)
            steps["logits"] = Step("logits", "logits", [clf_name], {
                "bias": cparams["bias"], "classes": classes,
                "out_scale": cparams.get("out_scale", 1.0)}, latency=1)
            fused.update([clf_name, *outs])
            made[name] = name
        elif isinstance(node, nir.Output):
            fail(name, "outputs must come from a classifier after a mean over tokens")
        else:
            fail(name, "no Lava process for this node type")
    if "logits" not in steps:
        raise LavaModelError("the graph has no classifier readout (TokenMean -> Affine -> "
                             "Output) for the Lava runner")
    missing = sorted(spiking - set(populations))
    if missing:
        raise LavaModelError(f"spike populations {missing} feed no process that counts them")
    quant = {}
    if fixed_point:
        for s in steps.values():
            q = s.params.get("quant")
            if q:
                quant[s.name] = {k: _summary(v) for k, v in q.items()}
    return Plan(steps, populations, T, dt, fixed_point, classes, quant)


def _max_len(nodes) -> int:
    for n in nodes.values():
        if isinstance(n, PositionEmbedding):
            return int(n.weight.shape[0])
    return 512


def _summary(value) -> float | dict[str, float]:
    """A quantisation parameter for the report: a number, or a per-feature array's range."""
    if np.ndim(value) == 0:
        return float(value)
    return {"min": float(np.min(value)), "max": float(np.max(value))}


def _int8(weight: np.ndarray) -> tuple[np.ndarray, float]:
    """8-bit weights with one scale for the whole matrix (Lava ``Dense``)."""
    top = float(np.max(np.abs(weight)))
    scale = top / 127.0 if top > 0 else 1.0
    return np.clip(np.rint(weight / scale), -127, 127).astype(np.int32), scale


def _int8_rows(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-bit weights with one scale per output feature (row): ``max|W_row| / 127``."""
    top = np.max(np.abs(weight), axis=1)
    scale = np.where(top > 0, top / 127.0, 1.0)
    return np.clip(np.rint(weight / scale[:, None]), -127, 127).astype(np.int32), scale


def _quantise_dense(name, params, x_bound, x_scale, spec, fail) -> dict:
    if spec is None:
        fail(name, "fixed point needs Lava's LIF after each dense layer")
    if not math.isfinite(x_bound):
        fail(name, "fixed point needs a bounded input stream")
    w_q, w_scale = _int8_rows(params["weight"])
    if float(np.max(np.abs(w_q).sum(1))) * x_bound * x_scale >= 2.0 ** 53:
        fail(name, "its integer accumulator would exceed 2^53")
    if params["layer_norm"] is not None:
        g, b, _ = params["layer_norm"]
        d = params["weight"].shape[0]
        top = math.sqrt(max(d - 1, 1)) * float(np.max(np.abs(g))) + float(np.max(np.abs(b)))
    else:
        top = float(np.max(np.abs(params["weight"]).sum(1) * x_bound + np.abs(params["bias"])))
    top = max(top * params["gain"], 1e-12)
    a_scale = _pow2_floor(min(CURRENT_LIMIT / spec["v_threshold"], CURRENT_LIMIT / top))
    return {"weight": w_q, "quant": {"w_scale": w_scale, "x_scale": x_scale,
                                     "a_scale": a_scale, "a_limit": CURRENT_LIMIT}}


def _quantise_readout(params, cparams, x_bound, fail, name) -> None:
    if params["layer_norm"] is not None:
        g, b, _ = params["layer_norm"]
        d = params["features"]
        top = math.sqrt(max(d - 1, 1)) * float(np.max(np.abs(g))) + float(np.max(np.abs(b)))
    elif params["affine"] is not None:
        w, b = params["affine"]
        if not math.isfinite(x_bound):
            fail(name, "fixed point needs an integer input stream")
        top = float(np.max(np.abs(w).sum(1) * x_bound + np.abs(b)))
    else:
        if not math.isfinite(x_bound):
            fail(name, "fixed point needs an integer input stream")
        top = x_bound
    weight = cparams["weight"]
    q, c_scale = _int8(weight)
    q = 2 * q  # Lava Dense, mixed sign: even values in [-256, 254] (its lowest bit is dropped)
    c_scale /= 2.0
    row = max(float(np.max(np.abs(q).sum(1))), 1.0)
    p_limit = min(POOLED_LIMIT, (2 ** 31 - 1) / row)
    p_scale = _pow2_floor(min(p_limit / max(top, 1e-12), 2.0 ** 20))
    params["quant"] = {"a_scale": p_scale, "a_limit": p_limit}
    cparams["weight"] = q
    cparams["out_scale"] = c_scale / p_scale
    cparams["quant"] = {"w_scale": c_scale, "p_scale": p_scale}


# --------------------------------------------------------------------------------------------
# Building and running (needs Lava)


class LavaNetwork:
    """The Lava processes of a plan for a batch of token sequences."""

    def __init__(self, plan: Plan, ids: np.ndarray, lengths: np.ndarray):
        from lava.proc.dense.process import Dense
        from lava.proc.lif.process import LIFReset

        from neurolang.lava.processes import elastic as E
        from neurolang.lava.processes import layers as P

        self.plan = plan
        ids = np.asarray(ids, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        if ids.ndim != 2 or lengths.shape != (ids.shape[0],):
            raise ValueError(f"ids {ids.shape} and lengths {lengths.shape} do not match")
        if np.any(lengths < 1) or np.any(lengths > ids.shape[1]):
            raise ValueError("every sample needs 1..max_len tokens")
        self.n = ids.shape[0]
        max_len = int(lengths.max())
        ids = ids[:, :max_len]
        T = plan.time_steps
        fixed = plan.fixed_point
        sched = {"lengths": lengths, "time_steps": T}
        self.procs: dict[str, Any] = {}
        for step in plan.steps.values():
            p, kind = step.params, step.kind
            common = {**sched, "latency": step.latency}
            if kind == "encoder":
                vocab = p["embedding"].shape[0]
                if np.any(ids < 0) or np.any(ids >= vocab):
                    raise ValueError(f"token ids outside the vocabulary of {vocab}")
                pos = p["position"]
                if pos is not None and max_len > pos.shape[0]:
                    raise ValueError(f"sequences of {max_len} tokens are longer than the "
                                     f"position embedding ({pos.shape[0]})")
                proc = P.TokenEncoder(ids=ids, embedding=p["embedding"], position=pos,
                                      heaviside=p["heaviside"], x_scale=p["x_scale"],
                                      **common)
            elif kind == "dense":
                proc = P.TokenDense(weight=p["weight"], bias=p["bias"], max_len=max_len,
                                    layer_norm=p["layer_norm"], gain=p["gain"],
                                    count=p["count"], quant=p.get("quant"), **common)
            elif kind == "lif":
                spec = p["spec"]
                shape = (max_len, p["features"])
                reset = {"reset_interval": T, "reset_offset": (1 + step.latency) % T}
                if fixed:
                    proc = LIFReset(shape=shape, du=4095, dv=p["dv"], vth=p["vth"], **reset)
                else:
                    proc = LIFReset(shape=shape, du=1.0, dv=exact_dv(spec["beta"]),
                                    vth=float(spec["v_threshold"]), **reset)
            elif kind == "ref_lif":
                spec = p["spec"]
                proc = P.ReferenceLIF(shape=(max_len, p["features"]), tau=spec["tau"],
                                      beta=spec["beta"], decay_input=spec["decay_input"],
                                      v_threshold=spec["v_threshold"], reset=spec["reset"],
                                      comparison=spec["threshold_comparison"], **common)
            elif kind == "elastic":
                proc = E.ElasticBiSpike(shape=(max_len, p["features"]), alpha=p["alpha"],
                                        **common)
            elif kind == "attention":
                proc = P.SpikeAttention(max_len=max_len, features=p["features"],
                                        num_heads=p["num_heads"], scale=p["scale"],
                                        gain=p["gain"], quant=p.get("quant"), **common)
            elif kind == "residual":
                proc = P.Residual(shape=(max_len, p["features"]), b_scale=p["b_scale"],
                                  **common)
            elif kind == "readout":
                proc = P.TokenReadout(max_len=max_len, features=p["features"],
                                      layer_norm=p["layer_norm"], affine=p["affine"],
                                      quant=p.get("quant"), **common)
            elif kind == "classifier":
                proc = Dense(weights=p["weight"], num_message_bits=24)
            elif kind == "logits":
                proc = P.LogitsReadout(classes=p["classes"], bias=p["bias"],
                                       out_scale=p["out_scale"], **common)
            else:  # pragma: no cover
                raise LavaModelError(f"unknown step kind {kind}")
            self.procs[step.name] = proc
        for step in plan.steps.values():
            proc = self.procs[step.name]
            ports = _in_ports(step.kind, proc)
            for port, src in zip(ports, step.inputs, strict=True):
                _out_port(plan.steps[src].kind, self.procs[src]).connect(port)
        self.logits_proc = self.procs["logits"]
        self.total_steps = self.n * T + plan.max_latency
        self.done_steps = 0
        self._cfg = None

    def run(self, steps: int) -> None:
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg

        if self._cfg is None:
            self._cfg = Loihi2SimCfg(select_tag="fixed_pt" if self.plan.fixed_point
                                     else "floating_pt")
        steps = min(steps, self.total_steps - self.done_steps)
        if steps > 0:
            self.logits_proc.run(condition=RunSteps(num_steps=steps), run_cfg=self._cfg)
            self.done_steps += steps

    def attention_sops(self) -> dict[str, dict[str, int]]:
        """Accumulates counted inside every attention process: ``{step: {sops_qk, sops_av}}``."""
        found = {}
        for name, step in self.plan.steps.items():
            if step.kind == "attention":
                qk, av = np.rint(np.asarray(self.procs[name].sops.get())).astype(np.int64)
                found[name] = {"sops_qk": int(qk), "sops_av": int(av)}
        return found

    def results(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Spike counts per population (N, T) and logits per step (N, T, C)."""
        by_step: dict[str, np.ndarray] = {}
        counts = {}
        for pop, (step, port) in self.plan.populations.items():
            if step not in by_step:
                by_step[step] = np.asarray(self.procs[step].counts.get())
            counts[pop] = np.rint(by_step[step][port]).astype(np.int64)
        return counts, np.asarray(self.logits_proc.logits.get(), dtype=np.float64)

    def stop(self) -> None:
        try:
            self.logits_proc.stop()
        except Exception:  # noqa: BLE001 - stopping a runtime that never started
            pass


def _in_ports(kind: str, proc) -> list:
    if kind == "encoder":
        return []
    if kind == "attention":
        return [proc.q_in, proc.k_in, proc.v_in]
    if kind == "residual":
        return [proc.a_in, proc.b_in]
    if kind == "classifier":
        return [proc.s_in]
    return [proc.a_in]


def _out_port(kind: str, proc):
    return proc.a_out if kind == "classifier" else proc.s_out

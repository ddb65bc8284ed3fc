"""A neurolang NIR graph as a plan of Lava processes (numpy only, no Lava needed).

``plan_network`` walks the flattened graph (``neurolang.nir.flatten``) in topological order
and hands every node to its rule, ``PLAN_RULES[node type]``: every type the exporter can emit
(standard NIR and neurolang's extensions) has a rule or a refusal. A rule adds the processes
that compute the node, or claims nodes that a neighbour's process computes (``fused``):

- ``Input`` (token ids) -> ``neurolang.Embedding`` [-> ``PositionEmbedding``] [-> a norm of
  the embeddings: a BatchNorm ``Affine`` or a ``neurolang.LayerNorm``] [-> Heaviside
  ``Threshold``]: one ``TokenEncoder`` process (on the host, as an input is);
- ``Affine`` [-> ``neurolang.LayerNorm``] on the token stream: ``TokenDense`` (one weight
  matrix for every token; the LayerNorm fused in); a ``neurolang.LayerNorm`` after anything
  else: a ``TokenDense`` of identity weights; a Heaviside ``Threshold`` after anything but
  the embeddings: a ``ReferenceLIF`` with ``beta = 0`` and threshold 0 (floating point
  only);
- ``LIF`` (zero reset, ``>``): Lava's own ``LIFReset`` (``du = 1``, ``dv = 1 - beta``,
  ``vth = v_threshold``, reset every ``time_steps`` steps at each sample's first step); the
  input gain of NIR's LIF, ``r dt / tau`` (``1 - beta`` for SpikingJelly's input decay), is
  applied by the process that feeds it; ``neurolang.LIF`` (subtract reset, ``>=``):
  neurolang's ``ReferenceLIF``; a ``LIF`` fed by anything but a dense layer, attention
  product or coincidence sum of its own (a residual sum or the encoder: a membrane
  shortcut's neuron reading the stream ``u``): ``ReferenceLIF`` in floating point, Lava's
  ``LIFReset`` in fixed point, fed by the stream process's ``c_out`` port (its current);
  ``neurolang.ElasticBiSpike`` (SpikeLM, graded signed spikes): neurolang's
  ``ElasticBiSpike`` (floating point only); a population after a coincidence sum (the SDSA
  gate neuron) has one row, no token axis;
- ``neurolang.SpikeAttention``: ``SpikeAttention``; ``neurolang.CoincidenceSum`` (SDSA):
  ``CoincidenceSum``; ``neurolang.SpikeGate`` (SDSA): ``SpikeGate``, whose output is a
  population counted by the layer reading it; ``Scale`` of ones with two inputs (the
  residual sum): ``Residual``;
- [``LayerNorm`` | ``Affine`` (BatchNorm)] -> ``neurolang.TokenMean``: ``TokenReadout``;
  then the classifier ``Affine``: Lava's own ``Dense`` (graded input, the bias added after)
  -> ``LogitsReadout``, which stores the logits of every sample and step. A head that
  applies its classifier before the mean (``TokenMean -> Output``) has it as a
  ``TokenDense`` and an identity ``Dense`` after the readout.

Latency: Lava's ``Dense`` sends the previous step's result, one step late; each process
knows the number of ``Dense`` before it (``latency``) and files what it receives under the step
it belongs to, so every count and logit is aligned with the torch backend's step index.
Fixed point (``fixed_point=True``): integer spikes and currents between processes, with the
scales of ``neurolang.lava.quantise`` (``docs/lava.md``): every node's value bounded from the
parameters (:func:`~neurolang.lava.plan_bounds.value_bounds`), one power-of-two scale for the
real-valued residual stream (:func:`~neurolang.lava.plan_bounds.stream_scale`).

The plan's types are in ``neurolang.lava.plan_types``, the rules in
``neurolang.lava.plan_rules``, the fixed-point bounds in ``neurolang.lava.plan_bounds``.
"""

from __future__ import annotations

import nir

from neurolang.lava.plan_bounds import value_bounds
from neurolang.lava.plan_rules import PLAN_RULES
from neurolang.lava.plan_types import LavaModelError, Plan, Planner
from neurolang.lava.quantise import summary
from neurolang.nir.errors import NIRError
from neurolang.nir.flatten import flatten
from neurolang.nir.io import read_metadata
from neurolang.nir.nodes import ElasticBiSpike, node_type


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
    ctx.bound = value_bounds(flat, order)
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
            if s.ports:  # a LIF reading the stream: the current its stream process sends
                q = ctx.steps[s.inputs[0]].params["current"]
                quant[s.name] = {k: summary(v) for k, v in q.items()}
        if any(isinstance(n, nir.Scale) for n in flat.nodes.values()):
            quant["stream"] = {"x_scale": ctx.stream_scale}
    return Plan(ctx.steps, ctx.populations, ctx.time_steps, ctx.dt, fixed_point, ctx.classes,
                quant)

"""Counting from another simulator's report: per-population spike totals (Lava, ...).

:func:`counts_from_spikes` gives every node of the graph what its rule reads
(:mod:`neurolang.energy.rules`) from the spike counts, the fan-outs and the shapes, so its
table equals the one :class:`~neurolang.energy.hooks.OpCounter` makes of a run with the same
spikes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from neurolang.energy.plan import CountingPlan
from neurolang.energy.records import CountingError, Input, ModelCounts, Seen


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def _match_names(reported: Mapping[str, Any], wanted: Sequence[str], what: str) -> dict[str, Any]:
    exact = {name: reported[name] for name in wanted if name in reported}
    loose = {_normalise(k): v for k, v in reported.items()}
    for name in wanted:
        if name not in exact and _normalise(name) in loose:
            exact[name] = loose[_normalise(name)]
    missing = [name for name in wanted if name not in exact]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4
                                          else "")
        raise CountingError(f"the simulator reported no {what} for {shown}; expected one per "
                            f"population of the graph, got {sorted(reported)[:6]}")
    return exact


def _total(value: Any) -> int:
    if isinstance(value, (int, float)):
        return int(value)
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return sum(_total(v) for v in value)
    raise CountingError(f"a spike count must be a number or a list of numbers, got {value!r}")


def _attention_counts(attention: Mapping[str, Any] | None,
                      products: Sequence[str]) -> dict[str, Any]:
    """The simulator's attention counts by product node (names matched loosely): a mapping
    with ``sops_qk`` and ``sops_av``, or a total."""
    given: dict[str, Any] = {}
    loose = {_normalise(k): v for k, v in (attention or {}).items()}
    for product in products:
        if attention and product in attention:
            given[product] = attention[product]
        elif _normalise(product) in loose:
            given[product] = loose[_normalise(product)]
    unknown = {_normalise(k) for k in attention or {}} - {_normalise(p) for p in products}
    if unknown:
        raise CountingError(f"attention counts given for {sorted(unknown)}, which are not "
                            f"attention products of the graph ({products})")
    return {name: value if isinstance(value, Mapping) else _total(value)
            for name, value in given.items()}


def counts_from_spikes(model_or_config: Any, spikes: Mapping[str, Any], lengths: Sequence[int],
                       *, simulator: str = "lava",
                       attention: Mapping[str, Any] | None = None) -> ModelCounts:
    """The counts table from per-population spike counts reported by another simulator.

    Args:
        model_or_config: the model (any backend) or its ``SpikformerConfig``: only the graph
            and shapes are used.
        spikes: ``{population: spikes}`` for every spiking population (``neuron`` nodes and a
            Heaviside ``encode``), summed over real tokens, features and steps; a list (one
            count per step) is summed. Names are the graph's (``blocks.0.mlp.fc1.neuron``);
            ``.`` / ``_`` / ``/`` spellings are matched loosely.
        lengths: the real length of every sample run.
        attention: ``{product node: accumulates}`` counted by the simulator inside its
            attention process (an int, or ``{"sops_qk": ..., "sops_av": ...}``). Products it
            does not give are estimated
            (:func:`~neurolang.energy.rules.estimate_attention_sops`) from the Q, K, V
            spike rates and the lengths, and marked ``estimated``.

    Every other count follows from the spike counts, the fan-outs and the shapes with the rules
    of :mod:`neurolang.energy.rules`, so it equals the count
    :class:`~neurolang.energy.hooks.OpCounter` makes of a run with the same spikes.
    """
    from neurolang.config import SpikformerConfig

    if isinstance(model_or_config, SpikformerConfig):
        from neurolang.models import build_model

        with torch.device("meta"):
            model = build_model(model_or_config.replace(representation_taps=False))
    else:
        model = model_or_config
    plan = CountingPlan(model)
    lengths = [int(n) for n in lengths]
    samples, tokens = len(lengths), sum(lengths)
    counts = plan.empty_counts(simulator)
    counts.samples, counts.tokens = samples, tokens
    reported = {name: _total(v) for name, v in _match_names(spikes, plan.populations(),
                                                              "spike count").items()}
    given = _attention_counts(attention, plan.with_role("attention"))

    def rows_of(name: str) -> int:
        return plan.row_count(plan.rows[name], samples, tokens)

    for name, node in plan.nodes.items():
        layer = counts.layers[name]
        inputs = [Input(source, rows_of(source), plan.width[source], plan.spiking[source],
                        reported.get(source)) for source in plan.data_inputs(node)]
        seen = Seen(node.module, rows_of(name), plan.width[name], inputs, plan.time_steps,
                    events=reported.get(name), attention=given.get(name), lengths=lengths)
        plan.rule(name).count(layer, seen)
        if plan.spiking[name] and layer.spikes > layer.neuron_updates:
            raise CountingError(f"{name}: {layer.spikes} spikes reported, more than its "
                                f"{layer.neuron_updates} neuron updates")
    return counts

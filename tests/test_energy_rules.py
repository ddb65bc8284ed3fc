"""The energy counting rule table: one row per op, refusals with their reasons, the plan."""

from __future__ import annotations

import pytest
import torch

from neurolang.config import preset
from neurolang.energy.plan import CountingPlan
from neurolang.energy.records import CountingError, Input, LayerCounts, Seen
from neurolang.energy.rules import COUNTING_RULES
from neurolang.graph import primitive_ops
from neurolang.models import build_model
from neurolang.primitives import Linear


def _tiny_plan(**overrides) -> CountingPlan:
    config = preset("tiny", representation_taps=False, **overrides)
    with torch.device("meta"):
        return CountingPlan(build_model(config))


def test_every_op_has_a_rule_or_a_refusal():
    assert COUNTING_RULES.missing(primitive_ops()) == []
    for op in ("softmax_attention", "gelu"):
        with pytest.raises(CountingError, match=f"{op}.*SpikeLM"):
            COUNTING_RULES[op]


def test_a_rule_counts_from_what_is_known():
    """The same rule for a run's measurements and a simulator's spike totals."""
    layer = LayerCounts("fc", "linear", "synaptic", ["n"], 3)
    spikes_in = Input("n", rows=10, width=4, spiking=True, events=7)
    COUNTING_RULES["linear"].count(layer, Seen(Linear(4, 3), 10, 3, [spikes_in], 2))
    assert (layer.sops, layer.macs, layer.input_elements, layer.input_nonzero) == (21, 0, 40, 7)
    dense = LayerCounts("fc", "linear", "dense", ["x"], 3)
    real_in = Input("x", rows=10, width=4, spiking=False, abs_sum=5)
    COUNTING_RULES["linear"].count(dense, Seen(Linear(4, 3), 10, 3, [real_in], 2))
    assert (dense.sops, dense.macs, dense.detail) == (0, 120, {"decomposed_accumulates": 15})


def test_the_plan_takes_roles_from_the_rules():
    plan = _tiny_plan()
    assert plan.role("encode") == "population" and plan.spiking["encode"]
    assert plan.with_role("attention") == ["blocks.0.attention.product",
                                           "blocks.1.attention.product"]
    assert plan.role("blocks.0.attention.query.linear") == "synaptic"
    assert plan.role("blocks.1.attention.query.linear") == "dense"
    assert plan.role("head.classifier") == "dense"
    repeat = _tiny_plan(encoding="repeat")
    assert repeat.role("encode") == "encode" and "encode" not in repeat.populations()
    bispike = _tiny_plan(**{"neuron.kind": "elastic_bispike"})
    assert bispike.graded["blocks.0.mlp.fc1.neuron"] and not bispike.graded["encode"]


def test_an_op_without_a_row_is_refused_by_name(monkeypatch):
    monkeypatch.delitem(COUNTING_RULES.rules, "time_mean")
    with pytest.raises(CountingError, match=r"time_mean \(head.time_mean: no row"):
        _tiny_plan()

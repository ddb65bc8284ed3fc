"""The data types of a Lava plan (``neurolang.lava.plan``): the planned processes, the plan,
and the planner its rules (``neurolang.lava.plan_rules``) share (numpy only, no Lava needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nir

from neurolang.errors import NeurolangError
from neurolang.nir.flatten import FlatGraph
from neurolang.nir.lif import lif_spec
from neurolang.nir.nodes import node_type


class LavaModelError(NeurolangError, ValueError):
    """The graph contains something the Lava runner cannot simulate."""


@dataclass
class PlannedProcess:
    """One Lava process of the plan."""

    name: str  # the graph node whose value this process outputs
    kind: str  # encoder, dense, lif, ref_lif, elastic, attention, coincidence, gate,
    # residual, readout, classifier, logits
    inputs: list[str]  # the planned processes feeding its ports, in port order
    params: dict[str, Any] = field(default_factory=dict)
    latency: int = 0
    # input index -> the output port of its source when not the source's default
    # (``c_out``: the LIF current a stream process sends besides the stream)
    ports: dict[int, str] = field(default_factory=dict)


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


@dataclass
class Planner:
    """What the rules of one plan share: the graph, and the plan being built.

    ``made`` maps a node to the process that produces its value; ``spiking`` holds the nodes
    whose value is a spike population; ``bound`` the largest ``|value|`` of every node
    (:func:`~neurolang.lava.plan_bounds.value_bounds`) and ``scale`` (fixed point) its
    integer units per 1.0;
    ``stream_scale`` the one scale of the real-valued residual stream (fixed point);
    ``single_row`` the nodes whose value has no token axis (one row per step: an SDSA
    coincidence sum and the gate neuron after it).
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
    single_row: set[str] = field(default_factory=set)
    stream_scale: float = 1.0
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

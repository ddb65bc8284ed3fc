"""The records of energy counting: one :class:`LayerCounts` per node of the model graph, a
:class:`ModelCounts` per simulator's run, :func:`first_difference` to compare two runs, and
:class:`Seen` / :class:`Input`, what a counter knows of one node over one run (what a rule
reads).

The rules are in :mod:`neurolang.energy.rules`; the two counters that apply them are
:mod:`neurolang.energy.hooks` (a run of the model itself) and
:mod:`neurolang.energy.from_spikes` (a simulator's per-population spike counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from neurolang.errors import NeurolangError

COUNT_KEYS = ("spikes", "neuron_updates", "sops", "macs", "adds")
"""The additive counts of a layer."""


class CountingError(NeurolangError, ValueError):
    """A model or a simulator's report cannot be counted under the rules."""


@dataclass
class LayerCounts:
    """The counts of one node of the model graph (totals over every sample counted).

    ``role`` says which rule applies: ``population`` (emits spikes), ``synaptic`` (Linear fed
    by spikes), ``dense`` (Linear fed by real values), ``attention`` (spike x spike product),
    ``residual``, ``norm``, ``pooling``, ``position``, ``embedding``, ``encode``.
    ``estimated`` marks counts that are not exact (see
    :func:`~neurolang.energy.from_spikes.counts_from_spikes`).
    """

    name: str
    op: str
    role: str
    inputs: list[str]
    width: int
    spikes: int = 0
    neuron_updates: int = 0
    sops: int = 0
    macs: int = 0
    adds: int = 0
    input_elements: int = 0
    input_nonzero: int | None = None
    estimated: bool = False
    detail: dict[str, int] = field(default_factory=dict)

    @property
    def firing_rate(self) -> float | None:
        return self.spikes / self.neuron_updates if self.neuron_updates else None

    @property
    def input_density(self) -> float | None:
        if self.input_nonzero is None or not self.input_elements:
            return None
        return self.input_nonzero / self.input_elements

    def accumulate(self, other: LayerCounts) -> None:
        for key in COUNT_KEYS + ("input_elements",):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        if other.input_nonzero is not None:
            self.input_nonzero = (self.input_nonzero or 0) + other.input_nonzero
        for key, value in other.detail.items():
            self.detail[key] = self.detail.get(key, 0) + value
        self.estimated = self.estimated or other.estimated

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["firing_rate"] = self.firing_rate
        out["input_density"] = self.input_density
        return out


@dataclass
class ModelCounts:
    """Counts of a whole model over ``samples`` samples holding ``tokens`` real tokens."""

    simulator: str
    time_steps: int
    samples: int = 0
    tokens: int = 0
    layers: dict[str, LayerCounts] = field(default_factory=dict)

    def total(self, key: str) -> int:
        return sum(getattr(layer, key) for layer in self.layers.values())

    def per_sample(self, key: str) -> float:
        return self.total(key) / self.samples if self.samples else 0.0

    @property
    def firing_rate(self) -> float | None:
        """Spikes over neuron updates, all populations together (the encoder included)."""
        updates = self.total("neuron_updates")
        return self.total("spikes") / updates if updates else None

    @property
    def estimated(self) -> list[str]:
        return [name for name, layer in self.layers.items() if layer.estimated]

    def populations(self) -> list[LayerCounts]:
        return [layer for layer in self.layers.values() if layer.role == "population"]

    def summary(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "tokens": self.tokens,
            "firing_rate": self.firing_rate,
            **{f"{key}_per_sample": self.per_sample(key) for key in COUNT_KEYS},
            **{f"{key}_total": self.total(key) for key in COUNT_KEYS},
            "estimated_layers": self.estimated,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "simulator": self.simulator,
            "time_steps": self.time_steps,
            **self.summary(),
            "layers": [layer.to_dict() for layer in self.layers.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCounts:
        counts = cls(data["simulator"], data["time_steps"], data["samples"], data["tokens"])
        names = {f.name for f in LayerCounts.__dataclass_fields__.values()}
        for layer in data["layers"]:
            counts.layers[layer["name"]] = LayerCounts(
                **{k: v for k, v in layer.items() if k in names})
        return counts


@dataclass
class Input:
    """One data input of a node as a counter knows it over one run: ``rows`` real rows of
    ``width`` features from node ``source``, emitted by a population if ``spiking``.

    ``events``: its nonzero values over real rows (a population's spikes; None where not
    known). Only a run's tensors give the rest: ``abs_sum``, the sum of |x| over real elements
    when every one is an integer, ``non_integer`` when one is not, ``spikes`` the events as a
    0/1 tensor and ``keep`` its real rows (bool)."""

    source: str
    rows: int
    width: int
    spiking: bool
    events: int | None = None
    abs_sum: int | None = None
    non_integer: bool = False
    spikes: Any = None
    keep: Any = None


@dataclass
class Seen:
    """What a counter knows of one node over one run: its ``module``, its output's ``rows``
    (real ones) and ``width``, its data ``inputs``, the ``events`` its output holds (a
    population's spikes), and what a simulator reported: ``attention`` (accumulates counted
    inside its attention process) and the real ``lengths`` of the samples."""

    module: Any
    rows: int
    width: int
    inputs: Sequence[Input]
    time_steps: int
    events: int | None = None
    attention: Mapping[str, int] | int | None = None
    lengths: Sequence[int] | None = None


def first_difference(a: ModelCounts, b: ModelCounts,
                     skip_estimated: bool = True) -> dict[str, Any] | None:
    """The first layer (graph order) where two count tables differ, or None if they agree.

    Layers estimated in either table are skipped unless ``skip_estimated`` is False."""
    for name, layer in a.layers.items():
        other = b.layers.get(name)
        if other is None:
            return {"layer": name, "field": "missing", a.simulator: "present",
                    b.simulator: "absent"}
        if skip_estimated and (layer.estimated or other.estimated):
            continue
        for key in COUNT_KEYS:
            x, y = getattr(layer, key), getattr(other, key)
            if x != y:
                return {"layer": layer.name, "field": key, a.simulator: x, b.simulator: y,
                        "estimated": layer.estimated or other.estimated}
    extra = [n for n in b.layers if n not in a.layers]
    if extra:
        return {"layer": extra[0], "field": "missing", a.simulator: "absent",
                b.simulator: "present"}
    if (a.samples, a.tokens) != (b.samples, b.tokens):
        return {"layer": None, "field": "samples/tokens",
                a.simulator: (a.samples, a.tokens), b.simulator: (b.samples, b.tokens)}
    return None

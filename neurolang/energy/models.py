"""Energy models: per-operation energies that turn operation counts into joules.

An :class:`EnergyModel` charges each kind of count of :mod:`neurolang.energy.records`::

    E = mac_pj * MACs + add_pj * additions + sop_pj * SOPs
        + neuron_update_pj * neuron updates + spike_pj * spikes          (picojoules)

Built in, each with its source (``docs/energy.md`` discusses them):

``cmos45``
    The figures the Spikformer family uses (Spikformer, Zhou et al. ICLR 2023; SpikeBERT,
    Lv et al. 2023): 45 nm CMOS at 0.9 V from Horowitz, "Computing's energy problem (and what
    we can do about it)", ISSCC 2014: a 32-bit float multiply 3.7 pJ and add 0.9 pJ, so a MAC
    is 4.6 pJ and an accumulate (SOP, or a plain addition) 0.9 pJ. Neuron updates and spikes
    are not charged, as in those papers.
``cmos45-lif``
    ``cmos45`` plus one MAC (4.6 pJ) per neuron update, the least a membrane update
    ``v <- beta v + x`` costs in the same arithmetic (comparison and reset not charged).
``loihi``
    Intel Loihi (Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip
    Learning", IEEE Micro 38(1):82-99, 2018, Table 2, pre-silicon figures at 0.75 V):
    23.6 pJ per synaptic spike operation (the table's minimum), 81 pJ per neuron update (the
    "active" figure: every neuron here gets a non-zero input current at every step; the
    "inactive" figure is 52 pJ), 1.7 pJ per spike (within-tile spike energy; tile hops, 3.0 /
    4.0 pJ each, need a placement and are not charged). Loihi has no real-valued datapath:
    MACs and additions are charged at the ``cmos45`` figures, as on a conventional processor
    beside it. These figures were taken from two independent secondary sources quoting
    Table 2; the paper's own text was not available here ("not verified" against it).

A TOML file adds models (``examples/energy.toml``)::

    [models.my-chip]
    description = "..."
    source = "..."
    base = "cmos45"          # optional: start from a built-in model's figures
    mac_pj = 3.1
    add_pj = 0.1
    sop_pj = 0.1
    neuron_update_pj = 0.0
    spike_pj = 0.0

The teacher (an ANN) is charged by the same model, with only MACs and additions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurolang.energy.records import ModelCounts
from neurolang.errors import NeurolangError

FIGURES = ("mac_pj", "add_pj", "sop_pj", "neuron_update_pj", "spike_pj")
COUNT_OF = {"mac_pj": "macs", "add_pj": "adds", "sop_pj": "sops",
            "neuron_update_pj": "neuron_updates", "spike_pj": "spikes"}


class EnergyConfigError(NeurolangError, ValueError):
    """An energy configuration file or a model name a user gave is wrong."""


@dataclass(frozen=True)
class EnergyModel:
    """Energies per operation, in picojoules, and where they come from."""

    name: str
    description: str
    source: str
    mac_pj: float
    add_pj: float
    sop_pj: float
    neuron_update_pj: float = 0.0
    spike_pj: float = 0.0
    verified: str = ""

    def __post_init__(self) -> None:
        for figure in FIGURES:
            value = getattr(self, figure)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise EnergyConfigError(f"energy model {self.name!r}: {figure} must be a "
                                        f"non-negative number of picojoules, got {value!r}")

    def breakdown_pj(self, counts: ModelCounts) -> dict[str, float]:
        """Energy of all samples counted, per kind of operation and ``total`` (pJ)."""
        parts = {COUNT_OF[f]: getattr(self, f) * counts.total(COUNT_OF[f]) for f in FIGURES}
        parts["total"] = sum(parts.values())
        return parts

    def per_sample_pj(self, counts: ModelCounts) -> float:
        return self.breakdown_pj(counts)["total"] / counts.samples if counts.samples else 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_HOROWITZ = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC "
             "2014: 45 nm, 0.9 V, 32-bit float multiply 3.7 pJ + add 0.9 pJ")
_DAVIES = ("M. Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip "
           "Learning', IEEE Micro 38(1):82-99, 2018, Table 2 (pre-silicon, 0.75 V)")

BUILTIN_MODELS: dict[str, EnergyModel] = {
    "cmos45": EnergyModel(
        "cmos45", "45 nm CMOS, the Spikformer/SpikeBERT convention: 4.6 pJ per MAC, 0.9 pJ "
        "per accumulate; neurons not charged", _HOROWITZ, mac_pj=4.6, add_pj=0.9, sop_pj=0.9,
        verified="float32 add 0.9 pJ and multiply 3.7 pJ as quoted from Horowitz's table by "
                 "secondary sources; the Spikformer papers use 4.6 / 0.9"),
    "cmos45-lif": EnergyModel(
        "cmos45-lif", "cmos45 plus one MAC per neuron update (v <- beta v + x)", _HOROWITZ,
        mac_pj=4.6, add_pj=0.9, sop_pj=0.9, neuron_update_pj=4.6,
        verified="as cmos45; the neuron-update charge is our choice"),
    "loihi": EnergyModel(
        "loihi", "Loihi: 23.6 pJ per synaptic op, 81 pJ per neuron update, 1.7 pJ per spike; "
        "real-valued ops at cmos45", _DAVIES + "; MACs and additions at cmos45 (Horowitz 2014)",
        mac_pj=4.6, add_pj=0.9, sop_pj=23.6, neuron_update_pj=81.0, spike_pj=1.7,
        verified="not verified against the paper's text: taken from two independent secondary "
                 "sources quoting Table 2 (synaptic spike op min 23.6 pJ, within-tile spike "
                 "1.7 pJ, neuron update 81 pJ active / 52 pJ inactive, tile hop 3.0 / 4.0 pJ, "
                 "synaptic update 120 pJ)"),
}
DEFAULT_MODELS = ("cmos45", "cmos45-lif", "loihi")


def load_energy_models(path: str | Path) -> dict[str, EnergyModel]:
    """The models defined in a TOML file's ``[models.NAME]`` tables."""
    from neurolang.validation import ConfigError, read_toml

    path = Path(path)
    try:
        data = read_toml(path, "energy configuration")
    except ConfigError as err:
        raise EnergyConfigError(str(err)) from None
    unknown_tables = sorted(set(data) - {"models"})
    if unknown_tables:
        raise EnergyConfigError(f"{path}: unknown table(s) {unknown_tables}; energy models go "
                                "in [models.NAME] tables")
    tables = data.get("models", {})
    if not tables:
        raise EnergyConfigError(f"{path} defines no [models.NAME] table")
    found = {}
    known = set(FIGURES) | {"description", "source", "base", "verified"}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise EnergyConfigError(f"{path}: models.{name} must be a table")
        unknown = sorted(set(table) - known)
        if unknown:
            raise EnergyConfigError(f"{path}: models.{name} has unknown key(s) {unknown}; "
                                    f"known: {sorted(known)}")
        values: dict[str, Any] = {}
        base = table.get("base")
        if base is not None:
            if base not in BUILTIN_MODELS:
                raise EnergyConfigError(f"{path}: models.{name}.base {base!r} is not a "
                                        f"built-in model ({sorted(BUILTIN_MODELS)})")
            values = {f: getattr(BUILTIN_MODELS[base], f) for f in FIGURES}
        values.update({f: table[f] for f in FIGURES if f in table})
        missing = [f for f in ("mac_pj", "add_pj", "sop_pj") if f not in values]
        if missing:
            raise EnergyConfigError(f"{path}: models.{name} needs {missing} (or a base)")
        found[name] = EnergyModel(
            name, str(table.get("description", f"user-defined ({path.name})")),
            str(table.get("source", f"user-defined in {path}")),
            verified=str(table.get("verified", "user-defined")), **values)
    return found


def select_models(names: Sequence[str] | None = None,
                  config: str | Path | None = None) -> dict[str, EnergyModel]:
    """The energy models to report: ``names`` (default: the built-ins, then every model of
    ``config``), looked up among the built-ins and the file's models (which win)."""
    available = dict(BUILTIN_MODELS)
    extra = load_energy_models(config) if config else {}
    available.update(extra)
    if not names:
        names = list(DEFAULT_MODELS) + [n for n in extra if n not in DEFAULT_MODELS]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise EnergyConfigError(f"unknown energy model(s) {unknown}; known: {sorted(available)}")
    return {n: available[n] for n in names}

"""Running a trained model on one simulator and counting that run.

``measure_torch_side`` loads the model folder onto a torch-side backend (``torch``,
``snntorch``, ``norse``) and counts its own run with :class:`~neurolang.energy.hooks.OpCounter`.
``measure_lava`` runs the model in Lava through the Lava side's driver and turns the spike
counts Lava's processes report into the same table with
:func:`~neurolang.energy.from_spikes.counts_from_spikes`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from neurolang.energy.from_spikes import counts_from_spikes
from neurolang.energy.hooks import count_batches
from neurolang.energy.records import ModelCounts
from neurolang.errors import NeurolangError

TORCH_SIDE = ("torch", "snntorch", "norse")
LAVA = "lava"

LAVA_DRIVER = "neurolang.lava.driver.simulate_lava"


class SimulatorError(NeurolangError, RuntimeError):
    """A simulator cannot be run or returned something that cannot be counted."""


@dataclass
class SimulatorRun:
    """One simulator's counted run on the samples: counts, predictions, accuracy."""

    simulator: str
    counts: ModelCounts
    predictions: list[int]
    accuracy: float | None
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"simulator": self.simulator, "accuracy": self.accuracy,
                "seconds": round(self.seconds, 2), "notes": self.notes,
                "counts": self.counts.to_dict()}


def _accuracy(predictions: Sequence[int], labels: Sequence[int] | None) -> float | None:
    if not labels:
        return None
    return sum(int(p == y) for p, y in zip(predictions, labels, strict=True)) / len(labels)


def measure_torch_side(model_dir: str | Path, simulator: str, batches: Sequence[Mapping],
                       labels: Sequence[int] | None, dtype: torch.dtype = torch.float64
                       ) -> SimulatorRun:
    """Load ``model_dir`` onto ``simulator`` and count its run over ``batches``."""
    from neurolang.checkpoint import from_pretrained

    start = time.perf_counter()
    model = from_pretrained(model_dir, simulator).to(dtype)
    if hasattr(model, "fold_batch_norms"):  # the inference form Lava's NIR file holds
        model.fold_batch_norms()
    counts, logits = count_batches(model, batches, simulator)
    predictions = logits.argmax(-1).tolist()
    return SimulatorRun(simulator, counts, predictions, _accuracy(predictions, labels),
                        time.perf_counter() - start)


def measure_lava(model_dir: str | Path, batches: Sequence[Mapping],
                 labels: Sequence[int] | None, fixed_point: bool = False) -> SimulatorRun:
    """Export the model folder to NIR, run it in Lava (``simulate_lava``, the Lava side's
    driver) and count that run from the spike counts Lava's processes report per population,
    sample and step, and from the attention accumulates its attention processes count (a
    report without them gets them estimated, and marked)."""
    import tempfile

    import numpy as np

    from neurolang.checkpoint import from_pretrained, read_config

    try:
        from neurolang.export import export_nir
        from neurolang.lava.driver import simulate_lava
    except ImportError as err:
        raise SimulatorError(f"the Lava simulator is not available ({err}); the energy command "
                             f"calls {LAVA_DRIVER}") from None
    token_ids, lengths = [], []
    for batch in batches:
        for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True):
            n = int(mask.sum())
            token_ids.append(ids[:n].tolist())
            lengths.append(n)
    packed = np.zeros((len(token_ids), max(lengths)), dtype=np.int64)
    for i, ids in enumerate(token_ids):
        packed[i, : len(ids)] = ids
    config, _ = read_config(model_dir)
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="neurolang-energy-") as tmp:
            # folded in float64, as the torch-side runs fold it
            model = from_pretrained(model_dir, "torch").to(torch.float64)
            nir_path = export_nir(model, Path(tmp) / "model.nir")
            result = simulate_lava(nir_path, packed, np.asarray(lengths), fixed_point=fixed_point)
    except Exception as err:
        if type(err).__name__ in ("LavaEnvError", "LavaModelError", "LavaError", "NIRError"):
            raise SimulatorError(f"Lava: {err}") from None
        raise
    seconds = time.perf_counter() - start
    if [int(n) for n in result.lengths] != lengths:
        raise SimulatorError("Lava ran other lengths than it was given")
    name = "lava-fixed" if fixed_point else "lava-float"
    attention = getattr(result, "attention_sops", None) or result.info.get("attention_sops")
    counts = counts_from_spikes(config, result.spike_counts, lengths, simulator=name,
                                attention=attention)
    predictions = [int(p) for p in np.asarray(result.logits).argmax(-1)]
    notes = []
    if counts.estimated:
        notes.append("Lava reports no attention accumulates: those of "
                     + ", ".join(counts.estimated) + " are estimated from its Q, K, V spike "
                     "counts (independence), so they differ from the torch-side counts")
    return SimulatorRun(name, counts, predictions, _accuracy(predictions, labels), seconds,
                        notes)

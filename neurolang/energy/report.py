"""``neurolang energy``: a trained model on several simulators, counted, priced, compared.

:func:`run_energy` loads the samples once, runs every simulator on them (each counted from
its own run), counts the teacher on the same texts and lengths, and returns an
:class:`EnergyReport` that prints the tables and writes ``energy.json`` plus two charts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from neurolang.energy.models import EnergyModel, select_models
from neurolang.energy.records import ModelCounts, first_difference
from neurolang.energy.simulators import (
    LAVA,
    TORCH_SIDE,
    SimulatorRun,
    measure_lava,
    measure_torch_side,
)
from neurolang.errors import NeurolangError

SPLIT_ALIASES = {"validation": "validation", "dev": "validation", "val": "validation",
                 "train": "train"}
DTYPES = {"float64": torch.float64, "float32": torch.float32}


class EnergyError(NeurolangError, ValueError):
    """A user-caused problem with the energy comparison (one clear line)."""


@dataclass
class EnergyReport:
    model_dir: str
    dataset: str
    split: str
    dtype: str
    lengths: list[int]
    labels: list[int]
    runs: dict[str, SimulatorRun]
    models: dict[str, EnergyModel]
    teacher: SimulatorRun | None = None
    teacher_source: str | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    neurobench: dict[str, Any] | None = None

    @property
    def samples(self) -> int:
        return len(self.lengths)

    def differences(self) -> list[dict[str, Any]]:
        """Every simulator against the first one: the first layer where counts differ."""
        names = list(self.runs)
        found = []
        for other in names[1:]:
            diff = first_difference(self.runs[names[0]].counts, self.runs[other].counts)
            disagree = sum(int(a != b) for a, b in zip(
                self.runs[names[0]].predictions, self.runs[other].predictions, strict=False))
            found.append({"reference": names[0], "simulator": other, "first_difference": diff,
                          "prediction_disagreements": disagree})
        return found

    def energy_pj(self, counts: ModelCounts) -> dict[str, dict[str, float]]:
        """Per model: energy per sample, total and by kind of operation (pJ)."""
        out = {}
        for name, model in self.models.items():
            parts = model.breakdown_pj(counts)
            out[name] = {k: v / counts.samples for k, v in parts.items()}
        return out

    def ratios(self, counts: ModelCounts) -> dict[str, float | None]:
        if self.teacher is None:
            return dict.fromkeys(self.models)
        return {name: model.per_sample_pj(counts) / model.per_sample_pj(self.teacher.counts)
                for name, model in self.models.items()}

    def to_dict(self) -> dict[str, Any]:
        def run_dict(run: SimulatorRun) -> dict[str, Any]:
            return {**run.to_dict(), "energy_per_sample_pj": self.energy_pj(run.counts),
                    "ratio_to_teacher": self.ratios(run.counts)}

        return {
            "model_dir": self.model_dir, "dataset": self.dataset, "split": self.split,
            "samples": self.samples, "tokens": sum(self.lengths),
            "mean_length": sum(self.lengths) / max(self.samples, 1), "dtype": self.dtype,
            "model_config": self.model_config,
            "energy_models": {n: m.to_dict() for n, m in self.models.items()},
            "simulators": {n: run_dict(r) for n, r in self.runs.items()},
            "teacher": None if self.teacher is None else {
                "source": self.teacher_source, "accuracy": self.teacher.accuracy,
                "energy_per_sample_pj": self.energy_pj(self.teacher.counts),
                "counts": self.teacher.counts.to_dict()},
            "differences": self.differences(),
            "neurobench": self.neurobench_comparison(),
            "notes": self.notes,
            "rules": "docs/energy.md",
        }

    def neurobench_comparison(self) -> dict[str, Any] | None:
        """NeuroBench's ``SynapticOperations`` beside neurolang's count of the same Linears
        (per sample): ours are synaptic operations where the input is spikes, MACs where it
        is real-valued (zeros included)."""
        if self.neurobench is None:
            return None
        reference = next(r for n, r in self.runs.items() if n in TORCH_SIDE).counts
        layers = {}
        for name, theirs in self.neurobench["layers"].items():
            ours = reference.layers[name]
            kind = "sops" if ours.role == "synaptic" else "macs"
            value = getattr(ours, kind) / max(reference.samples, 1)
            layers[name] = {"neurobench": theirs["effective"], "neurobench_spiking":
                            theirs["spiking"], "neurobench_dense": theirs["dense"],
                            "neurolang": value, "neurolang_kind": kind,
                            "equal": abs(theirs["effective"] - value) < 1e-9}
        return {"simulator": reference.simulator,
                **{k: v for k, v in self.neurobench.items() if k != "layers"},
                "equal_layers": sum(v["equal"] for v in layers.values()),
                "layers": layers}

    # ---- output ----------------------------------------------------------------------------

    def print(self, console) -> None:
        from rich.table import Table

        title = (f"per sample: {self.dataset} {self.split}, {self.samples} samples, mean "
                 f"length {sum(self.lengths) / max(self.samples, 1):.1f} tokens ({self.dtype}); "
                 "energy (share of the teacher's)")
        table = Table(title=title)
        for column in ("simulator", "accuracy", "firing rate", "SOPs", "MACs", "adds"):
            table.add_column(column, justify="right" if column != "simulator" else "left")
        for name in self.models:
            table.add_column(name, justify="right")
        rows = list(self.runs.values()) + ([self.teacher] if self.teacher else [])
        for run in rows:
            counts = run.counts
            is_teacher = run is self.teacher
            energies = [_format_pj(m.per_sample_pj(counts)) for m in self.models.values()]
            ratios = self.ratios(counts)
            cells = [
                f"{e} ({ratios[n]:.1%})" if ratios[n] is not None and not is_teacher else e
                for e, n in zip(energies, self.models, strict=True)]
            rate = counts.firing_rate
            table.add_row(
                "teacher" if is_teacher else run.simulator,
                "-" if run.accuracy is None else f"{run.accuracy:.4f}",
                "-" if rate is None else f"{rate:.2%}",
                _format_count(counts.per_sample("sops")),
                _format_count(counts.per_sample("macs")),
                _format_count(counts.per_sample("adds")),
                *cells)
        console.print(table)
        differences = self.differences()
        for diff in differences:
            first = diff["first_difference"]
            estimated = self.runs[diff["simulator"]].counts.estimated + self.runs[
                diff["reference"]].counts.estimated
            if first is None:
                line = (f"[green]{diff['simulator']} = {diff['reference']}[/]: identical counts "
                        "in every layer" + (f" except the estimated {', '.join(estimated)}"
                                            if estimated else ""))
            else:
                line = (f"[red]{diff['simulator']} differs from {diff['reference']}[/] from layer "
                        f"{first['layer']} ({first['field']}: {first.get(diff['reference'])} vs "
                        f"{first.get(diff['simulator'])})")
            if diff["prediction_disagreements"]:
                line += f"; {diff['prediction_disagreements']} predictions differ"
            console.print(line, highlight=False)
        comparison = self.neurobench_comparison()
        if comparison is not None:
            spiking = [n for n, v in comparison["layers"].items() if v["neurolang_kind"] == "sops"]
            console.print(
                f"NeuroBench SynapticOperations ({comparison['simulator']} run, per sample): "
                f"Effective_ACs {_format_count(comparison['Effective_ACs'])}, Effective_MACs "
                f"{_format_count(comparison['Effective_MACs'])}, Dense "
                f"{_format_count(comparison['Dense'])}; equal to neurolang's count on "
                f"{comparison['equal_layers']} of {len(comparison['layers'])} Linears "
                f"({len(spiking)} fed by spikes; docs/energy.md says why the others differ)",
                highlight=False)
        for run in self.runs.values():
            for note in run.notes:
                console.print(f"[yellow]{run.simulator}[/]: {note}", highlight=False)
        for note in self.notes:
            console.print(f"[yellow]note[/]: {note}", highlight=False)
        for model in self.models.values():
            unverified = model.verified.startswith("not verified")
            console.print(f"[bold]{model.name}[/]: {model.description}"
                          + (" [yellow](figures not verified against the paper's text)[/]"
                             if unverified else ""), highlight=False)
        console.print("counting rules: docs/energy.md; energy models' sources: energy.json",
                      highlight=False)

    def write(self, output: str | Path) -> list[Path]:
        """Write ``energy.json``, ``firing_rates.png`` and ``energy.png`` into ``output``."""
        from neurolang.energy.plots import plot_energy, plot_firing_rates

        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        path = output / "energy.json"
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        written = [path]
        written.append(plot_firing_rates(
            {n: r.counts for n, r in self.runs.items()}, output / "firing_rates.png"))
        per_sample = {n: {m: self.models[m].per_sample_pj(r.counts) for m in self.models}
                      for n, r in self.runs.items()}
        if self.teacher is not None:
            per_sample["teacher"] = {m: self.models[m].per_sample_pj(self.teacher.counts)
                                     for m in self.models}
        written.append(plot_energy(per_sample, output / "energy.png"))
        return written


def _format_pj(pj: float) -> str:
    for unit, scale in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if pj >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def _format_count(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


# ---- the run -------------------------------------------------------------------------------


def _parse_simulators(simulators: str | Sequence[str]) -> list[str]:
    names = [s.strip() for s in (simulators.split(",") if isinstance(simulators, str)
                                 else simulators) if s.strip()]
    known = TORCH_SIDE + (LAVA,)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise EnergyError(f"unknown simulator(s) {unknown or simulators!r}; choose from "
                          f"{', '.join(known)}")
    if len(set(names)) != len(names):
        raise EnergyError(f"a simulator is listed twice in {names}")
    return names


def load_samples(model_dir: str | Path, dataset: str, split: str, samples: int | None,
                 *, data_dir: str | Path | None = None, max_length: int | None = None,
                 seed: int = 0, batch_size: int = 32):
    """Tokenised samples of ``dataset``/``split`` with the model folder's tokenizer, batched by
    length. Returns (texts dataset, tokenizer, batches, lengths, labels, max_length)."""
    import numpy as np
    from transformers import AutoTokenizer

    from neurolang.checkpoint import read_config
    from neurolang.data import DynamicPaddingCollator, LengthBucketBatchSampler, load_task, tokenize

    config, _ = read_config(model_dir)
    canonical = SPLIT_ALIASES.get(split.lower())
    if canonical is None:
        raise EnergyError(f"unknown split {split!r}; use validation (alias dev) or train")
    data = load_task(dataset, data_dir=data_dir)
    if canonical not in data:
        raise EnergyError(f"{dataset} has no {canonical} split")
    rows = data[canonical]
    if samples is not None:
        if samples < 1:
            raise EnergyError(f"--samples must be >= 1, got {samples}")
        if samples < len(rows):
            chosen = np.sort(np.random.default_rng(seed).permutation(len(rows))[:samples])
            rows = rows.select(chosen.tolist())
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError) as err:
        raise EnergyError(f"{model_dir} holds no tokenizer ({err}); models trained by "
                          "neurolang save theirs") from None
    length = min(max_length or config.max_length, config.max_length)
    tokenized = tokenize(rows, tokenizer, length)
    collate = DynamicPaddingCollator.from_tokenizer(tokenizer)
    sampler = LengthBucketBatchSampler(tokenized, batch_size, shuffle=False)
    batches = [collate([tokenized[i] for i in indices]) for indices in sampler]
    lengths = [int(n) for b in batches for n in b["attention_mask"].sum(1)]
    labels = [int(y) for b in batches for y in b["labels"]] if "labels" in batches[0] else []
    return rows, tokenizer, batches, lengths, labels, length


def resolve_recorded_teacher(source: str, model_dir: str | Path) -> str:
    """A teacher path recorded at training time is relative to where training ran: if it is
    not found from here, look for it under the model folder's ancestors."""
    path = Path(source).expanduser()
    if path.is_absolute() or path.exists() or "/" not in source:
        return source
    for parent in Path(model_dir).resolve().parents:
        if (parent / path).is_dir():
            return str(parent / path)
    return source


def _teacher_run(source: str, rows, max_length: int, batch_size: int) -> SimulatorRun:
    import time

    from neurolang.data import DynamicPaddingCollator, LengthBucketBatchSampler, tokenize
    from neurolang.energy.teacher import teacher_counts
    from neurolang.teachers import load_teacher

    start = time.perf_counter()
    teacher = load_teacher(source)
    tokenized = tokenize(rows, teacher.tokenizer, max_length)
    collate = DynamicPaddingCollator.from_tokenizer(teacher.tokenizer)
    sampler = LengthBucketBatchSampler(tokenized, batch_size, shuffle=False)
    lengths, predictions, labels = [], [], []
    with torch.no_grad():
        for indices in sampler:
            batch = collate([tokenized[i] for i in indices])
            lengths += [int(n) for n in batch["attention_mask"].sum(1)]
            if teacher.has_head:
                out = teacher(batch["input_ids"], batch["attention_mask"],
                              batch.get("token_type_ids"))
                predictions += out.logits.argmax(-1).tolist()
                labels += batch["labels"].tolist() if "labels" in batch else []
    counts = teacher_counts(teacher, lengths)
    accuracy = None
    if predictions and labels:
        accuracy = sum(int(p == y) for p, y in zip(predictions, labels, strict=True)) / len(labels)
    return SimulatorRun("teacher", counts, predictions, accuracy, time.perf_counter() - start)


def run_energy(model_dir: str | Path, simulators: str | Sequence[str] = TORCH_SIDE, *,
               dataset: str = "sst2", split: str = "validation", samples: int | None = None,
               data_dir: str | Path | None = None, teacher: str | None = None,
               energy_config: str | Path | None = None, energy_models: Sequence[str] | None = None,
               dtype: str = "float64", batch_size: int = 32, max_length: int | None = None,
               seed: int = 0, lava_fixed_point: bool = False, neurobench: bool = True,
               console=None) -> EnergyReport:
    """Count ``model_dir`` on every simulator and the teacher on the same samples.

    ``teacher``: a teacher folder or name (default: the one recorded in the model folder's
    ``config.json``; ``"none"`` skips it). ``dtype`` float64 makes the torch-side backends
    produce identical spikes (float32 may differ by rounding). With ``neurobench``, the first
    torch-side simulator's run is also counted by NeuroBench's ``SynapticOperations``
    (``neurolang.energy.neurobench``), sample by sample.
    """
    from neurolang.checkpoint import read_config

    names = _parse_simulators(simulators)
    if dtype not in DTYPES:
        raise EnergyError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    models = select_models(energy_models, energy_config)
    config, metadata = read_config(model_dir)

    def say(text: str) -> None:
        if console is not None:
            console.print(text, highlight=False)

    rows, _, batches, lengths, labels, length = load_samples(
        model_dir, dataset, split, samples, data_dir=data_dir, max_length=max_length,
        seed=seed, batch_size=batch_size)
    report = EnergyReport(str(model_dir), dataset, split, dtype, lengths, labels, {}, models,
                          model_config=config.to_dict())
    for name in names:
        say(f"running {name} on {len(lengths)} samples ...")
        if name == LAVA:
            run = measure_lava(model_dir, batches, labels, fixed_point=lava_fixed_point)
        else:
            run = measure_torch_side(model_dir, name, batches, labels, DTYPES[dtype])
        report.runs[run.simulator] = run
        say(f"  {run.simulator}: {run.seconds:.1f} s")
    torch_side = [n for n in names if n in TORCH_SIDE]
    if neurobench and torch_side:
        from neurolang.checkpoint import from_pretrained
        from neurolang.energy.neurobench import neurobench_synops

        say(f"counting the {torch_side[0]} run with NeuroBench ...")
        model = from_pretrained(model_dir, torch_side[0]).to(DTYPES[dtype])
        report.neurobench = neurobench_synops(model, batches)
    source = teacher
    if source is None and metadata.get("teacher"):
        source = resolve_recorded_teacher(str(metadata["teacher"]), model_dir)
    if source and str(source).lower() != "none":
        say(f"counting the teacher {source} ...")
        report.teacher = _teacher_run(str(source), rows, length, batch_size)
        report.teacher_source = str(source)
        if report.teacher.counts.tokens != sum(lengths):
            report.notes.append(
                f"the teacher's tokenizer gives {report.teacher.counts.tokens} tokens, the "
                f"student's {sum(lengths)}: each is counted at its own lengths")
    else:
        report.notes.append("no teacher recorded in the model folder and none given "
                            "(--teacher): no ratio to the teacher")
    return report

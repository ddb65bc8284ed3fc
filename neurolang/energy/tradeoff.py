"""Trained students on one accuracy-vs-energy plane: ``neurolang energy-chart``.

Each point is one ``energy.json`` written by ``neurolang energy``: the student's accuracy on
the counted split (its first simulator's run) against its energy as a share of its teacher's
on the same samples, one panel per energy model; the teacher sits at 100%. A Markdown table
beside the chart gives the same numbers and each student's mean firing rate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurolang.errors import NeurolangError


class ChartError(NeurolangError, ValueError):
    """An energy report that cannot be put on the chart."""


@dataclass
class Point:
    label: str
    accuracy: float
    ratios: dict[str, float]  # energy model -> student / teacher
    firing_rate: float | None
    teacher_accuracy: float | None
    samples: int
    source: str


def read_point(path: str | Path, label: str | None = None) -> Point:
    """One student from ``energy.json`` (or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "energy.json"
    try:
        report = json.loads(path.read_text())
        runs = report["simulators"]
        name, run = next(iter(runs.items()))
    except (OSError, ValueError, KeyError, StopIteration) as err:
        raise ChartError(f"{path} is not an energy report of `neurolang energy` "
                         f"({type(err).__name__}: {err})") from None
    if report.get("teacher") is None or run.get("accuracy") is None:
        raise ChartError(f"{path} has no teacher or no labelled accuracy: run `neurolang "
                         "energy` with the teacher on a labelled split")
    ratios = {m: r for m, r in run["ratio_to_teacher"].items() if r is not None}
    folder = Path(report.get("model_dir", path.parent))
    return Point(label or _default_label(folder), float(run["accuracy"]), ratios,
                 run["counts"].get("firing_rate"), report["teacher"].get("accuracy"),
                 int(report["samples"]), str(path))


def _default_label(model_dir: Path) -> str:
    parts = [p for p in model_dir.parts if p not in ("best", "distill", "model")]
    return parts[-1] if parts else str(model_dir)


def markdown_table(points: Sequence[Point]) -> str:
    models = sorted({m for p in points for m in p.ratios})
    lines = ["| student | accuracy | firing rate | "
             + " | ".join(f"energy / teacher ({m})" for m in models) + " |",
             "|---|---|---|" + "---|" * len(models)]
    for p in points:
        rate = "-" if p.firing_rate is None else f"{p.firing_rate:.1%}"
        cells = [f"{p.ratios[m]:.1%}" if m in p.ratios else "-" for m in models]
        lines.append(f"| {p.label} | {p.accuracy:.4f} | {rate} | " + " | ".join(cells) + " |")
    teachers = {p.teacher_accuracy for p in points if p.teacher_accuracy is not None}
    for accuracy in sorted(teachers):
        lines.append(f"| teacher | {accuracy:.4f} | - | " + " | ".join("100%" for _ in models)
                     + " |")
    return "\n".join(lines) + "\n"


def plot_tradeoff(points: Sequence[Point], path: str | Path) -> Path:
    """One panel per energy model: accuracy against energy share of the teacher (log x)."""
    from neurolang.energy.plots import _pyplot

    plt = _pyplot()
    from matplotlib import ticker

    models = sorted({m for p in points for m in p.ratios})
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.4), squeeze=False)
    teachers = sorted({p.teacher_accuracy for p in points if p.teacher_accuracy is not None})
    for ax, model in zip(axes[0], models, strict=True):
        shown = [p for p in points if model in p.ratios]
        for i, p in enumerate(shown):
            ax.scatter(p.ratios[model], p.accuracy, s=60, marker="osD^vP*X"[i % 8],
                       label=p.label, zorder=3, alpha=0.85)
        for accuracy in teachers:
            ax.scatter(1.0, accuracy, s=90, marker="*", color="black", zorder=3,
                       label="teacher")
        ax.set_xscale("log")
        # shares as percentages at 1-2-5 steps; no minor labels (they collide on a narrow axis)
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{100 * x:g}%"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel(f"energy / teacher's ({model})")
        ax.set_ylabel("accuracy")
        ax.set_title(model)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0][0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=min(len(unique), 5),
               fontsize=8)
    fig.suptitle("students on the accuracy-energy plane (same samples as the teacher)")
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def energy_chart(reports: Sequence[str | Path], output: str | Path,
                 labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Read every report, write ``tradeoff.png`` and ``tradeoff.md`` into ``output``."""
    if labels and len(labels) != len(reports):
        raise ChartError(f"{len(labels)} labels for {len(reports)} reports")
    points = [read_point(r, labels[i] if labels else None) for i, r in enumerate(reports)]
    if not points:
        raise ChartError("give at least one energy report")
    samples = {p.samples for p in points}
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    table = markdown_table(points)
    (output / "tradeoff.md").write_text(table)
    chart = plot_tradeoff(points, output / "tradeoff.png")
    return {"points": [p.__dict__ for p in points], "table": table, "chart": str(chart),
            "same_samples": len(samples) == 1}

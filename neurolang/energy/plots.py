"""Charts of an energy report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from neurolang.energy.records import ModelCounts

_MARKERS = "osD^vP*X"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_firing_rates(runs: Mapping[str, ModelCounts], path: str | Path) -> Path:
    """Firing rate of every population (graph order), one series per simulator."""
    plt = _pyplot()
    first = next(iter(runs.values()))
    names = [layer.name for layer in first.populations()]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.38 * len(names) + 2), 4.2))
    for i, (simulator, counts) in enumerate(runs.items()):
        rates = {layer.name: layer.firing_rate for layer in counts.populations()}
        ax.plot(range(len(names)), [rates.get(n) or 0.0 for n in names],
                marker=_MARKERS[i % len(_MARKERS)], linestyle="-", linewidth=1,
                markersize=8 - 1.5 * i, fillstyle="none" if i else "full", label=simulator)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([n.replace(".neuron", "").replace("blocks.", "b") for n in names],
                       rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("firing rate (spikes / neuron / step)")
    ax.set_title("firing rate per population (real tokens only)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_energy(per_sample_pj: Mapping[str, Mapping[str, float]], path: str | Path) -> Path:
    """Energy per sample of every simulator (and the teacher), one group per energy model."""
    plt = _pyplot()
    runs = list(per_sample_pj)
    models = list(next(iter(per_sample_pj.values())))
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(models) * len(runs) / 2 + 2), 4.2))
    teacher = per_sample_pj.get("teacher")
    for i, run in enumerate(runs):
        values = [per_sample_pj[run][m] / 1e6 for m in models]  # µJ
        xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(models))]
        bars = ax.bar(xs, values, width, label=run,
                      color="0.35" if run == "teacher" else None)
        for bar, model in zip(bars, models, strict=True):
            height = bar.get_height()
            label = f"{height:.0f}" if height >= 100 else f"{height:.3g}"
            if teacher and run != "teacher" and teacher[model]:
                label += f"\n{per_sample_pj[run][model] / teacher[model]:.1%}"
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=6)
    # a log axis only when the bars span orders of magnitude: over a narrow range it would
    # start near the smallest bar and make small differences look large
    values = [v for run in runs for v in per_sample_pj[run].values() if v > 0]
    log = bool(values) and max(values) / min(values) >= 20
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models)
    ax.set_ylabel("energy per sample (µJ" + (", log scale)" if log else ")"))
    ax.set_title("energy per sample by simulator, next to the teacher")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path

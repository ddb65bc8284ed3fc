"""PNG training curves from the ``metrics.jsonl`` files of a run."""

from __future__ import annotations

import json
from pathlib import Path


def plot_run(run_dir: Path) -> list[Path]:
    """``training_curves.png`` in ``run_dir``: loss per step for each stage, dev metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in ("predistill", "distill") if (run_dir / s / "metrics.jsonl").is_file()]
    if not stages:
        return []
    fig, axes = plt.subplots(1, len(stages) + 1, figsize=(5 * (len(stages) + 1), 3.6))
    for ax, stage in zip(axes, stages, strict=False):
        records = [json.loads(line) for line in
                   (run_dir / stage / "metrics.jsonl").read_text().splitlines()]
        steps = [r for r in records if "loss" in r]
        ax.plot([r["step"] for r in steps], [r["loss"] for r in steps])
        ax.set(title=f"{stage}: training loss", xlabel="optimizer step", ylabel="loss")
        ax.grid(alpha=0.3)
    records = [json.loads(line) for line in
               (run_dir / "distill" / "metrics.jsonl").read_text().splitlines()] if (
        "distill" in stages) else []
    ax = axes[-1]
    for key in sorted({k for r in records for k in r if k.startswith("dev_")}):
        points = [(r["epoch"], r[key]) for r in records if key in r]
        ax.plot(*zip(*points, strict=True), marker="o", label=key[4:])
    ax.set(title="stage 2: dev metrics", xlabel="epoch")
    ax.grid(alpha=0.3)
    if records:
        ax.legend()
    fig.tight_layout()
    path = run_dir / "training_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]

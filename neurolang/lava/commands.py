"""CLI sub-commands ``setup-lava`` and ``simulate`` (the Lava simulator, driven from the main
environment).

``register(app, fail)`` adds them to a ``typer.Typer`` (``neurolang.cli`` wires it in). Errors
are one line and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from neurolang.errors import NeurolangError, reporting_commands

console = Console(width=max(Console().width, 120))


def register(app: typer.Typer, fail) -> None:
    """Add ``setup-lava`` and ``simulate`` to ``app``; ``fail(message)`` reports bad input
    (one line, non-zero exit)."""
    _fail = fail
    command = reporting_commands(app, fail)

    @command("setup-lava")
    def setup_lava_command(
        venv: Path | None = typer.Option(None, help="Where (default: <repo>/.venv-lava or "
                                         "$NEUROLANG_LAVA_VENV)."),
        force: bool = typer.Option(False, help="Re-create even if it is up to date."),
    ) -> None:
        """Create the Python 3.10 Lava environment (lava-nc 0.10.0, nir, h5py; no torch)."""
        from neurolang.lava.env import setup_lava

        setup_lava(venv, force=force,
                   log=lambda m: console.print(m, highlight=False, markup=False))

    @command("simulate")
    def simulate_command(
        nir_file: Path = typer.Argument(..., help="A neurolang NIR file (neurolang export)."),
        simulator: str = typer.Option("lava", help="Only 'lava'."),
        dataset: str = typer.Option("sst2", help="A task name or files (neurolang.data)."),
        split: str = typer.Option("validation", help="validation (alias dev) or train."),
        samples: int | None = typer.Option(None, help="Only the first N examples."),
        fixed_point: bool = typer.Option(False, "--fixed-point",
                                         help="Also run Lava's bit-accurate fixed point."),
        compare_torch: bool = typer.Option(True, "--compare/--no-compare",
                                           help="Compare with the torch backend."),
        tokenizer: Path | None = typer.Option(None, help="Tokenizer folder (default: next to "
                                              "the NIR file, or the exported model's)."),
        data_dir: Path | None = typer.Option(None, help="Offline data directory."),
        chunk: int = typer.Option(32, help="Samples per Lava run call."),
        eight_bit: bool = typer.Option(False, "--eight-bit-weights", help="Run the model with "
                                       "its weights on the 8-bit grid of Lava's fixed point "
                                       "(every run: torch, float, fixed), so that fixed point "
                                       "differs from float only in its currents."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the results here."),
    ) -> None:
        """Run a NIR model on a data set in Lava; per-layer spikes, predictions, timing."""
        if simulator != "lava":
            _fail(f"--simulator must be 'lava', got {simulator!r}")
        if samples is not None and samples < 1:
            _fail(f"--samples must be >= 1, got {samples}")
        if chunk < 1:
            _fail(f"--chunk must be >= 1, got {chunk}")
        try:
            if json_out:
                from neurolang.outputs import claim_file

                claim_file(json_out, what="--json")
            report = _simulate(nir_file, dataset, split, samples, fixed_point, compare_torch,
                               tokenizer, data_dir, chunk, eight_bit)
        except NeurolangError:
            raise  # reported whole, by the command's wrapper
        except (OSError, ValueError) as err:  # a library's error: its first line
            _fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
        _print_report(report)
        if json_out:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(report, indent=2) + "\n")
            console.print(f"results written to {json_out}")
        float_cmp = report.get("comparisons", {}).get("torch_vs_lava_float")
        if float_cmp and float_cmp["total_count_mismatches"]:
            raise typer.Exit(1)


def _simulate(nir_file, dataset, split, samples, fixed_point, compare_torch, tokenizer,
              data_dir, chunk, eight_bit=False) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="neurolang-simulate-") as tmp:
        return _simulate_in(nir_file, dataset, split, samples, fixed_point, compare_torch,
                            tokenizer, data_dir, chunk, eight_bit, Path(tmp))


def _simulate_in(nir_file, dataset, split, samples, fixed_point, compare_torch, tokenizer,
                 data_dir, chunk, eight_bit, tmp: Path) -> dict:
    import numpy as np

    from neurolang.lava.driver import compare, pack_ids, simulate_lava, torch_reference
    from neurolang.lava.env import require_lava
    from neurolang.lava.plan import plan_network
    from neurolang.nir.errors import NIRError
    from neurolang.nir.io import read_metadata, read_nir, tokenizer_folder

    graph = read_nir(nir_file)
    meta = read_metadata(graph)
    source = tokenizer or tokenizer_folder(nir_file, meta)
    snapped, shown = None, nir_file
    if eight_bit:
        from neurolang.lava.quantise import snap_weights
        from neurolang.nir import flatten, write_nir

        snapped = snap_weights(flatten(graph))  # the nested graph's nodes, in place
        nir_file = write_nir(graph, tmp / "eight_bit.nir")
    plan_network(graph, fixed_point=fixed_point)
    require_lava()
    if source is None:
        raise NIRError("no tokenizer next to the NIR file or in the exported model folder: "
                       "give --tokenizer")
    from transformers import AutoTokenizer

    from neurolang.data import load_task

    tok = AutoTokenizer.from_pretrained(str(source))
    split = {"dev": "validation"}.get(split, split)
    data = load_task(dataset, data_dir=data_dir)
    if split not in data:
        raise ValueError(f"{dataset} has no split {split!r} (splits: {list(data)})")
    rows = data[split]
    if samples is not None:
        rows = rows.select(range(min(samples, len(rows))))
    max_length = int(meta["config"]["max_length"])
    pair = list(rows["text_pair"]) if "text_pair" in rows.column_names else None
    encoded = tok(list(rows["text"]), pair, truncation=True, max_length=max_length)
    ids, lengths = pack_ids(encoded["input_ids"])
    labels = np.asarray(list(rows["label"])) if "label" in rows.column_names else None

    report: dict = {"nir": str(shown), "dataset": dataset, "split": split,
                    "samples": int(len(lengths)), "results": {}, "comparisons": {}}
    if snapped is not None:  # the largest weight change per layer, relative to its largest
        report["eight_bit_weights"] = {"layers": len(snapped),
                                       "max_relative_change": max(snapped.values(), default=0)}
    runs = {"lava_float": simulate_lava(nir_file, ids, lengths, chunk=chunk)}
    if fixed_point:
        runs["lava_fixed"] = simulate_lava(nir_file, ids, lengths, fixed_point=True,
                                           chunk=chunk)
    if compare_torch:
        from neurolang.export.nir_export import from_nir_graph

        runs = {"torch": torch_reference(from_nir_graph(graph), ids, lengths), **runs}
    for key, res in runs.items():
        entry = {"simulator": res.simulator, "wall_time_s": res.wall_time_s,
                 "samples_per_s": len(lengths) / max(res.wall_time_s, 1e-9),
                 "predictions": res.predictions.tolist(),
                 "spikes": {k: int(v.sum()) for k, v in res.spike_counts.items()},
                 **({"accuracy": float((res.predictions == labels).mean())}
                    if labels is not None else {}),
                 **{k: v for k, v in res.info.items() if k in ("timing", "lava_steps",
                                                               "processes", "quantisation")}}
        report["results"][key] = entry
    if "torch" in runs:
        report["comparisons"]["torch_vs_lava_float"] = compare(runs["torch"], runs["lava_float"],
                                                               labels)
    if "lava_fixed" in runs:
        report["comparisons"]["lava_float_vs_lava_fixed"] = compare(
            runs["lava_float"], runs["lava_fixed"], labels)
    return report


def _print_report(report: dict) -> None:
    results = report["results"]
    table = Table(title=f"spikes per population ({report['dataset']} {report['split']}, "
                        f"{report['samples']} samples)")
    table.add_column("population", no_wrap=True)
    for key in results:
        table.add_column(key, justify="right")
    comparisons = report["comparisons"]
    for key in comparisons:
        table.add_column(f"count mismatches {key}", justify="right")
    populations = list(next(iter(results.values()))["spikes"])
    for pop in populations:
        cells = [str(r["spikes"][pop]) for r in results.values()]
        for cmp in comparisons.values():
            row = next(layer for layer in cmp["layers"] if layer["population"] == pop)
            m = row["count_mismatches"]
            cells.append(f"{m} ({row['agreement']:.2%})" if m else "0")
        table.add_row(pop, *cells)
    console.print(table)
    summary = Table(title="summary")
    for col in ("run", "accuracy", "wall time (s)", "samples/s"):
        summary.add_column(col, justify="right")
    for key, r in results.items():
        acc = f"{r['accuracy']:.4f}" if "accuracy" in r else "-"
        summary.add_row(key, acc, f"{r['wall_time_s']:.1f}", f"{r['samples_per_s']:.2f}")
    console.print(summary)
    for key, cmp in comparisons.items():
        console.print(f"{key}: {cmp['total_count_mismatches']} spike-count mismatches, "
                      f"prediction agreement {cmp['prediction_agreement']:.2%}, logits max "
                      f"|diff| {cmp['logits_max_abs_diff']:.2e}", highlight=False)

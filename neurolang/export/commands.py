"""CLI sub-commands ``export``, ``import``, ``setup-lava`` and ``simulate``.

``register(app)`` adds them to a ``typer.Typer`` (``neurolang.cli`` wires it in). Errors are
one line and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console(width=max(Console().width, 120))

TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "vocab.txt")


def _known_errors():
    from neurolang.checkpoint import CheckpointError
    from neurolang.config import ConfigError
    from neurolang.export.nir_format import NIRError
    from neurolang.export.simulate import LavaError
    from neurolang.lava.env import LavaEnvError
    from neurolang.lava.network import LavaModelError
    from neurolang.outputs import OutputError

    return (NIRError, CheckpointError, ConfigError, LavaEnvError, LavaModelError, LavaError,
            OutputError)


def _has_tokenizer(folder: Path) -> bool:
    return folder.is_dir() and any((folder / f).is_file() for f in TOKENIZER_FILES)


def register(app: typer.Typer, fail) -> None:
    """Add ``export``, ``import``, ``setup-lava`` and ``simulate`` to ``app``;
    ``fail(message)`` reports bad input (one line, non-zero exit)."""
    _fail = fail

    @app.command("export")
    def export_command(
        model_dir: Path = typer.Argument(..., help="A model folder (neurolang.checkpoint."
                                         "save_pretrained) of any family."),
        output: Path = typer.Option(..., "-o", "--output", help="The file to write."),
        format: str = typer.Option("nir", "--format", help="Only 'nir'."),
        strict: bool = typer.Option(False, "--strict",
                                    help="Refuse models that need neurolang extension nodes."),
        dt: float = typer.Option(1e-4, "--dt", help="Time step the LIF parameters assume "
                                 "(snnTorch's importer assumes 1e-4)."),
    ) -> None:
        """Export a model folder as a NIR graph (standard nodes + neurolang extensions)."""
        if format != "nir":
            _fail(f"--format must be 'nir', got {format!r}")
        if not dt > 0 or dt == float("inf"):
            _fail(f"--dt must be a finite time step > 0, got {dt}")
        try:
            from neurolang.outputs import claim_file

            claim_file(output, what="-o", suffixes=(".nir",))
            from neurolang.checkpoint import from_pretrained
            from neurolang.export.nir_export import to_nir
            from neurolang.export.nir_format import write_nir

            model = from_pretrained(model_dir).double().eval()
            graph = to_nir(model, strict=strict, dt=dt)
            graph.metadata["neurolang.source"] = str(Path(model_dir).resolve())
            write_nir(graph, output)
        except _known_errors() as err:
            _fail(str(err))
        ext = json.loads(graph.metadata["neurolang.extensions"])
        console.print(f"wrote {output}: {'standard NIR only' if not ext else 'extensions ' + ', '.join(ext)}"
                      f"; dt = {dt}", highlight=False)

    @app.command("import")
    def import_command(
        nir_file: Path = typer.Argument(..., help="A neurolang NIR file."),
        output: Path = typer.Option(..., "-o", "--output", help="The model folder to write."),
        tokenizer: Path | None = typer.Option(None, help="Tokenizer folder to save with it "
                                              "(default: the exported model's, if found)."),
    ) -> None:
        """Rebuild a model folder from a neurolang NIR file."""
        try:
            from neurolang.export.nir_format import NIRError, read_metadata, read_nir
            from neurolang.outputs import claim_folder

            claim_folder(output, ["model"], what="-o")
            if tokenizer is not None and not _has_tokenizer(tokenizer):
                raise NIRError(f"--tokenizer {str(tokenizer)!r} holds no tokenizer files "
                               f"({', '.join(TOKENIZER_FILES)})")
            from neurolang.checkpoint import save_pretrained
            from neurolang.export.nir_export import from_nir_graph

            graph = read_nir(nir_file)
            meta = read_metadata(graph)
            model = from_nir_graph(graph)
            if meta["neurolang.model"] == "pooled_classifier":
                save_pretrained(model, output,
                                metadata={"imported_from": str(Path(nir_file).resolve())})
                console.print(f"wrote {output}", highlight=False)
                return
            if meta["neurolang.model"] != "spikformer":
                raise NIRError(f"cannot write a folder for a {meta['neurolang.model']}")
            tok = None
            source = tokenizer or _tokenizer_dir(nir_file, meta)
            if source is not None:
                from transformers import AutoTokenizer

                tok = AutoTokenizer.from_pretrained(str(source))
            save_pretrained(model, output, tokenizer=tok,
                            metadata={"imported_from": str(Path(nir_file).resolve())})
        except _known_errors() as err:
            _fail(str(err))
        except OSError as err:
            _fail(f"cannot load the tokenizer: {err}")
        console.print(f"wrote {output}", highlight=False)

    @app.command("setup-lava")
    def setup_lava_command(
        venv: Path | None = typer.Option(None, help="Where (default: <repo>/.venv-lava or "
                                         "$NEUROLANG_LAVA_VENV)."),
        force: bool = typer.Option(False, help="Re-create even if it is up to date."),
    ) -> None:
        """Create the Python 3.10 Lava environment (lava-nc 0.10.0, nir, h5py; no torch)."""
        from neurolang.lava.env import setup_lava

        try:
            setup_lava(venv, force=force,
                       log=lambda m: console.print(m, highlight=False, markup=False))
        except _known_errors() as err:
            _fail(str(err))

    @app.command("simulate")
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
                               tokenizer, data_dir, chunk)
        except _known_errors() as err:
            _fail(str(err))
        except (OSError, ValueError) as err:
            _fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
        _print_report(report)
        if json_out:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(report, indent=2) + "\n")
            console.print(f"results written to {json_out}")
        float_cmp = report.get("comparisons", {}).get("torch_vs_lava_float")
        if float_cmp and float_cmp["total_count_mismatches"]:
            raise typer.Exit(1)


def _tokenizer_dir(nir_file: Path, meta: dict) -> Path | None:
    candidates = [Path(nir_file).resolve().parent]
    if meta.get("neurolang.source"):
        candidates.append(Path(str(meta["neurolang.source"])))
    return next((c for c in candidates if _has_tokenizer(c)), None)


def _simulate(nir_file, dataset, split, samples, fixed_point, compare_torch, tokenizer,
              data_dir, chunk) -> dict:
    import numpy as np

    from neurolang.export.nir_format import NIRError, read_metadata, read_nir
    from neurolang.export.simulate import compare, pack_ids, simulate_lava, torch_reference
    from neurolang.lava.env import require_lava
    from neurolang.lava.network import plan_network

    graph = read_nir(nir_file)
    meta = read_metadata(graph)
    plan_network(graph, fixed_point=fixed_point)
    require_lava()
    source = tokenizer or _tokenizer_dir(nir_file, meta)
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

    report: dict = {"nir": str(nir_file), "dataset": dataset, "split": split,
                    "samples": int(len(lengths)), "results": {}, "comparisons": {}}
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

"""The training commands: ``train``, ``predistill``, ``distill``, ``finetune-teacher``,
``build-teacher``, ``evaluate``, ``results-table``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from neurolang.errors import reporting_commands

CONFIG_HELP = "Training config (TOML); every option is documented in neurolang/distill/config.py."
SET_HELP = "Override an option, e.g. --set distill.lr=1e-3 --set model.depth=2 (repeatable)."


def _load(config: Path | None, backend: str | None, overrides: list[str]):
    from neurolang.config import parse_override
    from neurolang.distill.config import load_train_config

    values = dict(parse_override(o) for o in overrides)
    if backend is not None:
        values["run.backend"] = backend
    cfg = load_train_config(config, values)
    from neurolang.backends import get_backend

    get_backend(cfg.run.backend)  # unknown or missing backend: fail before any work
    from neurolang.backends import check

    problems = check(cfg.model, cfg.run.backend)
    if problems:
        from neurolang.backends import compile as compile_model

        compile_model(cfg.model, cfg.run.backend)  # raises the one clear error
    return cfg


def validate_run(cfg, output: Path | None = None, *, resume: bool = False,
                 overwrite: bool = False, stage1: bool | None = None,
                 teacher: str | None = None) -> None:
    """The whole configuration checked before any work: the task's data, the unlabelled
    sources, the teachers and the output folder (a dry run of everything that can fail on
    what the user gave)."""
    from neurolang.data import load_task, validate_unlabelled_sources
    from neurolang.distill.pipeline import check_run_folder
    from neurolang.distill.stages import check_transfer_task, text_sources
    from neurolang.teachers import TeacherError, check_teacher

    data_dir = cfg.data.data_dir or None
    raw = load_task(cfg.data.task, data_dir=data_dir)
    if stage1 is None:
        stage1 = cfg.predistill.enabled
    if stage1:
        validate_unlabelled_sources(text_sources(cfg, cfg.data.unlabelled), data_dir=data_dir)
    if cfg.data.transfer:
        check_transfer_task(raw["train"], cfg.data.task)
        validate_unlabelled_sources(text_sources(cfg, cfg.data.transfer), data_dir=data_dir)
    finetuned = teacher if teacher is not None else cfg.teacher.finetuned
    if finetuned:
        if stage1:  # stage 1 aligns with the pretrained teacher
            check_teacher(cfg.teacher.name, max_length=cfg.data.max_length)
        info = check_teacher(finetuned, head=True, max_length=cfg.data.max_length,
                             what="fine-tuned teacher")
        classes = raw["train"].features["label"].num_classes
        if info["num_labels"] is not None and info["num_labels"] != classes:
            raise TeacherError(f"fine-tuned teacher {finetuned!r} has {info['num_labels']} "
                               f"labels, the task {cfg.data.task!r} has {classes}")
    else:  # the pretrained teacher, fine-tuned here (and the stage-1 teacher): checked once
        check_teacher(cfg.teacher.name, max_length=max(cfg.teacher.max_length,
                                                       cfg.data.max_length))
    if output is not None:
        check_run_folder(cfg, output, resume=resume, overwrite=overwrite)


def register(app: typer.Typer, fail) -> None:
    command = reporting_commands(app, fail)

    @command()
    def train(
        config: Path = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
        backend: str = typer.Option(None, help="torch | snntorch | norse (overrides run.backend)."),
        output: Path = typer.Option(Path("runs/train"), "--output", "-o",
                                    help="Run folder: one sub-folder per stage."),
        resume: bool = typer.Option(False, help="Continue unfinished stages from checkpoints."),
        overwrite: bool = typer.Option(False, help="Replace --output even if it holds another "
                                       "run or other files."),
        set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    ) -> None:
        """The whole pipeline: fine-tune the teacher (unless given), stage 1, stage 2, evaluate."""
        from neurolang.distill.pipeline import train_pipeline

        cfg = _load(config, backend, set_)
        validate_run(cfg, output, resume=resume, overwrite=overwrite)
        results = train_pipeline(cfg, output, resume=resume, overwrite=overwrite)
        _summary(results)

    @command()
    def predistill(
        config: Path = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
        backend: str = typer.Option(None, help="torch | snntorch | norse."),
        output: Path = typer.Option(Path("runs/predistill"), "--output", "-o"),
        resume: bool = typer.Option(False, help="Continue from the checkpoint."),
        set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    ) -> None:
        """Stage 1 alone: representations aligned with the pretrained teacher."""
        from neurolang.distill.stages import predistill as run
        from neurolang.outputs import claim_folder

        cfg = _load(config, backend, set_)
        validate_run(cfg, stage1=True, teacher="")
        claim_folder(output, ["stage"], what="--output")
        results = run(cfg, output, resume=resume)
        typer.echo(json.dumps({k: v for k, v in results.items() if k != "layer_map"}, indent=2))

    @command()
    def distill(
        teacher: str = typer.Option(..., help="Fine-tuned teacher folder (with a head)."),
        config: Path = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
        stage1: Path = typer.Option(None, help="Stage-1 model folder to start from (strict)."),
        backend: str = typer.Option(None, help="torch | snntorch | norse."),
        output: Path = typer.Option(Path("runs/distill"), "--output", "-o"),
        resume: bool = typer.Option(False, help="Continue from the checkpoint."),
        set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    ) -> None:
        """Stage 2 alone: task distillation from a fine-tuned teacher."""
        from neurolang.distill.stages import distill as run
        from neurolang.outputs import claim_folder

        cfg = _load(config, backend, set_)
        validate_run(cfg, stage1=False, teacher=teacher)
        claim_folder(output, ["stage"], what="--output")
        results = run(cfg, output, teacher, stage1=stage1, resume=resume)
        if "dev" in results:  # the main process
            typer.echo(json.dumps({"dev": results["dev"], "best_epoch": results["best_epoch"]}))

    @command("finetune-teacher")
    def finetune_teacher_command(
        task: str = typer.Option("sst2", help="Task name, hub name or file."),
        teacher: str = typer.Option("default", help="Encoder folder or hub name."),
        output: Path = typer.Option(Path("runs/teacher"), "--output", "-o"),
        epochs: int = typer.Option(2), lr: float = typer.Option(5e-5),
        batch_size: int = typer.Option(32), max_length: int = typer.Option(64),
        seed: int = typer.Option(0),
        select_metric: str = typer.Option(None, help="Metric that picks the best epoch "
                                          "(accuracy, f1, macro_f1, mcc; default: the "
                                          "task's)."),
        max_train_samples: int = typer.Option(None, help="Seeded subset of the train split."),
        threads: int = typer.Option(0, help="torch CPU threads (0: torch's default)."),
        data_dir: Path = typer.Option(None, help="Data folder (default: $NEUROLANG_DATA_DIR "
                                                 "or ../shared/data)."),
        overwrite: bool = typer.Option(False, help="Replace --output even if it is not a "
                                       "teacher folder (an earlier teacher is replaced "
                                       "anyway)."),
    ) -> None:
        """Fine-tune a BERT/RoBERTa teacher on a task; saves a transformers folder."""
        import torch

        from neurolang.teachers import check_teacher, finetune_teacher

        if threads < 0:
            fail(f"--threads must be >= 0, got {threads}")
        if threads:
            torch.set_num_threads(threads)
        check_teacher(teacher, max_length=max_length)
        results = finetune_teacher(
            teacher, task, output, epochs=epochs, lr=lr, batch_size=batch_size,
            max_length=max_length, seed=seed, data_dir=data_dir, overwrite=overwrite,
            selection_metric=select_metric, max_train_samples=max_train_samples)
        typer.echo(json.dumps({"dev": results["metrics"], "output": str(output)}))

    @command("build-teacher")
    def build_teacher_command(
        output: Path = typer.Option(..., "--output", "-o", help="Folder to write (a normal "
                                    "transformers RoBERTa folder with its tokenizer)."),
        text: list[str] = typer.Option(["wikitext2"], "--text", help="Unlabelled text: "
                                       "wikitext2, tinyshakespeare, a task name (its train "
                                       "sentences, labels dropped) or a text file "
                                       "(repeatable)."),
        vocab_size: int = typer.Option(8000, help="Byte-level BPE vocabulary size."),
        hidden_size: int = typer.Option(256), layers: int = typer.Option(4),
        heads: int = typer.Option(4),
        max_length: int = typer.Option(64, help="Tokens per pre-training block = the "
                                               "model's positions."),
        steps: int = typer.Option(400, help="MLM optimizer steps."),
        batch_size: int = typer.Option(32), lr: float = typer.Option(5e-4),
        max_minutes: float = typer.Option(None, help="Stop pre-training after this long."),
        max_samples: int = typer.Option(None, help="Use at most this many texts (seeded)."),
        seed: int = typer.Option(0),
        threads: int = typer.Option(0, help="torch CPU threads (0: torch's default)."),
        data_dir: Path = typer.Option(None, help="Data folder (default: $NEUROLANG_DATA_DIR "
                                                 "or ../shared/data)."),
        overwrite: bool = typer.Option(False, help="Replace an existing folder."),
    ) -> None:
        """Build a small RoBERTa teacher offline: byte-level BPE + brief MLM pre-training.

        Then: neurolang finetune-teacher --teacher OUTPUT, or [teacher] name = "OUTPUT"."""
        import torch

        from neurolang.teachers.build import build_roberta_teacher

        if threads:
            torch.set_num_threads(threads)
        results = build_roberta_teacher(
            output, text, data_dir=data_dir, vocab_size=vocab_size, max_samples=max_samples,
            overwrite=overwrite, hidden_size=hidden_size, num_layers=layers, num_heads=heads,
            max_length=max_length, steps=steps, batch_size=batch_size, lr=lr,
            max_minutes=max_minutes, seed=seed)
        typer.echo(json.dumps({"output": str(output), "steps": results["steps"],
                               "held_out_mlm_loss": results["held_out_mlm_loss"],
                               "wall_time_s": results["wall_time_s"]}))

    @command("results-table")
    def results_table(
        output: Path = typer.Option(Path("runs/table"), "--output", "-o",
                                    help="Table folder: one run folder per data set, "
                                    "teachers/, table.md, table.png, table.json."),
        datasets: str = typer.Option(None, help="Comma-separated subset of mr, sst2, sst5, "
                                     "chnsenticorp, waimai (default: all five)."),
        examples: Path = typer.Option(None, help="Folder of the example configs "
                                      "(<data set>.toml; default: the repository's "
                                      "examples/)."),
        backend: str = typer.Option(None, help="torch | snntorch | norse (overrides "
                                    "run.backend)."),
        collect_only: bool = typer.Option(False, help="Train nothing: write the table from "
                                          "the runs already in --output."),
        set_: list[str] = typer.Option([], "--set", help=SET_HELP + " Applies to every row."),
    ) -> None:
        """SpikeBERT's results table: every data set's CPU pipeline run (or resumed) in turn,
        then a Markdown table and a PNG chart of teacher vs student, SpikeBERT's published
        test figures beside ours (dev)."""
        from neurolang.distill.pipeline import train_pipeline
        from neurolang.distill.table import convert_teacher, plan_table, write_table
        from neurolang.outputs import claim_folder

        chosen = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None
        planned = plan_table(output, chosen, examples, need_configs=not collect_only)
        claim_folder(output, ["table"], what="--output", overwrite_flag=None)
        table = write_table(output, planned)["table"]  # marks the folder before any work
        if not collect_only:
            configs = {}
            for item in planned:  # every row's config checked before the first one trains
                overrides = list(set_)
                if item.teacher_dir is not None:  # trimmed to the texts the row reads
                    row = _load(item.config_path, backend, overrides)
                    overrides.append(f"teacher.name={convert_teacher(item, row.data)}")
                configs[item.row.dataset] = cfg = _load(item.config_path, backend, overrides)
                validate_run(cfg, item.run_dir, resume=True)
            for item in planned:
                typer.echo(f"{item.row.dataset}: {item.config_path} -> {item.run_dir}")
                train_pipeline(configs[item.row.dataset], item.run_dir, resume=True)
                table = write_table(output, planned)["table"]
        typer.echo(table)
        typer.echo(f"table: {output / 'table.md'}, chart: {output / 'table.png'}")

    @command()
    def evaluate(
        model_dir: Path = typer.Argument(..., help="A neurolang model folder."),
        task: str = typer.Option("sst2", help="The task: its classes and metrics, and the "
                                 "rows scored unless --file is given."),
        split: str = typer.Option(None, help="The task's split to score: validation (the "
                                  "default, its dev set) or train. A labelled test set: "
                                  "--file."),
        file: Path = typer.Option(None, "--file", help="A labelled CSV/TSV/JSONL/'LABEL "
                                  "SENTENCE' file to score instead, with the task's classes "
                                  "and metrics (the format options below, as for training "
                                  "files)."),
        text_column: str = typer.Option("text", help="--file: the text column (a 0-based "
                                        "index with --no-header)."),
        text_pair_column: str = typer.Option(None, help="--file: the second text of a pair."),
        label_column: str = typer.Option("label", help="--file: the label column."),
        file_format: str = typer.Option(None, "--format", help="--file: csv, tsv, jsonl or "
                                        "label_sentence (default: from the suffix)."),
        delimiter: str = typer.Option(None, help="--file: the field separator of csv/tsv."),
        header: bool = typer.Option(True, help="--file: whether csv/tsv start with a header."),
        encoding: str = typer.Option("utf-8", help="--file: the file's encoding."),
        backend: str = typer.Option("torch"),
        max_length: int = typer.Option(128),
        data_dir: Path = typer.Option(None),
        output_json: Path = typer.Option(None, "--json", help="Also write the metrics here."),
    ) -> None:
        """Metrics of a trained model folder on a task's split or a labelled file, on any
        backend (printed as JSON: the metrics, the rows scored and where they came from)."""
        from neurolang.checkpoint import from_pretrained, read_config
        from neurolang.data import load_task, resolve_task, tokenize
        from neurolang.distill.stages import evaluate_student

        if max_length < 2:
            fail(f"--max-length must be >= 2 (a special token and a word), got {max_length}")
        if file is not None and split is not None:
            fail("give --split (a split of --task) or --file (a labelled file), not both")
        split = split or "validation"
        if split not in ("validation", "train"):
            fail(f"--split must be validation or train, got {split!r}; test splits are not "
                 "loaded from the task's data: score a labelled test set with --file")
        if output_json is not None:
            from neurolang.outputs import claim_file

            claim_file(output_json, what="--json")
        saved, meta = read_config(model_dir)
        tokenizer = _model_tokenizer(model_dir)
        spec = resolve_task(task)
        raw = load_task(task, data_dir=data_dir)
        names = list(raw["validation"].features["label"].names)
        if file is not None:
            rows, source = _labelled_file(file, names, list(spec.metrics), text_column,
                                          text_pair_column, label_column, file_format,
                                          delimiter, header, encoding), str(file)
        else:
            rows, source = raw[split], f"{task}:{split}"
        _check_labels(saved, meta, rows, task, model_dir)
        model = from_pretrained(model_dir, backend)
        data = tokenize(rows, tokenizer, min(max_length, model.config.max_length))
        metrics = evaluate_student(model, data, tokenizer.pad_token_id, list(spec.metrics))
        result = {**metrics, "rows": len(rows), "source": source}
        if output_json is not None:
            from neurolang.outputs import write_text_atomic

            write_text_atomic(output_json, json.dumps(result, indent=2) + "\n")
        typer.echo(json.dumps(result))


def _labelled_file(path: Path, names: list[str], metrics: list[str], text_column: str,
                   text_pair_column: str | None, label_column: str, file_format: str | None,
                   delimiter: str | None, header: bool, encoding: str):
    """The rows of a labelled file, with the task's classes (``names``, in id order)."""
    from neurolang.data import DataError
    from neurolang.data.files import file_error
    from neurolang.data.load import load_spec
    from neurolang.data.local import local_task

    def column(value: str | None, option: str):
        if value is None or header:
            return value
        if not value.isdigit():
            raise DataError(f"--{option} must be a 0-based column index with --no-header, "
                            f"got {value!r}")
        return int(value)

    if not Path(path).is_file():
        raise DataError(f"--file {str(path)!r} is not a file")
    spec = local_task(path, text_column=column(text_column, "text-column"),
                      text_pair_column=column(text_pair_column, "text-pair-column"),
                      label_column=column(label_column, "label-column"), label_names=names,
                      metrics=metrics, format=file_format, delimiter=delimiter, header=header,
                      encoding=encoding)
    try:  # a scored file may hold one class
        return load_spec(spec, data_dir=None, seed=None, two_classes=False)["train"]
    except OSError as error:
        raise file_error(error.filename or str(path), error) from None


def _model_tokenizer(model_dir: Path):
    """The tokenizer saved with a model folder, or one clear error."""
    from transformers import AutoTokenizer

    from neurolang.checkpoint import CheckpointError
    from neurolang.teachers import TOKENIZER_FILES

    if not any((Path(model_dir) / n).is_file() for n in TOKENIZER_FILES):
        raise CheckpointError(
            f"{model_dir} has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...): copy "
            "the teacher's tokenizer into it (tokenizer.save_pretrained), or export/import it "
            "again with --tokenizer")
    try:
        return AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"the tokenizer in {model_dir} cannot be loaded: {detail}") from None


def _check_labels(saved, meta, dev, task: str, model_dir: Path) -> None:
    """A model scores a task only if its classes are the task's classes."""
    from neurolang.checkpoint import CheckpointError

    names = list(dev.features["label"].names)
    if saved.num_labels != len(names):
        raise CheckpointError(f"{model_dir} is a {saved.num_labels}-class model; the task "
                              f"{task!r} has {len(names)} classes ({', '.join(names)}): "
                              "evaluate it on the task it was trained on")
    trained = list(meta.get("label_names") or [])
    if trained and trained != names:
        raise CheckpointError(f"{model_dir} was trained on the labels {trained}; the task "
                              f"{task!r} has the labels {names}")


def _summary(results) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"neurolang train: {results['task']} ({results['backend']} backend)")
    table.add_column("model")
    metrics = sorted(results["student"]["dev"])
    for m in metrics:
        table.add_column(f"dev {m}", justify="right")
    table.add_row("teacher", *[f"{results['teacher']['dev'].get(m, float('nan')):.4f}"
                               for m in metrics])
    table.add_row("spiking student", *[f"{results['student']['dev'][m]:.4f}" for m in metrics])
    Console().print(table)
    for stage, seconds in results["wall_time_s"].items():
        typer.echo(f"{stage}: {seconds / 60:.1f} min")

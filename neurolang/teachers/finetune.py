"""Fine-tuning a teacher on a task: ``finetune_teacher`` trains a classification head and the
encoder (stage 2 distils from a task-tuned teacher) and writes a normal transformers folder
atomically, with its dev metrics in ``results.json``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neurolang.checkpoint import replace_directory
from neurolang.metrics import compute_metrics, selection_metrics
from neurolang.seeding import seed_everything
from neurolang.teachers.load import (
    TeacherError,
    _load_error,
    _position_capacity,
    resolve_teacher_path,
    takes_token_types,
)


def _model_inputs(
    batch: dict[str, torch.Tensor], device: torch.device, token_types: bool = True
) -> dict[str, torch.Tensor]:
    keys = ("input_ids", "attention_mask") + (("token_type_ids",) if token_types else ())
    return {key: batch[key].to(device) for key in keys if key in batch}


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module,
    loader: Any,
    metric_names: Sequence[str],
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Score a sequence classifier over a loader of ``neurolang.data`` batches."""
    was_training = model.training
    model.eval()
    token_types = takes_token_types(model)
    predictions, labels = [], []
    for batch in loader:
        logits = model(**_model_inputs(batch, torch.device(device), token_types)).logits
        predictions.append(logits.argmax(dim=-1).cpu())
        labels.append(batch["labels"])
    model.train(was_training)
    return compute_metrics(metric_names, torch.cat(predictions), torch.cat(labels))


def subset_rows(dataset: Any, count: int | None, seed: int) -> Any:
    """``count`` rows of a ``datasets.Dataset`` drawn by a permutation seeded with ``seed``,
    kept in file order (all rows when ``count`` is ``None`` or not smaller)."""
    if count is None or count >= len(dataset):
        return dataset
    if count < 1:
        raise TeacherError(f"the sample limit must be >= 1, got {count}")
    rows = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:count])
    return dataset.select(rows.tolist())


def finetune_teacher(
    teacher_name_or_path: str | os.PathLike,
    task: Any,
    output_dir: str | os.PathLike,
    epochs: int = 2,
    lr: float = 5e-5,
    batch_size: int = 32,
    max_length: int = 128,
    seed: int = 0,
    max_train_samples: int | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    max_eval_samples: int | None = None,
    eval_batch_size: int | None = None,
    selection_metric: str | None = None,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    save_every_steps: int = 200,
) -> dict[str, Any]:
    """Fine-tune a teacher on a task's ``train`` split and save it with its dev metrics.

    Runs on the distillation :class:`~neurolang.trainer.Trainer`, so a teacher gets
    the same seeding, data order (length buckets), AdamW (no weight decay on biases and
    norms), schedule (``transformers``' linear warm-up over ``warmup_ratio`` of the steps, then
    linear decay to 0), clipping at ``max_grad_norm``, checkpoints and exact resumption as a
    student: ``AutoModelForSequenceClassification`` with a new head, cross-entropy. After
    every epoch the model is scored on ``validation`` with the task's metrics and the epoch best
    on the selection metric is kept (the dev split is for selection; nothing here reads a test
    set). The selection metric is ``selection_metric`` when given (e.g. ``"mcc"``: multiclass
    Matthews correlation, as IceSpike selects; it is added to the reported metrics), else the
    task's.

    Any BERT- or RoBERTa-family folder or Hub name works: the pair encoding and special tokens
    are the teacher tokenizer's own (``[CLS] A [SEP] B [SEP]`` with segment ids for BERT,
    ``<s> A </s></s> B </s>`` without for RoBERTa); segment ids reach only models that have
    segment embeddings (``type_vocab_size`` > 1).

    Training runs in a hidden sibling, ``.NAME.training`` (checkpoint every
    ``save_every_steps`` steps, ``metrics.jsonl``). A killed run resumes from its checkpoint
    when called again with the same settings (other settings are refused unless
    ``overwrite``, which starts again). At the end ``output_dir`` becomes a normal
    transformers folder (model + tokenizer, ``id2label`` set) plus ``results.json`` and the
    training log, renamed into place in one step, and the hidden folder goes. Returns the
    ``results.json`` content.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from neurolang.data import (
        HUB_ALIASES,
        TASKS,
        VALIDATION,
        build_dataloader,
        load_task,
        resolve_task,
        tokenize,
    )
    from neurolang.outputs import OutputError, claim_folder
    from neurolang.trainer import BEST, OptimConfig, Trainer, TrainingError

    output = Path(output_dir).expanduser().resolve()
    try:  # an existing folder is replaced only with overwrite
        claim_folder(output, ["teacher"], what="teacher output folder", overwrite=overwrite,
                     overwrite_flag="overwrite=True (--overwrite)", replace_own=False)
    except OutputError as err:
        raise TeacherError(str(err)) from None
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise TeacherError(
            f"need epochs >= 1, batch_size >= 1, lr > 0 (got {epochs}, {batch_size}, {lr})"
        )
    if isinstance(task, str) and task.strip().lower() in HUB_ALIASES:
        spec = TASKS[HUB_ALIASES[task.strip().lower()]]
        data = load_task(task)
    else:
        spec = resolve_task(task)
        data = load_task(spec, data_dir=data_dir)
    if VALIDATION not in data:
        raise TeacherError(
            f"task {spec.name!r} has no validation split to evaluate on; give validation files "
            "or validation_fraction"
        )
    label_names = data["train"].features["label"].names
    metric_names, metric = selection_metrics(spec.metrics, spec.selection_metric, selection_metric)
    train_data = subset_rows(data["train"], max_train_samples, seed)
    dev_data = subset_rows(data[VALIDATION], max_eval_samples, seed)

    source = str(teacher_name_or_path)
    path = resolve_teacher_path(teacher_name_or_path)
    seed_everything(seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as error:
        raise _load_error(source, error) from None
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    token_types = takes_token_types(model)
    capacity = _position_capacity(model)
    if capacity is not None and max_length > capacity:
        raise TeacherError(
            f"teacher {source!r} has positions for {capacity} tokens but max_length is "
            f"{max_length}; use max_length <= {capacity}"
        )

    tokenized = tokenize(_as_dict(train_data, dev_data), tokenizer, max_length, cache_dir)
    dev_loader = build_dataloader(
        tokenized[VALIDATION], tokenizer, eval_batch_size or 2 * batch_size, shuffle=False
    )
    optim = OptimConfig(epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
                        warmup_ratio=warmup_ratio, schedule="linear", grad_clip=max_grad_norm,
                        save_every_steps=save_every_steps,
                        eval_batch_size=eval_batch_size or 2 * batch_size, seed=seed)

    def loss_fn(model, _extra, batch):
        logits = model(**_model_inputs(batch, batch["input_ids"].device, token_types)).logits
        per_sample = nn.functional.cross_entropy(logits.float(), batch["labels"],
                                                 reduction="none")
        return per_sample, logits.new_zeros(())

    def save_model(model, directory: Path) -> None:
        _save_folder(model, tokenizer, directory)

    work = output.parent / f".{output.name}.training"
    trainer = Trainer(
        model, loss_fn, tokenized["train"], tokenizer.pad_token_id, optim, work,
        evaluate=lambda m: evaluate_classifier(m, dev_loader, metric_names, m.device),
        selection_metric=metric, description=f"fine-tuning {spec.name}",
        cpu=str(device) == "cpu", save_model=save_model, show_progress=progress,
    )
    resume = trainer.checkpoint_dir.is_dir()
    if resume:
        try:
            state = json.loads((trainer.checkpoint_dir / "state.json").read_text())
            same = state.get("optim") == asdict(optim)
        except (OSError, ValueError):
            same = False
        if not same and not overwrite:
            raise TeacherError(
                f"{work} holds an unfinished fine-tuning with other settings; give the same "
                "settings to resume it, or --overwrite to start again")
        if not same:
            shutil.rmtree(work)
            resume = False
    try:
        state = trainer.fit(resume=resume)
    except TrainingError as err:
        raise TeacherError(str(err)) from None

    history = [{"epoch": r["epoch"],
                VALIDATION: {k[len("dev_"):]: v for k, v in r.items() if k.startswith("dev_")}}
               for r in state["history"]]
    best = history[state["best_epoch"] - 1]
    results = {
        "task": spec.name,
        "teacher": source,
        "teacher_path": path,
        "num_labels": len(label_names),
        "label_names": list(label_names),
        "metrics": best[VALIDATION],
        "selection_metric": metric,
        "best_epoch": best["epoch"],
        "history": history,
        "train_examples": len(train_data),
        "validation_examples": len(dev_data),
        "steps": state["step"],
        "hyperparameters": {
            "epochs": epochs,
            "lr": lr,
            "batch_size": batch_size,
            "max_length": max_length,
            "seed": seed,
            "max_train_samples": max_train_samples,
            "max_eval_samples": max_eval_samples,
            "warmup_ratio": warmup_ratio,
            "schedule": "linear",
            "weight_decay": weight_decay,
            "max_grad_norm": max_grad_norm,
            "selection_metric": selection_metric,
        },
        "device": str(device),
        "wall_time_s": round(state["wall_time"], 2),
        "versions": _versions(),
    }
    _publish(work / BEST, work / "metrics.jsonl", results, output)
    shutil.rmtree(work, ignore_errors=True)
    return results


def _as_dict(train: Any, dev: Any) -> Any:
    import datasets

    return datasets.DatasetDict({"train": train, "validation": dev})


def _versions() -> dict[str, str]:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


def _replace_with(output: Path, write) -> None:
    """``write(folder)`` into a hidden temporary sibling of ``output``, then renamed over it
    (``neurolang.checkpoint.replace_directory``): a failure or a kill never leaves a
    half-written folder where a good one was."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        write(partial)
        replace_directory(partial, output)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _save_folder(model: nn.Module, tokenizer: Any, directory: Path) -> None:
    """Model and tokenizer as a transformers folder, replaced in one step."""
    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    _replace_with(directory, write)


def _write_results(folder: Path, results: dict[str, Any]) -> None:
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def _publish(best: Path, log: Path, results: dict[str, Any], output: Path) -> None:
    """The kept epoch's folder, its training log and ``results.json``, renamed over
    ``output`` in one step."""
    def write(folder: Path) -> None:
        shutil.copytree(best, folder, dirs_exist_ok=True)
        if log.is_file():
            shutil.copy2(log, folder / "metrics.jsonl")
        _write_results(folder, results)

    _replace_with(output, write)


def _save_atomically(
    model: nn.Module, tokenizer: Any, results: dict[str, Any], output: Path, started: float
) -> None:
    """Model, tokenizer and ``results.json`` (with the wall time since ``started``) as one
    folder, replaced in one step."""
    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        results["wall_time_s"] = round(time.perf_counter() - started, 2)
        _write_results(folder, results)

    _replace_with(output, write)

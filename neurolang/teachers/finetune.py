"""Fine-tuning a teacher on a task: ``finetune_teacher`` trains a classification head and the
encoder (stage 2 distils from a task-tuned teacher) and writes a normal transformers folder
atomically, with its dev metrics in ``results.json``."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
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


def _linear_warmup_decay(warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


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
    keep_best: bool = True,
    selection_metric: str | None = None,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune a teacher on a task's ``train`` split and save it with its dev metrics.

    A plain torch loop: ``AutoModelForSequenceClassification`` with a new head, AdamW (no
    weight decay on biases and norms), learning rate warmed up linearly over the first
    ``warmup_ratio`` of the steps then decayed linearly to 0, gradients clipped to
    ``max_grad_norm``, length-bucketed batches. After every epoch the model is scored on
    ``validation`` with the task's metrics; with ``keep_best`` the epoch best on the selection
    metric is saved (the dev split is for selection; nothing here reads a test set). The
    selection metric is ``selection_metric`` when given (e.g. ``"mcc"``: multiclass Matthews
    correlation, as IceSpike selects; it is added to the reported metrics), else the task's.

    Any BERT- or RoBERTa-family folder or Hub name works: the pair encoding and special tokens
    are the teacher tokenizer's own (``[CLS] A [SEP] B [SEP]`` with segment ids for BERT,
    ``<s> A </s></s> B </s>`` without for RoBERTa); segment ids reach only models that have
    segment embeddings (``type_vocab_size`` > 1).

    ``output_dir`` ends up a normal transformers folder (model + tokenizer, ``id2label`` set) plus
    ``results.json``. It is written into a hidden temporary sibling and renamed at the end, so a
    killed run never leaves a folder that looks complete. Returns the ``results.json`` content.
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
    from neurolang.progress import progress as tqdm

    started = time.perf_counter()
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
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device)
    token_types = takes_token_types(model)
    capacity = _position_capacity(model)
    if capacity is not None and max_length > capacity:
        raise TeacherError(
            f"teacher {source!r} has positions for {capacity} tokens but max_length is "
            f"{max_length}; use max_length <= {capacity}"
        )

    tokenized = tokenize(
        _as_dict(train_data, dev_data),
        tokenizer,
        max_length,
        cache_dir,
    )
    train_loader = build_dataloader(tokenized["train"], tokenizer, batch_size, seed=seed)
    dev_loader = build_dataloader(
        tokenized[VALIDATION], tokenizer, eval_batch_size or 2 * batch_size, shuffle=False
    )

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
    )
    total_steps = epochs * len(train_loader)
    warmup_steps = int(math.ceil(warmup_ratio * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _linear_warmup_decay(warmup_steps, total_steps)
    )

    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    bar = tqdm(
        total=total_steps, desc=f"fine-tuning {spec.name}", unit="step", disable=not progress
    )
    for epoch in range(epochs):
        model.train()
        train_loader.batch_sampler.set_epoch(epoch)
        loss_sum, batches = 0.0, 0
        for batch in train_loader:
            outputs = model(
                **_model_inputs(batch, device, token_types), labels=batch["labels"].to(device)
            )
            outputs.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += outputs.loss.detach().item()
            batches += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / batches:.4f}")
        scores = evaluate_classifier(model, dev_loader, metric_names, device)
        record = {"epoch": epoch + 1, "train_loss": loss_sum / max(batches, 1), VALIDATION: scores}
        history.append(record)
        bar.write(
            f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}, dev "
            + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
        )
        if not keep_best:
            best = record
        elif best is None or scores[metric] > best[VALIDATION][metric]:
            best = record
            if epoch + 1 < epochs:  # a later epoch may overwrite the weights: keep a copy
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    bar.close()
    assert best is not None
    if best_state is not None and best["epoch"] != epochs:
        model.load_state_dict(best_state)

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
        "steps": total_steps,
        "hyperparameters": {
            "epochs": epochs,
            "lr": lr,
            "batch_size": batch_size,
            "max_length": max_length,
            "seed": seed,
            "max_train_samples": max_train_samples,
            "max_eval_samples": max_eval_samples,
            "warmup_ratio": warmup_ratio,
            "weight_decay": weight_decay,
            "max_grad_norm": max_grad_norm,
            "keep_best": keep_best,
            "selection_metric": selection_metric,
        },
        "device": str(device),
        "wall_time_s": None,
        "versions": _versions(),
    }
    _save_atomically(model, tokenizer, results, output, started)
    return results


def _as_dict(train: Any, dev: Any) -> Any:
    import datasets

    return datasets.DatasetDict({"train": train, "validation": dev})


def _versions() -> dict[str, str]:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


def _save_atomically(
    model: nn.Module, tokenizer: Any, results: dict[str, Any], output: Path, started: float
) -> None:
    """Model, tokenizer and ``results.json`` into a hidden temporary sibling, then renamed
    over ``output`` (``neurolang.checkpoint.replace_directory``): a failure or a kill never
    leaves a half-written teacher where a good one was."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        results["wall_time_s"] = round(time.perf_counter() - started, 2)
        (partial / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        replace_directory(partial, output)
    finally:
        shutil.rmtree(partial, ignore_errors=True)

"""SpikeBERT's two stages (the pipeline that runs them: ``neurolang.distill.pipeline``).

    predistill/  stage 1: block representations and embeddings aligned with the pretrained
                 teacher on unlabelled text -> predistill/model
    distill/     stage 2: logits, representations, embeddings (and ICSFD) against the
                 fine-tuned teacher on the task; best dev epoch -> distill/best

Every stage writes its own folder and a ``results.json`` with ``"complete": true`` last; a
complete stage is skipped when the pipeline runs again, an incomplete one resumes from its
checkpoint with ``resume=True``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neurolang.backends import compile as compile_model
from neurolang.checkpoint import CheckpointError, from_pretrained, load_weights, read_config
from neurolang.data import (
    TASKS,
    DynamicPaddingCollator,
    LengthBucketBatchSampler,
    dev_texts,
    load_task,
    load_unlabelled,
    resolve_task,
    tokenize,
)
from neurolang.data.augment import augment_texts, embedding_neighbours, teacher_labels, text_words
from neurolang.distill.cache import TeacherCache
from neurolang.distill.config import TrainConfig
from neurolang.distill.losses import (
    Projections,
    SpikeRecorder,
    firing_rate_per_sample,
    icsfd_per_sample,
    kd_kl_per_sample,
    layer_map,
    masked_mse_per_sample,
    synapses_per_population,
)
from neurolang.metrics import compute_metrics, selection_metrics
from neurolang.models import SpikingClassifier, build_model
from neurolang.outputs import write_text_atomic
from neurolang.primitives import Linear, Norm
from neurolang.progress import progress
from neurolang.seeding import seed_everything
from neurolang.teachers import Teacher, load_teacher, subset_rows
from neurolang.trainer import BEST, Trainer

log = logging.getLogger("neurolang.train")
RESULTS = "results.json"


def stage_complete(folder: Path) -> dict[str, Any] | None:
    path = folder / RESULTS
    if path.is_file():
        try:
            results = json.loads(path.read_text())
        except ValueError:
            return None  # damaged: the stage runs (or resumes) again
        if isinstance(results, dict) and results.get("complete"):
            return results
    return None


def write_results(folder: Path, results: dict[str, Any]) -> None:
    write_text_atomic(folder / RESULTS, json.dumps({**results, "complete": True}, indent=2)
                      + "\n")


def _device(config: TrainConfig) -> torch.device:
    if config.run.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.run.device)


@torch.no_grad()
def evaluate_student(model: nn.Module, dataset, pad_token_id: int, metrics: list[str],
                     batch_size: int = 128) -> dict[str, float]:
    """Dev metrics of a student: batches sorted by length, no autograd state."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sampler = LengthBucketBatchSampler(dataset, batch_size, shuffle=False)
    collate = DynamicPaddingCollator(pad_token_id)
    preds, labels = [], []
    for rows in progress(sampler, desc="evaluating", unit="batch", leave=False):
        batch = collate([dataset[i] for i in rows])
        logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))["logits"]
        preds.append(logits.argmax(-1).cpu())
        labels.append(batch["labels"])
    model.train(was_training)
    return compute_metrics(metrics, torch.cat(preds).numpy(), torch.cat(labels).numpy())


def _student_config(config: TrainConfig, teacher: Teacher, num_labels: int):
    return config.model.replace(vocab_size=teacher.vocab_size, num_labels=num_labels)


def _init_embeddings(student: SpikingClassifier, teacher: Teacher, mode: str) -> list[str]:
    """Copy the teacher's word (and position) embeddings when widths match.

    The word embeddings are the teacher's input embedding matrix (``bert.`` or
    ``roberta.embeddings.word_embeddings``). Student position ``p`` takes the teacher's row
    ``p + teacher.position_offset``: RoBERTa-family teachers number real tokens from
    ``padding_idx + 1`` (2), BERT from 0.
    """
    if mode != "teacher" or student.config.hidden_size != teacher.hidden_size:
        return []
    copied = []
    with torch.no_grad():
        student.embedding.weight.copy_(teacher.word_embeddings)
        copied.append("embedding.weight")
        positions = teacher.position_embeddings
        if student.config.position_embedding and positions is not None:
            offset = teacher.position_offset
            rows = student.config.max_length
            if positions.shape[0] >= rows + offset:
                student.position.weight.copy_(positions[offset : offset + rows])
                copied.append("position.weight")
            else:
                log.warning("the teacher has %d position rows (from %d), fewer than the "
                            "student's max_length %d: position embeddings not copied",
                            positions.shape[0], offset, rows)
    return copied


# a module of a student block (its name inside the block, a trailing ``.linear`` dropped) -> the
# teacher layer's module of the same role (BERT, RoBERTa and XLM-R name them alike). SpikeLM's
# block is BERT's layer, so its FFN and its two LayerNorms have counterparts too.
TEACHER_MODULES = {
    "attention.query": "attention.self.query",
    "attention.key": "attention.self.key",
    "attention.value": "attention.self.value",
    "attention.output": "attention.output.dense",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
    "ffn.fc1": "intermediate.dense",
    "ffn.fc2": "output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "ffn_norm": "output.LayerNorm",
}


def _init_blocks(student: SpikingClassifier, teacher: Teacher, mode: str) -> list[str]:
    """``run.init_blocks = "teacher"``: copy the teacher's layers into the student's blocks.

    Student block ``i`` takes the weights of the teacher layer whose output it is aligned with
    (``layer_map``: hidden state ``k(i)``, i.e. layer ``k(i) - 1``), module by module
    (:data:`TEACHER_MODULES`): queries, keys, values, the attention output, the MLP's two
    projections (and a LayerNorm where the family has one in BERT's place). The Spikformer's
    norms after each projection, the neurons and the head keep their own init; so does a
    module whose shape differs from the teacher's (another width or MLP ratio). Returns the
    names copied.
    """
    if mode != "teacher":
        return []
    layers = teacher.layers
    if layers is None:
        log.warning("the teacher %s has no encoder.layer list: blocks not initialised from it",
                    teacher.source)
        return []
    copied = []
    with torch.no_grad():
        for i, k in layer_map(student.config.depth, teacher.num_layers):
            for name, module in student.blocks[i].named_modules():
                role = name.removesuffix(".linear")
                if role not in TEACHER_MODULES or not (isinstance(module, Linear) or (
                        isinstance(module, Norm) and module.kind == "layer")):
                    continue
                try:
                    source = layers[k - 1].get_submodule(TEACHER_MODULES[role])
                except AttributeError:
                    continue
                if getattr(source, "weight", None) is None or (
                        source.weight.shape != module.weight.shape):
                    continue
                module.weight.copy_(source.weight)
                if module.bias is not None and source.bias is not None:
                    module.bias.copy_(source.bias)
                copied.append(f"blocks.{i}.{name}")
    return copied


def _init_from_teacher(student: SpikingClassifier, teacher: Teacher, run) -> list[str]:
    """What ``[run]`` copies from the teacher into a new student (``init_embeddings``,
    ``init_blocks``); returns the names copied."""
    return (_init_embeddings(student, teacher, run.init_embeddings)
            + _init_blocks(student, teacher, run.init_blocks))


def task_text_source(config: TrainConfig):
    """What ``"task"`` names among the unlabelled sources: the task's own sentences (a named
    task by its name; the user's own files through their task spec)."""
    name = str(config.data.task).strip().lower()
    return name if name in TASKS else resolve_task(config.data.task)


def text_sources(config: TrainConfig, names) -> list:
    """Text source names (``data.unlabelled``, ``data.transfer``) with ``"task"`` resolved."""
    return [task_text_source(config) if s == "task" else s for s in names]


def held_out_texts(config: TrainConfig) -> set[str]:
    """Every dev sentence of the data folder, the task's own too when it is a user's files
    (``dev_texts``): what stage-1 text and the transfer set leave out."""
    own = task_text_source(config)
    return dev_texts(config.data.data_dir or None, also=[] if isinstance(own, str) else [own])


def check_transfer_task(train, task) -> None:
    """A transfer set needs a single-sentence task: its texts have no second sentence."""
    if "text_pair" in train.column_names:
        from neurolang.config import ConfigError

        raise ConfigError(f"data.transfer takes single texts; the task {task!r} has "
                          "sentence pairs (set data.transfer = [])")


def _task_classes(config: TrainConfig, task) -> int:
    """The task's number of classes: declared by its spec (``label_names``/``num_labels``),
    else read from its label feature. Stage 1 builds its head with it, so that stage 2 loads
    the stage-1 model strictly (SST-5: 5 classes, not a default 2)."""
    if task.num_classes is not None:
        return task.num_classes
    raw = load_task(config.data.task, data_dir=config.data.data_dir or None)
    return raw["train"].features["label"].num_classes


def _train_rows(raw, config: TrainConfig):
    """The task's train split, capped to ``data.max_train_samples`` seeded rows (the same rows
    the pipeline fine-tunes the teacher on)."""
    limit = config.data.max_train_samples
    if limit and limit < len(raw["train"]):
        raw["train"] = subset_rows(raw["train"], limit, config.run.seed)
    return raw


def offset_seed(stage, run_seed: int):
    """Settings with a ``seed`` (a stage's, ``data.augment``'s) with it moved by ``run.seed``: the
    run's seed moves every seed of the run (initialisation, data order, dropout, text sampling,
    augmentation), each section's own ``seed`` moves that section's alone; with both at their
    default 0 nothing moves."""
    return dataclasses.replace(stage, seed=stage.seed + run_seed)


def _augmented_train(raw, teacher: Teacher, config: TrainConfig, device):
    """``raw`` with ``data.augment.copies`` augmented copies of every train sentence added to
    its train split (``neurolang.data.augment``), labelled by the teacher's argmax; the other
    columns of a row (a pair task's ``text_pair``) are copied from its source row, the
    features stay the task's. Validation is left alone."""
    from datasets import Dataset, concatenate_datasets

    from neurolang.config import ConfigError

    cfg, train = offset_seed(config.data.augment, config.run.seed), raw["train"]
    if not cfg.copies or teacher.num_labels != train.features["label"].num_classes:
        return raw  # off; or a teacher for another task, which distill() refuses
    mask = teacher.tokenizer.mask_token
    if not mask:
        raise ConfigError(f"[data.augment] needs a teacher tokenizer with a mask token; "
                          f"{teacher.source!r} has none (set data.augment.copies = 0)")
    texts = list(train["text"])
    neighbours = (embedding_neighbours(teacher.tokenizer, teacher.word_embeddings,
                                       cfg.neighbours, text_words(texts)) if cfg.p_replace else {})
    rows = augment_texts(texts, copies=cfg.copies, p_mask=cfg.p_mask, p_replace=cfg.p_replace,
                         p_ngram=cfg.p_ngram, max_ngram=cfg.max_ngram, mask_token=mask,
                         neighbours=neighbours, seed=cfg.seed)
    sources = [r for r, _ in rows]
    copied = {name: [column[r] for r in sources] for name in train.column_names
              if name not in ("text", "label") for column in [train[name]]}
    copied["text"] = [t for _, t in rows]
    copied["label"] = teacher_labels(teacher, copied["text"], copied.get("text_pair"),
                                     config.data.max_length, device)
    columns = {name: copied[name] for name in train.column_names}  # the split's order
    if rows:
        raw["train"] = concatenate_datasets([train, Dataset.from_dict(columns,
                                                                      features=train.features)])
    log.info("stage 2: %d augmented rows added to the %d train rows (%d copies asked per row; "
             "%d words with neighbours)", len(rows), len(train), cfg.copies, len(neighbours))
    return raw


def _transfer_train(raw, teacher: Teacher, config: TrainConfig, device):
    """``raw`` with the transfer set (``data.transfer``) added to its train split: at most
    ``data.max_transfer_samples`` texts of those sources (sampled with stage 2's seed), none of
    them a dev sentence of the data folder or a sentence of the train split, labelled by the
    teacher's argmax."""
    from datasets import Dataset, concatenate_datasets

    data, train = config.data, raw["train"]
    if not data.transfer or teacher.num_labels != train.features["label"].num_classes:
        return raw  # off; or a teacher for another task, which distill() refuses
    check_transfer_task(train, data.task)
    exclude = held_out_texts(config) | set(train["text"])
    texts = load_unlabelled(text_sources(config, data.transfer), data_dir=data.data_dir or None,
                            max_samples=data.max_transfer_samples,
                            seed=offset_seed(config.distill, config.run.seed).seed,
                            exclude=exclude, unique=True)["text"]
    labels = teacher_labels(teacher, texts, None, data.max_length, device,
                            what="the transfer set")
    raw["train"] = concatenate_datasets([train, Dataset.from_dict(
        {"text": texts, "label": labels}, features=train.features)])
    log.info("stage 2: %d transfer rows from %s added to the %d train rows", len(texts),
             ", ".join(data.transfer), len(train))
    return raw


def _distill_features(student_out, cache_hidden, pairs, projections, mask):
    total = 0
    for block, layer in pairs:
        rep = projections.representation(block, student_out["representations"][block])
        total = total + masked_mse_per_sample(rep, cache_hidden[layer].to(rep.dtype), mask)
    return total


def _embedding_loss(model: SpikingClassifier, projections: Projections, teacher_embeddings):
    """MSE between the whole embedding matrices (SpikeBERT), through the projection if the
    widths differ. It is a batch-level term: the same on every process."""
    student = projections.embed(model.embedding.weight)
    return nn.functional.mse_loss(student, teacher_embeddings.to(student.dtype))


def _process_state(config: TrainConfig):
    """The distributed state (set up once; ``Trainer``'s Accelerator joins it), so that data
    and teacher caches are built by the main process first and read by the others."""
    from accelerate import PartialState

    return PartialState(cpu=_device(config).type == "cpu")


# ---- stage 1 ------------------------------------------------------------------------------


def predistill(config: TrainConfig, output: Path, *, resume: bool = False) -> dict[str, Any]:
    """Stage 1 on unlabelled text; writes ``output/model`` and ``output/results.json``."""
    done = stage_complete(output)
    if done:
        log.info("stage 1 already complete in %s: skipped", output)
        return done
    cfg, start = offset_seed(config.predistill, config.run.seed), time.perf_counter()
    seed_everything(cfg.seed)
    device = _device(config)
    teacher = load_teacher(config.teacher.name, task_head=False, device=device)
    teacher.check_length(config.data.max_length)
    task = resolve_task(config.data.task)
    processes = _process_state(config)
    with processes.main_process_first():
        text = load_unlabelled(text_sources(config, config.data.unlabelled),
                               data_dir=config.data.data_dir or None,
                               max_samples=config.data.max_unlabelled_samples, seed=cfg.seed,
                               exclude=held_out_texts(config))
        data = tokenize(text, teacher.tokenizer, config.data.max_length,
                        cache_dir=output.parent / ".cache")
    student_config = _student_config(config, teacher, _task_classes(config, task))
    student = build_model(student_config)
    copied = _init_from_teacher(student, teacher, config.run)
    student = compile_model(student, config.run.backend).to(device)
    pairs = layer_map(student_config.depth, teacher.num_layers, cfg.ignore_layers)
    with processes.main_process_first():
        cache = TeacherCache.build(teacher, data, [k for _, k in pairs],
                                   output.parent / ".cache" / "teacher", device=device,
                                   description="stage 1: teacher hidden states")
    projections = Projections(student_config.hidden_size, teacher.hidden_size,
                              [b for b, _ in pairs])
    teacher_embeddings = teacher.word_embeddings.detach().to(device)

    def loss_fn(model, extra, batch):
        _, hidden = cache.batch(batch["index"].cpu(), batch["input_ids"].shape[1])
        hidden = {k: v.to(device) for k, v in hidden.items()}
        out = model(batch["input_ids"], batch["attention_mask"], output_representations=True)
        per_sample = cfg.w_rep * _distill_features(out, hidden, pairs, extra,
                                                        batch["attention_mask"])
        emb = cfg.w_emb * _embedding_loss(model, extra, teacher_embeddings) if (
            cfg.w_emb) else 0.0
        return per_sample, emb

    trainer = Trainer(student, loss_fn, data, teacher.tokenizer.pad_token_id, cfg, output,
                      extra=projections, tokenizer=teacher.tokenizer,
                      metadata={"stage": "predistill", "teacher": config.teacher.name},
                      description="stage 1: predistill", log_with=config.run.log_with)
    state = trainer.fit(resume=resume)
    if not trainer.accelerator.is_main_process:
        return {"stage": "predistill", "rank": trainer.rank}
    results = {"stage": "predistill", "layer_map": pairs, "samples": len(data),
               "initialised_from_teacher": copied, "wall_time_s": time.perf_counter() - start,
               "steps": state["step"]}
    write_results(output, results)
    return results


# ---- stage 2 ------------------------------------------------------------------------------


def load_stage1(student: nn.Module, folder: Path) -> dict[str, list[str]]:
    """Load stage-1 weights strictly; report what is carried over and what is initialised.

    Every parameter of the stage-1 model must exist with the same shape in the student (the
    same architecture; time steps and neuron dynamics may differ). Parameters the stage-1
    model does not have (none, for the same preset) are listed as initialised.
    """
    saved_config, meta = read_config(folder)
    state = load_weights(folder, meta)
    own = student.state_dict()
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(state) & set(own) if state[k].shape != own[k].shape)
    if unexpected or mismatched:
        raise CheckpointError(
            f"the stage-1 model in {folder} does not fit the student: "
            f"{len(unexpected)} unknown parameters {unexpected[:4]}, "
            f"{len(mismatched)} of another shape {mismatched[:4]} "
            f"(stage 1: depth {saved_config.depth}, width {saved_config.hidden_size}; "
            f"student: depth {student.config.depth}, width {student.config.hidden_size})")
    carried = sorted(state)
    initialised = sorted(set(own) - set(state))
    own.update(state)
    student.load_state_dict(own, strict=True)
    return {"carried_over": carried, "initialised": initialised}


def distill(config: TrainConfig, output: Path, teacher_dir: str, *, stage1: Path | None,
            resume: bool = False) -> dict[str, Any]:
    """Stage 2 on the labelled task; writes ``output/best`` and ``output/results.json``."""
    done = stage_complete(output)
    if done:
        log.info("stage 2 already complete in %s: skipped", output)
        return done
    cfg, start = offset_seed(config.distill, config.run.seed), time.perf_counter()
    seed_everything(cfg.seed)
    device = _device(config)
    teacher = load_teacher(teacher_dir, task_head=True, device=device)
    teacher.check_length(config.data.max_length)
    task = resolve_task(config.data.task)
    processes = _process_state(config)
    with processes.main_process_first():
        raw = _train_rows(load_task(config.data.task, data_dir=config.data.data_dir or None),
                          config)
        rows = {"task": len(raw["train"])}
        raw = _augmented_train(raw, teacher, config, device)
        rows["augmented"] = len(raw["train"]) - rows["task"]
        raw = _transfer_train(raw, teacher, config, device)
        rows["transfer"] = len(raw["train"]) - rows["task"] - rows["augmented"]
        data = tokenize(raw, teacher.tokenizer, config.data.max_length,
                        cache_dir=output.parent / ".cache")
    # the label feature knows every class, also when a capped subset misses some
    num_labels = raw["train"].features["label"].num_classes
    if teacher.num_labels != num_labels:
        raise CheckpointError(f"teacher {teacher_dir} has {teacher.num_labels} labels, the "
                              f"task {task.name} has {num_labels}")
    student = build_model(_student_config(config, teacher, num_labels))
    if stage1 is not None:
        loaded = load_stage1(student, stage1)
        log.info("stage 2: %d tensors carried over from stage 1, %d initialised: %s",
                 len(loaded["carried_over"]), len(loaded["initialised"]),
                 loaded["initialised"])
    else:
        loaded = {"carried_over": [], "initialised": sorted(student.state_dict()),
                  "from_teacher": _init_from_teacher(student, teacher, config.run)}
    rate_weights = (synapses_per_population(student)  # from the graph, before compiling
                    if cfg.w_rate and cfg.rate_weighting == "synapses" else None)
    student = compile_model(student, config.run.backend).to(device)
    pairs = layer_map(student.config.depth, teacher.num_layers, cfg.ignore_layers)
    layers = [k for _, k in pairs] + ([teacher.num_layers] if cfg.icsfd.enabled else [])
    with processes.main_process_first():
        cache = TeacherCache.build(teacher, data["train"], layers,
                                   output.parent / ".cache" / "teacher", device=device,
                                   description="stage 2: teacher outputs")
    projections = Projections(student.config.hidden_size, teacher.hidden_size,
                              sorted({b for b, _ in pairs} | {student.config.depth - 1}))
    teacher_embeddings = teacher.word_embeddings.detach().to(device)
    need_reps = cfg.w_rep > 0 or cfg.icsfd.enabled

    def _icsfd(features, batch, hidden):
        """ICSFD with the whole global batch as candidates (under DDP this process holds a
        share of it; the teacher's states of the other rows come from the cache)."""
        index, width = batch["global_index"], int(batch["global_width"])
        if torch.equal(index, batch["index"]) and width == batch["input_ids"].shape[1]:
            candidates = hidden[teacher.num_layers]  # one process: the batch itself
        else:
            candidates = cache.batch(index.cpu(), width)[1][teacher.num_layers].to(device)
        candidate_mask = (torch.arange(width, device=device)[None, :]
                          < batch["global_lengths"][:, None])
        return icsfd_per_sample(features, candidates, batch["attention_mask"], batch["labels"],
                                cfg.icsfd.k, candidate_mask, batch["global_labels"])

    recorder = SpikeRecorder(student) if cfg.w_rate else None

    def loss_fn(model, extra, batch):
        t_logits, hidden = cache.batch(batch["index"].cpu(), batch["input_ids"].shape[1])
        with recorder or contextlib.nullcontext():
            out = model(batch["input_ids"], batch["attention_mask"],
                        output_representations=need_reps)
        logits, labels, mask = out["logits"], batch["labels"], batch["attention_mask"]
        per_sample = cfg.w_ce * nn.functional.cross_entropy(logits, labels, reduction="none")
        if recorder is not None:
            per_sample = per_sample + cfg.w_rate * firing_rate_per_sample(
                recorder.outputs, mask, cfg.target_rate, rate_weights).to(per_sample.dtype)
            recorder.outputs.clear()
        if cfg.w_logit:
            per_sample = per_sample + cfg.w_logit * kd_kl_per_sample(
                logits, t_logits.to(device, logits.dtype), cfg.temperature)
        hidden = {k: v.to(device) for k, v in hidden.items()}
        if cfg.w_rep:
            per_sample = per_sample + cfg.w_rep * _distill_features(out, hidden, pairs, extra,
                                                                    mask)
        if cfg.icsfd.enabled:
            last = student.config.depth - 1
            features = extra.representation(last, out["representations"][last])
            per_sample = per_sample + cfg.icsfd.weight * _icsfd(features, batch, hidden)
        emb = cfg.w_emb * _embedding_loss(model, extra, teacher_embeddings) if (
            cfg.w_emb) else 0.0
        return per_sample, emb

    metrics, selection = selection_metrics(task.metrics, task.selection_metric,
                                           cfg.select_metric)
    pad = teacher.tokenizer.pad_token_id

    def evaluate(model):
        return evaluate_student(model, data["validation"], pad, metrics, cfg.eval_batch_size)

    trainer = Trainer(student, loss_fn, data["train"], pad, cfg, output, extra=projections,
                      evaluate=evaluate, selection_metric=selection,
                      tokenizer=teacher.tokenizer,
                      metadata={"stage": "distill", "task": task.name, "teacher": teacher_dir,
                                "label_names": list(task.label_names or [])},
                      description="stage 2: distill", log_with=config.run.log_with)
    state = trainer.fit(resume=resume)
    if not trainer.accelerator.is_main_process:
        return {"stage": "distill", "rank": trainer.rank}
    best = from_pretrained(output / BEST, config.run.backend).to(device)
    dev = evaluate_student(best, data["validation"], pad, metrics, cfg.eval_batch_size)
    results = {"stage": "distill", "task": task.name, "dev": dev,
               "selection_metric": selection, "best_epoch": state["best_epoch"],
               "history": state["history"], "stage1": loaded, "layer_map": pairs,
               "train_rows": rows, "wall_time_s": time.perf_counter() - start}
    write_results(output, results)
    return results

"""One training loop for every stage, on Hugging Face Accelerate.

The loop owns what every stage shares: data order (length buckets, seeded per epoch, one
global batch split across processes so N processes train the same model as one), AdamW with
warm-up and a cosine (or linear/constant) schedule, gradient accumulation and clipping, mixed
precision on GPU, evaluation on dev and selection of the best epoch, atomic checkpoints with
the whole training state, exact resumption, a stop on a non-finite loss, progress bars and
JSON-lines metrics. A stage supplies the model, its loss and its evaluation.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from neurolang.checkpoint import recover_directory, replace_directory, save_pretrained
from neurolang.data import DynamicPaddingCollator, LengthBucketBatchSampler
from neurolang.errors import NeurolangError
from neurolang.progress import progress
from neurolang.seeding import rng_state, seed_everything, set_rng_state

CHECKPOINT = "checkpoint"
BEST = "best"
FINAL = "model"


class TrainingError(NeurolangError, RuntimeError):
    """Training cannot go on (a non-finite loss, a checkpoint of another run)."""


@dataclass
class OptimConfig:
    """Optimisation settings of one stage (every one can be set in the TOML config).

    ``batch_size`` is the global batch (split across processes), ``grad_accum`` batches make
    one optimizer step; ``warmup_ratio`` of the steps ramp the learning rate up linearly, then
    ``schedule`` takes it down (``cosine`` to 0, ``linear`` to 0, or ``constant``).
    ``warmup_ratio`` is in [0, 1); ``epochs`` and ``lr`` are > 0, ``weight_decay`` and
    ``grad_clip`` >= 0 (0: no clipping); the batch sizes, ``grad_accum`` and
    ``save_every_steps`` (a checkpoint every that many steps) are >= 1.
    """

    epochs: float = 1.0
    lr: float = 5e-4
    weight_decay: float = 5e-3
    batch_size: int = 32
    grad_accum: int = 1
    warmup_ratio: float = 0.0
    schedule: str = "cosine"
    grad_clip: float = 1.0
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (GPU)
    save_every_steps: int = 200
    eval_batch_size: int = 128
    seed: int = 0

    def __post_init__(self):
        from neurolang.validation import check_choice, check_int, check_number

        # the errors name the option; the training configuration adds the section
        for name, at_least in (("batch_size", 1), ("grad_accum", 1), ("save_every_steps", 1),
                               ("eval_batch_size", 1), ("seed", 0)):
            setattr(self, name, check_int("", name, getattr(self, name), at_least=at_least))
        for name in ("epochs", "lr"):
            check_number("", name, getattr(self, name), greater_than=0)
        for name in ("weight_decay", "grad_clip"):
            check_number("", name, getattr(self, name), at_least=0)
        check_number("", "warmup_ratio", self.warmup_ratio, at_least=0, less_than=1)
        check_choice("", "schedule", self.schedule, ("cosine", "linear", "constant"))
        check_choice("", "mixed_precision", self.mixed_precision, ("no", "bf16", "fp16"))


# the trainer's schedule names -> transformers' (every one warms up linearly first)
SCHEDULES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


def make_scheduler(optimizer: torch.optim.Optimizer, kind: str, warmup: int, total: int):
    """``transformers.get_scheduler``: the learning rate rises linearly from 0 over ``warmup``
    steps, then goes to 0 by ``total`` (``cosine``, ``linear``) or stays (``constant``)."""
    from transformers import get_scheduler

    return get_scheduler(SCHEDULES[kind], optimizer, num_warmup_steps=warmup,
                         num_training_steps=total)


LossFn = Callable[[nn.Module, nn.Module | None, dict[str, torch.Tensor]],
                  tuple[torch.Tensor, torch.Tensor]]


class Objective(nn.Module):
    """The student, its distillation heads and the loss as one module, so that DDP sees every
    parameter used in its own ``forward``."""

    def __init__(self, model: nn.Module, extra: nn.Module | None, loss_fn: LossFn):
        super().__init__()
        self.model, self.extra = model, extra
        self.loss_fn = loss_fn

    def forward(self, batch: dict[str, torch.Tensor]):
        return self.loss_fn(self.model, self.extra, batch)


class Trainer:
    """Train ``model`` (and ``extra``, e.g. distillation projections) with ``loss_fn``.

    ``loss_fn(model, extra, batch) -> (per_sample_loss (b,), batch_loss (scalar))``: per-sample
    terms are averaged over the global batch, ``batch_loss`` (e.g. an embedding loss) is added
    once. ``evaluate(model) -> metrics`` runs on dev after each epoch; the epoch with the best
    ``selection_metric`` is saved to ``best/`` (without a metric, the last weights go to
    ``model/``), as a neurolang model folder, or by ``save_model(model, folder)`` when given
    (a teacher is saved as a transformers folder).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, train_data, pad_token_id: int,
                 optim: OptimConfig, output_dir: str | Path, *, extra: nn.Module | None = None,
                 evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
                 selection_metric: str | None = None, tokenizer: Any = None,
                 metadata: dict[str, Any] | None = None, description: str = "train",
                 cpu: bool | None = None, log_with: str = "",
                 save_model: Callable[[nn.Module, Path], None] | None = None,
                 show_progress: bool = True):
        from accelerate import Accelerator, DistributedDataParallelKwargs

        self.optim = optim
        self.output_dir = Path(output_dir)
        self.loss_fn, self.evaluate = loss_fn, evaluate
        self.selection_metric = selection_metric
        self.tokenizer, self.metadata, self.description = tokenizer, metadata or {}, description
        self.save_model, self.show_progress = save_model, show_progress
        self.accelerator = Accelerator(
            mixed_precision=optim.mixed_precision if torch.cuda.is_available() else "no",
            cpu=cpu if cpu is not None else not torch.cuda.is_available(),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
            log_with=log_with or None,
            project_dir=str(self.output_dir / "logs") if log_with else None,
        )
        if log_with:
            self.accelerator.init_trackers(description.replace(":", "").replace(" ", "_"),
                                           config={k: v for k, v in asdict(optim).items()
                                                   if isinstance(v, (int, float, str, bool))})
        self.world = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        self.train_data = train_data
        self.collate = DynamicPaddingCollator(pad_token_id)
        self.sampler = LengthBucketBatchSampler(train_data, optim.batch_size, shuffle=True,
                                                seed=optim.seed)
        self.batches_per_epoch = len(self.sampler)
        self.total_batches = max(1, int(round(optim.epochs * self.batches_per_epoch)))
        self.total_steps = math.ceil(self.total_batches / optim.grad_accum)

        self.raw_model, self.extra = model, extra
        params = list(model.named_parameters()) + (
            list(extra.named_parameters()) if extra is not None else [])
        decay = [p for n, p in params if p.requires_grad and p.ndim >= 2]
        no_decay = [p for n, p in params if p.requires_grad and p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": optim.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}], lr=optim.lr)
        warmup = int(optim.warmup_ratio * self.total_steps)
        scheduler = make_scheduler(optimizer, optim.schedule, warmup, self.total_steps)
        wrapper = Objective(model, extra, loss_fn)
        # the scheduler stays unprepared: Accelerate would step it once per process, which
        # runs the schedule N times too fast when the global batch is split over N processes
        self.wrapper, self.optimizer = self.accelerator.prepare(wrapper, optimizer)
        self.scheduler = scheduler
        self.state = {"batch": 0, "step": 0, "best": None, "best_epoch": None, "history": [],
                      "wall_time": 0.0}

    # ---- checkpoints ---------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        return self.output_dir / CHECKPOINT

    def _unwrapped(self) -> Objective:
        return self.accelerator.unwrap_model(self.wrapper)

    def save_checkpoint(self) -> None:
        """The whole training state, written to a temporary folder and renamed into place."""
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".checkpoint.", dir=self.output_dir))
            try:
                state = {k: v.detach().cpu().contiguous()
                         for k, v in self._unwrapped().state_dict().items()}
                save_file(state, str(tmp / "weights.safetensors"))
                torch.save({"optimizer": self.optimizer.state_dict(),
                            "scheduler": self.scheduler.state_dict(),
                            "rng": rng_state()}, tmp / "optimizer.pt")
                (tmp / "state.json").write_text(json.dumps(
                    {**self.state, "optim": asdict(self.optim), "world": self.world}, indent=2))
                replace_directory(tmp, self.checkpoint_dir)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def load_checkpoint(self) -> bool:
        """Restore the training state from ``checkpoint/``; False if there is none."""
        recover_directory(self.checkpoint_dir)
        if not (self.checkpoint_dir / "state.json").is_file():
            return False
        try:
            saved = json.loads((self.checkpoint_dir / "state.json").read_text())
        except (OSError, ValueError) as err:
            raise TrainingError(f"{self.checkpoint_dir / 'state.json'} cannot be read ({err}): "
                                "the checkpoint is damaged; start again in a new "
                                "--output") from None
        if saved["optim"] != asdict(self.optim):
            changed = {k: (saved["optim"].get(k), v) for k, v in asdict(self.optim).items()
                       if saved["optim"].get(k) != v}
            raise TrainingError(
                f"{self.checkpoint_dir} was written with other settings (saved, now): "
                f"{changed}; resume with the same config or use a new --output")
        try:
            weights = load_file(str(self.checkpoint_dir / "weights.safetensors"))
            blob = torch.load(self.checkpoint_dir / "optimizer.pt", weights_only=False)
        except Exception as err:  # safetensors and pickle raise their own error types
            raise TrainingError(
                f"the checkpoint in {self.checkpoint_dir} is damaged ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); it cannot be resumed: "
                "start again in a new --output") from None
        self._unwrapped().load_state_dict(weights, strict=True)
        self.optimizer.load_state_dict(blob["optimizer"])
        self.scheduler.load_state_dict(blob["scheduler"])
        set_rng_state(blob["rng"])
        self.state = {k: saved[k] for k in self.state}
        self._truncate_log(self.state["step"], len(self.state["history"]))
        return True

    # ---- logging -------------------------------------------------------------------------

    def _log(self, record: dict[str, Any]) -> None:
        if self.accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            with open(self.output_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        if self.accelerator.trackers:
            values = {k: v for k, v in record.items() if k != "step" and
                      isinstance(v, (int, float))}
            self.accelerator.log(values, step=record.get("step"))

    def _peak_memory(self) -> dict[str, float]:
        """On a GPU, the peak memory allocated so far (MiB), for the step log."""
        device = self.accelerator.device
        if device.type != "cuda":
            return {}
        return {"peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20}

    def _truncate_log(self, step: int, epochs_ended: int) -> None:
        """Drop the records written after the checkpoint (a kill between them)."""
        path = self.output_dir / "metrics.jsonl"
        if self.accelerator.is_main_process and path.is_file():
            kept = []
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut by the kill
                epoch_end = "loss" not in record
                if record.get("step", 0) <= step and not (
                        epoch_end and record.get("epoch", 0) > epochs_ended):
                    kept.append(line)
            path.write_text("".join(line + "\n" for line in kept))

    # ---- the loop ------------------------------------------------------------------------

    def _batch(self, rows: list[int]) -> dict[str, torch.Tensor]:
        """This process's share of the global batch ``rows``, collated, plus what a loss over
        the whole global batch needs (ICSFD's neighbours): ``global_index``,
        ``global_lengths`` and ``global_labels`` of every row, in global order, and
        ``global_width``, the length one process would pad the global batch to."""
        data = [self.train_data[i] for i in rows]
        batch = self.collate(data[self.rank :: self.world])
        lengths = [len(row["input_ids"]) for row in data]
        batch["global_index"] = torch.tensor(rows, dtype=torch.long)
        batch["global_lengths"] = torch.tensor(lengths, dtype=torch.long)
        batch["global_width"] = torch.tensor(self.collate.width(lengths), dtype=torch.long)
        if "label" in data[0]:
            batch["global_labels"] = torch.tensor([row["label"] for row in data],
                                                  dtype=torch.long)
        return {k: v.to(self.accelerator.device) for k, v in batch.items()}

    def _clean_after_kill(self) -> None:
        """Put back a folder whose replacement a kill interrupted; drop half-written ones."""
        if not self.accelerator.is_main_process or not self.output_dir.is_dir():
            return
        for name in (CHECKPOINT, BEST, FINAL):
            recover_directory(self.output_dir / name)
            for stale in self.output_dir.glob(f".{name}.*"):
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)

    def _epochs_due(self) -> int:
        """How many epochs have ended by the current batch (a last, partial epoch included)."""
        batch = self.state["batch"]
        ended = batch // self.batches_per_epoch
        if batch >= self.total_batches and batch % self.batches_per_epoch:
            ended += 1
        return ended

    def _finish_epochs(self, start_time: float) -> None:
        """End every epoch whose batches are done but whose evaluation is not (also one
        interrupted by a kill after its last step checkpoint), then checkpoint."""
        while len(self.state["history"]) < self._epochs_due():
            self._end_epoch(len(self.state["history"]))
            self.state["wall_time"] = time.perf_counter() - start_time
            self.save_checkpoint()

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train to the end (or from the last checkpoint with ``resume``); returns the state.

        The checkpoint covers every step: a kill anywhere (mid-epoch, during an evaluation,
        while a checkpoint or ``best/`` is written) resumes to the same weights."""
        seed_everything(self.optim.seed)
        self._clean_after_kill()
        if resume:
            self.load_checkpoint()
        elif self.checkpoint_dir.exists():
            raise TrainingError(f"{self.checkpoint_dir} exists: pass --resume to continue it, "
                                "or choose another --output")
        self.wrapper.train()
        start_time = time.perf_counter() - self.state["wall_time"]
        bar = progress(total=self.total_batches, initial=self.state["batch"], unit="batch",
                       desc=self.description,
                       disable=not (self.show_progress and self.accelerator.is_main_process),
                       dynamic_ncols=True)
        window: list[float] = []
        samples_seen, window_start = 0, time.perf_counter()
        while True:
            self._finish_epochs(start_time)
            if self.state["batch"] >= self.total_batches:
                break
            epoch, position = divmod(self.state["batch"], self.batches_per_epoch)
            self.sampler.set_epoch(epoch)
            batches = self.sampler.global_batches()
            for rows in batches[position:]:
                if self.state["batch"] >= self.total_batches:
                    break
                if len(rows) < self.world:
                    self.state["batch"] += 1  # too small to split: skipped on every process
                    continue
                loss_value = self._train_batch(rows)
                window.append(loss_value)
                samples_seen += len(rows)
                bar.update(1)
                if self.state["batch"] % self.optim.grad_accum == 0:
                    self.state["step"] += 1
                    if self.state["step"] % 10 == 0 or self.state["batch"] == self.total_batches:
                        rate = samples_seen / max(1e-9, time.perf_counter() - window_start)
                        loss_mean = sum(window) / len(window)
                        bar.set_postfix(loss=f"{loss_mean:.4f}", samples_s=f"{rate:.1f}",
                                        lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
                        self._log({"step": self.state["step"], "epoch": epoch,
                                   "loss": loss_mean, "lr": self.scheduler.get_last_lr()[0],
                                   "samples_per_s": rate, **self._peak_memory()})
                        window, samples_seen, window_start = [], 0, time.perf_counter()
                    if self.state["step"] % self.optim.save_every_steps == 0:
                        self.state["wall_time"] = time.perf_counter() - start_time
                        self.save_checkpoint()
        bar.close()
        self.state["wall_time"] = time.perf_counter() - start_time
        if self.evaluate is None and self.accelerator.is_main_process:
            self._save_model(self.output_dir / FINAL)
        if self.accelerator.trackers:
            self.accelerator.end_training()
        self.accelerator.wait_for_everyone()
        return self.state

    def _train_batch(self, rows: list[int]) -> float:
        batch = self._batch(rows)
        model = self.wrapper
        accumulate = self.state["batch"] % self.optim.grad_accum != self.optim.grad_accum - 1
        last = self.state["batch"] + 1 >= self.total_batches
        sync = not accumulate or last
        context = self.accelerator.no_sync(model) if not sync else _null()
        with context, self.accelerator.autocast():
            per_sample, batch_loss = model(batch)
            # DDP averages gradients over processes: scale so that the result is the mean
            # over the global batch, whatever the split
            loss = per_sample.sum() * self.world / len(rows) + batch_loss
            loss = loss / self.optim.grad_accum
        total = self.accelerator.reduce(loss.detach().float().reshape(1), "mean")
        if not torch.isfinite(total).all():
            raise TrainingError(
                f"{self.description}: the loss became {total.item()} at batch "
                f"{self.state['batch']} (step {self.state['step']}); the last good checkpoint "
                f"is {self.checkpoint_dir}. Lower the learning rate or check the data.")
        self.accelerator.backward(loss)
        self.state["batch"] += 1
        if sync:
            if self.optim.grad_clip > 0:
                self.accelerator.clip_grad_norm_(model.parameters(), self.optim.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        return float(total) * self.optim.grad_accum

    def _end_epoch(self, epoch: int) -> None:
        record: dict[str, Any] = {"step": self.state["step"], "epoch": epoch + 1}
        if self.evaluate is not None:
            self.wrapper.eval()
            if self.accelerator.is_main_process:
                metrics = self.evaluate(self._unwrapped().model)
                record.update({f"dev_{k}": v for k, v in metrics.items()})
                value = metrics[self.selection_metric]
                if self.state["best"] is None or value > self.state["best"]:
                    self.state["best"], self.state["best_epoch"] = value, epoch + 1
                    self._save_model(self.output_dir / BEST)
            self.wrapper.train()
            self.accelerator.wait_for_everyone()
        self.state["history"].append(record)
        self._log(record)

    def _save_model(self, directory: Path) -> None:
        model = self._unwrapped().model
        if self.save_model is not None:
            self.save_model(model, directory)
            return
        save_pretrained(model, directory, tokenizer=self.tokenizer, metadata=self.metadata)
        if self.extra is not None:
            extra = self._unwrapped().extra
            save_file({k: v.detach().cpu().contiguous() for k, v in extra.state_dict().items()},
                      str(directory / "distillation_heads.safetensors"))


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

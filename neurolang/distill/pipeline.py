"""The whole pipeline behind ``neurolang train``, and the run folder it owns.

    teacher/     the teacher fine-tuned on the task (skipped if one is given)
    predistill/  stage 1 (``neurolang.distill.stages.predistill``)
    distill/     stage 2 (``neurolang.distill.stages.distill``)
    train_config.json   the config that started the run (never rewritten)
    results.json teacher and student dev metrics, wall time per stage

A complete stage is skipped when the pipeline runs again, an incomplete one resumes from its
checkpoint with ``resume=True``. A folder of another run or config is refused before any work.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from neurolang.config import ConfigError
from neurolang.distill.config import TrainConfig
from neurolang.distill.stages import RESULTS, distill, predistill, stage_complete, write_results
from neurolang.outputs import claim_folder, write_text_atomic
from neurolang.teachers import finetune_teacher
from neurolang.trainer import BEST, CHECKPOINT, FINAL

log = logging.getLogger("neurolang.train")


# run settings that change neither the data, the model nor the result's meaning (every
# backend computes the same spikes: a run started on one may be continued on another)
_RUN_ONLY = ("run.threads", "run.device", "run.backend")


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_difference(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple]:
    """``{option: (saved, now)}`` for every option that differs (run-only settings aside).

    An option the saved config does not have (added to neurolang after that run) counts as
    its default value."""
    from neurolang.distill.config import train_config_from_dict

    try:  # read as a config today: renamed options and new defaults as today's
        saved = train_config_from_dict(saved).to_dict()
    except ValueError:
        pass
    a, b = _flat(saved), _flat(now)
    defaults = _flat(train_config_from_dict({}).to_dict())
    for key in set(b) - set(a):
        a[key] = defaults.get(key)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k not in _RUN_ONLY}


def check_run_folder(config: TrainConfig, output: Path, *, resume: bool = False,
                     overwrite: bool = False) -> None:
    """Before any work: ``output`` may hold this run (same config), nothing, or is refused.

    A run folder of another config is refused (its results would no longer describe its
    model); a stage with a checkpoint needs ``--resume``."""
    claim_folder(output, ["run"], what="--output", overwrite=overwrite)
    saved_path = output / "train_config.json"
    if saved_path.is_file() and not overwrite:
        try:
            saved = json.loads(saved_path.read_text())
        except ValueError as err:
            raise ConfigError(f"{saved_path} cannot be read ({err}); choose another "
                              "--output") from None
        diff = config_difference(saved, config.to_dict())
        if diff:
            shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in
                              ((k, *v) for k, v in list(diff.items())[:6]))
            more = f" and {len(diff) - 6} more" if len(diff) > 6 else ""
            raise ConfigError(
                f"--output {str(output)!r} holds a run of another config ({shown}{more}); "
                "nothing was changed. Choose another --output, or pass --overwrite to start "
                "that run again")
    if not resume and not overwrite:
        for stage in ("predistill", "distill"):
            folder = output / stage
            if (folder / CHECKPOINT).exists() and not stage_complete(folder):
                raise ConfigError(
                    f"{str(folder)!r} holds an unfinished stage: pass --resume to continue "
                    "it, or choose another --output")


def train_pipeline(config: TrainConfig, output: Path, *, resume: bool = False,
                   overwrite: bool = False) -> dict[str, Any]:
    """Teacher fine-tuning (unless given), stage 1, stage 2, evaluation; skips done stages."""
    import shutil

    check_run_folder(config, output, resume=resume, overwrite=overwrite)
    if overwrite and output.is_dir() and any(output.iterdir()):
        shutil.rmtree(output)
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    config_path = output / "train_config.json"
    fresh = not config_path.is_file()
    if fresh:  # the config that started the run; never rewritten (it describes the model)
        write_text_atomic(config_path, json.dumps(config.to_dict(), indent=2) + "\n")
    else:
        started = json.loads(config_path.read_text()).get("run", {}).get("backend")
        if started and started != config.run.backend:
            log.warning("the run in %s was started on the %s backend; it goes on on %s (both "
                        "compute the same spikes)", output, started, config.run.backend)
    try:
        return _run_pipeline(config, output, resume)
    except Exception:
        # a run that failed before it wrote anything leaves nothing behind
        if fresh and [p.name for p in output.iterdir()] == ["train_config.json"]:
            config_path.unlink()
            if created:
                output.rmdir()
        raise


def _run_pipeline(config: TrainConfig, output: Path, resume: bool) -> dict[str, Any]:
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    timings: dict[str, float] = {}

    teacher_dir = config.teacher.finetuned
    teacher_results: dict[str, Any] = {}
    if not teacher_dir:
        teacher_dir = str(output / "teacher")
        done = stage_complete(output / "teacher")
        if done is None:
            t = config.teacher
            start = time.perf_counter()
            # the run's own teacher folder: an unfinished one is replaced
            teacher_results = finetune_teacher(
                t.name, config.data.task, teacher_dir, epochs=t.epochs, lr=t.lr,
                batch_size=t.batch_size, max_length=t.max_length, seed=config.run.seed,
                max_train_samples=config.data.max_train_samples or None,
                selection_metric=t.select_metric or None,
                data_dir=config.data.data_dir or None, overwrite=True)
            timings["teacher"] = time.perf_counter() - start
            write_results(output / "teacher", {"stage": "teacher", **teacher_results,
                                                "wall_time_s": timings["teacher"]})
        teacher_results = stage_complete(output / "teacher") or teacher_results
        timings["teacher"] = teacher_results.get("wall_time_s", timings.get("teacher", 0.0))
    else:
        try:
            teacher_results = json.loads((Path(teacher_dir) / RESULTS).read_text())
        except (OSError, ValueError):
            teacher_results = {}

    stage1 = None
    if config.predistill.enabled:
        r1 = predistill(config, output / "predistill", resume=resume)
        timings["predistill"] = r1["wall_time_s"]
        stage1 = output / "predistill" / FINAL
    r2 = distill(config, output / "distill", teacher_dir, stage1=stage1, resume=resume)
    timings["distill"] = r2["wall_time_s"]
    results = {
        "task": r2["task"],
        "backend": config.run.backend,
        "teacher": {"path": teacher_dir, "dev": _teacher_dev(teacher_results)},
        "student": {"path": str(output / "distill" / BEST), "dev": r2["dev"],
                    "best_epoch": r2["best_epoch"]},
        "wall_time_s": timings,
    }
    write_text_atomic(output / RESULTS, json.dumps(results, indent=2) + "\n")
    from neurolang.distill.plots import plot_run

    plot_run(output)
    return results


def _teacher_dev(results: dict[str, Any]) -> dict[str, float]:
    for key in ("dev", "dev_metrics", "validation", "metrics"):
        if isinstance(results.get(key), dict):
            return {k: v for k, v in results[key].items() if isinstance(v, (int, float))}
    return {k: v for k, v in results.items() if k in ("accuracy", "f1", "mcc", "macro_f1")}

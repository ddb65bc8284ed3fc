"""A run killed anywhere resumes to the weights an uninterrupted run ends with, bit for bit.

Each case runs ``neurolang distill`` in a subprocess that SIGKILLs itself at one point: in the
middle of an epoch, during the end-of-epoch evaluation (after a step checkpoint fell on the
epoch's last batch: the case that once left a run that could never finish), half-way through
writing a checkpoint, and half-way through writing ``best/``. Then ``--resume`` finishes it.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_training import _config_file

# The driver patches one function of the trainer so that its n-th call kills the process at
# the chosen point, then runs the command line as `neurolang` would.
DRIVER = r"""
import os, shutil, signal, sys
point, nth = sys.argv[1], int(sys.argv[2])
calls = [0]

def hit():
    calls[0] += 1
    if calls[0] == nth:
        os.kill(os.getpid(), signal.SIGKILL)

import neurolang.checkpoint as checkpoint
import neurolang.trainer as trainer

if point == "mid-epoch":
    train_batch = trainer.Trainer._train_batch
    def patched(self, rows):
        hit()
        return train_batch(self, rows)
    trainer.Trainer._train_batch = patched
elif point == "evaluation":
    end_epoch = trainer.Trainer._end_epoch
    def patched(self, epoch):
        evaluate = self.evaluate
        def killing(model):
            metrics = evaluate(model)
            hit()  # the metrics are computed, nothing is saved yet
            return metrics
        self.evaluate = killing
        try:
            return end_epoch(self, epoch)
        finally:
            self.evaluate = evaluate
    trainer.Trainer._end_epoch = patched
elif point in ("checkpoint", "best"):
    # "checkpoint" (the trainer's own reference) or "best" (save_pretrained's): the kill
    # falls between moving the old folder away and renaming the new one into place
    module = trainer if point == "checkpoint" else checkpoint
    def patched(new, target):
        if target.exists():
            os.replace(target, target.with_name(f".{target.name}.old"))
        hit()
        os.replace(new, target)
        shutil.rmtree(target.with_name(f".{target.name}.old"), ignore_errors=True)
    module.replace_directory = patched

from neurolang.cli import app
app(sys.argv[3:], prog_name="neurolang")
"""

def _run(args, env, point=None, nth=0):
    command = [sys.executable, "-c", DRIVER, point or "none", str(nth), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_teacher, tiny_data_dir):
    root = tmp_path_factory.mktemp("kill")
    config = _config_file(root, tiny_teacher, tiny_data_dir)  # 2 epochs, batches of 16
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NEUROLANG_PROGRESS_SECONDS": "0"}
    args = ["distill", "--config", str(config), "--teacher", str(tiny_teacher)]
    full = root / "full"
    done = _run([*args, "-o", str(full)], env)
    assert done.returncode == 0, done.stderr[-2000:]
    return root, args, env, full


# 96 rows in batches of 16: 6 batches an epoch, 12 in all; a checkpoint every 2 steps, so
# the step-6 checkpoint falls on the first epoch's last batch
@pytest.mark.parametrize("point, nth", [
    ("mid-epoch", 9),     # batch 9 of 12: after the step-8 checkpoint
    ("evaluation", 1),    # epoch 1's evaluation, after the step-6 checkpoint
    ("evaluation", 2),    # the last epoch's evaluation: no best/ of it yet
    ("checkpoint", 3),    # the step-6 checkpoint, half renamed
    ("best", 1),          # the first best/, half renamed
])
def test_kill_anywhere_then_resume_is_bit_identical(setup, point, nth):
    root, args, env, full = setup
    out = root / f"{point}-{nth}"
    killed = _run([*args, "-o", str(out)], env, point, nth)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (out / "results.json").exists()
    resumed = _run([*args, "-o", str(out), "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for name in ("checkpoint/weights.safetensors", "best/model.safetensors"):
        a, b = _tensors(full / name), _tensors(out / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    ours = json.loads((out / "results.json").read_text())
    theirs = json.loads((full / "results.json").read_text())
    assert ours["dev"] == theirs["dev"] and ours["best_epoch"] == theirs["best_epoch"]
    assert ours["history"] == theirs["history"]
    assert not list(out.glob(".*.old")), "a half-replaced folder was left behind"


# Teacher fine-tuning runs on the same trainer: killed mid-epoch (after a step checkpoint),
# the same call again finishes it with the weights of an uninterrupted run.
TEACHER_DRIVER = DRIVER.split("from neurolang.cli import app")[0] + r"""
import json
from neurolang.teachers import finetune_teacher
teacher, data_dir, output = sys.argv[3:6]
results = finetune_teacher(teacher, "sst2", output, epochs=2, batch_size=16, max_length=32,
                           data_dir=data_dir, save_every_steps=2, progress=False)
print(json.dumps(results["history"]))
"""


def test_teacher_finetuning_killed_mid_epoch_resumes_bit_identical(tmp_path, tiny_teacher,
                                                                    tiny_data_dir):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(output, point="none", nth=0):
        command = [sys.executable, "-c", TEACHER_DRIVER, point, str(nth), str(tiny_teacher),
                   str(tiny_data_dir), str(output)]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    full = run(tmp_path / "full")
    assert full.returncode == 0, full.stderr[-2000:]
    killed = run(tmp_path / "killed", "mid-epoch", 9)  # batch 9 of 12, after step 8's save
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "killed").exists()  # nothing that looks finished
    assert (tmp_path / ".killed.training" / "checkpoint" / "state.json").is_file()
    resumed = run(tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout) == json.loads(full.stdout)  # the same dev history
    a = _tensors(tmp_path / "full" / "model.safetensors")
    b = _tensors(tmp_path / "killed" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "killed"]  # work folders gone
    for name in ("config.json", "tokenizer.json", "results.json", "metrics.jsonl"):
        assert (tmp_path / "killed" / name).is_file()

"""A battery of bad inputs and faults across every sub-command, as a new user meets them.

Each case runs the real ``neurolang`` command line in a scratch folder and is classified:

- clean error: non-zero exit, one ``error:`` line naming the problem, no traceback;
- misleading: a clean error whose message does not name the problem (none of the words the
  case expects appears in it);
- traceback: a Python traceback reached the user;
- silent: exit 0 (or still running at the time limit) on bad input;
- data loss: a folder the command did not write changed (checked byte by byte).

Run it against this checkout, or any other one (``--source DIR``: that tree's ``neurolang``
package shadows the installed one, so an older commit can be measured with the same
environment)::

    .venv/bin/python benchmarks/bad_input_battery.py [--source DIR] [--only WORD] [--json OUT]

It builds its fixtures (a small random teacher, a student folder, a NIR file, a finished run)
with this checkout's code first, in a temporary folder; nothing outside it is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
READ_ONLY = "/sys/neurolang-battery"  # not writable, even for root


@dataclass
class Case:
    name: str
    args: list[str]
    expect: tuple[str, ...]  # any of these words in the message: it names the problem
    protect: str | None = None  # a folder (relative to the scratch folder) that must not change
    setup: str | None = None  # name of a setup step (see SETUPS)
    cwd: str = "."
    timeout: float = 120.0
    group: str = ""


@dataclass
class Outcome:
    case: str
    group: str
    kind: str
    exit_code: int | None
    message: str
    seconds: float
    details: dict = field(default_factory=dict)


# ---- fixtures ---------------------------------------------------------------------------------


def build_fixtures(base: Path) -> dict[str, Path]:
    """Teacher, data, student, NIR file, finished run: made once with this checkout's code."""
    import torch
    import transformers

    sys.path.insert(0, str(ROOT))
    from neurolang.checkpoint import save_pretrained
    from neurolang.config import preset
    from neurolang.models import build_model
    from neurolang.teachers import resolve_teacher_path

    f: dict[str, Path] = {}
    data = base / "data"
    (data / "sst2").mkdir(parents=True)
    for split, rows in (("train", 96), ("dev", 48)):
        lines = (SHARED / "sst2" / f"stsa.binary.{split}").read_text().splitlines()[:rows]
        (data / "sst2" / f"stsa.binary.{split}").write_text("\n".join(lines) + "\n")
    shutil.copytree(SHARED / "wikitext2", data / "wikitext2")
    f["data"] = data
    tokenizer = transformers.AutoTokenizer.from_pretrained(resolve_teacher_path("default"))
    config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32,
                                     num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64,
                                     num_labels=2)
    torch.manual_seed(0)
    f["teacher"] = base / "teacher"
    transformers.BertForSequenceClassification(config).save_pretrained(f["teacher"])
    tokenizer.save_pretrained(f["teacher"])
    f["model"] = base / "student"
    model = build_model(preset("tiny", vocab_size=len(tokenizer), max_length=32))
    save_pretrained(model, f["model"], tokenizer=tokenizer,
                    metadata={"stage": "distill", "teacher": str(f["teacher"]),
                              "label_names": []})
    f["config"] = base / "train.toml"
    f["config"].write_text(
        f'[model]\npreset = "tiny"\nmax_length = 32\n[teacher]\nname = "{f["teacher"]}"\n'
        f'finetuned = "{f["teacher"]}"\n[data]\ntask = "sst2"\ndata_dir = "{data}"\n'
        'max_length = 32\nunlabelled = ["task"]\nmax_unlabelled_samples = 64\n'
        '[predistill]\nepochs = 1\nbatch_size = 16\n[distill]\nepochs = 1\nbatch_size = 16\n'
        '[run]\nthreads = 1\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    f["nir"] = base / "model.nir"
    subprocess.run([sys.executable, "-m", "neurolang.cli", "export", str(f["model"]), "-o",
                    str(f["nir"])], check=True, env=env, capture_output=True)
    f["run"] = base / "finished-run"
    subprocess.run([sys.executable, "-m", "neurolang.cli", "train", "--config", str(f["config"]),
                    "-o", str(f["run"]), "--set", "predistill.enabled=false"], check=True,
                   env=env, capture_output=True)
    return f


def _foreign(folder: Path) -> None:
    (folder / "notes").mkdir(parents=True, exist_ok=True)
    (folder / "notes" / "ideas.md").write_text("keep me\n")
    (folder / "results.csv").write_text("run,accuracy\na,0.91\n")


def _copy_model(f, scratch: Path, name: str = "m") -> Path:
    target = scratch / name
    shutil.copytree(f["model"], target)
    return target


def _task_dir(scratch: Path, train: str, dev: str, name: str = "task") -> None:
    folder = scratch / name
    folder.mkdir()
    (folder / "train.tsv").write_text(train)
    (folder / "dev.tsv").write_text(dev)


def _rows(n: int, labels, text="sentence number") -> str:
    return "".join(f"{text} {i}\t{labels(i)}\n" for i in range(n))


SETUPS = {
    "foreign": lambda f, s: _foreign(s / "mine"),
    "foreign-cwd": lambda f, s: _foreign(s),
    "dir": lambda f, s: (s / "adir").mkdir(),
    "model": lambda f, s: _copy_model(f, s),
    "flipped": lambda f, s: _flip(_copy_model(f, s)),
    "truncated": lambda f, s: _truncate(_copy_model(f, s)),
    "no-tokenizer": lambda f, s: _drop(_copy_model(f, s), ("tokenizer.json",
                                                           "tokenizer_config.json")),
    "no-weights": lambda f, s: _drop(_copy_model(f, s), ("model.safetensors",)),
    "bad-config": lambda f, s: (_copy_model(f, s) / "config.json").write_text("{not json"),
    "config-dir": lambda f, s: _config_dir(_copy_model(f, s)),
    "weights-dir": lambda f, s: _weights_dir(_copy_model(f, s)),
    "run": lambda f, s: shutil.copytree(f["run"], s / "run"),
    "empty-file": lambda f, s: (s / "empty.tsv").write_text(""),
    "header-only": lambda f, s: (s / "head.tsv").write_text("text\tlabel\n"),
    "wrong-columns": lambda f, s: (s / "cols.tsv").write_text("sentence\tclass\nhi\t1\n"),
    "typo-label": lambda f, s: _task_dir(
        s, "text\tlabel\n" + _rows(40, lambda i: 7 if i == 13 else i % 2),
        "text\tlabel\n" + _rows(10, lambda i: i % 2)),
    "one-class": lambda f, s: _task_dir(s, "text\tlabel\n" + _rows(40, lambda i: 1),
                                        "text\tlabel\n" + _rows(10, lambda i: 1)),
    "unseen-dev-label": lambda f, s: _task_dir(
        s, "text\tlabel\n" + _rows(40, lambda i: i % 2),
        "text\tlabel\n" + _rows(10, lambda i: 2 if i == 3 else i % 2)),
    "empty-texts": lambda f, s: _task_dir(
        s, "text\tlabel\n" + "".join(f"\t{i % 2}\n" for i in range(40)),
        "text\tlabel\n" + "".join(f"\t{i % 2}\n" for i in range(10))),
    "five-classes": lambda f, s: _task_dir(s, "text\tlabel\n" + _rows(40, lambda i: i % 5),
                                           "text\tlabel\n" + _rows(10, lambda i: i % 5)),
    "huge-field": lambda f, s: _task_dir(
        s, "text\tlabel\n" + "word " * 60_000 + "\t0\n" + _rows(40, lambda i: i % 2),
        "text\tlabel\n" + _rows(10, lambda i: i % 2)),
    "garbage-nir": lambda f, s: (s / "bad.nir").write_bytes(b"\x89HDF\r\n garbage"),
    "truncated-checkpoint": lambda f, s: _truncated_checkpoint(f, s),
}


def _flip(folder: Path) -> None:
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))


def _truncate(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _drop(folder: Path, names) -> None:
    for name in names:
        (folder / name).unlink()


def _config_dir(folder: Path) -> None:
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()


def _weights_dir(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").mkdir()


def _truncated_checkpoint(f, scratch: Path) -> None:
    run = scratch / "run"
    shutil.copytree(f["run"], run)
    weights = run / "distill" / "checkpoint" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    for name in ("results.json", "distill/results.json"):
        (run / name).unlink()


# ---- the cases ------------------------------------------------------------------------------


def cases() -> list[Case]:
    T, C, D, M = "{teacher}", "{config}", "{data}", "m"
    train = ["train", "--config", C, "-o", "out"]
    out: list[Case] = []

    def add(group, name, args, expect, **kw):
        out.append(Case(name, args, tuple(expect), group=group, **kw))

    # data loss: a command writes where something else already is
    g = "data loss"
    add(g, "finetune-teacher into a foreign folder", ["finetune-teacher", "--teacher", T,
        "--output", "mine", "--data-dir", D], ["exists"], protect="mine", setup="foreign")
    add(g, "finetune-teacher --output .", ["finetune-teacher", "--teacher", T, "--output",
        ".", "--data-dir", D], ["exists", "current directory"], protect=".",
        setup="foreign-cwd")
    add(g, "import into a foreign folder", ["import", "{nir}", "-o", "mine"], ["exists"],
        protect="mine", setup="foreign")
    add(g, "setup-lava into a foreign folder", ["setup-lava", "--venv", "mine"], ["exists"],
        protect="mine", setup="foreign", timeout=60)
    add(g, "train into a foreign folder", ["train", "--config", C, "-o", "mine"], ["exists"],
        protect="mine", setup="foreign")
    add(g, "energy into a foreign folder", ["energy", "{model}", "-o", "mine", "--teacher",
        "none", "--simulators", "torch", "--data-dir", D, "--samples", "2"], ["exists"],
        protect="mine", setup="foreign")
    add(g, "build-teacher into a foreign folder", ["build-teacher", "-o", "mine", "--steps",
        "1", "--data-dir", D], ["exists"], protect="mine", setup="foreign")
    add(g, "predistill into a foreign folder", ["predistill", "--config", C, "-o", "mine"],
        ["exists"], protect="mine", setup="foreign")
    add(g, "distill into a foreign folder", ["distill", "--config", C, "--teacher", T, "-o",
        "mine"], ["exists"], protect="mine", setup="foreign")
    add(g, "train a finished run with another config", ["train", "--config", C, "-o", "run",
        "--set", "predistill.enabled=false", "--set", "distill.lr=0.01"],
        ["another config", "distill.lr"], protect="run", setup="run")
    add(g, "train --resume on a truncated checkpoint", ["train", "--config", C, "-o", "run",
        "--set", "predistill.enabled=false", "--resume"], ["damaged", "checkpoint"],
        protect="run", setup="truncated-checkpoint")

    # outputs that are folders, files or read-only
    g = "output paths"
    add(g, "export -o a folder", ["export", "{model}", "-o", "adir"], ["folder"], setup="dir")
    add(g, "parity --json a folder", ["parity", "--json", "adir"], ["folder"], setup="dir")
    add(g, "bench --json a folder", ["bench", "--preset", "tiny", "--backends", "torch",
        "--repeats", "1", "--json", "adir"], ["folder"], setup="dir")
    for name, args in (
            ("train", ["train", "--config", C, "-o", f"{READ_ONLY}/run"]),
            ("export", ["export", "{model}", "-o", f"{READ_ONLY}/m.nir"]),
            ("parity --json", ["parity", "--json", f"{READ_ONLY}/p.json"]),
            ("energy", ["energy", "{model}", "-o", f"{READ_ONLY}/e", "--teacher", "none",
                        "--simulators", "torch", "--data-dir", D, "--samples", "2"]),
            ("finetune-teacher", ["finetune-teacher", "--teacher", T, "--output",
                                  f"{READ_ONLY}/t", "--data-dir", D]),
            ("import", ["import", "{nir}", "-o", f"{READ_ONLY}/m"]),
            ("build-teacher", ["build-teacher", "-o", f"{READ_ONLY}/b", "--data-dir", D,
                               "--steps", "1"]),
            ("simulate --json", ["simulate", "{nir}", "--json", f"{READ_ONLY}/s.json",
                                 "--data-dir", D, "--samples", "2"])):
        add(g, f"{name} into a read-only folder", args, ["writ", "permission", "read-only"])

    # operating-system errors on inputs
    g = "input files"
    add(g, "train --config a folder", ["train", "--config", "adir", "-o", "out"],
        ["adir"], setup="dir")
    add(g, "evaluate with config.json a folder", ["evaluate", M, "--data-dir", D],
        ["config.json"], setup="config-dir")
    add(g, "export with the weights a folder", ["export", M, "-o", "x.nir"],
        ["model.safetensors"], setup="weights-dir")
    add(g, "train --config missing", ["train", "--config", "nope.toml", "-o", "out"],
        ["nope.toml"])
    add(g, "export a missing folder", ["export", "nope", "-o", "x.nir"], ["nope"])
    add(g, "import a garbage file", ["import", "bad.nir", "-o", "out"], ["bad.nir"],
        setup="garbage-nir")
    add(g, "simulate a garbage file", ["simulate", "bad.nir"], ["bad.nir"],
        setup="garbage-nir")

    # values
    g = "values"
    for args, expect in (
            (["parity", "--set", "attention_scale=abc"], "attention_scale"),
            (["parity", "--batch-size", "0"], "batch-size"),
            (["parity", "--set", "max_length=1"], "max_length"),
            (["parity", "--set", "vocab_size=1"], "vocab_size"),
            (["parity", "--set", "neuron.v_threshold=NaN"], "v_threshold"),
            (["parity", "--set", "neuron.tau=Infinity"], "tau"),
            (["parity", "--set", "neuron.surrogate_alpha=-1"], "surrogate_alpha"),
            (["parity", "--set", "neuron.reset=bogus"], "reset"),
            (["parity", "--set", "neuron.kind=izhikevich"], "kind"),
            (["parity", "--set", "num_heads=3"], "num_heads"),
            (["parity", "--dtype", "float16"], "dtype"),
            (["parity", "--backends", "jax"], "jax"),
            (["parity", "--preset", "nope"], "preset"),
            (["parity", "--set", "noequals"], "key=value"),
            (["bench", "--length", "0", "--preset", "tiny"], "length"),
            (["bench", "--batch-size", "0", "--preset", "tiny"], "batch-size"),
            (["bench", "--repeats", "0", "--preset", "tiny"], "repeats"),
            (["bench", "--dtype", "int8", "--preset", "tiny"], "dtype"),
            (train + ["--set", "run.device=tpu"], "device"),
            (train + ["--set", "run.init_embeddings=bogus"], "init_embeddings"),
            (train + ["--set", "distill.save_every_steps=0"], "save_every_steps"),
            (train + ["--set", "distill=3"], "distill"),
            (train + ["--set", "distill.temperature=0"], "temperature"),
            (train + ["--set", "distill.lr=-1"], "lr"),
            (train + ["--set", "distill.epochs=0"], "epochs"),
            (train + ["--set", "distill.warmup_ratio=2"], "warmup_ratio"),
            (train + ["--set", "distill.mixed_precision=fp8"], "mixed_precision"),
            (train + ["--set", "data.max_length=1"], "max_length"),
            (train + ["--set", "teacher.epochs=0"], "epochs"),
            (train + ["--set", "model.depth=0"], "depth"),
            (train + ["--set", "distill.icsfd.k=0"], "k"),
            (train + ["--set", "unknown.x=1"], "unknown"),
            (train + ["--set", "data.max_train_samples=-5"], "max_train_samples"),
            (train + ["--backend", "jax"], "jax"),
            (["export", "{model}", "-o", "x.nir", "--dt", "0"], "dt"),
            (["export", "{model}", "-o", "x.onnx", "--format", "onnx"], "format"),
            (["simulate", "{nir}", "--samples", "0", "--data-dir", D], "samples"),
            (["simulate", "{nir}", "--chunk", "0", "--data-dir", D], "chunk"),
            (["evaluate", "{model}", "--max-length", "0", "--data-dir", D], "max-length"),
            (["energy", "{model}", "--batch-size", "0", "--teacher", "none", "-o", "e"],
             "batch"),
            (["energy", "{model}", "--dtype", "float16", "--teacher", "none", "-o", "e"],
             "dtype"),
            (["energy", "{model}", "--samples", "0", "--teacher", "none", "-o", "e"],
             "samples"),
            (["energy", "{model}", "--simulators", "bogus", "--teacher", "none", "-o", "e"],
             "bogus"),
            (["finetune-teacher", "--teacher", T, "--epochs", "0", "--data-dir", D,
              "--output", "t"], "epochs"),
            (["finetune-teacher", "--teacher", T, "--lr", "0", "--data-dir", D,
              "--output", "t"], "lr"),
            (["finetune-teacher", "--teacher", T, "--threads", "-1", "--data-dir", D,
              "--output", "t"], "threads"),
            (["build-teacher", "-o", "b", "--vocab-size", "0", "--data-dir", D], "vocab"),
            (["build-teacher", "-o", "b", "--steps", "0", "--data-dir", D], "steps")):
        add(g, " ".join(a for a in args if not a.startswith("{") and a not in (C, D)),
            args, [expect])

    # data
    g = "data"
    for name, setup, task, expect in (
            ("empty file", "empty-file", "empty.tsv", ["empty", "no rows"]),
            ("header only", "header-only", "head.tsv", ["header", "no rows"]),
            ("wrong columns", "wrong-columns", "cols.tsv", ["column"]),
            ("a typo label", "typo-label", "task", ["7"]),
            ("a single class", "one-class", "task", ["one class"]),
            ("a dev label unseen in train", "unseen-dev-label", "task", ["never seen", "2"]),
            ("all texts empty", "empty-texts", "task", ["empty"]),
            ("5 classes for a 2-class model", "five-classes", "task", ["class"]),
            ("missing task", None, "/nonexistent/x.tsv", ["not found"]),
            ("unknown task", None, "sst7", ["sst7"])):
        add(g, f"evaluate on {name}", ["evaluate", "{model}", "--task", task, "--data-dir", D],
            expect, setup=setup)
    add(g, "train with an unknown unlabelled source", train + [
        "--set", "data.unlabelled=nonsense"], ["nonsense"])
    add(g, "train with a missing data_dir", train + ["--set", "data.data_dir=/nonexistent"],
        ["/nonexistent"])

    # model folders and teachers
    g = "models"
    for name, setup, expect in (
            ("flipped bytes", "flipped", ["damaged", "sha"]),
            ("truncated weights", "truncated", ["safetensors", "damaged"]),
            ("no tokenizer", "no-tokenizer", ["tokenizer"]),
            ("no weights", "no-weights", ["model.safetensors"]),
            ("garbage config.json", "bad-config", ["JSON", "config.json"])):
        add(g, f"evaluate a model with {name}", ["evaluate", M, "--data-dir", D], expect,
            setup=setup)
    add(g, "evaluate a teacher folder as a student", ["evaluate", T, "--data-dir", D],
        ["transformers", "teacher", "not a neurolang"])
    add(g, "finetune-teacher from a student folder", ["finetune-teacher", "--teacher",
        "{model}", "--output", "t", "--data-dir", D], ["student"])
    add(g, "finetune-teacher from a missing folder", ["finetune-teacher", "--teacher",
        "./nope", "--output", "t", "--data-dir", D], ["nope"])
    add(g, "train with a student as the fine-tuned teacher", train + [
        "--set", "teacher.finetuned={model}"], ["student"])
    add(g, "distill --stage1 a teacher folder", ["distill", "--config", C, "--teacher", T,
        "--stage1", T, "-o", "out"], ["not a neurolang", "transformers"])
    return out


# ---- running and judging ----------------------------------------------------------------------


def tree(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().lower().startswith("error")]


def run_case(case: Case, fixtures: dict[str, Path], source: Path, scratch_root: Path) -> Outcome:
    scratch = Path(tempfile.mkdtemp(prefix="case-", dir=scratch_root))
    if case.setup:
        SETUPS[case.setup](fixtures, scratch)
    values = {k: str(v) for k, v in fixtures.items()}
    args = [a.format(**values) for a in case.args]
    protected = scratch / case.protect if case.protect else None
    before = tree(protected) if protected else None
    env = {**os.environ, "PYTHONPATH": str(source), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "200",
           "NEUROLANG_LAVA_VENV": str(ROOT / ".venv-lava"), "OMP_NUM_THREADS": "1",
           "NEUROLANG_DATA_DIR": str(fixtures["data"])}
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "neurolang.cli", *args], cwd=scratch,
                              env=env, capture_output=True, text=True, timeout=case.timeout)
        code, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        code = None
        text = ((err.stdout or b"").decode(errors="replace")
                + (err.stderr or b"").decode(errors="replace"))
    seconds = time.perf_counter() - start
    errors = _error_lines(text)
    message = " ".join(" ".join(errors).split())[:300] if errors else text.strip()[-300:]
    if protected is not None and tree(protected) != before:
        kind = "data loss"
    elif "Traceback (most recent call last)" in text:
        kind = "traceback"
    elif code in (0, None):
        kind = "silent"
    elif not any(word.lower() in message.lower() for word in case.expect):
        kind = "misleading"
    else:
        kind = "clean error"
    shutil.rmtree(scratch, ignore_errors=True)
    return Outcome(case.name, case.group, kind, code, message, round(seconds, 1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT,
                        help="the checkout whose neurolang package is run (default: this one)")
    parser.add_argument("--only", default=None, help="only cases whose name has this word")
    parser.add_argument("--json", type=Path, default=None, help="write the outcomes here")
    args = parser.parse_args(argv)
    selected = [c for c in cases() if not args.only or args.only in c.name]
    with tempfile.TemporaryDirectory(prefix="neurolang-battery-") as tmp:
        base = Path(tmp)
        print(f"building fixtures in {base} ...", flush=True)
        fixtures = build_fixtures(base / "fixtures")
        (base / "cases").mkdir()
        outcomes = []
        for i, case in enumerate(selected, 1):
            outcome = run_case(case, fixtures, args.source.resolve(), base / "cases")
            outcomes.append(outcome)
            print(f"[{i:3d}/{len(selected)}] {outcome.kind:11s} {outcome.seconds:6.1f}s  "
                  f"{case.group}: {case.name}\n      {outcome.message[:160]}", flush=True)
    counts = Counter(o.kind for o in outcomes)
    order = ("clean error", "misleading", "traceback", "silent", "data loss")
    print(f"\n{len(outcomes)} cases: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in order))
    by_group = {}
    for o in outcomes:
        by_group.setdefault(o.group, Counter())[o.kind] += 1
    for group, c in by_group.items():
        print(f"  {group}: " + ", ".join(f"{c.get(k, 0)} {k}" for k in order if c.get(k)))
    if args.json:
        args.json.write_text(json.dumps([o.__dict__ for o in outcomes], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

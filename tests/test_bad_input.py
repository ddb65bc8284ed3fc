"""Bad input and faults, as a new user meets them: one clear line, a non-zero exit, no
traceback, and every earlier result byte-identical afterwards.

One parametrised test per root cause: a command replacing what it did not write, an output
that cannot be written (found before any work), an operating-system error, an unchecked value,
a misleading message, a silent wrong result.
"""

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neurolang.cli import app

READ_ONLY = Path("/sys/neurolang-test-output")  # not writable, even for root


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` with its SHA-256 (the folder's whole content)."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def invoke(args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    text = " ".join(result.output.split())
    return result, text


def assert_clean_error(result, text, *needles):
    assert result.exit_code not in (0, None), text
    assert "Traceback" not in result.output, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit), repr(result.exception)
    assert text.count("error:") == 1, text
    for needle in needles:
        assert needle in text, text


@pytest.fixture(scope="module")
def nir_file(model_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("nir") / "model.nir"
    result, text = invoke(["export", model_dir, "-o", path])
    assert result.exit_code == 0, text
    return path


@pytest.fixture()
def foreign(tmp_path):
    """Somebody's folder: notes and an earlier result that no command wrote."""
    folder = tmp_path / "my results"
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "ideas.md").write_text("keep me\n")
    (folder / "results.csv").write_text("run,accuracy\na,0.91\n")
    return folder


def train_config(tmp_path, teacher, data_dir, **extra):
    text = (f'[model]\npreset = "tiny"\nmax_length = 32\n[teacher]\nname = "{teacher}"\n'
            f'finetuned = "{teacher}"\n[data]\ntask = "sst2"\ndata_dir = "{data_dir}"\n'
            'max_length = 32\nunlabelled = ["task"]\nmax_unlabelled_samples = 64\n'
            '[predistill]\nepochs = 1\nbatch_size = 16\n[distill]\nepochs = 1\n'
            'batch_size = 16\n[run]\nthreads = 1\n')
    for key, value in extra.items():
        text += f"{key}\n{value}\n"
    path = tmp_path / "train.toml"
    path.write_text(text)
    return path


# ---- 1. a command replaces only what it recognises as its own ------------------------------


COMMANDS_INTO_FOLDERS = {
    "finetune-teacher": lambda c: ["finetune-teacher", "--teacher", c["teacher"], "--output",
                                   c["out"], "--data-dir", c["data"]],
    "import": lambda c: ["import", c["nir"], "-o", c["out"]],
    "setup-lava": lambda c: ["setup-lava", "--venv", c["out"]],
    "train": lambda c: ["train", "--config", c["config"], "-o", c["out"]],
    "energy": lambda c: ["energy", c["model"], "-o", c["out"], "--teacher", "none",
                         "--simulators", "torch", "--data-dir", c["data"], "--samples", "2"],
    "build-teacher": lambda c: ["build-teacher", "-o", c["out"], "--steps", "1"],
    "predistill": lambda c: ["predistill", "--config", c["config"], "-o", c["out"]],
    "distill": lambda c: ["distill", "--config", c["config"], "--teacher", c["teacher"],
                          "-o", c["out"]],
}


@pytest.mark.parametrize("command", sorted(COMMANDS_INTO_FOLDERS))
def test_no_command_replaces_a_folder_it_did_not_write(command, foreign, tmp_path, model_dir,
                                                       nir_file, tiny_teacher, tiny_data_dir):
    context = {"teacher": tiny_teacher, "out": foreign, "data": tiny_data_dir,
               "nir": nir_file, "model": model_dir,
               "config": train_config(tmp_path, tiny_teacher, tiny_data_dir)}
    before = tree(foreign)
    result, text = invoke(COMMANDS_INTO_FOLDERS[command](context))
    assert_clean_error(result, text, "already exists", "nothing was changed")
    assert tree(foreign) == before


def test_the_current_directory_is_never_replaced(foreign, tiny_teacher, tiny_data_dir,
                                                 monkeypatch):
    monkeypatch.chdir(foreign)
    before = tree(foreign)
    result, text = invoke(["finetune-teacher", "--teacher", tiny_teacher, "--output", ".",
                           "--data-dir", tiny_data_dir, "--overwrite"])
    assert_clean_error(result, text, "current directory")
    assert tree(foreign) == before


def test_a_file_where_a_folder_goes_and_a_folder_where_a_file_goes(tmp_path, model_dir):
    folder = tmp_path / "a folder.nir"
    folder.mkdir()
    (folder / "x").write_text("x")
    result, text = invoke(["export", model_dir, "-o", folder])
    assert_clean_error(result, text, "is a folder")
    plain = tmp_path / "file"
    plain.write_text("mine")
    result, text = invoke(["import", tmp_path / "missing.nir", "-o", plain])
    assert_clean_error(result, text)
    assert plain.read_text() == "mine"


# ---- 2. outputs that cannot be written are found before any work ---------------------------


def _read_only_available() -> bool:
    try:
        READ_ONLY.mkdir()
    except OSError:
        return True
    READ_ONLY.rmdir()
    return False


@pytest.mark.skipif(not _read_only_available(), reason="no read-only path on this machine")
@pytest.mark.parametrize("command", [
    lambda c: ["train", "--config", c["config"], "-o", READ_ONLY / "run"],
    lambda c: ["export", c["model"], "-o", READ_ONLY / "model.nir"],
    lambda c: ["parity", "--preset", "tiny", "--json", READ_ONLY / "parity.json"],
    lambda c: ["energy", c["model"], "-o", READ_ONLY / "energy", "--teacher", "none"],
    lambda c: ["finetune-teacher", "--teacher", c["teacher"], "--output", READ_ONLY / "t"],
    lambda c: ["import", c["nir"], "-o", READ_ONLY / "imported"],
    lambda c: ["bench", "--preset", "tiny", "--json", READ_ONLY / "bench.json"],
], ids=["train", "export", "parity", "energy", "finetune-teacher", "import", "bench"])
def test_read_only_output_is_refused_before_any_work(command, tmp_path, model_dir, nir_file,
                                                     tiny_teacher, tiny_data_dir):
    context = {"teacher": tiny_teacher, "model": model_dir, "nir": nir_file,
               "config": train_config(tmp_path, tiny_teacher, tiny_data_dir)}
    result, text = invoke(command(context))
    assert_clean_error(result, text, "cannot be written")


# ---- 3. operating-system errors are one line -------------------------------------------------


def test_unreadable_files_are_one_line(tmp_path, model_dir, monkeypatch, tiny_teacher,
                                       tiny_data_dir):
    config = train_config(tmp_path, tiny_teacher, tiny_data_dir)
    real = Path.read_text

    def denied(self, *args, **kwargs):
        if self.name in ("train.toml", "config.json"):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    result, text = invoke(["train", "--config", config, "-o", tmp_path / "run"])
    assert_clean_error(result, text, "train.toml", "permission denied")
    result, text = invoke(["evaluate", model_dir])
    assert_clean_error(result, text, "config.json", "permission denied")


# ---- 4. values are checked where they are parsed ---------------------------------------------


@pytest.mark.parametrize("args, needle", [
    (["parity", "--set", "attention_scale=abc"], "attention_scale"),
    (["parity", "--batch-size", "0"], "--batch-size"),
    (["parity", "--set", "max_length=1"], "max_length"),
    (["parity", "--set", "vocab_size=1"], "vocab_size"),
    (["parity", "--set", "neuron.v_threshold=NaN"], "v_threshold"),
    (["parity", "--set", "neuron.tau=Infinity"], "tau"),
    (["parity", "--set", "neuron.surrogate_alpha=-1"], "surrogate_alpha"),
    (["bench", "--length", "0", "--preset", "tiny"], "--length"),
    (["train", "--set", "run.device=tpu"], "device"),
    (["train", "--set", "run.init_embeddings=bogus"], "init_embeddings"),
    (["train", "--set", "distill.save_every_steps=0"], "save_every_steps"),
    (["train", "--set", "distill=3"], "[distill] must be a table"),
    (["train", "--set", "distill.temperature=0"], "temperature"),
    (["evaluate", "{model}", "--max-length", "0"], "--max-length"),
])
def test_bad_values_are_named(args, needle, tmp_path, model_dir):
    args = [a.format(model=model_dir) for a in args]
    if args[0] == "train":
        args += ["-o", str(tmp_path / "run")]
    result, text = invoke(args)
    assert_clean_error(result, text, needle)
    assert not (tmp_path / "run").exists()


def test_a_huge_csv_field_is_read(tmp_path, tiny_teacher):
    folder = tmp_path / "mine"
    folder.mkdir()
    long_text = "word " * 60_000  # 300 kB in one field
    (folder / "train.csv").write_text("text,label\n" + f'"{long_text}",0\n' +
                                      "".join(f"sentence {i},{i % 2}\n" for i in range(20)))
    (folder / "dev.csv").write_text("text,label\ngood,1\nbad,0\n")
    from neurolang.data import load_task

    data = load_task(str(folder))
    assert len(data["train"][0]["text"]) > 280_000


def test_a_truncated_checkpoint_under_resume(tmp_path, tiny_teacher, tiny_data_dir):
    config = train_config(tmp_path, tiny_teacher, tiny_data_dir)
    out = tmp_path / "stage2"
    args = ["distill", "--config", config, "--teacher", tiny_teacher, "-o", out,
            "--set", "distill.epochs=0.5"]
    result, text = invoke(args)
    assert result.exit_code == 0, text
    weights = out / "checkpoint" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    (out / "results.json").unlink()
    before = tree(out)
    result, text = invoke([*args, "--resume"])
    assert_clean_error(result, text, "damaged")
    assert tree(out) == before


# ---- 5. messages say what is wrong with what the user gave ----------------------------------


def test_messages_name_the_real_problem(tmp_path, model_dir, tiny_data_dir):
    no_tokenizer = tmp_path / "no tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((model_dir / name).read_bytes())
    result, text = invoke(["evaluate", no_tokenizer, "--data-dir", tiny_data_dir])
    assert_clean_error(result, text, "no tokenizer files")
    result, text = invoke(["finetune-teacher", "--teacher", model_dir, "--output",
                           tmp_path / "t", "--data-dir", tiny_data_dir])
    assert_clean_error(result, text, "spiking student, not a teacher")
    assert not (tmp_path / "t").exists()


def test_a_bad_transfer_set_is_refused_before_any_work(tmp_path, tiny_teacher):
    base = ["train", "--output", tmp_path / "run", "--set", f"teacher.name={tiny_teacher}",
            "--set", f"teacher.finetuned={tiny_teacher}"]
    result, text = invoke([*base, "--set", "data.task=rte", "--set", "data.transfer=glue_sst2"])
    assert_clean_error(result, text, "data.transfer takes single texts", "'rte'")
    result, text = invoke([*base, "--set", "data.transfer=bookcorpus"])
    assert_clean_error(result, text, "unknown unlabelled text source 'bookcorpus'")
    assert not (tmp_path / "run").exists()


# ---- 6. silent wrong results become errors ------------------------------------------------------


def test_flipped_bytes_in_the_weights_are_found(tmp_path, model_dir, tiny_data_dir):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in model_dir.iterdir():
        (damaged / path.name).write_bytes(path.read_bytes())
    data = bytearray((damaged / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (damaged / "model.safetensors").write_bytes(bytes(data))
    result, text = invoke(["evaluate", damaged, "--data-dir", tiny_data_dir])
    assert_clean_error(result, text, "damaged", "SHA-256")


def test_a_model_is_scored_only_on_its_own_classes(tmp_path, model_dir):
    folder = tmp_path / "five"
    folder.mkdir()
    (folder / "train.tsv").write_text("text\tlabel\n" + "".join(
        f"sentence {i}\t{i % 5}\n" for i in range(20)))
    (folder / "dev.tsv").write_text("text\tlabel\n" + "".join(
        f"line {i}\t{i % 5}\n" for i in range(10)))
    result, text = invoke(["evaluate", model_dir, "--task", folder])
    assert_clean_error(result, text, "2-class model", "5 classes")


def test_a_finished_run_refuses_another_config(tmp_path, tiny_teacher, tiny_data_dir):
    config = train_config(tmp_path, tiny_teacher, tiny_data_dir)
    out = tmp_path / "run"
    result, text = invoke(["train", "--config", config, "-o", out, "--set",
                           "predistill.enabled=false"])
    assert result.exit_code == 0, text
    before = tree(out)
    result, text = invoke(["train", "--config", config, "-o", out, "--set",
                           "predistill.enabled=false", "--set", "distill.lr=0.01"])
    assert_clean_error(result, text, "another config", "distill.lr")
    assert tree(out) == before
    # the same config again: the finished run is reported, nothing rewritten
    result, text = invoke(["train", "--config", config, "-o", out, "--set",
                           "predistill.enabled=false"])
    assert result.exit_code == 0, text
    assert tree(out) == before


def test_a_failed_run_leaves_no_folder_behind(tmp_path, tiny_teacher, tiny_data_dir,
                                              monkeypatch):
    import neurolang.distill.pipeline as pipeline
    from neurolang.checkpoint import CheckpointError

    def broken(*args, **kwargs):
        raise CheckpointError("the teacher broke")

    monkeypatch.setattr(pipeline, "distill", broken)
    config = train_config(tmp_path, tiny_teacher, tiny_data_dir)
    out = tmp_path / "run"
    result, text = invoke(["train", "--config", config, "-o", out, "--set",
                           "predistill.enabled=false"])
    assert_clean_error(result, text, "the teacher broke")
    assert not out.exists()


# ---- your own data set, as a new user tries it ----------------------------------------------


def test_own_tsv_folder_trains_with_its_sentences_as_stage1_text(tmp_path, tiny_teacher,
                                                                  tiny_data_dir):
    lines = (tiny_data_dir / "sst2" / "stsa.binary.train").read_text().splitlines()
    folder = tmp_path / "my data"
    folder.mkdir()
    rows = [line.split(" ", 1) for line in lines]
    (folder / "train.tsv").write_text("text\tlabel\n" + "".join(
        f"{text}\t{label}\n" for label, text in rows[:64]))
    (folder / "dev.tsv").write_text("text\tlabel\n" + "".join(
        f"{text}\t{label}\n" for label, text in rows[64:96]))
    config = train_config(tmp_path, tiny_teacher, tiny_data_dir)
    out = tmp_path / "run"
    result, text = invoke(["train", "--config", config, "-o", out, "--set",
                           f"data.task={folder}", "--set", "data.unlabelled=task"])
    assert result.exit_code == 0, text
    stage1 = json.loads((out / "predistill" / "results.json").read_text())
    assert stage1["samples"] == 64  # the task's own train sentences

"""The distillation engine: losses, teacher cache, trainer (resume, DDP, NaN), pipeline."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from neurolang import build_model, preset
from neurolang.cli import app
from neurolang.distill.config import load_train_config
from neurolang.distill.losses import (
    icsfd_per_sample,
    kd_kl_per_sample,
    layer_map,
    masked_mse_per_sample,
)
from neurolang.primitives import SpikingNeuron

# ---- losses ---------------------------------------------------------------------------------


def test_layer_map_spikebert_and_proportional():
    assert layer_map(6, 12) == [(0, 1), (1, 3), (2, 5), (3, 7), (4, 9), (5, 11)]
    assert layer_map(12, 12) == [(i, i + 1) for i in range(12)]
    assert layer_map(4, 6) == [(0, 1), (1, 2), (2, 4), (3, 5)]
    assert layer_map(6, 12, ignore=2)[0] == (2, 5)


def test_masked_mse_ignores_padding():
    a = torch.zeros(1, 3, 2)
    b = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert masked_mse_per_sample(a, b, mask).item() == pytest.approx(5.0)


def test_kd_kl_by_hand():
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[2.0, 0.0]])
    p = torch.softmax(t / 2, -1)
    expected = (p * (p.log() - torch.log(torch.tensor([0.5, 0.5])))).sum() * 4
    assert kd_kl_per_sample(s, t, 2.0).item() == pytest.approx(expected.item())
    assert kd_kl_per_sample(t, t, 1.0).item() == pytest.approx(0.0, abs=1e-7)


def test_icsfd_by_hand_and_no_shrinking_k():
    # one token, one feature: features are numbers
    student = torch.tensor([0.0, 0.0, 10.0]).reshape(3, 1, 1)
    teacher = torch.tensor([1.0, 3.0, 10.0]).reshape(3, 1, 1)
    mask = torch.ones(3, 1)
    labels = torch.tensor([0, 0, 1])
    loss = icsfd_per_sample(student, teacher, mask, labels, k=3)
    # sample 0: class {0, 1}: (1-0)^2 + (3-0)^2; sample 2 alone in its class: (10-10)^2
    assert loss.tolist() == pytest.approx([10.0, 10.0, 0.0])
    # k=1 takes the nearest only, for every sample (k is not shrunk by the small class)
    assert icsfd_per_sample(student, teacher, mask, labels, k=1).tolist() == pytest.approx(
        [1.0, 1.0, 0.0])


def test_icsfd_on_a_share_against_the_global_batch_equals_one_process():
    """A DDP share (every other row, padded to its own longest) against the whole batch's
    teacher states gives the one-process losses of those rows."""
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([7, 3, 5, 2, 6, 4])
    width = int(lengths.max())
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    student = torch.randn(6, width, 4, generator=gen, dtype=torch.float64)
    teacher = torch.randn(6, width, 4, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 0, 1, 1])
    whole = icsfd_per_sample(student, teacher, mask, labels, k=2)
    for rank in (0, 1):
        rows = torch.arange(rank, 6, 2)
        share = int(lengths[rows].max())
        part = icsfd_per_sample(student[rows, :share], teacher, mask[rows, :share], labels[rows],
                                k=2, teacher_mask=mask, teacher_labels=labels)
        torch.testing.assert_close(part, whole[rows], rtol=0, atol=1e-12)


# ---- a tiny end-to-end run ------------------------------------------------------------------


def _config_file(tmp_path, teacher, data_dir, **sections):
    text = f"""
[model]
preset = "tiny"
hidden_size = 32
num_heads = 4
depth = 2
time_steps = 2
max_length = 32
[teacher]
name = "{teacher}"
finetuned = "{teacher}"
[data]
task = "sst2"
data_dir = "{data_dir}"
max_length = 32
unlabelled = ["task"]
max_unlabelled_samples = 64
[predistill]
epochs = 1
batch_size = 16
save_every_steps = 2
[distill]
epochs = 2
batch_size = 16
save_every_steps = 2
[run]
threads = 1
"""
    for name, body in sections.items():
        text += f"\n[{name}]\n{body}\n"
    path = tmp_path / "train.toml"
    path.write_text(text)
    return path


def test_train_pipeline_end_to_end_and_skip_complete(tmp_path, tiny_teacher, tiny_data_dir):
    config = _config_file(tmp_path, tiny_teacher, tiny_data_dir)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--config", str(config), "-o", str(out),
                                      "--backend", "snntorch"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["backend"] == "snntorch"
    assert 0.0 <= results["student"]["dev"]["accuracy"] <= 1.0
    assert set(results["wall_time_s"]) == {"predistill", "distill"}
    distill = json.loads((out / "distill" / "results.json").read_text())
    # stage 2 loaded stage 1 strictly: everything carried over, nothing initialised
    assert distill["stage1"]["initialised"] == []
    assert "blocks.0.attention.query.linear.weight" in distill["stage1"]["carried_over"]
    assert (out / "distill" / "best" / "model.safetensors").is_file()
    assert (out / "training_curves.png").is_file()
    lines = (out / "distill" / "metrics.jsonl").read_text().splitlines()
    assert any("dev_accuracy" in json.loads(line) for line in lines)
    # a second run skips both complete stages
    before = (out / "distill" / "best" / "model.safetensors").stat().st_mtime_ns
    again = CliRunner().invoke(app, ["train", "--config", str(config), "-o", str(out)])
    assert again.exit_code == 0, again.output
    assert (out / "distill" / "best" / "model.safetensors").stat().st_mtime_ns == before


def _distill_args(config, teacher, out):
    return [sys.executable, "-m", "neurolang.cli", "distill", "--config", str(config),
            "--teacher", str(teacher), "-o", str(out)]


def test_kill_and_resume_gives_identical_weights(tmp_path, tiny_teacher, tiny_data_dir):
    config = _config_file(tmp_path, tiny_teacher, tiny_data_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full"
    subprocess.run(_distill_args(config, tiny_teacher, full), check=True, env=env,
                   capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_distill_args(config, tiny_teacher, killed), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoint" / "state.json").is_file() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((killed / "checkpoint" / "state.json").read_text())
    assert state["batch"] < 12  # killed before the end (2 epochs of 6 batches)
    subprocess.run(_distill_args(config, tiny_teacher, killed) + ["--resume"], check=True,
                   env=env, capture_output=True)
    a = load_file(str(full / "checkpoint" / "weights.safetensors"))
    b = load_file(str(killed / "checkpoint" / "weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_run_seed_moves_every_stage_seed(tmp_path, tiny_teacher, tiny_data_dir):
    """``--set run.seed=1`` trains another model of the same config (it used to change
    nothing once the teacher was given), and the same one as the stage's own seed moved by 1."""
    config = _config_file(tmp_path, tiny_teacher, tiny_data_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    weights = {}
    for name, extra in (("default", []), ("run1", ["--set", "run.seed=1"]),
                        ("distill1", ["--set", "distill.seed=1"])):
        out = tmp_path / name
        done = subprocess.run(_distill_args(config, tiny_teacher, out) + extra, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        weights[name] = load_file(str(out / "checkpoint" / "weights.safetensors"))
    assert any(not torch.equal(weights["default"][k], weights["run1"][k])
               for k in weights["default"])
    for key in weights["run1"]:
        assert torch.equal(weights["run1"][key], weights["distill1"][key]), key


@pytest.mark.parametrize("icsfd", [False, True])
def test_two_processes_train_the_same_model_as_one(tmp_path, tiny_teacher, tiny_data_dir,
                                                   icsfd):
    """DDP over 2 gloo processes trains the weights 1 process does. With ICSFD, each process
    finds the nearest same-class teacher features among the whole global batch, as one
    process does, not only among its own share."""
    sections = {"distill.icsfd": "enabled = true\nweight = 0.5\nk = 3"} if icsfd else {}
    config = _config_file(tmp_path, tiny_teacher, tiny_data_dir, **sections)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = tmp_path / "one"
    subprocess.run(_distill_args(config, tiny_teacher, one), check=True, env=env,
                   capture_output=True)
    two = tmp_path / "two"
    # --multi_gpu selects torch.distributed.run; with no GPU the Accelerator (cpu=True) joins
    # a gloo process group: multi-CPU DDP
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
              "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no", "-m", "neurolang.cli", "distill", "--config",
              str(config), "--teacher", str(tiny_teacher), "-o", str(two)]
    done = subprocess.run(launch, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((two / "checkpoint" / "state.json").read_text())
    assert state["world"] == 2
    a = load_file(str(one / "checkpoint" / "weights.safetensors"))
    b = load_file(str(two / "checkpoint" / "weights.safetensors"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key


def test_nan_loss_stops_with_message_and_keeps_checkpoint(tmp_path, tiny_teacher, tiny_data_dir):
    config = _config_file(tmp_path, tiny_teacher, tiny_data_dir)
    out = tmp_path / "nan"
    result = CliRunner().invoke(app, ["distill", "--config", str(config), "--teacher",
                                      str(tiny_teacher), "-o", str(out),
                                      "--set", "distill.lr=1e30", "--set", "distill.grad_clip=0"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "the loss became" in text and "last good checkpoint" in text


# ---- bad input: one clear error before training ---------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--set", "data.task=/nonexistent/file.tsv"], "not found"),
        (["--set", "data.task=sst7"], "unknown task 'sst7'"),
        (["--backend", "jax"], "unknown backend 'jax'"),
        (["--set", "distill.colour=1"], "unknown option(s) ['colour'] in [distill]"),
        (["--set", "model.depth=0"], "depth must be a positive integer"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, tiny_teacher, tiny_data_dir, overrides,
                                      message):
    config = _config_file(tmp_path, tiny_teacher, tiny_data_dir)
    out = tmp_path / "bad"
    result = CliRunner().invoke(app, ["train", "--config", str(config), "-o", str(out),
                                      *overrides])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (out / "distill").exists()


def test_bad_data_files_are_clear_errors(tmp_path, tiny_teacher, tiny_data_dir):
    bad = tmp_path / "data" / "sst2"
    bad.mkdir(parents=True)
    (bad / "stsa.binary.train").write_bytes("1 caf\xe9 ok\n".encode("latin-1"))
    (bad / "stsa.binary.dev").write_text("7 label out of range\n")
    config = _config_file(tmp_path, tiny_teacher, tmp_path / "data")
    result = CliRunner().invoke(app, ["train", "--config", str(config), "-o",
                                      str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "UTF-8" in result.output or "utf-8" in result.output


def test_vocabulary_mismatch_is_refused(tmp_path, tiny_data_dir):
    transformers = pytest.importorskip("transformers")
    teacher = tmp_path / "odd-teacher"
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        __import__("neurolang.teachers", fromlist=["x"]).resolve_teacher_path("default"))
    config = transformers.BertConfig(vocab_size=1000, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, num_labels=2)
    transformers.BertForSequenceClassification(config).save_pretrained(teacher)
    tokenizer.save_pretrained(teacher)
    from neurolang.teachers import load_teacher

    with pytest.raises(ValueError, match="vocabulary"):
        load_teacher(teacher, student_vocab_size=tokenizer.vocab_size)


def test_stage1_of_another_shape_is_refused(tmp_path, tiny_teacher, tiny_data_dir):
    from neurolang import Spikformer, preset
    from neurolang.checkpoint import CheckpointError, save_pretrained
    from neurolang.distill.stages import load_stage1

    other = Spikformer(preset("tiny", hidden_size=16))
    save_pretrained(other, tmp_path / "stage1")
    with pytest.raises(CheckpointError, match="does not fit the student"):
        load_stage1(Spikformer(preset("tiny")), tmp_path / "stage1")


def test_train_config_documented_defaults():
    config = load_train_config(None)
    assert config.distill.w_ce == 0.1 and config.distill.w_logit == 1.0
    assert config.distill.w_emb == 0.1 and config.distill.w_rep == 0.1
    assert Path("examples/sst2.toml").is_file()
    assert load_train_config("examples/sst2.toml").model.hidden_size == 384


@pytest.mark.parametrize("path", sorted(p.name for p in Path("examples").glob("*.toml")
                                        if p.name != "energy.toml"))
def test_every_example_config_loads_and_names_a_known_task(path):
    from neurolang.data.tasks import TASKS

    config = load_train_config(Path("examples") / path)
    assert config.data.task in TASKS
    if path.startswith("spikebert_"):  # the full-size GPU configs: SpikeBERT's student
        assert (config.model.hidden_size, config.model.depth) == (768, 12)
        assert config.data.max_train_samples in (None, 0)


# ---- selection metric and sentence-pair tasks -----------------------------------------------


def test_select_metric_is_validated_and_canonical():
    config = load_train_config(None, {"distill.select_metric": "matthews_correlation",
                                      "teacher.select_metric": "acc"})
    assert config.distill.select_metric == "mcc" and config.teacher.select_metric == "accuracy"
    assert load_train_config(None).distill.select_metric == ""  # the task's own
    from neurolang.config import ConfigError

    with pytest.raises(ConfigError, match="unknown metric 'kappa'"):
        load_train_config(None, {"distill.select_metric": "kappa"})
    for name in ("cola", "rte", "mrpc", "sst5_roberta"):
        assert load_train_config(f"examples/{name}.toml").data.task == name.split("_")[0]
    assert load_train_config("examples/sst5_roberta.toml").distill.select_metric == "mcc"


def test_pair_task_pipeline_selects_on_the_configured_metric(tmp_path, tiny_teacher):
    """RTE-shaped pairs through both stages with a BERT teacher: the teacher gets segment ids,
    the student reads [CLS] A [SEP] B [SEP] ids only; selection on F1 (not RTE's accuracy)."""
    source = Path(__file__).resolve().parents[2] / "shared" / "data" / "rte" / "amrnag_split"
    if not source.is_dir():
        pytest.skip("../shared/data is not available")
    folder = tmp_path / "data" / "rte" / "amrnag_split"
    folder.mkdir(parents=True)
    for name, rows in (("train.tsv", 65), ("val.tsv", 32), ("dev.tsv", 41)):
        lines = source.joinpath(name).read_text().splitlines()[:rows]
        folder.joinpath(name).write_text("\n".join(lines) + "\n")
    config = _config_file(tmp_path, tiny_teacher, tmp_path / "data")
    text = config.read_text().replace('task = "sst2"', 'task = "rte"')
    config.write_text(text)
    out = tmp_path / "run"
    # the tiny random teacher has a two-label head: it fits RTE's labels
    result = CliRunner().invoke(app, ["train", "--config", str(config), "-o", str(out),
                                      "--set", "distill.select_metric=f1"])
    assert result.exit_code == 0, result.output
    distill = json.loads((out / "distill" / "results.json").read_text())
    assert distill["selection_metric"] == "f1" and set(distill["dev"]) == {"accuracy", "f1"}
    scored = [r for r in distill["history"] if "dev_f1" in r]
    assert distill["best_epoch"] == max(scored, key=lambda r: r["dev_f1"])["epoch"]
    from neurolang.data import load_task, tokenize
    from neurolang.teachers import load_teacher

    teacher = load_teacher(tiny_teacher)
    pairs = tokenize(load_task("rte", data_dir=tmp_path / "data")["validation"],
                     teacher.tokenizer, 32)
    ids = pairs[0]["input_ids"]
    sep = teacher.tokenizer.sep_token_id
    assert ids[0] == teacher.tokenizer.cls_token_id and ids.count(sep) == 2
    assert set(pairs[0]["token_type_ids"]) == {0, 1} and teacher.uses_token_types


def test_tensorboard_logging_through_accelerate(tmp_path, tiny_teacher, tiny_data_dir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = _config_file(tmp_path, tiny_teacher, tiny_data_dir)
    out = tmp_path / "logged"
    result = CliRunner().invoke(app, ["distill", "--config", str(config), "--teacher",
                                      str(tiny_teacher), "-o", str(out),
                                      "--set", "run.log_with=tensorboard"])
    assert result.exit_code == 0, result.output
    runs = [p.parent for p in (out / "logs").rglob("events.out.tfevents.*")]
    assert runs, "no TensorBoard event file"
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    assert {"loss", "dev_accuracy"} <= set(events.Tags()["scalars"])
    logged = [e.value for e in events.Scalars("dev_accuracy")]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged == pytest.approx([r["dev_accuracy"] for r in lines if "dev_accuracy" in r])


@pytest.mark.parametrize("kind, expected", [
    # warm-up over 2 of 6 steps (0, 1/2), then down to 0 by step 6 or flat
    ("linear", [0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0]),
    ("cosine", [0.0, 0.5, 1.0, 0.8535534, 0.5, 0.1464466, 0.0]),
    ("constant", [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]),
])
def test_schedules_are_transformers_own_worked_example(kind, expected):
    from neurolang.trainer import make_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_scheduler(optimizer, kind, warmup=2, total=6)
    factors = []
    for _ in range(7):
        factors.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert factors == pytest.approx(expected, abs=1e-6)


def test_firing_rate_penalty_by_hand_and_its_gradient():
    from neurolang.distill.losses import SpikeRecorder, firing_rate_per_sample

    config = preset("tiny", block="spike_driven", encoding="repeat", norm="batch")
    torch.manual_seed(0)
    model = build_model(config)
    ids = torch.randint(1, 512, (2, 6))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    with SpikeRecorder(model) as spikes:
        model(ids, mask)
    assert len(spikes.outputs) == sum(isinstance(m, SpikingNeuron) for m in model.modules())
    penalty = firing_rate_per_sample(spikes.outputs, mask, target=0.0)
    # by hand: each population's rate over the real tokens of each sample, then the mean
    by_hand = []
    for x, _ in spikes.outputs.values():
        s = x.reshape(4, 2, 6, -1)
        by_hand.append(torch.stack([s[:, 0].mean(), s[:, 1, :3].mean()]))
    assert torch.allclose(penalty, torch.stack(by_hand).mean(0))
    assert torch.equal(firing_rate_per_sample(spikes.outputs, mask, target=1.0),
                       torch.zeros(2))  # no population fires above 100%
    penalty.sum().backward()  # through the surrogate gradients
    assert model.blocks[0].mlp.fc1.linear.weight.grad.abs().sum() > 0


def test_synapse_weighted_rate_penalty_tracks_synaptic_operations():
    """``rate_weighting = "synapses"``: each population weighted by the weights its spikes
    drive, found in the graph; the Spikformer's spikes drive every Linear reading the integer
    stream they are added into."""
    from neurolang.distill.losses import (
        SpikeRecorder,
        firing_rate_per_sample,
        synapses_per_population,
    )

    config = preset("tiny", block="spike_driven", encoding="repeat", norm="batch")
    d, hidden, labels = config.hidden_size, config.mlp_hidden_size, config.num_labels
    torch.manual_seed(1)
    model = build_model(config)
    synapses = synapses_per_population(model)
    assert synapses["blocks.0.attention.stream_neuron"] == d * 3 * d  # W_q, W_k, W_v
    assert synapses["blocks.0.attention.query.neuron"] == 0  # read by the attention product
    assert synapses["blocks.0.attention.attention_neuron"] == d * d  # W_o
    assert synapses["blocks.1.mlp.stream_neuron"] == d * hidden  # W_1
    assert synapses["blocks.1.mlp.fc1.neuron"] == hidden * d  # W_2
    assert synapses["head.neuron"] == d * labels
    ids = torch.randint(1, 512, (2, 6))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    with SpikeRecorder(model) as spikes:
        model(ids, mask)
    rates = {name: torch.stack([x.reshape(4, 2, 6, -1)[:, 0].mean(),
                                x.reshape(4, 2, 6, -1)[:, 1, :3].mean()])
             for name, (x, _) in spikes.outputs.items()}
    by_hand = sum(synapses[n] * r for n, r in rates.items()) / sum(synapses.values())
    penalty = firing_rate_per_sample(spikes.outputs, mask, 0.0, synapses)
    assert torch.allclose(penalty, by_hand)
    saturated = dict(spikes.outputs)  # the query neurons drive no weights: not counted
    x, module = saturated["blocks.0.attention.query.neuron"]
    saturated["blocks.0.attention.query.neuron"] = (torch.ones_like(x), module)
    assert torch.equal(firing_rate_per_sample(saturated, mask, 0.0, synapses), penalty)
    assert not torch.equal(firing_rate_per_sample(saturated, mask, 0.0),
                           firing_rate_per_sample(spikes.outputs, mask, 0.0))
    penalty.sum().backward()
    assert model.blocks[0].mlp.fc1.linear.weight.grad.abs().sum() > 0

    spikformer = build_model(preset("tiny"))
    stream = synapses_per_population(spikformer)
    d = spikformer.config.hidden_size
    # block 0's attention output is added into the stream: it drives block 0's MLP W_1 and
    # all of block 1 (W_q, W_k, W_v, W_1): 2 * D * hidden + 3 * D * D
    assert stream["blocks.0.attention.output.neuron"] == (
        2 * d * spikformer.config.mlp_hidden_size + 3 * d * d)


def test_two_runs_building_one_teacher_cache_at_once(tmp_path, tiny_teacher):
    """A second run that finishes computing the same teacher outputs after the first one
    renamed its cache into place uses that cache (it once failed: 'directory not empty')."""
    import datasets

    from neurolang.data import tokenize
    from neurolang.distill.cache import TeacherCache
    from neurolang.teachers import load_teacher

    teacher = load_teacher(tiny_teacher, task_head=True)
    rows = datasets.Dataset.from_dict({"text": ["a fine film", "dull", "not bad at all"],
                                       "label": [1, 0, 1]})
    data = tokenize(datasets.DatasetDict({"train": rows}), teacher.tokenizer, 16)["train"]
    compute = TeacherCache._compute
    calls = []

    def racing(teacher_, dataset, layers, folder, *args):
        compute(teacher_, dataset, layers, folder, *args)
        if not calls:  # the other run finishes first, while this one is still writing
            calls.append(None)
            calls[0] = TeacherCache.build(teacher, data, [1, 2], tmp_path)

    TeacherCache._compute = staticmethod(racing)
    try:
        cache = TeacherCache.build(teacher, data, [1, 2], tmp_path)
    finally:
        TeacherCache._compute = staticmethod(compute)
    assert calls and cache.folder == calls[0].folder
    assert [p.name for p in tmp_path.iterdir()] == [cache.folder.name]  # no partial one left
    width = max(data["length"])
    logits, hidden = cache.batch(torch.arange(3), width)
    assert logits.shape == (3, 2) and hidden[2].shape[:2] == (3, width)

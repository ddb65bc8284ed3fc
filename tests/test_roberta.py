"""RoBERTa teachers (IceSpike) end to end: a tiny byte-level BPE tokenizer trained here, a tiny
RoBERTa pre-trained by the builder, fine-tuned with MCC selection and distilled through both
stages; plus the RoBERTa specifics (pair encoding, pad id, position offset, no segment ids)."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from neurolang import build_model, preset  # noqa: E402
from neurolang.cli import app  # noqa: E402
from neurolang.data import load_task, tokenize  # noqa: E402
from neurolang.distill.stages import _init_blocks, _init_embeddings  # noqa: E402
from neurolang.teachers import (  # noqa: E402
    TeacherError,
    finetune_teacher,
    load_teacher,
    resolve_teacher_path,
)
from neurolang.teachers.build import (  # noqa: E402
    build_roberta_teacher,
    mask_tokens,
    train_bpe_tokenizer,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def sst5_dir(tmp_path_factory):
    """A data folder with a small SST-5 (160 train, 60 dev rows, 5 classes) and WikiText-2."""
    if not (SHARED_DATA / "sst5").is_dir():
        pytest.skip("../shared/data is not available")
    root = tmp_path_factory.mktemp("data5")
    (root / "sst5").mkdir()
    for split, rows in (("train", 160), ("dev", 60)):
        lines = (SHARED_DATA / "sst5" / f"stsa.fine.{split}").read_text().splitlines()[:rows]
        (root / "sst5" / f"stsa.fine.{split}").write_text("\n".join(lines) + "\n")
    (root / "wikitext2").mkdir()
    for name in ("valid.txt", "test.txt"):
        lines = (SHARED_DATA / "wikitext2" / name).read_text().splitlines()[:120]
        (root / "wikitext2" / name).write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory, sst5_dir):
    """A tiny RoBERTa (hidden 32, 2 layers) built by ``build_roberta_teacher``: BPE tokenizer
    trained on the tiny WikiText-2 + SST-5 sentences, a few MLM steps."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("roberta") / "teacher"
    build_roberta_teacher(folder, ["wikitext2", "sst5"], data_dir=sst5_dir, vocab_size=600,
                          hidden_size=32, num_layers=2, num_heads=2, max_length=32, steps=6,
                          batch_size=8, progress=False)
    return folder


def test_bpe_tokenizer_has_robertas_special_tokens_and_pair_encoding():
    texts = ["a fine film .", "it is not a good film at all .", "the acting is fine"] * 20
    tokenizer = train_bpe_tokenizer(texts, vocab_size=300, min_frequency=1)
    assert [tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id,
            tokenizer.unk_token_id, tokenizer.mask_token_id] == [0, 1, 2, 3, 4]
    assert tokenizer.cls_token == "<s>" and tokenizer.sep_token == "</s>"
    ids = tokenizer("a fine film", "it is not")["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    # <s> A </s></s> B </s>
    assert tokens[0] == "<s>" and tokens[-1] == "</s>"
    first_end = tokens.index("</s>")
    assert tokens[first_end + 1] == "</s>" and tokens.count("</s>") == 3
    assert tokenizer.decode(ids[1:first_end]) == "a fine film"
    with pytest.raises(ValueError, match="at least 261"):
        train_bpe_tokenizer(texts, vocab_size=100)


def test_roberta_hub_names_flow_to_from_pretrained():
    """Online users name IceBERT or RoBERTa on the Hub: the name is passed on untouched."""
    for name in ("mideind/IceBERT-ic3", "roberta-base", "FacebookAI/roberta-base"):
        assert resolve_teacher_path(name) == name


def test_mask_tokens_follows_the_80_10_10_rule():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (200, 100), generator=generator)
    ids[:, 0], ids[:, -1] = 0, 2
    inputs, labels = mask_tokens(ids, mask_token_id=4, vocab_size=1000, special_ids=[0, 1, 2, 3, 4],
                                 probability=0.15, generator=generator)
    chosen = labels != -100
    assert not chosen[:, 0].any() and not chosen[:, -1].any()  # specials are never chosen
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])  # unchosen tokens untouched
    rate = chosen.float().mean().item()
    assert 0.13 < rate < 0.17
    masked = (inputs[chosen] == 4).float().mean().item()
    kept = (inputs[chosen] == ids[chosen]).float().mean().item()
    assert 0.75 < masked < 0.85 and 0.07 < kept < 0.14
    assert (inputs >= 5).sum() + (inputs == 4).sum() + (inputs <= 2).sum() == inputs.numel()


def test_built_teacher_is_a_normal_roberta_folder(roberta_dir):
    results = json.loads((roberta_dir / "results.json").read_text())
    assert results["steps"] == 6 and results["model_type"] == "roberta"
    loss = results["held_out_mlm_loss"]
    assert loss["final"] < loss["initial"]  # even 6 steps learn the token frequencies
    config = transformers.AutoConfig.from_pretrained(roberta_dir)
    assert config.model_type == "roberta" and config.architectures == ["RobertaForMaskedLM"]
    assert config.max_position_embeddings == 32 + 2 and config.type_vocab_size == 1
    teacher = load_teacher(roberta_dir)  # a bare encoder (no classification head)
    assert teacher.num_labels is None and teacher.model_type == "roberta"
    assert teacher.tokenizer.pad_token_id == 1
    assert teacher.word_embeddings is teacher.model.embeddings.word_embeddings.weight
    assert teacher.position_offset == 2 and teacher.max_tokens == 32
    assert not teacher.uses_token_types
    with pytest.raises(TeacherError, match="positions for 32 tokens"):
        teacher.check_length(64)
    with pytest.raises(TeacherError, match="already exists"):
        build_roberta_teacher(roberta_dir, ["wikitext2"])


def test_position_and_word_embeddings_copied_with_robertas_offset(roberta_dir):
    teacher = load_teacher(roberta_dir, task_head=True, num_labels=5)
    assert teacher.word_embeddings is teacher.model.roberta.embeddings.word_embeddings.weight
    student = build_model(preset("tiny", hidden_size=32, vocab_size=teacher.vocab_size,
                                max_length=16, position_embedding=True, num_labels=5))
    copied = _init_embeddings(student, teacher, "teacher")
    assert copied == ["embedding.weight", "position.weight"]
    positions = teacher.model.roberta.embeddings.position_embeddings.weight
    torch.testing.assert_close(student.position.weight, positions[2:18])
    torch.testing.assert_close(student.embedding.weight, teacher.word_embeddings)
    # the student's position p is the teacher's: RoBERTa numbers real tokens from pad id + 1
    ids = teacher.tokenizer(["a fine film"], return_tensors="pt")["input_ids"]
    from transformers.models.roberta.modeling_roberta import RobertaEmbeddings

    made = RobertaEmbeddings.create_position_ids_from_input_ids(ids, padding_idx=1)
    assert made[0, 0].item() == 2


def test_bert_teacher_positions_start_at_zero(tiny_teacher):
    teacher = load_teacher(tiny_teacher)
    assert teacher.position_offset == 0 and teacher.uses_token_types
    student = build_model(preset("tiny", hidden_size=32, vocab_size=teacher.vocab_size,
                                max_length=16, position_embedding=True))
    _init_embeddings(student, teacher, "teacher")
    torch.testing.assert_close(student.position.weight, teacher.position_embeddings[:16])


@pytest.mark.parametrize("block", ["spikformer", "spike_driven", "spikelm"])
@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_blocks_initialised_from_the_aligned_teacher_layers(kind, block, tiny_teacher,
                                                             roberta_dir):
    teacher = load_teacher(tiny_teacher if kind == "bert" else roberta_dir)
    layers = teacher.model.base_model.encoder.layer
    # as wide as the tiny teachers (2 layers): block i <- layer k(i) - 1 = i
    ratio = teacher.model.config.intermediate_size // 32
    student = build_model(preset("tiny", hidden_size=32, vocab_size=teacher.vocab_size,
                                 num_heads=2, mlp_ratio=ratio, block=block))
    before = {k: v.clone() for k, v in student.state_dict().items()}
    assert _init_blocks(student, teacher, "random") == []
    copied = _init_blocks(student, teacher, "teacher")
    # q, k, v, attention output, fc1, fc2 per block; SpikeLM's two LayerNorms too
    assert len(copied) == 2 * (8 if block == "spikelm" else 6)
    for i, layer in enumerate(layers):
        pairs = [("attention.query", layer.attention.self.query),
                 ("attention.value", layer.attention.self.value),
                 ("attention.output", layer.attention.output.dense),
                 ("mlp.fc1", layer.intermediate.dense), ("mlp.fc2", layer.output.dense)]
        if block == "spikelm":
            pairs += [("attention_norm", layer.attention.output.LayerNorm),
                      ("ffn_norm", layer.output.LayerNorm)]
        for role, source in pairs:
            if block == "spikelm":
                role = role.replace("mlp.", "ffn.")
            target = student.blocks[i].get_submodule(role)
            target = getattr(target, "linear", target)
            torch.testing.assert_close(target.weight, source.weight)
            torch.testing.assert_close(target.bias, source.bias)
    changed = {k for k, v in student.state_dict().items() if not torch.equal(v, before[k])}
    # nothing else moved (a random BERT's biases are zero and its LayerNorms 1/0, like the
    # student's: the projections' weights are what must change)
    assert {k for k in changed if k.endswith("weight") and "norm" not in k} == {
        f"{n}.weight" for n in copied if not n.endswith("norm")}
    assert changed <= {f"{n}.{p}" for n in copied for p in ("weight", "bias")}


def test_blocks_of_another_width_keep_their_init(tiny_teacher):
    teacher = load_teacher(tiny_teacher)
    student = build_model(preset("tiny", hidden_size=32, vocab_size=teacher.vocab_size,
                                 mlp_ratio=4))  # MLP 128 against the teacher's 64
    copied = _init_blocks(student, teacher, "teacher")
    assert copied and not any("fc" in name for name in copied)


def test_roberta_finetune_with_mcc_selection(tmp_path, roberta_dir, sst5_dir):
    torch.set_num_threads(1)
    results = finetune_teacher(roberta_dir, "sst5", tmp_path / "tuned", epochs=2, batch_size=32,
                               max_length=32, lr=1e-3, data_dir=sst5_dir, progress=False,
                               selection_metric="matthews_correlation")
    assert results["selection_metric"] == "mcc"
    assert set(results["metrics"]) == {"accuracy", "macro_f1", "mcc"}
    best = max(results["history"], key=lambda r: r["validation"]["mcc"])
    assert results["best_epoch"] == best["epoch"]
    tuned = load_teacher(tmp_path / "tuned")
    assert tuned.num_labels == 5 and tuned.model_type == "roberta"
    with pytest.raises(TeacherError, match="positions for 32 tokens"):
        finetune_teacher(roberta_dir, "sst5", tmp_path / "long", max_length=64,
                         data_dir=sst5_dir, progress=False)
    with pytest.raises(ValueError, match="unknown metric 'kappa'"):
        finetune_teacher(roberta_dir, "sst5", tmp_path / "kappa", data_dir=sst5_dir,
                         selection_metric="kappa", progress=False)


def test_roberta_pair_task_fine_tunes_without_segment_ids(tmp_path, roberta_dir):
    """A pair task (RTE-like) through a RoBERTa teacher: ``<s> A </s></s> B </s>``, the
    tokenizer's all-zero segment ids never reach the model (type_vocab_size 1)."""
    rows = [("a man eats", "someone eats", "entailment"),
            ("a dog runs", "a cat sleeps", "not_entailment")] * 24
    data_dir = tmp_path / "data" / "rte" / "amrnag_split"
    data_dir.mkdir(parents=True)
    lines = ["index\tsentence1\tsentence2\tlabel"] + [
        f"{i}\t{a}\t{b}\t{y}" for i, (a, b, y) in enumerate(rows)]
    (data_dir / "train.tsv").write_text("\n".join(lines[:33]) + "\n")
    (data_dir / "val.tsv").write_text("\n".join(lines[33:]) + "\n")
    (data_dir / "dev.tsv").write_text("\n".join(lines[:17]) + "\n")
    results = finetune_teacher(roberta_dir, "rte", tmp_path / "rte", epochs=1, max_length=32,
                               data_dir=tmp_path / "data", progress=False)
    assert set(results["metrics"]) == {"accuracy"} and results["train_examples"] == 48
    tokenizer = load_teacher(tmp_path / "rte").tokenizer
    data = load_task("rte", data_dir=tmp_path / "data")
    encoded = tokenize(data["validation"], tokenizer, 32)
    tokens = tokenizer.convert_ids_to_tokens(encoded[0]["input_ids"])
    assert tokens[0] == "<s>" and tokens.count("</s>") == 3
    assert set(encoded[0]["token_type_ids"]) == {0}


def test_roberta_teacher_through_both_distillation_stages(tmp_path, roberta_dir, sst5_dir):
    """The whole pipeline with the RoBERTa folder as teacher name: fine-tuning (MCC
    selection), stage 1 on WikiText-2 + task text, stage 2 selected on MCC."""
    config = tmp_path / "sst5_roberta.toml"
    config.write_text(f"""
[model]
preset = "tiny"
hidden_size = 32
num_heads = 4
depth = 2
time_steps = 2
max_length = 32
position_embedding = true
[teacher]
name = "{roberta_dir}"
epochs = 1
batch_size = 32
max_length = 32
select_metric = "mcc"
[data]
task = "sst5"
data_dir = "{sst5_dir}"
max_length = 32
max_train_samples = 96
unlabelled = ["task", "wikitext2"]
max_unlabelled_samples = 64
[predistill]
epochs = 1
batch_size = 16
[distill]
epochs = 2
batch_size = 16
temperature = 2.0
select_metric = "mcc"
[run]
threads = 1
""")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--config", str(config), "-o", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert {"mcc", "accuracy", "macro_f1"} <= set(results["teacher"]["dev"])
    assert -1.0 <= results["student"]["dev"]["mcc"] <= 1.0
    teacher = json.loads((out / "teacher" / "results.json").read_text())
    assert teacher["selection_metric"] == "mcc" and teacher["train_examples"] == 96
    stage1 = json.loads((out / "predistill" / "results.json").read_text())
    assert stage1["initialised_from_teacher"] == ["embedding.weight", "position.weight"]
    distill = json.loads((out / "distill" / "results.json").read_text())
    assert distill["selection_metric"] == "mcc" and distill["stage1"]["initialised"] == []
    history = [r for r in distill["history"] if "dev_mcc" in r]
    assert len(history) == 2
    best = max(history, key=lambda r: r["dev_mcc"])
    assert distill["best_epoch"] == best["epoch"]
    assert distill["dev"]["mcc"] == pytest.approx(best["dev_mcc"])
    # the student reads the teacher's vocabulary and pads with RoBERTa's pad id
    saved = transformers.AutoTokenizer.from_pretrained(out / "distill" / "best")
    assert saved.pad_token_id == 1 and saved.cls_token == "<s>"


def _last_json(output: str, start: str) -> dict:
    """The JSON line a command printed (progress bars share the captured output)."""
    text = output[output.rindex(start):]
    return json.loads(text[: text.index("\n")] if "\n" in text else text)


def test_build_then_finetune_from_the_command_line(tmp_path, sst5_dir):
    """The documented offline flow: build-teacher, then finetune-teacher with MCC selection."""
    runner = CliRunner()
    built = tmp_path / "built"
    result = runner.invoke(app, ["build-teacher", "-o", str(built), "--text", "wikitext2",
                                 "--data-dir", str(sst5_dir), "--vocab-size", "400",
                                 "--hidden-size", "16", "--layers", "1", "--heads", "2",
                                 "--max-length", "24", "--steps", "2", "--batch-size", "4",
                                 "--threads", "1"])
    assert result.exit_code == 0, result.output
    summary = _last_json(result.output, '{"output"')
    assert summary["steps"] == 2
    again = runner.invoke(app, ["build-teacher", "-o", str(built), "--data-dir", str(sst5_dir)])
    assert again.exit_code == 2 and "already exists" in again.output
    tuned = tmp_path / "tuned"
    result = runner.invoke(app, ["finetune-teacher", "--teacher", str(built), "--task", "sst5",
                                 "--output", str(tuned), "--epochs", "1", "--max-length", "24",
                                 "--select-metric", "mcc", "--max-train-samples", "40",
                                 "--data-dir", str(sst5_dir), "--threads", "1"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tuned / "results.json").read_text())
    assert saved["selection_metric"] == "mcc" and saved["train_examples"] == 40
    assert saved["metrics"]["mcc"] == pytest.approx(_last_json(result.output, '{"dev"')["dev"]["mcc"])

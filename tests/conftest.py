import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """A data folder holding a small sentence-level SST-2 (96 train, 48 dev rows)."""
    if not (SHARED_DATA / "sst2").is_dir():
        pytest.skip("../shared/data is not available")
    root = tmp_path_factory.mktemp("data")
    (root / "sst2").mkdir()
    for split, rows in (("train", 96), ("dev", 48)):
        lines = (SHARED_DATA / "sst2" / f"stsa.binary.{split}").read_text().splitlines()[:rows]
        (root / "sst2" / f"stsa.binary.{split}").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory):
    """A small random BERT classifier with the offline MiniLM tokenizer, saved as a folder
    (its head makes it a 'fine-tuned' teacher; its encoder serves stage 1)."""
    transformers = pytest.importorskip("transformers")
    from neurolang.teachers import resolve_teacher_path

    try:
        source = resolve_teacher_path("default")
    except Exception:
        pytest.skip("the offline teacher package is not installed")
    folder = tmp_path_factory.mktemp("teacher")
    tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64, num_labels=2)
    import torch

    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tiny_teacher):
    """A small trained-looking student: a model folder with the teacher's tokenizer."""
    import torch
    from transformers import AutoTokenizer

    from neurolang.checkpoint import save_pretrained
    from neurolang.config import preset
    from neurolang.models import build_model

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_teacher))
    torch.manual_seed(0)
    model = build_model(preset("tiny", vocab_size=len(tokenizer), max_length=32))
    folder = tmp_path_factory.mktemp("student") / "model"
    save_pretrained(model, folder, tokenizer=tokenizer,
                    metadata={"stage": "distill", "teacher": str(tiny_teacher),
                              "label_names": []})
    return folder

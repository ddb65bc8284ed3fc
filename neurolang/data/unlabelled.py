"""Unlabelled text for stage-1 pre-distillation: a ``datasets.Dataset`` with one column
``text``, from the text corpora (wikitext2, tinyshakespeare), the sentences of any task, or a
plain text file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from neurolang.data.errors import DataError
from neurolang.data.examples import check_spec_files, spec_root
from neurolang.data.files import SUFFIX_FORMATS, file_error, read_text, resolve_data_dir
from neurolang.data.loading import load_task
from neurolang.data.resolve import looks_like_path, resolve_task, shown_name
from neurolang.data.tasks import (
    HUB_ALIASES,
    TASKS,
    TRAIN,
    VALIDATION,
    TaskSpec,
    known_task_names,
)

__all__ = ["dev_texts", "load_unlabelled", "normalise_text", "validate_unlabelled_sources"]


log = logging.getLogger(__name__)

UnlabelledSource = str | os.PathLike | TaskSpec
"""An unlabelled text source: a name (``wikitext2``, ``tinyshakespeare``, a task), a
``TaskSpec``, or a path (a task's directory or data file, or a plain text file)."""


_TEXT_CORPORA = {
    "wikitext2": ("wikitext2/valid.txt", "wikitext2/test.txt"),
    "tinyshakespeare": ("tinyshakespeare/input.txt",),
}


def load_unlabelled(
    sources: UnlabelledSource | Sequence[UnlabelledSource],
    *,
    data_dir: str | os.PathLike | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    lines_per_chunk: int = 4,
    splits: Sequence[str] = (TRAIN,),
    exclude: Collection[str] = (),
    unique: bool = False,
) -> datasets.Dataset:
    """Unlabelled text (one column ``text``) for stage-1 pre-distillation.

    Args:
        sources: one or more of ``wikitext2`` (valid + test; ``= Heading =`` lines and blank
            lines dropped, ``<unk>`` kept), ``tinyshakespeare`` (its non-blank lines joined in chunks
            of ``lines_per_chunk``), any task: a task name, a ``TaskSpec`` (``resolve_task``), or a
            path to a task's directory (``train.*``, ``dev.*``) or data file (``.csv``, ``.tsv``,
            ``.jsonl``, ...) (its sentences, labels dropped; both sentences of a pair), or a path
            to any other file, e.g. ``.txt`` (plain text: one text per non-blank line).
        max_samples: keep this many texts, drawn by a shuffle seeded with ``seed``; without it
            every text is kept in source order.
        splits: which splits of a task to take sentences from (default only ``train``).
        exclude: texts to leave out, compared after ``normalise_text`` (``dev_texts``: every
            dev sentence), before ``max_samples`` draws, so the cap counts kept texts.
        unique: keep only the first of texts that are the same after ``normalise_text``
            (also before the draw).
    """
    sources = _source_list(sources)
    if lines_per_chunk < 1:
        raise DataError(f"lines_per_chunk must be >= 1, got {lines_per_chunk}")
    texts: list[str] = []
    for source in sources:
        texts.extend(_unlabelled_texts(source, data_dir, lines_per_chunk, splits))
    if not texts:
        raise DataError(f"the unlabelled sources {[shown_name(s) for s in sources]} hold no text")
    if exclude or unique:
        excluded = {normalise_text(t) for t in exclude}
        kept = []
        for text in texts:
            key = normalise_text(text)
            if key not in excluded:
                kept.append(text)
                if unique:
                    excluded.add(key)
        if len(kept) < len(texts):
            log.info(
                "unlabelled text: %d of %d texts left out (repeats, dev sentences, train sentences)",
                len(texts) - len(kept),
                len(texts),
            )
        if not kept:
            raise DataError(
                f"every text of the sources {[shown_name(s) for s in sources]} is left out (a dev "
                "sentence, or for a transfer set one of the train split's)"
            )
        texts = kept
    if max_samples is not None:
        if max_samples < 1:
            raise DataError(f"max_samples must be >= 1, got {max_samples}")
        if max_samples < len(texts):
            order = np.random.default_rng(seed).permutation(len(texts))[:max_samples]
            texts = [texts[i] for i in order]
    return datasets.Dataset.from_dict(
        {"text": texts}, features=datasets.Features({"text": datasets.Value("string")})
    )


def normalise_text(text: str) -> str:
    """The form in which texts are compared for deduplication: case folded, runs of
    whitespace made one space, stripped (``"A  Film "`` and ``"a film"`` are the same)."""
    return " ".join(text.casefold().split())


def dev_texts(
    data_dir: str | os.PathLike | None = None, also: Sequence[UnlabelledSource] = ()
) -> set[str]:
    """The normalised sentences (both of a pair) of every dev split the offline data folder
    holds: each registered task whose files are there (MR and Waimai: their seeded holdout),
    plus the tasks in ``also`` (e.g. a user's own files). Stage-1 text leaves these out, so
    that no student has seen, even unlabelled, a sentence it is selected on."""
    root = resolve_data_dir(data_dir)
    specs: list[UnlabelledSource] = []
    for name, spec in TASKS.items():
        try:
            check_spec_files(spec, spec_root(spec, root))
        except DataError:
            continue  # not in this data folder
        specs.append(name)
    texts: set[str] = set()
    quiet = logging.getLogger("neurolang.data")
    for source in [*specs, *also]:
        kind, value = _resolve_unlabelled(source, root)
        if kind != "task":
            continue
        level = quiet.level  # another task's data warnings (empty rows) do not belong here
        quiet.setLevel(logging.ERROR)
        try:
            loaded = load_task(value, data_dir=root)
        finally:
            quiet.setLevel(level)
        if VALIDATION not in loaded:
            continue
        dev = loaded[VALIDATION]
        for column in ("text", "text_pair"):
            if column in dev.column_names:
                texts.update(normalise_text(t) for t in dev[column] if t.strip())
    return texts


def validate_unlabelled_sources(
    sources: UnlabelledSource | Sequence[UnlabelledSource],
    data_dir: str | os.PathLike | None = None,
) -> None:
    """Check that every unlabelled source resolves and its files are there, reading none of them
    (a task directory is listed); raise a ``DataError`` for the first one that does not.

    Run it on a whole configuration before any work starts; ``load_unlabelled`` can then still
    fail on what only reading shows (a bad encoding, a bad label).
    """
    for source in _source_list(sources):
        kind, value = _resolve_unlabelled(source, data_dir)
        if kind == "corpus":
            check_spec_files(value, resolve_data_dir(data_dir))
        elif kind == "task" and isinstance(value, TaskSpec):
            check_spec_files(value, spec_root(value, data_dir))


def _source_list(sources: Any) -> list[UnlabelledSource]:
    if isinstance(sources, (str, os.PathLike, TaskSpec)):
        sources = [sources]
    sources = list(sources)
    if not sources:
        raise DataError("no unlabelled text source given (e.g. 'wikitext2', 'sst2')")
    return sources


def _resolve_unlabelled(source: UnlabelledSource, data_dir: Any) -> tuple[str, Any]:
    """What a source is: ``("corpus", spec)`` (its files), ``("task", spec or hub alias)`` or
    ``("lines", path)`` (a plain text file)."""
    if isinstance(source, TaskSpec):
        return "task", source
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(
            f"an unlabelled text source is a name, a path or a TaskSpec, not {source!r}"
        )
    text = str(source)
    key = text.strip().lower()
    if key in _TEXT_CORPORA:
        files = {TRAIN: _TEXT_CORPORA[key]}
        return "corpus", TaskSpec(name=key, files=files, format="label_sentence")
    if key in HUB_ALIASES:
        return "task", key
    if key in TASKS:
        return "task", TASKS[key]
    path = Path(text).expanduser()
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError as error:
        raise file_error(path, error) from None
    if is_dir or (is_file and path.suffix.lower() in SUFFIX_FORMATS):
        try:
            return "task", resolve_task(path)
        except OSError as error:
            raise file_error(error.filename or path, error) from None
    if is_file:
        return "lines", path
    if looks_like_path(text):
        raise DataError(f"unlabelled text source not found: no file or directory {text!r}")
    raise DataError(
        f"unknown unlabelled text source {text!r}; use 'wikitext2', 'tinyshakespeare', a "
        f"task name ({', '.join(known_task_names())}), a task's directory or data file, or a "
        "path to a text file"
    )


def _unlabelled_texts(
    source: UnlabelledSource, data_dir: Any, lines_per_chunk: int, splits: Sequence[str]
) -> list[str]:
    kind, value = _resolve_unlabelled(source, data_dir)
    if kind == "corpus":
        root = resolve_data_dir(data_dir)
        check_spec_files(value, root)
        contents = [read_text(root / file, "utf-8") for file in value.files[TRAIN]]
        if value.name == "tinyshakespeare":
            return _chunk_lines(contents[0], lines_per_chunk)
        texts = []
        for content in contents:
            for line in content.split("\n"):
                line = line.strip()
                if line and not (line.startswith("= ") and line.endswith(" =")):
                    texts.append(line)
        return texts
    if kind == "task":
        loaded = load_task(value, data_dir=data_dir)
        name = shown_name(value)
        texts = []
        for split in splits:
            if split not in loaded:
                raise DataError(f"task {name!r} has no split {split!r} (splits: {list(loaded)})")
            texts.extend(loaded[split]["text"])
            if "text_pair" in loaded[split].column_names:
                texts.extend(loaded[split]["text_pair"])
        return [t for t in texts if t.strip()]
    return [line.strip() for line in read_text(value, "utf-8").split("\n") if line.strip()]


def _chunk_lines(text: str, lines_per_chunk: int) -> list[str]:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    return [
        " ".join(lines[start : start + lines_per_chunk])
        for start in range(0, len(lines), lines_per_chunk)
    ]

"""The user's own files: a ``TaskSpec`` for CSV / TSV / JSONL / ``LABEL SENTENCE`` files.

``local_task`` finds the split files (one file, a directory holding ``train.*`` and
``dev.*``, or a mapping split -> file(s)) and declares how to read them, reading none of them;
``load_local_files`` loads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

from neurolang.data.errors import DataError
from neurolang.data.files import file_error, infer_format, list_directory
from neurolang.data.load import load_spec
from neurolang.data.tasks import SPLIT_ALIASES, TRAIN, VALIDATION, Holdout, TaskSpec

__all__ = ["load_local_files", "local_task"]


def local_task(
    files: str | os.PathLike | Mapping[str, str | os.PathLike | Sequence[str | os.PathLike]],
    *,
    text_column: str | int = "text",
    text_pair_column: str | int | None = None,
    label_column: str | int = "label",
    label_names: Sequence[str] | None = None,
    num_labels: int | None = None,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    format: str | None = None,
    header: bool = True,
    validation_fraction: float | None = None,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    selection_metric: str | None = None,
    name: str | None = None,
) -> TaskSpec:
    """A ``TaskSpec`` for your own CSV / TSV / JSONL / ``LABEL SENTENCE`` files.

    Args:
        files: one file (it becomes ``train``), a directory holding ``train.*`` and
            ``dev.*``/``validation.*``/``val.*``, or a mapping split -> file(s) with splits
            ``train`` and ``validation`` (alias ``dev``).
        text_column / text_pair_column / label_column: column names, or 0-based indices for
            files without a header (``header=False``). ``text_pair_column`` makes a pair task.
        label_names: class names in id order; string labels are mapped through it. Without it
            (and without ``num_labels``) the classes are the train labels: integer labels are
            ids and must be exactly ``0..n-1``, string labels get ids in sorted-name order, and
            a validation label that train lacks is an error.
        num_labels: number of classes (default: ``len(label_names)`` or inferred).
        encoding: the files' encoding (``latin-1``, ``gbk``, ``utf-8-sig``, ...).
        delimiter: field separator of tsv/csv files (default tab / comma).
        format: ``csv``, ``tsv``, ``jsonl`` or ``label_sentence`` (default: from the suffix;
            unknown suffixes are ``label_sentence``).
        header: whether tsv/csv files start with a header row.
        validation_fraction: carve a seeded, stratified ``validation`` split out of ``train``.
        seed: seed of that split.
        metrics / selection_metric: default ``accuracy`` plus ``f1`` when two classes are
            declared (``label_names`` / ``num_labels``), else plus ``macro_f1``; selection on
            the first metric.
    """
    split_files = _split_files(files)
    first = split_files[TRAIN][0]
    file_format = format or infer_format(first)
    if validation_fraction is not None and VALIDATION in split_files:
        raise DataError("validation files are given; drop validation_fraction or those files")
    n = num_labels if num_labels is not None else (len(label_names) if label_names else None)
    if metrics is None:
        metrics = ("accuracy", "f1") if n == 2 else ("accuracy", "macro_f1")
    all_files = tuple(f for fs in split_files.values() for f in fs)
    return TaskSpec(
        name=name or _task_name(files, first),
        description=f"local files {', '.join(all_files)}",
        files=split_files,
        format=file_format,
        text_column=str(text_column),
        text_pair_column=None if text_pair_column is None else str(text_pair_column),
        label_column=str(label_column),
        label_names=tuple(label_names) if label_names is not None else None,
        num_labels=num_labels,
        headerless_files=() if header else all_files,
        encoding=encoding,
        delimiter=delimiter,
        metrics=tuple(metrics),
        selection_metric=selection_metric or metrics[0],
        holdout=None if validation_fraction is None else Holdout(validation_fraction, seed),
    )


def _task_name(files: Any, first: str) -> str:
    """A folder of files is named after the folder, a file after its stem."""
    if isinstance(files, (str, os.PathLike)) and Path(files).expanduser().is_dir():
        return Path(files).expanduser().resolve().name
    return Path(first).stem


def load_local_files(
    files: Any, *, seed: int | None = None, **options: Any
) -> datasets.DatasetDict:
    """Your own files as a ``DatasetDict``: ``local_task(files, **options)``, loaded.

    ``seed`` overrides the seed of a ``validation_fraction`` split.
    """
    try:
        return load_spec(local_task(files, **options), data_dir=None, seed=seed)
    except OSError as error:
        raise file_error(error.filename or str(files), error) from None


def _split_files(files: Any) -> dict[str, tuple[str, ...]]:
    if isinstance(files, Mapping):
        result: dict[str, tuple[str, ...]] = {}
        for split, value in files.items():
            canonical = SPLIT_ALIASES.get(str(split).lower())
            if canonical is None:
                raise DataError(
                    f"split {split!r} is not loaded: only train and validation (alias dev) are; "
                    "select models on validation and keep test sets out of training code"
                )
            paths = [value] if isinstance(value, (str, os.PathLike)) else list(value)
            result[canonical] = tuple(str(_existing_file(p)) for p in paths)
        if TRAIN not in result:
            raise DataError(f"no train file given (splits given: {sorted(files)})")
        return result
    path = Path(files).expanduser()
    if path.is_dir():
        found: dict[str, tuple[str, ...]] = {}
        children = list_directory(path)
        for child in children:
            split = SPLIT_ALIASES.get(child.stem.lower())
            if child.is_file() and split and split not in found:
                found[split] = (str(child.resolve()),)
        if TRAIN not in found:
            listing = ", ".join(sorted(c.name for c in children)) or "nothing"
            raise DataError(
                f"directory {str(path)!r} has no train.* file (it holds: {listing}); name the "
                "files train.csv / dev.csv (or .tsv, .jsonl, .txt), or pass a mapping "
                "{'train': ..., 'validation': ...}"
            )
        return found
    return {TRAIN: (str(_existing_file(path)),)}


def _existing_file(path: str | os.PathLike) -> Path:
    resolved = Path(path).expanduser()
    try:
        if not resolved.is_file():
            what = "is a directory, not a file" if resolved.is_dir() else "not found"
            raise DataError(f"data file {str(resolved)!r} {what}")
        return resolved.resolve()
    except OSError as error:
        raise file_error(resolved, error) from None

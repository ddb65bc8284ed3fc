"""Load a task (named, local files, or Hugging Face Hub) into a ``datasets.DatasetDict``.

Every labelled data set becomes splits ``train`` and ``validation`` with the columns ``text``
(plus ``text_pair`` for sentence-pair tasks) and ``label`` (a ``ClassLabel``: int ids with
names). Unlabelled text for pre-distillation becomes a ``datasets.Dataset`` with one column
``text``. Every problem a user can cause raises ``DataError`` before any training.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    import datasets
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "neurolang.data needs the 'datasets' package: pip install 'neurolang[train]'"
    ) from error

from neurolang.data.errors import DataError
from neurolang.data.files import (
    ENV_DATA_DIR,
    SUFFIX_FORMATS,
    file_error,
    infer_format,
    list_directory,
    read_table,
    read_text,
    resolve_data_dir,
)
from neurolang.data.tasks import (
    HUB_ALIASES,
    SPLITS,
    TASKS,
    TRAIN,
    VALIDATION,
    Holdout,
    HubSource,
    TaskSpec,
    known_task_names,
)

__all__ = [
    "load_hub_task",
    "load_local_files",
    "load_task",
    "load_unlabelled",
    "local_task",
    "resolve_task",
    "validate_unlabelled_sources",
]

log = logging.getLogger("neurolang.data")

_SPLIT_ALIASES = {"train": TRAIN, "validation": VALIDATION, "dev": VALIDATION, "val": VALIDATION}
_DATA_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json", ".txt")


@dataclass
class _Example:
    text: str
    text_pair: str | None
    raw_label: Any
    path: str  # the file and line it came from, for error messages
    line: int
    key: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        """``'file', line N``."""
        return f"{self.path!r}, line {self.line}"


# --------------------------------------------------------------------------------------------
# Resolving what the user asked for


def resolve_task(task: str | os.PathLike | TaskSpec, **options: Any) -> TaskSpec:
    """The ``TaskSpec`` behind a registry name, a hub alias, or local file(s).

    Local files take the options of ``local_task``; a registry name takes none.
    """
    if isinstance(task, TaskSpec):
        return task
    text = str(task)
    key = text.strip().lower()
    if key in TASKS or key in HUB_ALIASES:
        if options:
            raise DataError(
                f"{text!r} is a named task; the options {sorted(options)} apply only to local "
                "files or hub data sets"
            )
        return TASKS[HUB_ALIASES.get(key, key)]
    path = Path(text).expanduser()
    if path.exists():
        return local_task(path, **options)
    if _looks_like_path(text):
        raise DataError(f"file or directory not found: {text!r}")
    raise DataError(
        f"unknown task {text!r}; known tasks: {', '.join(known_task_names())}. "
        "Or pass a path to a CSV/TSV/JSONL/'LABEL SENTENCE' file, or a Hugging Face Hub name "
        "such as 'glue/sst2'."
    )


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith(("/", ".", "~"))
        or os.sep in text
        or Path(text).suffix.lower() in _DATA_SUFFIXES
    )


def _looks_like_hub_name(text: str) -> bool:
    parts = text.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not text.startswith((".", "~"))
        and not Path(text).exists()
        and Path(text).suffix.lower() not in _DATA_SUFFIXES
    )


def load_task(
    task: str | os.PathLike | TaskSpec,
    *,
    data_dir: str | os.PathLike | None = None,
    seed: int | None = None,
    **options: Any,
) -> datasets.DatasetDict:
    """Load a task as a ``DatasetDict`` with splits ``train`` and ``validation``.

    Args:
        task: a registry name (``sst2``, ``cola``, ... see ``known_task_names()``), a
            ``TaskSpec``, a path to local file(s) (see ``local_task`` for ``options``), a hub
            alias (``glue/sst2``) or any hub name ``owner/name`` (see ``load_hub_task``).
        data_dir: the offline data directory (default: see ``resolve_data_dir``).
        seed: seed of the train/validation split of tasks that ship without one (mr, waimai,
            chnsenticorp_htl_all, files with ``validation_fraction``); default: the spec's.
    """
    if isinstance(task, str) and task.strip().lower() in HUB_ALIASES:
        if options:
            raise DataError(f"{task!r} is a named task; it takes no options {sorted(options)}")
        spec = TASKS[HUB_ALIASES[task.strip().lower()]]
        assert spec.hub is not None
        return _load_hub_source(spec.hub, spec.label_names)
    if isinstance(task, str) and task.strip().lower() not in TASKS and _looks_like_hub_name(task):
        return load_hub_task(task, **options)
    try:
        spec = resolve_task(task, **options)
        return _load_spec(spec, data_dir=data_dir, seed=seed)
    except OSError as error:  # anything a file check missed: still one DataError
        raise file_error(error.filename or _shown(task), error) from None


# --------------------------------------------------------------------------------------------
# Local files


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
        return _load_spec(local_task(files, **options), data_dir=None, seed=seed)
    except OSError as error:
        raise file_error(error.filename or _shown(files), error) from None


def _split_files(files: Any) -> dict[str, tuple[str, ...]]:
    if isinstance(files, Mapping):
        result: dict[str, tuple[str, ...]] = {}
        for split, value in files.items():
            canonical = _SPLIT_ALIASES.get(str(split).lower())
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
            split = _SPLIT_ALIASES.get(child.stem.lower())
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


def _shown(task: Any) -> str:
    return task.name if isinstance(task, TaskSpec) else str(task)


# --------------------------------------------------------------------------------------------
# From a spec to a DatasetDict


def _spec_root(spec: TaskSpec, data_dir: Any) -> Path:
    relative = any(not Path(f).is_absolute() for fs in spec.files.values() for f in fs)
    return resolve_data_dir(data_dir) if relative or spec.dev_ids else Path("/")


def _check_spec_files(spec: TaskSpec, root: Path) -> None:
    """Raise a ``DataError`` unless every file of ``spec`` is there and is a file (reads none)."""
    files = [file for files in spec.files.values() for file in files]
    if spec.dev_ids is not None:
        files.append(spec.dev_ids.file)
    for file in files:
        path = root / file
        try:
            if path.is_file():
                continue
            is_dir = path.is_dir()
        except OSError as error:
            raise file_error(path, error) from None
        if is_dir:
            raise DataError(
                f"expected a file but {str(path)!r} is a directory (task {spec.name!r})"
            )
        if Path(file).is_absolute():
            raise DataError(f"file not found: {str(path)!r} (task {spec.name!r})")
        raise DataError(
            f"file not found: {str(path)!r} (task {spec.name!r}, data directory "
            f"{str(root)!r}); pass data_dir= or set {ENV_DATA_DIR} to the folder that "
            f"holds {Path(file).parts[0]}/"
        )


def _load_spec(spec: TaskSpec, *, data_dir: Any, seed: int | None) -> datasets.DatasetDict:
    root = _spec_root(spec, data_dir)
    _check_spec_files(spec, root)
    examples = {split: _read_split(spec, root, split, files) for split, files in spec.files.items()}
    if spec.dev_ids is not None:
        examples[TRAIN], examples[VALIDATION] = _split_by_ids(spec, root, examples[TRAIN])
    for split, split_examples in examples.items():
        _require_rows(spec, split, split_examples)
        _check_texts(spec, split, split_examples)
    label_names, label_ids = _convert_labels(spec, examples)
    if spec.holdout is not None:
        holdout = spec.holdout if seed is None else Holdout(spec.holdout.fraction, seed)
        train_rows, dev_rows = _stratified_split(label_ids[TRAIN], holdout)
        train_examples = examples[TRAIN]
        train_ids = label_ids[TRAIN]
        examples = {
            TRAIN: [train_examples[i] for i in train_rows],
            VALIDATION: [train_examples[i] for i in dev_rows],
        }
        label_ids = {TRAIN: train_ids[train_rows], VALIDATION: train_ids[dev_rows]}
    result = {}
    for split in SPLITS:
        if split not in examples:
            continue
        _require_rows(spec, split, examples[split])
        result[split] = _to_dataset(spec.is_pair, examples[split], label_ids[split], label_names)
    _require_two_classes(spec, examples[TRAIN], label_ids[TRAIN], label_names)
    return datasets.DatasetDict(result)


def _require_rows(spec: TaskSpec, split: str, examples: list[_Example]) -> None:
    if not examples:
        files = ", ".join(spec.files.get(split, spec.files[TRAIN]))
        raise DataError(f"split {split!r} of task {spec.name!r} has no rows (files: {files})")


def _files_of(examples: Sequence[_Example]) -> list[str]:
    return list(dict.fromkeys(example.path for example in examples))


def _check_texts(spec: TaskSpec, split: str, examples: list[_Example]) -> None:
    """All texts of a split empty: a ``DataError``; some empty: a warning on ``neurolang.data``."""
    columns = [(spec.text_column, "text_column", False)]
    if spec.text_pair_column is not None:
        columns.append((spec.text_pair_column, "text_pair_column", True))
    if spec.holdout is not None:
        split = f"{split} (and validation)"  # validation is carved out of these rows later
    for column, option, is_pair in columns:
        empty = [e for e in examples if not ((e.text_pair if is_pair else e.text) or "").strip()]
        if not empty:
            continue
        files = ", ".join(repr(f) for f in _files_of(examples))
        if len(empty) == len(examples):
            raise DataError(
                f"every text of the {split} split of task {spec.name!r} is empty (column "
                f"{column!r}, {len(examples)} rows of {files}); check {option}= and format= "
                f"(now {spec.format!r})"
            )
        log.warning(
            "%d of %d texts of the %s split of task %r are empty (column %r; first at %s); "
            "they are kept as empty strings",
            len(empty),
            len(examples),
            split,
            spec.name,
            column,
            empty[0].where,
        )


def _require_two_classes(
    spec: TaskSpec, examples: list[_Example], ids: np.ndarray, names: Sequence[str]
) -> None:
    present = np.unique(ids)
    if len(present) == 1:
        _raise_one_class(spec, examples, names[int(present[0])], len(ids))


def _raise_one_class(spec: TaskSpec, examples: list[_Example], label: Any, rows: int) -> None:
    files = ", ".join(repr(f) for f in _files_of(examples))
    raise DataError(
        f"the train split of task {spec.name!r} ({files}) has only one class ({str(label)!r}, "
        f"{rows} rows): a classifier needs at least two"
    )


def _read_split(spec: TaskSpec, root: Path, split: str, files: Sequence[str]) -> list[_Example]:
    examples: list[_Example] = []
    for file in files:
        path = root / file
        headerless = file in spec.headerless_files
        table = read_table(
            path,
            spec.format,
            encoding=spec.encoding,
            delimiter=spec.delimiter,
            header=not headerless,
            column_names=spec.column_names if headerless else None,
        )
        if not table.rows:
            if table.columns and not headerless and spec.format in ("tsv", "csv"):
                detail = f"holds only a header row ({', '.join(table.columns)})"
            else:
                detail = "is empty"
            raise DataError(
                f"split {split!r} of task {spec.name!r} has no rows: {str(path)!r} {detail}"
            )
        table.require(spec.text_column, "text_column")
        table.require(spec.label_column, "label_column")
        if spec.text_pair_column is not None:
            table.require(spec.text_pair_column, "text_pair_column")
        key_columns: tuple[str, ...] = ()
        if spec.dev_ids is not None:
            key_columns = spec.dev_ids.columns
            for column in key_columns:
                table.require(column, "dev_ids columns")
        needed = [spec.text_column, spec.label_column, *key_columns]
        if spec.text_pair_column is not None:
            needed.append(spec.text_pair_column)
        for row, line in zip(table.rows, table.lines, strict=True):
            lacking = [column for column in needed if column not in row]
            if lacking:  # JSONL: another line has the column, this one not
                raise DataError(
                    f"{str(path)!r}, line {line}: no {', '.join(map(repr, lacking))} field "
                    f"(this line has {', '.join(map(repr, row)) or 'none'})"
                )
            pair = None if spec.text_pair_column is None else row[spec.text_pair_column]
            examples.append(
                _Example(
                    text=_as_text(row[spec.text_column]),
                    text_pair=None if pair is None else _as_text(pair),
                    raw_label=row[spec.label_column],
                    path=str(path),
                    line=line,
                    key=tuple(str(row[c]).strip() for c in key_columns),
                )
            )
    return examples


def _as_text(value: Any) -> str:
    return "" if value is None else str(value)


def _split_by_ids(
    spec: TaskSpec, root: Path, train: list[_Example]
) -> tuple[list[_Example], list[_Example]]:
    assert spec.dev_ids is not None
    id_path = root / spec.dev_ids.file
    wanted = set()
    for number, line in enumerate(read_text(id_path, "utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        fields = tuple(field.strip() for field in line.rstrip("\r").split("\t"))
        if len(fields) != len(spec.dev_ids.columns):
            raise DataError(
                f"{str(id_path)!r}, line {number}: expected {len(spec.dev_ids.columns)} "
                f"tab-separated ids ({', '.join(spec.dev_ids.columns)}), got {len(fields)}"
            )
        wanted.add(fields)
    dev = [example for example in train if example.key in wanted]
    found = {example.key for example in dev}
    if found != wanted:
        raise DataError(
            f"{len(wanted - found)} of the {len(wanted)} dev ids in {str(id_path)!r} are not rows "
            f"of the train file(s) {', '.join(spec.files[TRAIN])}; the files do not belong together"
        )
    rest = [example for example in train if example.key not in wanted]
    return rest, dev


def _parse_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


def _label_key(value: Any) -> int | str:
    """A raw label as inference sees it: an int class id if it is one, else its stripped text."""
    parsed = _parse_int(value)
    return str(value).strip() if parsed is None else parsed


def _show_label(key: int | str) -> str:
    return str(key) if isinstance(key, int) else repr(key)


def _ranges(values: Sequence[int]) -> str:
    """``0, 1 and 7``; runs of three or more as ``2..6``."""
    runs: list[str] = []
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and values[end + 1] == values[end] + 1:
            end += 1
        if end - start >= 2:
            runs.append(f"{values[start]}..{values[end]}")
        else:
            runs.extend(str(v) for v in values[start : end + 1])
        start = end + 1
    return _listing(runs)


def _listing(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _occurrences(
    keys: Sequence[int | str], counts: Counter, first: Mapping[Any, _Example], one_file: bool
) -> str:
    """``7 once, at line 812``: the rarest of ``keys`` first, at most three."""
    parts = []
    for key in sorted(keys, key=lambda k: (counts[k], str(k)))[:3]:
        example = first[key]
        at = f"line {example.line}" if one_file else example.where
        times = "once, at" if counts[key] == 1 else f"in {counts[key]} rows, first at"
        parts.append(f"{_show_label(key)} {times} {at}")
    if len(keys) > 3:
        parts.append(f"{len(keys) - 3} more")
    return "; ".join(parts)


def _infer_classes(
    spec: TaskSpec, examples: Mapping[str, list[_Example]]
) -> tuple[tuple[str, ...], bool]:
    """Class names from the train labels of a task that declares none; whether they are names.

    Integer labels must be exactly the ids ``0..n-1``; every other split may only use labels
    that train has; train must have at least two classes.
    """
    train = examples[TRAIN]
    keys = [_label_key(example.raw_label) for example in train]
    counts = Counter(keys)
    first: dict[Any, _Example] = {}
    for key, example in zip(keys, train, strict=True):
        first.setdefault(key, example)
    files = _files_of(train)
    one_file = len(files) == 1
    shown_files = repr(files[0]) if one_file else "the train files " + ", ".join(map(repr, files))
    if len(counts) == 1:
        ((only, rows),) = counts.items()
        _raise_one_class(spec, train, only, rows)
    ints = [key for key in counts if isinstance(key, int)]
    if ints and len(ints) < len(counts):
        mostly_ints = 2 * sum(counts[k] for k in ints) >= len(keys)
        odd = [k for k in counts if isinstance(k, int) != mostly_ints]
        raise DataError(
            f"labels in {shown_files} mix integer class ids and names: most are "
            f"{'class ids' if mostly_ints else 'names'}, the odd ones out are "
            f"{_occurrences(odd, counts, first, one_file)}; fix the data or pass label_names= "
            "to name every class"
        )
    if ints:
        present = sorted(ints)
        count = present[-1] + 1
        missing = [i for i in range(max(count, 0)) if i not in counts]
        negative = [k for k in present if k < 0]
        if missing or negative:
            unexpected = negative + [k for k in present if missing and k > missing[0]]
            problems = []
            if missing:
                plural = len(missing) > 1
                problems.append(
                    f"class id{'s' if plural else ''} {_ranges(missing)} never "
                    f"occur{'' if plural else 's'}"
                )
            if negative:
                are = "are not class ids" if len(negative) > 1 else "is not a class id"
                problems.append(f"{_ranges(negative)} {are} (ids start at 0)")
            problem = " and ".join(problems)
            raise DataError(
                f"labels in {shown_files} are {_ranges(present)} "
                f"({_occurrences(unexpected, counts, first, one_file)}): {problem}; fix the data "
                "or pass num_labels= / label_names="
            )
        names = tuple(str(i) for i in range(count))
    else:
        names = tuple(sorted(str(key) for key in counts))
    for split, split_examples in examples.items():
        if split == TRAIN:
            continue
        unseen: Counter = Counter()
        where: dict[Any, _Example] = {}
        for example in split_examples:
            key = _label_key(example.raw_label)
            if key not in counts:
                unseen[key] += 1
                where.setdefault(key, example)
        if unseen:
            known = sorted(counts)
            shown = _ranges(known) if ints else _listing([repr(k) for k in known[:12]])
            if len(known) > 12 and not ints:
                shown += f" (and {len(known) - 12} more)"
            raise DataError(
                f"{split} labels never seen in the train split of task {spec.name!r}: "
                f"{_occurrences(list(unseen), unseen, where, False)} (train labels in "
                f"{shown_files}: {shown}); a class the model never trains on cannot be "
                "learned: fix the data, or declare every class with label_names= / num_labels="
            )
    return names, not ints


def _convert_labels(
    spec: TaskSpec, examples: Mapping[str, list[_Example]]
) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """Map raw labels to class ids; return the class names and the ids per split."""
    names = spec.label_names
    by_name = False  # string labels whose names were inferred: map through the names only
    if spec.label_map is None and names is None:
        if spec.num_labels is None:
            names, by_name = _infer_classes(spec, examples)
        else:
            raws = [e.raw_label for split in examples.values() for e in split]
            if raws and all(_parse_int(r) is not None for r in raws):
                names = tuple(str(i) for i in range(spec.num_labels))
            else:
                names = tuple(sorted({str(r).strip() for r in raws}))
                by_name = True
    assert names is not None
    num_labels = spec.num_labels if spec.num_labels is not None else len(names)
    index = {name: i for i, name in enumerate(names)}
    ids: dict[str, np.ndarray] = {}
    for split, split_examples in examples.items():
        values = np.empty(len(split_examples), dtype=np.int64)
        for i, example in enumerate(split_examples):
            raw = example.raw_label
            if spec.label_map is not None:
                key = str(raw).strip()
                if key not in spec.label_map:
                    allowed = ", ".join(repr(k) for k in spec.label_map)
                    raise DataError(f"label {raw!r} at {example.where} is not one of {allowed}")
                label = spec.label_map[key]
            elif by_name or (str(raw).strip() in index and _parse_int(raw) is None):
                key = str(raw).strip()
                if key not in index:
                    raise DataError(
                        f"label {raw!r} at {example.where} is not one of the label names "
                        f"{list(names)}"
                    )
                label = index[key]
            else:
                parsed = _parse_int(raw)
                if parsed is None:
                    raise DataError(
                        f"label {raw!r} at {example.where} is neither a class id nor one of the "
                        f"label names {list(names)}; pass label_names=[...] to name the classes"
                    )
                label = parsed
            if not 0 <= label < num_labels:
                raise DataError(
                    f"label {label} at {example.where} is out of range for num_labels="
                    f"{num_labels} (valid ids 0..{num_labels - 1}); fix the data or pass "
                    "num_labels= / label_names= that cover every class"
                )
            values[i] = label
        ids[split] = values
    if len(names) != num_labels:
        names = tuple(names[i] if i < len(names) else str(i) for i in range(num_labels))
    return names, ids


def _stratified_split(labels: np.ndarray, holdout: Holdout) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(holdout.seed)
    dev: list[np.ndarray] = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        count = int(round(holdout.fraction * len(rows)))
        dev.append(rng.permutation(rows)[:count])
    dev_rows = np.sort(np.concatenate(dev)) if dev else np.empty(0, dtype=np.int64)
    train_rows = np.setdiff1d(np.arange(len(labels)), dev_rows, assume_unique=True)
    return train_rows, dev_rows


def _features(is_pair: bool, label_names: Sequence[str]) -> datasets.Features:
    columns: dict[str, Any] = {"text": datasets.Value("string")}
    if is_pair:
        columns["text_pair"] = datasets.Value("string")
    columns["label"] = datasets.ClassLabel(names=list(label_names))
    return datasets.Features(columns)


def _to_dataset(
    is_pair: bool, examples: list[_Example], labels: np.ndarray, label_names: Sequence[str]
) -> datasets.Dataset:
    columns: dict[str, list] = {"text": [e.text for e in examples]}
    if is_pair:
        columns["text_pair"] = [e.text_pair or "" for e in examples]
    columns["label"] = labels.tolist()
    return datasets.Dataset.from_dict(columns, features=_features(is_pair, label_names))


# --------------------------------------------------------------------------------------------
# Hugging Face Hub


def load_hub_task(
    path: str,
    config: str | None = None,
    *,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    label_names: Sequence[str] | None = None,
) -> datasets.DatasetDict:
    """A Hub data set (``datasets.load_dataset(path, config)``) in this layer's columns.

    Keeps ``train`` and ``validation`` (``dev`` is renamed); drops test splits. Offline
    (``HF_HUB_OFFLINE=1``) only data sets already in the Hugging Face cache load; anything else
    raises ``DataError`` at once.
    """
    source = HubSource(path, config, text_column, label_column, text_pair_column)
    return _load_hub_source(source, tuple(label_names) if label_names else None)


def _load_hub_source(
    source: HubSource, label_names: tuple[str, ...] | None
) -> datasets.DatasetDict:
    shown = source.path + (f" ({source.config})" if source.config else "")
    try:
        raw = datasets.load_dataset(source.path, source.config)
    except (OSError, ValueError) as error:
        offline = bool(getattr(datasets.config, "HF_HUB_OFFLINE", False)) or os.environ.get(
            "HF_HUB_OFFLINE", ""
        ).lower() in ("1", "true", "yes", "on")
        hint = (
            " The Hub is switched off here (HF_HUB_OFFLINE is set), so only data sets already in "
            "the Hugging Face cache load."
            if offline
            else ""
        )
        raise DataError(
            f"could not load {shown} from the Hugging Face Hub: {type(error).__name__}: {error}."
            f"{hint} Use a local task ({', '.join(known_task_names())}) or local files instead."
        ) from None
    if not isinstance(raw, datasets.DatasetDict):
        raw = datasets.DatasetDict({TRAIN: raw})
    result = {}
    for split_name, dataset in raw.items():
        split = _SPLIT_ALIASES.get(split_name.lower())
        if split is None:
            continue  # test splits: never loaded
        result[split] = _hub_split(source, shown, split_name, dataset, label_names)
    if TRAIN not in result:
        raise DataError(f"{shown} has no train split (splits: {', '.join(raw)})")
    return datasets.DatasetDict(result)


def _hub_split(
    source: HubSource,
    shown: str,
    split: str,
    dataset: datasets.Dataset,
    label_names: tuple[str, ...] | None,
) -> datasets.Dataset:
    present = ", ".join(repr(c) for c in dataset.column_names)
    wanted = {"text": source.text_column, "label": source.label_column}
    if source.text_pair_column is not None:
        wanted["text_pair"] = source.text_pair_column
    for option, column in wanted.items():
        if column not in dataset.column_names:
            option_name = {"text": "text_column", "text_pair": "text_pair_column"}.get(
                option, "label_column"
            )
            raise DataError(
                f"column {column!r} not found in {shown} split {split!r}; columns present: "
                f"{present}. Pass {option_name}= one of these."
            )
    feature = dataset.features[source.label_column]
    labels = dataset[source.label_column]
    if isinstance(feature, datasets.ClassLabel):
        names = tuple(label_names or feature.names)
    elif label_names is not None:
        names = label_names
    elif all(isinstance(v, int) for v in labels):
        names = tuple(str(i) for i in range(max(max(labels) + 1, 2)))
    else:
        names = tuple(sorted({str(v) for v in labels}))
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for row, value in enumerate(labels):
        label = value if isinstance(value, int) else index.get(str(value), -1)
        if not 0 <= label < len(names):
            raise DataError(
                f"label {value!r} in {shown} split {split!r}, row {row} is out of range for "
                f"num_labels={len(names)} (unlabelled test rows carry -1: use train/validation)"
            )
        ids.append(label)
    columns = {key: dataset[column] for key, column in wanted.items() if key != "label"}
    columns["label"] = ids
    order = ["text", "text_pair", "label"]
    columns = {key: columns[key] for key in order if key in columns}
    return datasets.Dataset.from_dict(
        columns, features=_features(source.text_pair_column is not None, names)
    )


# --------------------------------------------------------------------------------------------
# Unlabelled text for pre-distillation


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
    """
    sources = _source_list(sources)
    if lines_per_chunk < 1:
        raise DataError(f"lines_per_chunk must be >= 1, got {lines_per_chunk}")
    texts: list[str] = []
    for source in sources:
        texts.extend(_unlabelled_texts(source, data_dir, lines_per_chunk, splits))
    if not texts:
        raise DataError(f"the unlabelled sources {[_shown(s) for s in sources]} hold no text")
    if max_samples is not None:
        if max_samples < 1:
            raise DataError(f"max_samples must be >= 1, got {max_samples}")
        if max_samples < len(texts):
            order = np.random.default_rng(seed).permutation(len(texts))[:max_samples]
            texts = [texts[i] for i in order]
    return datasets.Dataset.from_dict(
        {"text": texts}, features=datasets.Features({"text": datasets.Value("string")})
    )


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
            _check_spec_files(value, resolve_data_dir(data_dir))
        elif kind == "task" and isinstance(value, TaskSpec):
            _check_spec_files(value, _spec_root(value, data_dir))


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
    if _looks_like_path(text):
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
        _check_spec_files(value, root)
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
        name = _shown(value)
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

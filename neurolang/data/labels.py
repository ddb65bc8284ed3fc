"""Raw labels to class ids, and the checks on them.

Two sets of rules, kept apart on purpose:

* ``convert_labels``, for files read by this layer (a user's own files and the registry's):
  raw labels are text, so ``" 1"``, ``"1"`` and ``1.0`` are the class id 1; classes a task
  does not declare are inferred from the train labels, strictly (integer ids exactly
  ``0..n-1``, no mix of ids and names, at least two classes, no validation label train
  lacks), because a typo in a hand-made file would otherwise train a wrong model silently.
* ``hub_labels``, for Hugging Face Hub data sets: the label column is typed, a ``ClassLabel``
  keeps its names, an int column is ids as they are (at least two classes), and each split is
  mapped on its own. Merging the two would change what loads and what raises.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np

from neurolang.data.errors import DataError
from neurolang.data.examples import Example, files_of
from neurolang.data.tasks import TRAIN, TaskSpec


def convert_labels(
    spec: TaskSpec, examples: Mapping[str, list[Example]]
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


def _infer_classes(
    spec: TaskSpec, examples: Mapping[str, list[Example]]
) -> tuple[tuple[str, ...], bool]:
    """Class names from the train labels of a task that declares none; whether they are names.

    Integer labels must be exactly the ids ``0..n-1``; every other split may only use labels
    that train has; train must have at least two classes.
    """
    train = examples[TRAIN]
    keys = [_label_key(example.raw_label) for example in train]
    counts = Counter(keys)
    first: dict[Any, Example] = {}
    for key, example in zip(keys, train, strict=True):
        first.setdefault(key, example)
    files = files_of(train)
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
        where: dict[Any, Example] = {}
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


def hub_labels(
    feature: Any,
    labels: Sequence[Any],
    label_names: tuple[str, ...] | None,
    shown: str,
    split: str,
) -> tuple[tuple[str, ...], list[int]]:
    """The class names and ids of one split of a Hub data set (its label column ``labels`` with
    the ``feature`` that types it); ``shown`` and ``split`` name it in errors.

    The names: ``label_names`` if given, else a ``ClassLabel``'s own names, else ``"0".."n-1"``
    for int labels (at least two), else the sorted label texts. An int label is its id; any
    other label is looked up by its text. Rows outside ``0..n-1`` (-1: unlabelled) raise.
    Not ``convert_labels``'s rules: see the module docstring.
    """
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
    return names, ids


def require_two_classes(
    spec: TaskSpec, examples: list[Example], ids: np.ndarray, names: Sequence[str]
) -> None:
    """Raise a ``DataError`` if the train ids hold one class only."""
    present = np.unique(ids)
    if len(present) == 1:
        _raise_one_class(spec, examples, names[int(present[0])], len(ids))


def _raise_one_class(spec: TaskSpec, examples: list[Example], label: Any, rows: int) -> None:
    files = ", ".join(repr(f) for f in files_of(examples))
    raise DataError(
        f"the train split of task {spec.name!r} ({files}) has only one class ({str(label)!r}, "
        f"{rows} rows): a classifier needs at least two"
    )


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
    keys: Sequence[int | str], counts: Counter, first: Mapping[Any, Example], one_file: bool
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

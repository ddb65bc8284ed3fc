"""From a ``TaskSpec`` to a ``datasets.DatasetDict``.

``load_spec`` reads the spec's files into examples, makes the validation split where the task
ships none (dev ids or a seeded stratified holdout), checks rows and texts, converts the labels
and builds one ``Dataset`` per split with the columns ``text`` (``text_pair``) and ``label``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import datasets
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "neurolang.data needs the 'datasets' package: pip install 'neurolang[train]'"
    ) from error

from neurolang.data.errors import DataError
from neurolang.data.examples import (
    Example,
    check_spec_files,
    files_of,
    read_split,
    spec_root,
    split_by_ids,
)
from neurolang.data.labels import convert_labels, require_two_classes
from neurolang.data.tasks import SPLITS, TRAIN, VALIDATION, Holdout, TaskSpec

log = logging.getLogger("neurolang.data")


def load_spec(spec: TaskSpec, *, data_dir: Any, seed: int | None,
              two_classes: bool = True) -> datasets.DatasetDict:
    """The ``DatasetDict`` of a spec; ``seed`` overrides the seed of its holdout split;
    ``two_classes``: a train split of one class is an error (not for rows only scored)."""
    root = spec_root(spec, data_dir)
    check_spec_files(spec, root)
    examples = {split: read_split(spec, root, split, files) for split, files in spec.files.items()}
    if spec.dev_ids is not None:
        examples[TRAIN], examples[VALIDATION] = split_by_ids(spec, root, examples[TRAIN])
    for split, split_examples in examples.items():
        _require_rows(spec, split, split_examples)
        _check_texts(spec, split, split_examples)
    label_names, label_ids = convert_labels(spec, examples)
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
    if two_classes:
        require_two_classes(spec, examples[TRAIN], label_ids[TRAIN], label_names)
    return datasets.DatasetDict(result)


def _require_rows(spec: TaskSpec, split: str, examples: list[Example]) -> None:
    if not examples:
        files = ", ".join(spec.files.get(split, spec.files[TRAIN]))
        raise DataError(f"split {split!r} of task {spec.name!r} has no rows (files: {files})")


def _check_texts(spec: TaskSpec, split: str, examples: list[Example]) -> None:
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
        files = ", ".join(repr(f) for f in files_of(examples))
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


def dataset_features(is_pair: bool, label_names: Sequence[str]) -> datasets.Features:
    """The columns of every labelled split: ``text``, (``text_pair``,) ``label``."""
    columns: dict[str, Any] = {"text": datasets.Value("string")}
    if is_pair:
        columns["text_pair"] = datasets.Value("string")
    columns["label"] = datasets.ClassLabel(names=list(label_names))
    return datasets.Features(columns)


def _to_dataset(
    is_pair: bool, examples: list[Example], labels: np.ndarray, label_names: Sequence[str]
) -> datasets.Dataset:
    columns: dict[str, list] = {"text": [e.text for e in examples]}
    if is_pair:
        columns["text_pair"] = [e.text_pair or "" for e in examples]
    columns["label"] = labels.tolist()
    return datasets.Dataset.from_dict(columns, features=dataset_features(is_pair, label_names))

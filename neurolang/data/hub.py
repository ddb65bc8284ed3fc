"""Data sets from the Hugging Face Hub, in this layer's columns and splits.

Only ``train`` and ``validation`` (``dev``, ``val``) are kept; test splits are never loaded.
Offline only data sets already in the Hugging Face cache load.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import datasets

from neurolang.data.errors import DataError
from neurolang.data.labels import hub_labels
from neurolang.data.load import dataset_features
from neurolang.data.tasks import SPLIT_ALIASES, TRAIN, HubSource, known_task_names

__all__ = ["load_hub_task"]


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
    return load_hub_source(source, tuple(label_names) if label_names else None)


def load_hub_source(source: HubSource, label_names: tuple[str, ...] | None) -> datasets.DatasetDict:
    """The train and validation splits of ``source``; any load failure is one ``DataError``."""
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
        split = SPLIT_ALIASES.get(split_name.lower())
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
    names, ids = hub_labels(
        dataset.features[source.label_column],
        dataset[source.label_column],
        label_names,
        shown,
        split,
    )
    columns = {key: dataset[column] for key, column in wanted.items() if key != "label"}
    columns["label"] = ids
    order = ["text", "text_pair", "label"]
    columns = {key: columns[key] for key in order if key in columns}
    return datasets.Dataset.from_dict(
        columns, features=dataset_features(source.text_pair_column is not None, names)
    )

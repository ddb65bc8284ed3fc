"""The data layer: named tasks, local files and Hub data sets as ``datasets.DatasetDict``;
unlabelled text for pre-distillation; tokenisation, length-bucketed batching and padding."""

from neurolang.data.batching import (
    DynamicPaddingCollator,
    LengthBucketBatchSampler,
    build_dataloader,
    tokenize,
)
from neurolang.data.errors import DataError
from neurolang.data.files import ENV_DATA_DIR, resolve_data_dir
from neurolang.data.hub import load_hub_task
from neurolang.data.loading import load_task
from neurolang.data.local import load_local_files, local_task
from neurolang.data.resolve import resolve_task
from neurolang.data.tasks import (
    HUB_ALIASES,
    SPLIT_ALIASES,
    SPLITS,
    TASKS,
    TRAIN,
    VALIDATION,
    DevIds,
    Holdout,
    HubSource,
    TaskSpec,
    get_task,
    known_task_names,
)
from neurolang.data.unlabelled import (
    dev_texts,
    load_unlabelled,
    normalise_text,
    validate_unlabelled_sources,
)

__all__ = [
    "ENV_DATA_DIR",
    "HUB_ALIASES",
    "SPLIT_ALIASES",
    "SPLITS",
    "TASKS",
    "TRAIN",
    "VALIDATION",
    "DataError",
    "DevIds",
    "DynamicPaddingCollator",
    "Holdout",
    "HubSource",
    "LengthBucketBatchSampler",
    "TaskSpec",
    "build_dataloader",
    "get_task",
    "known_task_names",
    "load_hub_task",
    "load_local_files",
    "load_task",
    "dev_texts",
    "load_unlabelled",
    "normalise_text",
    "local_task",
    "resolve_data_dir",
    "resolve_task",
    "tokenize",
    "validate_unlabelled_sources",
]

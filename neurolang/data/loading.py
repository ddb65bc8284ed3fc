"""Load a task (named, local files, or Hugging Face Hub) into a ``datasets.DatasetDict``.

``load_task`` is the entry point: it sends a hub alias or a Hub name to ``neurolang.data.hub``
and everything else through ``resolve_task`` to ``load_spec``.

Every labelled data set becomes splits ``train`` and ``validation`` with the columns ``text``
(plus ``text_pair`` for sentence-pair tasks) and ``label`` (a ``ClassLabel``: int ids with
names). Unlabelled text for pre-distillation (``neurolang.data.unlabelled``) becomes a
``datasets.Dataset`` with one column ``text``. Every problem a user can cause raises
``DataError`` before any training.
"""

from __future__ import annotations

import os
from typing import Any

import datasets

from neurolang.data.errors import DataError
from neurolang.data.files import file_error
from neurolang.data.hub import load_hub_source, load_hub_task
from neurolang.data.load import load_spec
from neurolang.data.resolve import looks_like_hub_name, resolve_task, shown_name
from neurolang.data.tasks import HUB_ALIASES, TASKS, TaskSpec

__all__ = ["load_task"]


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
        return load_hub_source(spec.hub, spec.label_names)
    if isinstance(task, str) and task.strip().lower() not in TASKS and looks_like_hub_name(task):
        return load_hub_task(task, **options)
    try:
        spec = resolve_task(task, **options)
        return load_spec(spec, data_dir=data_dir, seed=seed)
    except OSError as error:  # anything a file check missed: still one DataError
        raise file_error(error.filename or shown_name(task), error) from None

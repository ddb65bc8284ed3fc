"""What the user asked for: a registry name, a hub alias, local file(s) or a Hub name.

``resolve_task`` turns a name or a path into a ``TaskSpec``; ``looks_like_path`` and
``looks_like_hub_name`` tell a mistyped path from an unknown task name and a Hub name
``owner/name`` from a path, reading no file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from neurolang.data.errors import DataError
from neurolang.data.files import SUFFIX_FORMATS
from neurolang.data.local import local_task
from neurolang.data.tasks import HUB_ALIASES, TASKS, TaskSpec, known_task_names

__all__ = ["resolve_task"]

_DATA_SUFFIXES = (*SUFFIX_FORMATS, ".txt")
"""Suffixes that mark a name as a data file: the table formats' suffixes and ``.txt``."""


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
    if looks_like_path(text):
        raise DataError(f"file or directory not found: {text!r}")
    raise DataError(
        f"unknown task {text!r}; known tasks: {', '.join(known_task_names())}. "
        "Or pass a path to a CSV/TSV/JSONL/'LABEL SENTENCE' file, or a Hugging Face Hub name "
        "such as 'glue/sst2'."
    )


def looks_like_path(text: str) -> bool:
    """Whether ``text`` is meant as a path (absolute, relative, ``~``, or a data suffix)."""
    return (
        text.startswith(("/", ".", "~"))
        or os.sep in text
        or Path(text).suffix.lower() in _DATA_SUFFIXES
    )


def looks_like_hub_name(text: str) -> bool:
    """Whether ``text`` is a Hub name ``owner/name``: not a path that exists, no data suffix."""
    parts = text.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not text.startswith((".", "~"))
        and not Path(text).exists()
        and Path(text).suffix.lower() not in _DATA_SUFFIXES
    )


def shown_name(task: Any) -> str:
    """A task as error messages name it: a spec's name, else the text given."""
    return task.name if isinstance(task, TaskSpec) else str(task)

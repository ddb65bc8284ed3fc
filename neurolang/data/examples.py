"""A task's files read into examples: one ``Example`` per row, with the file and line it
came from, so that every later check can say where a bad row is.

``check_spec_files`` checks that a spec's files are there without reading them;
``read_split`` reads one split's files; ``split_by_ids`` cuts a dev split out of train by a
list of row ids (MRPC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurolang.data.errors import DataError
from neurolang.data.files import (
    ENV_DATA_DIR,
    file_error,
    read_table,
    read_text,
    resolve_data_dir,
)
from neurolang.data.tasks import TRAIN, TaskSpec


@dataclass
class Example:
    """One row of a data file: its text(s), its label as read, where it came from and (MRPC)
    its id columns."""

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


def files_of(examples: Sequence[Example]) -> list[str]:
    """The files the examples came from, in order, each once."""
    return list(dict.fromkeys(example.path for example in examples))


def spec_root(spec: TaskSpec, data_dir: Any) -> Path:
    """The folder a spec's file paths are relative to: the data directory, or ``/`` when every
    path is absolute (a user's own files) and there are no dev ids."""
    relative = any(not Path(f).is_absolute() for fs in spec.files.values() for f in fs)
    return resolve_data_dir(data_dir) if relative or spec.dev_ids else Path("/")


def check_spec_files(spec: TaskSpec, root: Path) -> None:
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


def read_split(spec: TaskSpec, root: Path, split: str, files: Sequence[str]) -> list[Example]:
    """The examples of one split: its files read one after the other, every column the spec
    names checked; an empty file or a header without rows is a ``DataError``."""
    examples: list[Example] = []
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
                Example(
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


def split_by_ids(
    spec: TaskSpec, root: Path, train: list[Example]
) -> tuple[list[Example], list[Example]]:
    """``train`` cut in two by ``spec.dev_ids``: the rest, and the rows whose ids are listed
    (every listed id must be a row)."""
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

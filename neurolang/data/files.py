"""Finding the data directory and reading data files into rows, with one clear error each."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurolang.data.errors import DataError

ENV_DATA_DIR = "NEUROLANG_DATA_DIR"
REPO_ROOT = Path(__file__).resolve().parents[2]
_RELATIVE_DATA_DIR = Path("..") / "shared" / "data"

SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}

CSV_FIELD_SIZE_LIMIT = min(sys.maxsize, 2**31 - 1)
"""The csv module's field size limit while reading data files (Python's default, 128 KiB, is
smaller than one long document); the largest value every platform's C ``long`` holds."""


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The directory of the offline data sets.

    In order: ``data_dir`` if given, else the environment variable ``NEUROLANG_DATA_DIR``, else
    ``../shared/data`` relative to the current directory, else relative to the repository root.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataError(f"data directory {str(path)!r} (given as data_dir) does not exist")
        return path.resolve()
    from_env = os.environ.get(ENV_DATA_DIR)
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_dir():
            raise DataError(
                f"data directory {str(path)!r} (from ${ENV_DATA_DIR}) does not exist; "
                f"fix or unset {ENV_DATA_DIR}"
            )
        return path.resolve()
    candidates = [Path.cwd() / _RELATIVE_DATA_DIR, REPO_ROOT / _RELATIVE_DATA_DIR]
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    tried = ", ".join(str(p.resolve()) for p in candidates)
    raise DataError(
        f"no data directory found (tried {tried}); pass data_dir=... or set {ENV_DATA_DIR} "
        "to the folder that holds the data sets (sst2/, cola/, ...)"
    )


def infer_format(path: str | os.PathLike) -> str:
    """``csv``, ``tsv`` or ``jsonl`` from the file suffix; anything else is ``label_sentence``."""
    return SUFFIX_FORMATS.get(Path(path).suffix.lower(), "label_sentence")


def file_error(path: str | os.PathLike, error: OSError) -> DataError:
    """The ``DataError`` for an ``OSError`` met while reading or listing ``path``."""
    shown = str(path)
    if isinstance(error, FileNotFoundError):
        return DataError(f"file not found: {shown!r}")
    if isinstance(error, IsADirectoryError):
        return DataError(f"expected a file but {shown!r} is a directory")
    if isinstance(error, NotADirectoryError):
        return DataError(f"expected a directory but {shown!r} (or a folder above it) is a file")
    if isinstance(error, PermissionError):
        return DataError(f"cannot read {shown!r}: permission denied")
    reason = error.strerror or str(error) or type(error).__name__
    return DataError(f"cannot read {shown!r}: {reason}")


def read_bytes(path: Path) -> bytes:
    """The bytes of a data file: every read of a user's file goes through here, so that any
    ``OSError`` (missing, a directory, permission denied, I/O error) becomes one ``DataError``."""
    try:
        if path.is_dir():
            raise DataError(f"expected a file but {str(path)!r} is a directory")
        return path.read_bytes()
    except OSError as error:
        raise file_error(path, error) from None


def list_directory(path: Path) -> list[Path]:
    """The entries of a data directory, sorted; an ``OSError`` becomes a ``DataError``."""
    try:
        return sorted(path.iterdir())
    except OSError as error:
        raise file_error(path, error) from None


def read_text(path: Path, encoding: str) -> str:
    """The whole file decoded with ``encoding``; a UTF-8 byte-order mark is dropped."""
    raw = read_bytes(path)
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r} for {str(path)!r}") from None
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"{str(path)!r} is not valid {encoding}: byte 0x{raw[error.start]:02x} on line {line} "
            f"cannot be decoded; pass the file's real encoding, e.g. encoding='latin-1' "
            "(or 'cp1252', 'gbk')"
        ) from None
    return text.removeprefix("\ufeff")


@dataclass
class Table:
    """The rows of one file: column names, and per row its values and line number."""

    path: Path
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    lines: list[int]

    def require(self, column: str, option: str) -> None:
        """Raise a ``DataError`` naming the columns present if ``column`` is not one of them."""
        if column not in self.columns:
            present = ", ".join(repr(c) for c in self.columns)
            raise DataError(
                f"column {column!r} not found in {str(self.path)!r}; columns present: {present}. "
                f"Pass {option}= one of these."
            )


def read_table(
    path: Path,
    file_format: str,
    *,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    header: bool = True,
    column_names: tuple[str, ...] | None = None,
) -> Table:
    """Read a data file into a ``Table``.

    Formats: ``label_sentence`` (``LABEL SENTENCE`` lines, columns ``label`` and ``text``),
    ``tsv`` / ``csv`` (``header`` row or ``column_names``; without either the columns are named
    ``"0"``, ``"1"``, ...), ``jsonl`` (one JSON object per line).
    """
    text = read_text(path, encoding)
    if file_format == "label_sentence":
        return _read_label_sentence(path, text)
    if file_format == "jsonl":
        return _read_jsonl(path, text)
    if file_format not in ("tsv", "csv"):
        raise DataError(f"unknown file format {file_format!r} for {str(path)!r}")
    if delimiter is None:
        delimiter = "\t" if file_format == "tsv" else ","
    # TSV files (GLUE, MRPC) put bare quotes in their text: no quoting there.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    if csv.field_size_limit() < CSV_FIELD_SIZE_LIMIT:
        csv.field_size_limit(CSV_FIELD_SIZE_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    columns: tuple[str, ...] | None = None if header else column_names
    rows, lines = [], []
    try:
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if columns is None and header:
                columns = tuple(name.strip() for name in fields)
                continue
            if columns is None:
                columns = tuple(str(i) for i in range(len(fields)))
            if len(fields) != len(columns):
                raise DataError(
                    f"{str(path)!r}, line {reader.line_num}: {len(fields)} fields where the "
                    f"columns are {list(columns)}; check delimiter= (now {delimiter!r}) and header="
                )
            rows.append(dict(zip(columns, fields, strict=True)))
            lines.append(reader.line_num)
    except csv.Error as error:
        raise DataError(
            f"{str(path)!r}, line {reader.line_num}: cannot be read as {file_format.upper()} "
            f"({error}); check the file, delimiter= (now {delimiter!r}) and format="
        ) from None
    return Table(path, columns or (), rows, lines)


def _read_label_sentence(path: Path, text: str) -> Table:
    # Split on "\n" only: latin-1 text (MR) holds U+0085, which str.splitlines() would break on.
    rows, lines = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        label, _, sentence = line.partition(" ")
        rows.append({"label": label, "text": sentence.strip(" \t")})
        lines.append(number)
    return Table(path, ("label", "text"), rows, lines)


def _read_jsonl(path: Path, text: str) -> Table:
    rows, lines = [], []
    columns: dict[str, None] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{str(path)!r}, line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{str(path)!r}, line {number}: expected a JSON object per line")
        columns.update(dict.fromkeys(row))
        rows.append(row)
        lines.append(number)
    return Table(path, tuple(columns), rows, lines)

"""What a command may replace: every output folder is claimed before any work starts.

The rule for every command: a command only ever replaces a folder it recognises as its own
kind of output (a model folder, a teacher folder, a Lava environment it made, a run folder of
the same config), never anything else unless the user says ``--overwrite``, and the check
happens before the work. :func:`claim_folder` and :func:`claim_file` apply it; they also find a
read-only or impossible output path at once instead of after an hour of training.

Standard library only: the Lava side and the torch-free parts use it too.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from neurolang.errors import NeurolangError


class OutputError(NeurolangError, ValueError):
    """An output path a user gave cannot or may not be written."""


# ---- recognising folders ------------------------------------------------------------------

MODEL_FORMATS = ("neurolang-spikformer", "neurolang-pooled-classifier")


def _json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_model_folder(path: Path) -> bool:
    """A neurolang model folder (``save_pretrained`` or a pooled classifier)."""
    data = _json(path / "config.json")
    return data is not None and data.get("format") in MODEL_FORMATS


def is_teacher_folder(path: Path) -> bool:
    """A teacher fine-tuned by neurolang: a transformers folder with neurolang's
    ``results.json`` (task, teacher, hyperparameters)."""
    results = _json(path / "results.json")
    return (results is not None and (path / "config.json").is_file()
            and {"teacher", "hyperparameters"} <= set(results))


def is_built_teacher_folder(path: Path) -> bool:
    """A RoBERTa teacher made by ``neurolang build-teacher``."""
    results = _json(path / "results.json")
    return (results is not None and results.get("stage") == "build-teacher"
            and (path / "config.json").is_file())


def is_run_folder(path: Path) -> bool:
    """A ``neurolang train`` run folder (it records its ``train_config.json``)."""
    return (path / "train_config.json").is_file()


def is_stage_folder(path: Path) -> bool:
    """The folder of one training stage: its checkpoint (also one a kill left half replaced),
    metrics, results or model."""
    return any((path / name).exists() for name in (
        "checkpoint", ".checkpoint.old", "metrics.jsonl", "results.json", "best", "model"))


def is_energy_folder(path: Path) -> bool:
    """The output of ``neurolang energy`` (its ``energy.json``)."""
    data = _json(path / "energy.json")
    return data is not None and "simulators" in data and "energy_models" in data


def is_tradeoff_folder(path: Path) -> bool:
    """The output of ``neurolang energy-chart``: its chart and table, nothing else."""
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return False
    return "tradeoff.md" in names and names <= {"tradeoff.md", "tradeoff.png"}


TABLE_FORMAT = "neurolang-results-table"
"""The ``format`` of the ``table.json`` that ``neurolang results-table`` writes."""


def is_table_folder(path: Path) -> bool:
    """The output of ``neurolang results-table`` (its ``table.json``)."""
    data = _json(path / "table.json")
    return data is not None and data.get("format") == TABLE_FORMAT


def is_venv(path: Path) -> bool:
    """A Python virtual environment (``pyvenv.cfg`` at its top)."""
    return (path / "pyvenv.cfg").is_file()


KINDS = {
    "model": is_model_folder,
    "teacher": is_teacher_folder,
    "built-teacher": is_built_teacher_folder,
    "run": is_run_folder,
    "stage": is_stage_folder,
    "energy": is_energy_folder,
    "tradeoff": is_tradeoff_folder,
    "table": is_table_folder,
    "venv": is_venv,
}


KIND_NAMES = {
    "model": "neurolang model folder",
    "teacher": "neurolang teacher folder",
    "built-teacher": "neurolang teacher folder",
    "run": "neurolang run folder",
    "stage": "neurolang stage folder",
    "energy": "neurolang energy folder",
    "tradeoff": "neurolang energy-chart folder",
    "table": "neurolang results-table folder",
    "venv": "virtual environment",
}


def _listing(path: Path, limit: int = 6) -> str:
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError:
        return "unreadable"
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit
                                        else "")
    return shown or "nothing"


def _protected(path: Path) -> str | None:
    """Folders no command replaces even with ``--overwrite``."""
    resolved = path.resolve()
    here = Path.cwd().resolve()
    if resolved == here or resolved in here.parents:
        return "the current directory or one above it"
    if resolved == Path.home().resolve() or resolved == Path(resolved.anchor):
        return "a home or root directory"
    return None


# ---- writability --------------------------------------------------------------------------


def check_writable(path: Path, what: str) -> None:
    """Raise :class:`OutputError` unless a file can be created at ``path`` (its nearest
    existing ancestor must be a writable folder)."""
    ancestor = path
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"{what} {str(path)!r}: {str(ancestor)!r} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".neurolang-write-check.", dir=ancestor)
    except OSError as err:
        raise OutputError(f"{what} {str(path)!r} cannot be written: {str(ancestor)!r} is not "
                          f"writable ({err.strerror or err}); choose another path") from None
    os.close(fd)
    os.unlink(probe)


def claim_folder(path: str | os.PathLike, kinds: Iterable[str], *, what: str = "output folder",
                 overwrite: bool = False, overwrite_flag: str | None = "--overwrite",
                 replace_own: bool = True) -> Path:
    """Check, before any work, that ``path`` may become this command's output folder.

    Allowed: a path that does not exist yet, an empty folder, or a folder recognised as one of
    ``kinds`` (a key of :data:`KINDS`). Anything else is refused unless ``overwrite`` (the
    message names ``overwrite_flag``, when the command has one); the current directory, its
    parents, home and root are refused always. With ``replace_own=False`` even a folder of
    one's own kind needs ``overwrite``. Returns the path.
    """
    path = Path(path).expanduser()
    kinds = tuple(kinds)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {str(path)!r} is a file, not a folder; choose another path")
    if path.is_dir():
        protected = _protected(path)
        try:
            empty = not any(path.iterdir())
        except OSError as err:
            raise OutputError(f"{what} {str(path)!r} cannot be read: {err.strerror}") from None
        if protected and not empty:
            raise OutputError(f"{what} {str(path)!r} is {protected}: it would be replaced; "
                              "choose a new folder")
        own = [k for k in kinds if KINDS[k](path)]
        if not empty and not overwrite and not (own and replace_own):
            hint = f", or pass {overwrite_flag} to replace it" if overwrite_flag else ""
            names = " or ".join(KIND_NAMES[k] for k in kinds) or "neurolang output folder"
            found = (f"a {KIND_NAMES[own[0]]}" if own else
                     f"not a {names}; it holds: {_listing(path)}")
            raise OutputError(
                f"{what} {str(path)!r} already exists ({found}); nothing was changed. Choose "
                f"another path{hint}")
        check_writable(path / ".probe", what)
    else:
        check_writable(path, what)
    return path


def claim_file(path: str | os.PathLike, *, what: str = "output file",
               suffixes: Iterable[str] = ()) -> Path:
    """Check, before any work, that a file can be written at ``path`` (not a folder, its
    folder writable, an existing file writable)."""
    path = Path(path).expanduser()
    suffixes = tuple(suffixes)
    if path.is_dir():
        raise OutputError(f"{what} {str(path)!r} is a folder; give a file name"
                          + (f" ending in {' or '.join(suffixes)}" if suffixes else ""))
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{what} {str(path)!r} is not writable")
    check_writable(path, what)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` into a temporary sibling, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as open() would make it, not mkstemp's 0600
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

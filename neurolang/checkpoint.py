"""A trained model is a folder: ``config.json`` + ``model.safetensors`` (+ tokenizer files).

Every model family is saved and loaded here; ``config.json``'s ``format`` names the family's
folder format (``neurolang.models.FOLDER_FORMATS``).

``save_pretrained`` writes the folder atomically (into a temporary sibling, then a rename),
so a kill never leaves a half-written model where a good one was, and records the SHA-256 of
the weights in ``config.json``. ``from_pretrained`` verifies it (folders written before the
checksum existed load without it) and loads the model strictly onto any backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from neurolang.config import ConfigError, SpikformerConfig
from neurolang.errors import NeurolangError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "neurolang-spikformer"  # the token-level families' (neurolang.models.base.FORMAT)


class CheckpointError(NeurolangError, ValueError):
    """A model folder is missing, malformed, or does not match the model asked for."""


def save_pretrained(
    model: torch.nn.Module,
    directory: str | Path,
    tokenizer: Any = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (its config, weights, and optionally a tokenizer) as a folder."""
    from neurolang import __version__

    if any(getattr(m, "folded", False) for m in model.modules()):
        raise CheckpointError("the model's BatchNorms are folded into its Linears (an "
                              "inference form): save the model before folding it")

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        config = {
            "format": getattr(model, "folder_format", FORMAT),
            "neurolang_version": __version__,
            "model": model.config.to_dict(),
            **(metadata or {}),
        }
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_NAME))
        config["weights_sha256"] = file_sha256(tmp / WEIGHTS_NAME)
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        replace_directory(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reason(err: OSError) -> str:
    reason = str(err.strerror or err)
    return reason[:1].lower() + reason[1:]


def _old(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def replace_directory(new: Path, target: Path) -> None:
    """Put the finished folder ``new`` at ``target``; the old one is removed only after.

    A kill between the two renames leaves the old folder at ``.NAME.old``;
    :func:`recover_directory` puts it back."""
    recover_directory(target)
    if target.exists():
        old = _old(target)
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def recover_directory(target: Path) -> None:
    """Undo a :func:`replace_directory` killed half-way: the old folder comes back."""
    target = Path(target)
    old = _old(target)
    if not target.exists() and old.is_dir():
        os.replace(old, target)


def read_config(directory: str | Path) -> tuple[SpikformerConfig, dict[str, Any]]:
    """The model configuration (of its family's type) and the rest of ``config.json`` of a
    model folder."""
    from neurolang.models import FOLDER_FORMATS

    directory = Path(directory)
    recover_directory(directory)
    path = directory / CONFIG_NAME
    if not directory.is_dir():
        raise CheckpointError(f"no model folder at {directory}")
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a neurolang model folder (no {CONFIG_NAME})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from None
    except OSError as err:
        raise CheckpointError(f"{path} cannot be read: {_reason(err)}") from None
    if isinstance(data, dict) and isinstance(data.get("architectures"), list):
        raise CheckpointError(
            f"{directory} is a transformers model folder ({', '.join(data['architectures'])}), "
            "not a neurolang student: give it as a teacher, or give a folder written by "
            "neurolang (e.g. RUN/distill/best)")
    if not isinstance(data, dict) or data.get("format") not in FOLDER_FORMATS:
        raise CheckpointError(f"{path} is not a neurolang model configuration")
    read, _ = FOLDER_FORMATS[data["format"]]
    try:
        config = read(data["model"])
    except (ConfigError, ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"{path}: {err}") from None
    return config, data


def from_pretrained(
    directory: str | Path, backend: str = "torch", config: SpikformerConfig | None = None
) -> torch.nn.Module:
    """Load a model folder onto ``backend``, strictly: every parameter must match. The model
    comes back in evaluation mode (as transformers' ``from_pretrained``).

    Pass ``config`` to check the folder against the configuration a caller expects.
    """
    from neurolang.backends import compile as compile_model
    from neurolang.models import FOLDER_FORMATS

    saved, meta = read_config(directory)
    if config is not None and config != saved:
        diff = {k: (v, saved.to_dict()[k]) for k, v in config.to_dict().items()
                if saved.to_dict()[k] != v}
        raise CheckpointError(f"{directory} holds another model: (expected, found) {diff}")
    state = load_weights(directory, meta)
    model = FOLDER_FORMATS[meta["format"]][1](saved)
    missing, unexpected = _strict_difference(model, state)
    if missing or unexpected:
        raise CheckpointError(
            f"{Path(directory) / WEIGHTS_NAME} does not match its config: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{Path(directory) / WEIGHTS_NAME} does not match its config: "
                              f"{err}") from None
    return compile_model(model, backend).eval()


def load_weights(directory: str | Path, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of a model folder's ``model.safetensors``, checked against the SHA-256
    that ``config.json`` records (when it records one)."""
    weights = Path(directory) / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS_NAME}: the folder is incomplete "
                              "(copy it again, or train/import it again)")
    expected = meta.get("weights_sha256")
    try:
        if expected is not None and file_sha256(weights) != expected:
            raise CheckpointError(
                f"{weights} is damaged: its SHA-256 does not match the one recorded in "
                f"{CONFIG_NAME} when it was saved; copy the folder again or re-train")
        return load_file(str(weights))
    except OSError as err:
        raise CheckpointError(f"{weights} cannot be read: {_reason(err)}") from None
    except CheckpointError:
        raise
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{weights} is not a valid safetensors file ({err}); the "
                              "folder is damaged: copy it again or re-train") from None


def _strict_difference(model: torch.nn.Module, state: dict) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(state)), sorted(set(state) - expected)

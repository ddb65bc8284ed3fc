"""A trained model is a folder: ``config.json`` + ``model.safetensors`` (+ tokenizer files).

``save_pretrained`` writes the folder atomically (into a temporary sibling, then a rename),
so a kill never leaves a half-written model where a good one was. ``from_pretrained`` loads
it strictly onto any backend.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from neurolang.config import ConfigError, SpikformerConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "neurolang-spikformer"


class CheckpointError(ValueError):
    """A model folder is missing, malformed, or does not match the model asked for."""


def save_pretrained(
    model: torch.nn.Module,
    directory: str | Path,
    tokenizer: Any = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (its config, weights, and optionally a tokenizer) as a folder."""
    from neurolang import __version__

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        config = {
            "format": FORMAT,
            "neurolang_version": __version__,
            "model": model.config.to_dict(),
            **(metadata or {}),
        }
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_NAME))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        replace_directory(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def replace_directory(new: Path, target: Path) -> None:
    """Put the finished folder ``new`` at ``target``; the old one is removed only after."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def read_config(directory: str | Path) -> tuple[SpikformerConfig, dict[str, Any]]:
    """The model configuration and the rest of ``config.json`` of a model folder."""
    directory = Path(directory)
    path = directory / CONFIG_NAME
    if not directory.is_dir():
        raise CheckpointError(f"no model folder at {directory}")
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a neurolang model folder (no {CONFIG_NAME})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a neurolang model configuration")
    try:
        config = SpikformerConfig.from_dict(data["model"])
    except (ConfigError, KeyError) as err:
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
    from neurolang.spikformer import Spikformer

    saved, _ = read_config(directory)
    if config is not None and config != saved:
        diff = {k: (v, saved.to_dict()[k]) for k, v in config.to_dict().items()
                if saved.to_dict()[k] != v}
        raise CheckpointError(f"{directory} holds another model: (expected, found) {diff}")
    weights = Path(directory) / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS_NAME}")
    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{weights} cannot be read: {err}") from None
    model = Spikformer(saved)
    missing, unexpected = _strict_difference(model, state)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match its config: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{weights} does not match its config: {err}") from None
    return compile_model(model, backend).eval()


def _strict_difference(model: torch.nn.Module, state: dict) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(state)), sorted(set(state) - expected)

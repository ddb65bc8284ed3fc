"""Checks of configuration values: type, range and choices, the option named in every error.

Every check takes ``where`` (the section, e.g. ``"[run]"``; ``""`` for none) and ``name`` (the
option), returns the value when it is good and raises :class:`ConfigError` (a ``ValueError``)
naming ``"{where} {name}"`` when it is not. Standard library only: the neuron specification
and every configuration dataclass use these checks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from neurolang.errors import NeurolangError


class ConfigError(NeurolangError, ValueError):
    """A configuration value or file a user gave is wrong."""


def _label(where: str, name: str) -> str:
    return f"{where} {name}" if where else name


def _fail(where: str, name: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{_label(where, name)} must be {expected}, got {value!r}")


def check_int(where: str, name: str, value: Any, *, at_least: int | None = None) -> int:
    """An integer (never a bool; a float only if integral, returned as an ``int``), at least
    ``at_least`` if given."""
    if at_least is None:
        expected = "an integer"
    elif at_least == 1:
        expected = "a positive integer"
    else:
        expected = f"an integer >= {at_least}"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(where, name, expected, value)
    if at_least is not None and value < at_least:
        raise _fail(where, name, expected, value)
    return value


def check_number(where: str, name: str, value: Any, *, at_least: float | None = None,
                 greater_than: float | None = None, at_most: float | None = None,
                 less_than: float | None = None) -> float:
    """A finite real number (an int or a float, never a bool), returned as given, within the
    bounds given: ``at_least`` / ``at_most`` include the bound, ``greater_than`` /
    ``less_than`` exclude it."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _fail(where, name, "a number", value)
    bounds = ""
    low = ("[", ">=", at_least) if at_least is not None else ("(", ">", greater_than)
    high = ("]", "<=", at_most) if at_most is not None else (")", "<", less_than)
    if low[2] is not None and high[2] is not None:
        bounds = f" in {low[0]}{low[2]}, {high[2]}{high[0]}"
    elif low[2] is not None or high[2] is not None:
        _, sign, bound = low if low[2] is not None else high
        bounds = f" {sign} {bound}"
    if ((isinstance(value, float) and not math.isfinite(value))
            or (at_least is not None and value < at_least)
            or (greater_than is not None and value <= greater_than)
            or (at_most is not None and value > at_most)
            or (less_than is not None and value >= less_than)):
        raise _fail(where, name, f"a finite number{bounds}", value)
    return value


def check_bool(where: str, name: str, value: Any) -> bool:
    """``True`` or ``False`` (not 0 or 1, not a string)."""
    if not isinstance(value, bool):
        raise _fail(where, name, "true or false", value)
    return value


def check_str(where: str, name: str, value: Any, *, non_empty: bool = False) -> str:
    """A string; with ``non_empty``, one with more than blanks in it."""
    if not isinstance(value, str) or (non_empty and not value.strip()):
        raise _fail(where, name, "a non-empty string" if non_empty else "a string", value)
    return value


def check_choice(where: str, name: str, value: Any, choices: Iterable[str]) -> str:
    """One of ``choices``."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise _fail(where, name, f"one of {', '.join(choices)}", value)
    return value


def check_str_list(where: str, name: str, value: Any) -> list[str]:
    """A list of non-empty strings. A string (as ``--set data.unlabelled=wikitext2`` gives)
    is one item, or several separated by commas (``"wikitext2,task"``)."""
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",")]
    if (not isinstance(value, (list, tuple))
            or not all(isinstance(item, str) and item.strip() for item in value)):
        raise _fail(where, name, "a list of non-empty strings", value)
    return list(value)


def check_table(where: str, value: Any) -> dict[str, Any]:
    """A table of options (a dict), e.g. a TOML section."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table of options, got {value!r}")
    return value


def from_table(cls: Any, data: Any, *, kind: str = "", place: str = "", prefix: str = "",
               table: str = "a configuration", convert: Any = None) -> Any:
    """The one strict ``from_dict`` of every configuration dataclass: ``data`` must be a table
    whose keys are all fields of ``cls`` (the message lists the unknown and the known ones,
    as ``unknown {kind} option(s) [...] in {place}``); ``convert`` may rewrite the values
    (nested tables); the dataclass's own checks raise with ``prefix`` before them."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(check_table(table, data)) - known)
    if unknown:
        what = f"{kind} " if kind else ""
        where = f" in {place}" if place else ""
        raise ConfigError(f"unknown {what}option(s) {unknown}{where}; known: {sorted(known)}")
    values = convert(dict(data)) if convert else dict(data)
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{prefix}{err}") from None


def read_toml(path: Any, what: str = "configuration") -> dict[str, Any]:
    """A TOML file as a dict, or one :class:`ConfigError` saying what is wrong with it
    (missing, a folder, not TOML). ``tomllib`` on Python >= 3.11, ``tomli`` before."""
    from pathlib import Path

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    if not path.is_file():
        state = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(f"no {what} file at {path} (it {state})")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None

"""One target's rules keyed by op, and the refusals with their reasons.

Torch-free (standard library only), so that the Lava side, which runs without torch, keys its
rules the same way as the torch-side targets (``neurolang.graph`` re-exports it with
``primitive_ops``, the ops every table must cover).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class OpTable:
    """One target's rules, keyed by op: ``rules[op]`` handles a node; ``refused[op]`` says
    why the target cannot take that op. Looking up an op in neither is a bug of the table (a
    primitive added without its row); looking up a refused one raises ``error`` naming it."""

    def __init__(self, target: str, rules: Mapping[str, Callable[..., Any]],
                 refused: Mapping[str, str] | None = None,
                 error: type[Exception] = ValueError):
        self.target, self.rules, self.error = target, dict(rules), error
        self.refused = dict(refused or {})
        both = set(self.rules) & set(self.refused)
        if both:
            raise ValueError(f"{target}: ops both handled and refused: {sorted(both)}")

    def __contains__(self, op: str) -> bool:
        return op in self.rules or op in self.refused

    def __getitem__(self, op: str) -> Callable[..., Any]:
        if op in self.rules:
            return self.rules[op]
        if op in self.refused:
            raise self.error(f"{self.target} cannot take op {op!r}: {self.refused[op]}")
        raise self.error(f"{self.target} has no rule for op {op!r} (known: "
                         f"{', '.join(sorted(self.rules))})")

    def missing(self, ops) -> list[str]:
        """The ops of ``ops`` this table neither handles nor refuses."""
        return sorted(op for op in ops if op not in self)

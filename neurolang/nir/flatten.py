"""Flattening a neurolang NIR graph: nested graphs inlined, a topological order, shape checks.

Torch-free. Names of inlined nodes are joined with ``.`` (``blocks.0`` + ``mlp.fc1.linear``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from neurolang.nir.errors import NIRError
from neurolang.nir.nodes import OperandNode


@dataclass
class FlatGraph:
    """A graph with nested NIRGraphs inlined; node names joined with ``.``.

    ``edges`` keep NIR's meaning (fan-in is a sum) except into nodes with ``operands``.
    """

    nodes: dict[str, nir.NIRNode] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    operand_sources: dict[str, list[str]] = field(default_factory=dict)

    def sources(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]

    def targets(self, name: str) -> list[str]:
        return [b for a, b in self.edges if a == name]

    def inputs(self) -> dict[str, nir.Input]:
        return {k: n for k, n in self.nodes.items() if isinstance(n, nir.Input)}

    def outputs(self) -> dict[str, nir.Output]:
        return {k: n for k, n in self.nodes.items() if isinstance(n, nir.Output)}

    def operands(self, name: str) -> list[str]:
        """The operand sources of ``name`` in order (edges into it, for ordinary nodes)."""
        if name in self.operand_sources:
            return list(self.operand_sources[name])
        return self.sources(name)

    def topological_order(self) -> list[str]:
        indegree = {n: 0 for n in self.nodes}
        for _, b in self.edges:
            indegree[b] += 1
        ready = [n for n in self.nodes if indegree[n] == 0]
        order = []
        while ready:
            n = ready.pop(0)
            order.append(n)
            for t in self.targets(n):
                indegree[t] -= 1
                if indegree[t] == 0:
                    ready.append(t)
        if len(order) != len(self.nodes):
            stuck = sorted(n for n, d in indegree.items() if d > 0)
            raise NIRError(f"the graph has a cycle through {stuck[:5]}; neurolang graphs are "
                           "feed-forward")
        return order

    def check_shapes(self) -> None:
        """Every edge connects equal per-token shapes; operand lists match the edges."""
        self.topological_order()
        for name, node in self.nodes.items():
            if isinstance(node, OperandNode):
                ops = self.operands(name)
                if sorted(ops) != sorted(self.sources(name)):
                    raise NIRError(f"node {name!r}: operands {ops} do not match its incoming "
                                   f"edges {sorted(self.sources(name))}")
        for a, b in self.edges:
            out = _the_type(self.nodes[a].output_type, a, "output")
            inp = _the_type(self.nodes[b].input_type, b, "input")
            if out is None or inp is None:
                continue
            if not np.array_equal(np.asarray(out).reshape(-1), np.asarray(inp).reshape(-1)):
                raise NIRError(f"inconsistent shapes: edge {a!r} -> {b!r}: {a!r} gives "
                               f"{list(np.asarray(out).reshape(-1))}, {b!r} takes "
                               f"{list(np.asarray(inp).reshape(-1))}")


def _the_type(types: Any, name: str, what: str):
    if not types:
        return None
    values = list(types.values())
    if len(values) != 1:
        raise NIRError(f"node {name!r} has several {what} ports; not supported")
    return values[0]


def flatten(graph: nir.NIRGraph) -> FlatGraph:
    """Inline nested graphs (each with one ``Input`` and one ``Output``)."""
    flat = FlatGraph()

    def inline(g: nir.NIRGraph, prefix: str, top: bool) -> tuple[list[str], list[str]]:
        """Add ``g``'s nodes; return (entry targets, exit sources) in flat names."""
        entry: dict[str, list[str]] = {}
        exits: dict[str, list[str]] = {}

        def full(name: str) -> str:
            return f"{prefix}{name}"

        inner_inputs = [k for k, n in g.nodes.items() if isinstance(n, nir.Input)]
        inner_outputs = [k for k, n in g.nodes.items() if isinstance(n, nir.Output)]
        if not top and (len(inner_inputs) != 1 or len(inner_outputs) != 1):
            raise NIRError(f"nested graph {prefix[:-1]!r} must have exactly one Input and one "
                           f"Output (has {len(inner_inputs)} and {len(inner_outputs)})")
        for name, node in g.nodes.items():
            if isinstance(node, nir.NIRGraph):
                entry[name], exits[name] = inline(node, f"{full(name)}.", top=False)
            elif not top and isinstance(node, (nir.Input, nir.Output)):
                continue
            else:
                flat.nodes[full(name)] = node
                entry[name], exits[name] = [full(name)], [full(name)]
        where = f"nested graph {prefix[:-1]!r}" if not top else "the graph"
        for a, b in g.edges:
            for end in (a, b):
                if end not in g.nodes:
                    raise NIRError(f"edge {a!r} -> {b!r} of {where}: there is no node {end!r}")
            if not top and (a in inner_outputs or b in inner_inputs):
                raise NIRError(f"edge {a!r} -> {b!r} of {where} leaves its Output or enters "
                               "its Input; a nested graph's Input only feeds and its Output "
                               "only receives")
        boundary_in: list[str] = []
        boundary_out: list[str] = []
        for a, b in g.edges:
            a_is_in = not top and a in inner_inputs
            b_is_out = not top and b in inner_outputs
            if a_is_in and b_is_out:
                raise NIRError(f"nested graph {prefix[:-1]!r} passes its input straight to its "
                               "output; not supported")
            if a_is_in:
                boundary_in.extend(entry[b])
            elif b_is_out:
                boundary_out.extend(exits[a])
            else:
                for s in exits[a]:
                    for t in entry[b]:
                        flat.edges.append((s, t))
        # operand names of extension nodes refer to sibling nodes
        for name, node in g.nodes.items():
            if isinstance(node, OperandNode):
                resolved = []
                for op in node.operand_names:
                    if op not in g.nodes or isinstance(g.nodes[op], (nir.Input, nir.NIRGraph)):
                        raise NIRError(f"node {full(name)!r}: operand {op!r} must be a sibling "
                                       "node that is not an Input or a graph")
                    resolved.append(full(op))
                flat.operand_sources[full(name)] = resolved
        return boundary_in, boundary_out

    inline(graph, "", top=True)
    if len(set(flat.edges)) != len(flat.edges):
        raise NIRError("the flattened graph has duplicate edges")
    for name in flat.nodes:
        if isinstance(flat.nodes[name], nir.NIRGraph):  # pragma: no cover - inlined above
            raise NIRError(f"could not inline {name!r}")
    return flat

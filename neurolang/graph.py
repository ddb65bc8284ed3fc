"""The model as a graph of primitives.

``trace(model)`` turns a model into a :class:`Graph` whose nodes are the model's
:class:`~neurolang.primitives.Primitive` modules (by module name) plus the few tensor
operations between them (the residual ``add``, the padding-mask folding). Exporters (NIR) and
simulators (Lava) walk this graph; ``Graph.run`` executes it, which the tests compare with the
model's own ``forward`` so that nothing the model computes is missing from the graph.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.fx
from torch import nn

from neurolang.op_table import OpTable  # noqa: F401  (torch-free: the Lava side uses it)
from neurolang.primitives import Primitive, fold_mask

# tensor operations allowed between primitives, by the name exporters see
_FUNCTIONS = {
    operator.add: "add",
    fold_mask: "fold_mask",
}


# the graph's own node kinds besides the primitives' ops
GRAPH_OPS = ("input", "output", *_FUNCTIONS.values())


def primitive_ops() -> list[str]:
    """Every ``op`` a primitive of :mod:`neurolang.primitives` can have, plus the graph's own
    node kinds: what a target's rule table must cover (a rule, or a refusal with a reason)."""
    import inspect

    from neurolang import primitives

    ops = {cls.op for _, cls in inspect.getmembers(primitives, inspect.isclass)
           if issubclass(cls, Primitive) and cls is not Primitive}
    return sorted(ops | set(GRAPH_OPS))


@dataclass
class Node:
    """One node: ``op`` is a primitive's ``op`` (``linear``, ``neuron``, ...), ``add``,
    ``input`` or ``output``; ``module`` is the primitive (None for the others)."""

    name: str
    op: str
    inputs: list[str]
    module: nn.Module | None = None


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    fx_module: torch.fx.GraphModule | None = None

    def by_op(self, op: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.op == op]

    def consumers(self) -> dict[str, list[str]]:
        """Every node's readers, by name, in graph order (an empty list for none)."""
        readers: dict[str, list[str]] = {name: [] for name in self.nodes}
        for node in self.nodes.values():
            for name in node.inputs:
                readers[name].append(node.name)
        return readers

    def run(self, *args):
        """Execute the graph (its node order is a topological order)."""
        return self.fx_module(*args)


class _PrimitiveTracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, Primitive) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> Graph:
    """The inference graph of ``model`` (``output_representations=False``)."""
    tracer = _PrimitiveTracer(autowrap_functions=(fold_mask,))
    fx_graph = tracer.trace(model, concrete_args={"output_representations": False})
    fx_module = torch.fx.GraphModule(model, fx_graph)
    graph = Graph(fx_module=fx_module)
    names: dict[torch.fx.Node, str] = {}
    specialised: set[torch.fx.Node] = set()  # fx's guard of the concrete argument
    for node in fx_graph.nodes:
        if (node.op == "placeholder" and node.target.startswith("output_representations")) or (
            node.all_input_nodes and set(node.all_input_nodes) <= specialised
        ):
            specialised.add(node)
            continue
        inputs = [names[a] for a in node.all_input_nodes]
        if node.op == "placeholder":
            names[node] = node.target
            graph.nodes[node.target] = Node(node.target, "input", [])
        elif node.op == "call_module":
            module = model.get_submodule(node.target)
            name = node.target
            if name in graph.nodes:  # a primitive called twice gets numbered calls
                name = f"{name}#{sum(1 for n in graph.nodes if n.startswith(name))}"
            names[node] = name
            graph.nodes[name] = Node(name, module.op, inputs, module)
        elif node.op == "call_function" and node.target in _FUNCTIONS:
            names[node] = node.name
            graph.nodes[node.name] = Node(node.name, _FUNCTIONS[node.target], inputs)
        elif node.op == "output":
            result = node.args[0]
            graph.outputs = {key: names[value] for key, value in result.items()}
        else:
            raise TypeError(
                f"the model computes {node.op} {node.target} outside a primitive; only "
                f"primitives and {sorted(_FUNCTIONS.values())} can be exported"
            )
    return graph

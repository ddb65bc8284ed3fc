"""Which node is which to the counters: :class:`CountingPlan`, read from the model's graph.

Every node of ``neurolang.graph.trace(model)`` gets its rule from
:data:`~neurolang.energy.rules.COUNTING_RULES` by its op; the plan asks the rule whether the
node emits spikes, its width, what its rows are and its role. Both counters, and
:mod:`neurolang.energy.spikebert`, ask the plan, never the ops.
"""

from __future__ import annotations

from torch import nn

from neurolang.energy.records import CountingError, LayerCounts, ModelCounts
from neurolang.energy.rules import COUNTING_RULES, SAMPLE, SAMPLE_STEP, TOKEN, TOKEN_STEP, Rule
from neurolang.graph import Graph, Node, trace


class CountingPlan:
    """What the counters need from ``trace(model)``: per node, its rule, whether it emits
    spikes, its width (features of its output), what its rows are (tokens, tokens x steps,
    ...) and its role (``LayerCounts.role``). A model with an op the rules refuse, or have no
    row for, is refused with one error naming every such op."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.time_steps: int = model.config.time_steps
        self.graph: Graph = trace(model)
        self.ops: dict[str, str] = {}
        self.rules: dict[str, Rule] = {}
        uncounted: dict[str, str] = {}  # op -> its first node
        for name, node in self.graph.nodes.items():
            self.ops[name] = op = node.op
            if op in COUNTING_RULES.rules:
                self.rules[name] = COUNTING_RULES[op].for_node(self.graph, name)
            else:
                uncounted.setdefault(op, name)
        if uncounted:
            raise CountingError(_refusal(model, uncounted))
        self.nodes: dict[str, Node] = {
            name: node for name, node in self.graph.nodes.items() if self.rules[name].layer
        }
        self.spiking: dict[str, bool] = {}
        self.graded: dict[str, bool] = {}  # spikes alpha[t] * {-1, 0, 1} (amplitude kinds)
        self.width: dict[str, int] = {}
        self.rows: dict[str, str] = {}
        self.roles: dict[str, str] = {}
        for name, node in self.nodes.items():
            rule, module, inputs = self.rules[name], node.module, self.data_inputs(node)
            self.spiking[name] = rule.spiking(module)
            self.graded[name] = rule.graded(module)
            width = rule.width(module)
            self.width[name] = self.width[inputs[0]] if width is None else width
            self.rows[name] = self.rows[inputs[0]] if rule.rows is None else rule.rows
            self.roles[name] = rule.role_of(module, bool(inputs) and self.spiking[inputs[0]])
        self.module_names: dict[int, str] = {}
        for name, node in self.nodes.items():
            if node.module is not None:
                if id(node.module) in self.module_names:
                    raise CountingError(f"{name}: a primitive called twice cannot be counted "
                                        "by forward hooks")
                self.module_names[id(node.module)] = name

    def data_inputs(self, node: Node) -> list[str]:
        return [i for i in node.inputs if i in self.nodes]

    def rule(self, name: str) -> Rule:
        return self.rules[name]

    def role(self, name: str) -> str:
        return self.roles[name]

    def with_role(self, *roles: str) -> list[str]:
        """The nodes (graph order) whose role is one of ``roles``."""
        return [name for name in self.nodes if self.roles[name] in roles]

    def populations(self) -> list[str]:
        """The nodes that emit spikes (graph order)."""
        return [name for name in self.nodes if self.spiking[name]]

    def row_count(self, kind: str, samples: int, tokens: int) -> int:
        steps = self.time_steps
        return {TOKEN: tokens, TOKEN_STEP: steps * tokens, SAMPLE_STEP: steps * samples,
                SAMPLE: samples}[kind]

    def empty_counts(self, simulator: str) -> ModelCounts:
        counts = ModelCounts(simulator, self.time_steps)
        for name, node in self.nodes.items():
            counts.layers[name] = LayerCounts(
                name=display_name(self, name), op=self.ops[name], role=self.role(name),
                inputs=[display_name(self, i) for i in self.data_inputs(node)],
                width=self.width[name])
        return counts


def _refusal(model: nn.Module, uncounted: dict[str, str]) -> str:
    """One error for every op of the model the rules do not count, with the reason."""
    reasons = ", ".join(
        f"{op} ({name}: {COUNTING_RULES.refused.get(op, 'no row in COUNTING_RULES')})"
        for op, name in sorted(uncounted.items()))
    block = getattr(model.config, "block", "spikformer")
    return (f"no energy counting rule for {reasons}; the rules cover the Spikformer block's "
            f"primitives only, this model has block={block!r}")


def display_name(plan: CountingPlan, name: str) -> str:
    """Graph names, except residual adds: ``blocks.0.attention.residual`` for the ``add``
    whose branch is ``blocks.0.attention.output.neuron``."""
    if plan.roles.get(name) != "residual":
        return name
    branch = plan.data_inputs(plan.nodes[name])[-1]
    parts = branch.split(".")
    if plan.spiking[branch] and len(parts) > 2:
        return ".".join(parts[:-2]) + ".residual"
    return name

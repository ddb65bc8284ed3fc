"""Models to NIR files and back (the torch side; the file format is ``neurolang.nir``).

``to_nir`` walks ``neurolang.graph.trace(model)`` and hands every traced node to its rule,
``EXPORT_RULES[node.op]`` (``neurolang.export.export_rules``): every primitive becomes a
standard NIR node where NIR can express it exactly, else a ``neurolang.*`` extension node
(``docs/nir-extensions.md``). ``from_nir_graph`` rebuilds the model from the configuration
stored in the file, checks the graph's structure against the model's own export, and loads
every module's parameters through ``IMPORT_RULES[module.op]``
(``neurolang.export.import_rules``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from neurolang.export.export_rules import EXPORT_RULES, ExportContext, finish_inputs
from neurolang.export.import_rules import IMPORT_RULES, ImportContext
from neurolang.graph import Node, trace
from neurolang.models import PooledClassifierConfig, PooledSpikingClassifier, SpikingClassifier
from neurolang.models import build_model as build_family
from neurolang.nir.errors import NIRError
from neurolang.nir.flatten import flatten
from neurolang.nir.io import FORMAT, FORMAT_VERSION, read_metadata, read_nir, write_nir
from neurolang.nir.lif import DEFAULT_DT
from neurolang.nir.nodes import OperandNode, extension_types, node_type
from neurolang.primitives import SpikingNeuron

_BLOCK = re.compile(r"^(blocks\.\d+)\.(.+)$")


def _model_kind(model: nn.Module) -> str:
    """``spikformer`` for every token-level family (its config's ``block`` says which),
    ``pooled_classifier``; a family whose ops have no NIR rule is refused op by op."""
    if isinstance(model, SpikingClassifier):
        return "spikformer"
    if isinstance(model, PooledSpikingClassifier):
        return "pooled_classifier"
    raise NIRError(f"cannot export a {type(model).__name__}: neurolang exports its model "
                   "families (neurolang.models) only")


def _rule(table, op: str, name: str):
    """``table[op]``, with the node's name in the error of an op the table refuses."""
    try:
        return table[op]
    except NIRError as err:
        raise NIRError(f"{name}: {err}") from None


def to_nir(model: nn.Module, strict: bool = False, dt: float = DEFAULT_DT) -> nir.NIRGraph:
    """The NIR graph of ``model`` (evaluation-mode semantics: BatchNorm uses running stats).

    With ``strict``, raise :class:`NIRError` naming every layer that needs an extension node.
    """
    from neurolang import __version__

    kind = _model_kind(model)
    if not dt > 0:
        raise NIRError(f"dt must be positive, got {dt}")
    graph = trace(model)
    refused = {n.op: n.name for n in graph.nodes.values() if n.op in EXPORT_RULES.refused}
    if refused:  # every op the file cannot hold, named at once, before any rule runs
        raise NIRError(f"cannot export this {type(model).__name__}: " + "; ".join(
            f"{name}: {EXPORT_RULES.refused[op]}" for op, name in sorted(refused.items())))
    ctx = ExportContext(graph, dt, model.config.time_steps)
    for node in graph.nodes.values():
        _rule(EXPORT_RULES, node.op, node.name)(ctx, node)
        ctx.note_static(node)
    finish_inputs(ctx)
    _rule(EXPORT_RULES, "output", "output")(
        ctx, Node("output", "output", list(graph.outputs.values())))
    problems = ctx.problems
    if strict and problems:
        raise NIRError(
            f"strict NIR export refused: {len(problems)} layer(s) need neurolang extension "
            f"nodes: {'; '.join(problems)}")

    specs = {m.spec for m in model.modules() if isinstance(m, SpikingNeuron)}
    config = model.config.to_dict()
    if kind == "spikformer":
        config["representation_taps"] = False  # distillation-only, not on the path to logits
    metadata = {
        "neurolang.format": FORMAT,
        "neurolang.format_version": FORMAT_VERSION,
        "neurolang.version": __version__,
        "neurolang.model": kind,
        "neurolang.config": json.dumps(config, sort_keys=True),
        "dt": float(dt),
        "time_steps": int(model.config.time_steps),
        "input_encoding": "repeat",
        "token_axis": "leading" if kind == "spikformer" else "none",
        "reset": ",".join(sorted({s.reset for s in specs})),
        "threshold_comparison": ",".join(sorted({s.threshold_comparison for s in specs})),
        "neurolang.strict": int(not problems),
    }
    nodes, edges = ctx.nodes, ctx.edges
    root = _nest(nodes, edges, ctx.width) if kind == "spikformer" else (nodes, edges)
    out = nir.NIRGraph(nodes=root[0], edges=root[1], metadata=metadata, type_check=False)
    metadata["neurolang.extensions"] = json.dumps(extension_types(out))
    flatten(out).check_shapes()
    return out


def _unused(name: str, taken) -> str:
    """``name``, or ``name_1``, ``name_2``, ... : the first not in ``taken``."""
    candidate, k = name, 0
    while candidate in taken:
        k += 1
        candidate = f"{name}_{k}"
    return candidate


def _nest(nodes: dict[str, nir.NIRNode], edges: list[tuple[str, str]],
          width: dict[str, int]):
    """Group ``blocks.<i>.*`` (and the sums whose operands come from a block) into nested
    graphs, one per block, whatever the nesting of the block's modules.

    A node keeps its module path below the block as its name in the block's graph
    (``blocks.0.attention.query.linear`` -> ``attention.query.linear``), so that flattening
    gives back the module names; a residual sum, which is no module, is named after the
    branch that feeds it (``attention.residual``; ``output.residual`` for a membrane
    shortcut ``u + output(...)``), numbered if that name is taken. The block's ``Input`` and
    ``Output`` are ``input`` and ``output`` unless a module of the block has that name
    (then ``input_1``, ``output_1``, ...: readers find them by type). ``width`` is the
    features per token of every node (the block's input and output widths).
    """
    block_of: dict[str, str] = {}
    for name in nodes:
        m = _BLOCK.match(name)
        if m:
            block_of[name] = m.group(1)
    for name, node in nodes.items():  # residual sums: the block of their block-local input
        if isinstance(node, nir.Scale) and name not in block_of:
            ins = sorted({block_of[a] for a, b in edges if b == name and a in block_of},
                         key=lambda s: int(s.split(".")[1]))
            if ins:
                block_of[name] = ins[-1]
    top_nodes = {k: v for k, v in nodes.items() if k not in block_of}
    top_edges: list[tuple[str, str]] = []
    local_names: dict[str, str] = {}
    blocks = sorted(set(block_of.values()), key=lambda s: int(s.split(".")[1]))
    inner: dict[str, tuple[dict, list]] = {b: ({}, []) for b in blocks}
    for name, block in block_of.items():  # modules first: their names are fixed
        m = _BLOCK.match(name)
        if m:
            local_names[name] = m.group(2)
            inner[block][0][m.group(2)] = nodes[name]
    for name in nodes:  # then the sums, in forward order (a sum may feed the next)
        block = block_of.get(name)
        if block is None or name in local_names:
            continue
        feeders = [a for a, b in edges if b == name and block_of.get(a) == block
                   and a in local_names]
        if not feeders:
            raise NIRError(f"{name}: a sum in {block} that no node of the block feeds")
        feeder = next((a for a in feeders if _BLOCK.match(a)), feeders[0])
        local = _unused(f"{local_names[feeder].split('.')[0]}.residual", inner[block][0])
        local_names[name] = local
        inner[block][0][local] = nodes[name]
    # the block's Input and Output: "input" and "output" unless a module has that name
    boundary = {b: (_unused("input", inner[b][0]), _unused("output", inner[b][0]))
                for b in blocks}
    streams: dict[str, tuple[str, str]] = {}
    for block in blocks:
        into = {a for a, b in edges if block_of.get(b) == block and block_of.get(a) != block}
        out_of = {a for a, b in edges if block_of.get(a) == block and block_of.get(b) != block}
        if len(into) != 1 or len(out_of) != 1:
            raise NIRError(f"{block} does not have one input and one output stream")
        streams[block] = (next(iter(into)), next(iter(out_of)))
    for a, b in edges:
        ba, bb = block_of.get(a), block_of.get(b)
        if ba and ba == bb:
            inner[ba][1].append((local_names[a], local_names[b]))
            continue
        if bb and (boundary[bb][0], local_names[b]) not in inner[bb][1]:
            inner[bb][1].append((boundary[bb][0], local_names[b]))
        if ba:
            if (local_names[a], boundary[ba][1]) not in inner[ba][1]:
                inner[ba][1].append((local_names[a], boundary[ba][1]))
        edge = (ba or a, bb or b)
        if edge not in top_edges:
            top_edges.append(edge)
    for block in blocks:
        sub_nodes, sub_edges = inner[block]
        for node in sub_nodes.values():
            if isinstance(node, OperandNode):
                names = [local_names.get(o, o) for o in node.operand_names]
                node.operands = json.dumps(names)
        (source, exit_node), (input_name, output_name) = streams[block], boundary[block]
        sub_nodes = {input_name: nir.Input(np.array([width[source]])), **sub_nodes,
                     output_name: nir.Output(np.array([width[exit_node]]))}
        top_nodes[block] = nir.NIRGraph(nodes=sub_nodes, edges=sub_edges, type_check=False,
                                        metadata={"neurolang.block": block})
    ordered = {}
    for name in list(nodes) + blocks:  # keep forward order: blocks where their first node was
        key = block_of.get(name, name)
        if key in top_nodes and key not in ordered:
            ordered[key] = top_nodes[key]
    return ordered, top_edges


def export_nir(model: nn.Module, path: str | Path, strict: bool = False,
               dt: float = DEFAULT_DT) -> Path:
    """Write ``model`` as a NIR file (see :func:`to_nir`); returns the path."""
    return write_nir(to_nir(model, strict=strict, dt=dt), path)



# --------------------------------------------------------------------------------------------
# Import


def build_model(meta: dict[str, Any]) -> nn.Module:
    """An (uninitialised) model of the kind and configuration a file's metadata names."""
    from neurolang.config import ConfigError, SpikformerConfig

    kind, config = meta.get("neurolang.model"), dict(meta["config"])
    try:
        if kind == "spikformer":
            config["representation_taps"] = False
            return build_family(SpikformerConfig.from_dict(config))
        if kind == "pooled_classifier":
            return PooledSpikingClassifier(PooledClassifierConfig.from_dict(config))
    except (ConfigError, ValueError, TypeError) as err:
        raise NIRError(f"the file's model configuration is invalid: {err}") from None
    raise NIRError(f"unknown neurolang model kind {kind!r} in the file")


@torch.no_grad()
def from_nir_graph(graph: nir.NIRGraph, dtype: torch.dtype = torch.float64) -> nn.Module:
    """The neurolang model a neurolang NIR graph describes (torch reference dynamics)."""
    meta = read_metadata(graph)
    model = build_model(meta).to(dtype)
    for module in model.modules():  # amplitudes come from the file, not from data
        if isinstance(module, SpikingNeuron) and module.kind.amplitude:
            module.alpha_initialized.fill_(True)
    flat = flatten(graph)
    expected = flatten(to_nir(model, dt=meta["dt"]))
    _same_structure(flat, expected)
    ctx = ImportContext(flat, float(meta["dt"]))
    for name, module in model.named_modules():
        op = getattr(module, "op", None)
        if op is not None:  # a primitive (containers have no op)
            _rule(IMPORT_RULES, op, name)(ctx, name, module, flat.nodes.get(name))
    model.eval()
    return model


def _same_structure(found, expected) -> None:
    """The file's flattened graph has the nodes, types and edges the model's export has."""
    f_types = {k: node_type(v) for k, v in found.nodes.items()}
    e_types = {k: node_type(v) for k, v in expected.nodes.items()}
    missing = sorted(set(e_types) - set(f_types))
    extra = sorted(set(f_types) - set(e_types))
    if missing or extra:
        raise NIRError(f"the graph does not match its model configuration: missing nodes "
                       f"{missing[:5]}, unexpected nodes {extra[:5]}")
    wrong = [f"{k} ({f_types[k]}, expected {e_types[k]})" for k in e_types
             if f_types[k] != e_types[k]]
    if wrong:
        raise NIRError(f"the graph's node types do not match the configuration: {wrong[:5]}")
    if sorted(found.edges) != sorted(expected.edges):
        diff = sorted(set(found.edges) ^ set(expected.edges))
        raise NIRError(f"the graph's edges do not match the configuration: {diff[:5]}")
    for name in expected.operand_sources:
        if found.operands(name) != expected.operands(name):
            raise NIRError(f"{name}: operands {found.operands(name)} in the file, expected "
                           f"{expected.operands(name)}")
    for name, node in expected.nodes.items():
        f_shape = np.asarray(list((found.nodes[name].output_type or {}).values()) or [[]])
        e_shape = np.asarray(list((node.output_type or {}).values()) or [[]])
        if f_shape.size and e_shape.size and not np.array_equal(f_shape, e_shape):
            raise NIRError(f"{name}: shape {f_shape.reshape(-1).tolist()} in the file, the "
                           f"configuration gives {e_shape.reshape(-1).tolist()}")


def import_nir(path: str | Path, backend: str = "torch",
               dtype: torch.dtype = torch.float64) -> nn.Module:
    """A neurolang model from a neurolang NIR file, on ``backend`` (``neurolang.compile``).

    Parameters are loaded in ``dtype`` (float64 by default: the file stores float64).
    BatchNorms that were folded into a Linear come back as identity norms after that Linear.
    """
    from neurolang.backends import compile as compile_model

    model = from_nir_graph(read_nir(path), dtype=dtype)
    return compile_model(model, backend).to(dtype)


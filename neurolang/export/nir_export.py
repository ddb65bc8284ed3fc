"""Models to NIR files and back (the torch side; the file format is ``nir_format``).

``export_nir`` walks ``neurolang.graph.trace(model)``: every primitive becomes a standard NIR
node where NIR can express it exactly, else a ``neurolang.*`` extension node
(``docs/nir-extensions.md``). ``import_nir`` rebuilds the model from the configuration stored
in the file and loads every parameter from the nodes, checking the graph's structure against
the model's own export.
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

from neurolang.export.nir_format import (
    DEFAULT_DT,
    FORMAT,
    FORMAT_VERSION,
    ElasticBiSpike,
    Embedding,
    LayerNorm,
    NIRError,
    PositionEmbedding,
    SpikeAttention,
    Threshold,
    TokenMean,
    extension_types,
    flatten,
    lif_parameters,
    lif_spec,
    node_type,
    read_metadata,
    read_nir,
    write_nir,
)
from neurolang.export.nir_format import LIF as ExtLIF
from neurolang.export.pooled import PooledClassifierConfig, PooledSpikingClassifier
from neurolang.graph import trace
from neurolang.neurons import NeuronSpec
from neurolang.primitives import Norm, SpikingNeuron

_BLOCK = re.compile(r"^(blocks\.\d+)\.(.+)$")
_STATIC_OPS = ("input", "embedding", "position_embedding")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy().copy()


def _model_kind(model: nn.Module) -> str:
    from neurolang.spikformer import Spikformer

    if isinstance(model, Spikformer):
        return "spikformer"
    if isinstance(model, PooledSpikingClassifier):
        return "pooled_classifier"
    raise NIRError(f"cannot export a {type(model).__name__}: neurolang exports Spikformer and "
                   "PooledSpikingClassifier models")


def _spec_json(spec: NeuronSpec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True)


def to_nir(model: nn.Module, strict: bool = False, dt: float = DEFAULT_DT) -> nir.NIRGraph:
    """The NIR graph of ``model`` (evaluation-mode semantics: BatchNorm uses running stats).

    With ``strict``, raise :class:`NIRError` naming every layer that needs an extension node.
    """
    from neurolang import __version__

    kind = _model_kind(model)
    if not dt > 0:
        raise NIRError(f"dt must be positive, got {dt}")
    graph = trace(model)
    tn = graph.nodes
    consumers: dict[str, list[str]] = {n: [] for n in tn}
    for node in tn.values():
        for i in node.inputs:
            consumers[i].append(node.name)

    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    alias: dict[str, str] = {}  # traced node -> NIR node producing its value
    width: dict[str, int] = {}  # traced node -> features per token
    folded: set[str] = set()
    static: set[str] = set()
    data_inputs: list[str] = []
    problems: list[str] = []
    time_mean_of: dict[str, str] = {}

    def connect(src_traced: str, dst: str) -> None:
        edge = (alias[src_traced], dst)
        if edge in edges:
            raise NIRError(f"{dst} takes the same value twice; not expressible as NIR edges")
        edges.append(edge)

    for node in tn.values():
        name, op, module = node.name, node.op, node.module
        data_in = [i for i in node.inputs if tn[i].op != "fold_mask"]
        if op == "input":
            if consumers[name] and all(tn[c].op == "fold_mask" for c in consumers[name]):
                continue  # the padding mask: implicit (a sequence is its real tokens)
            nodes[name] = None  # shape known once a consumer is seen
            alias[name] = name
            data_inputs.append(name)
            static.add(name)
        elif op == "fold_mask":
            continue
        elif op == "embedding":
            nodes[name] = Embedding(_np(module.weight))
            width[name] = module.weight.shape[1]
            width[data_in[0]] = 1
            connect(data_in[0], name)
            alias[name] = name
            static.add(name)
            problems.append(f"{name} (neurolang.Embedding: embedding lookup)")
        elif op == "position_embedding":
            nodes[name] = PositionEmbedding(_np(module.weight))
            width[name] = module.weight.shape[1]
            connect(data_in[0], name)
            alias[name] = name
            static.add(name)
            problems.append(f"{name} (neurolang.PositionEmbedding: position embedding)")
        elif op == "encode":
            src = data_in[0]
            if src not in static:
                raise NIRError(f"{name}: an encoder after time-dependent layers cannot be "
                               "exported (the input is repeated at the graph's boundary)")
            d = width.get(src)
            if d is None:  # the encoder reads a graph input directly: its width from below
                d = next(tn[c].module.in_features for c in consumers[name]
                         if tn[c].op == "linear")
                width[src] = d
            width[name] = d
            if module.encoding == "heaviside":
                comparison = module.spec.threshold_comparison
                if comparison == ">":
                    nodes[name] = nir.Threshold(np.zeros(d))
                else:
                    nodes[name] = Threshold(np.zeros(d), comparison)
                    problems.append(f"{name} (neurolang.Threshold: Heaviside with '>=')")
                connect(src, name)
                alias[name] = name
            else:
                alias[name] = alias[src]
        elif op == "linear":
            w, b = _np(module.weight), (_np(module.bias) if module.bias is not None
                                        else np.zeros(module.out_features))
            meta = {}
            norm_users = [c for c in consumers[name] if tn[c].op == "norm"]
            if (len(consumers[name]) == 1 and norm_users
                    and tn[norm_users[0]].module.kind == "batch"):
                scale, shift = (_np(t) for t in tn[norm_users[0]].module.affine())
                w, b = w * scale[:, None], b * scale + shift
                folded.add(norm_users[0])
                meta["neurolang.folded"] = norm_users[0]
            nodes[name] = nir.Affine(w, b, metadata=meta)
            width[name] = module.out_features
            connect(data_in[0], name)
            alias[name] = name
        elif op == "norm":
            width[name] = module.features
            if name in folded:
                alias[name] = alias[data_in[0]]
                continue
            if module.kind == "batch":
                scale, shift = (_np(t) for t in module.affine())
                nodes[name] = nir.Affine(np.diag(scale), shift,
                                         metadata={"neurolang.op": "batch_norm"})
            else:
                nodes[name] = LayerNorm(_np(module.weight), _np(module.bias),
                                        np.array([module.eps], dtype=np.float64))
                problems.append(f"{name} (neurolang.LayerNorm)")
            connect(data_in[0], name)
            alias[name] = name
        elif op == "neuron" and module.kind.amplitude:  # elastic_bispike
            if not bool(module.alpha_initialized):
                raise NIRError(f"{name}: its spike amplitudes alpha are not initialised yet "
                               "(they are set by the model's first forward pass on data)")
            if module.alpha.shape != (model.config.time_steps,):
                raise NIRError(f"{name}: alpha has shape {tuple(module.alpha.shape)}, not one "
                               "value per time step")
            d = width[data_in[0]]
            nodes[name] = ElasticBiSpike(
                _np(module.alpha), np.array([d]),
                metadata={"neurolang.neuron": _spec_json(module.spec)})
            problems.append(f"{name} (neurolang.ElasticBiSpike: graded signed spikes)")
            width[name] = d
            connect(data_in[0], name)
            alias[name] = name
        elif op == "neuron":
            spec = module.spec
            if spec.kind != "lif":
                raise NIRError(f"{name}: neuron kind {spec.kind!r} has no NIR mapping")
            d = width[data_in[0]]
            p = lif_parameters(spec.to_dict(), dt, d)
            meta = {"neurolang.neuron": _spec_json(spec)}
            if spec.reset == "zero" and spec.threshold_comparison == ">":
                nodes[name] = nir.LIF(**p, metadata=meta)
            else:
                nodes[name] = ExtLIF(p["tau"], p["r"], p["v_leak"], p["v_threshold"],
                                     spec.reset, spec.threshold_comparison, metadata=meta)
                problems.append(f"{name} (neurolang.LIF: reset {spec.reset!r}, "
                                f"comparison {spec.threshold_comparison!r})")
            width[name] = d
            connect(data_in[0], name)
            alias[name] = name
        elif op == "add":
            d = width[data_in[0]]
            if len(data_in) != 2 or width[data_in[1]] != d:
                raise NIRError(f"{name}: a sum of {len(data_in)} inputs of widths "
                               f"{[width[i] for i in data_in]}")
            nodes[name] = nir.Scale(np.ones(d), metadata={"neurolang.op": "add"})
            for i in data_in:
                connect(i, name)
            width[name] = d
            alias[name] = name
        elif op == "attention_product":
            d = width[data_in[0]]
            operands = [alias[i] for i in data_in]
            nodes[name] = SpikeAttention(
                np.array([module.num_heads]), np.array([module.scale], dtype=np.float64),
                np.array([int(module.masked)]), json.dumps(operands), np.array([d]))
            for i in data_in:
                connect(i, name)
            width[name] = d
            alias[name] = name
            problems.append(f"{name} (neurolang.SpikeAttention: (Q K^T) V product of spikes)")
        elif op == "token_mean":
            d = width[data_in[0]]
            nodes[name] = TokenMean(np.array([d]), np.array([int(module.masked)]))
            connect(data_in[0], name)
            width[name] = d
            alias[name] = name
            problems.append(f"{name} (neurolang.TokenMean: mean over tokens)")
        elif op == "time_mean":
            time_mean_of[name] = data_in[0]
            alias[name] = alias[data_in[0]]
            width[name] = width[data_in[0]]
        else:
            raise NIRError(f"{name}: primitive {op!r} has no NIR mapping")

    for name, src in time_mean_of.items():
        if any(c for c in consumers[name]):
            raise NIRError(f"{name}: a mean over time can only be the model's output "
                           "(it becomes the output's readout)")
        del src
    for name in data_inputs:
        shape = [width[name]]
        is_ids = any(tn[c].op == "embedding" for c in consumers[name])
        nodes[name] = nir.Input(np.array(shape), metadata={
            "neurolang.input": "token_ids" if is_ids else "features"})
    # One Output per source node (nirtorch-based importers take a single output): the
    # per-step values, with the mean over time as the readout when the model has one.
    by_source: dict[str, dict[str, str]] = {}
    for key, traced in graph.outputs.items():
        kind_of = "time_mean" if traced in time_mean_of else "per_step"
        by_source.setdefault(alias[traced], {})[kind_of] = key
    for source, keys in by_source.items():
        name = keys.get("time_mean", keys.get("per_step"))
        meta = {"neurolang.readout": "time_mean" if "time_mean" in keys else "per_step"}
        if "time_mean" in keys and "per_step" in keys:
            meta["neurolang.per_step_output"] = keys["per_step"]
        nodes[name] = nir.Output(np.array([next(width[t] for t in graph.outputs.values()
                                                if alias[t] == source)]), metadata=meta)
        edges.append((source, name))

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
    root = _nest(nodes, edges) if kind == "spikformer" else (nodes, edges)
    out = nir.NIRGraph(nodes=root[0], edges=root[1], metadata=metadata, type_check=False)
    metadata["neurolang.extensions"] = json.dumps(extension_types(out))
    flatten(out).check_shapes()
    return out


def _nest(nodes: dict[str, nir.NIRNode], edges: list[tuple[str, str]]):
    """Group ``blocks.<i>.*`` (and the residual sums between them) into nested graphs."""
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
    for name, block in block_of.items():
        m = _BLOCK.match(name)
        if m:
            local = m.group(2)
        else:
            feeder = next(a for a, b in edges if b == name and block_of.get(a) == block
                          and _BLOCK.match(a))
            local = f"{_BLOCK.match(feeder).group(2).split('.')[0]}.residual"
        local_names[name] = local
        inner[block][0][local] = nodes[name]
    for block in blocks:
        into = {a for a, b in edges if block_of.get(b) == block and block_of.get(a) != block}
        out_of = {a for a, b in edges if block_of.get(a) == block and block_of.get(b) != block}
        if len(into) != 1 or len(out_of) != 1:
            raise NIRError(f"{block} does not have one input and one output stream")
    for a, b in edges:
        ba, bb = block_of.get(a), block_of.get(b)
        if ba and ba == bb:
            inner[ba][1].append((local_names[a], local_names[b]))
            continue
        if bb and ("input", local_names[b]) not in inner[bb][1]:
            inner[bb][1].append(("input", local_names[b]))
        if ba:
            if (local_names[a], "output") not in inner[ba][1]:
                inner[ba][1].append((local_names[a], "output"))
        edge = (ba or a, bb or b)
        if edge not in top_edges:
            top_edges.append(edge)
    for block in blocks:
        sub_nodes, sub_edges = inner[block]
        width = next(iter(n for n in sub_nodes.values() if isinstance(n, nir.Scale))).scale.size
        for node in sub_nodes.values():
            if isinstance(node, SpikeAttention):
                names = [local_names.get(o, o) for o in node.operand_names]
                node.operands = json.dumps(names)
        sub_nodes = {"input": nir.Input(np.array([width])), **sub_nodes,
                     "output": nir.Output(np.array([width]))}
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


def _identity_var(eps: float) -> float:
    """A running variance with ``var + eps == 1`` exactly (float64 and float32)."""
    v = 1.0 - eps
    for _ in range(64):
        s64 = v + eps
        s32 = float(np.float32(v) + np.float32(eps))
        if s64 == 1.0 and s32 == 1.0:
            return v
        v = np.nextafter(v, 2.0) if s64 < 1.0 else np.nextafter(v, 0.0)
    return 1.0 - eps


def build_model(meta: dict[str, Any]) -> nn.Module:
    """An (uninitialised) model of the kind and configuration a file's metadata names."""
    from neurolang.config import ConfigError, SpikformerConfig
    from neurolang.spikformer import Spikformer

    kind, config = meta.get("neurolang.model"), dict(meta["config"])
    try:
        if kind == "spikformer":
            config["representation_taps"] = False
            return Spikformer(SpikformerConfig.from_dict(config))
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
    dt = float(meta["dt"])
    folded = {}
    for name, node in flat.nodes.items():
        if isinstance(node, nir.Affine) and "neurolang.folded" in (node.metadata or {}):
            folded[node.metadata["neurolang.folded"]] = name

    def tensor(arr, like: torch.Tensor, what: str) -> torch.Tensor:
        arr = np.asarray(arr, dtype=np.float64)
        if tuple(arr.shape) != tuple(like.shape):
            raise NIRError(f"{what}: shape {list(arr.shape)} in the file, the model's "
                           f"configuration needs {list(like.shape)}")
        if not np.all(np.isfinite(arr)):
            raise NIRError(f"{what}: not finite")
        return torch.from_numpy(arr.copy()).to(like.dtype)

    def identity(norm: Norm) -> None:
        norm.weight.fill_(1.0)
        norm.bias.fill_(0.0)
        norm.running_mean.fill_(0.0)
        norm.running_var.fill_(_identity_var(norm.eps))

    for name, module in model.named_modules():
        node = flat.nodes.get(name)
        op = getattr(module, "op", None)
        if op in ("embedding", "position_embedding"):
            module.weight.copy_(tensor(node.weight, module.weight, name))
        elif op == "linear":
            module.weight.copy_(tensor(node.weight, module.weight, f"{name}.weight"))
            module.bias.copy_(tensor(node.bias, module.bias, f"{name}.bias"))
        elif op == "norm":
            if module.kind == "batch" and name in folded:
                identity(module)
            elif module.kind == "batch":
                w = np.asarray(node.weight)
                if not np.array_equal(w, np.diag(np.diag(w))):
                    raise NIRError(f"{name}: a BatchNorm must be a diagonal Affine")
                identity(module)
                module.weight.copy_(tensor(np.diag(w), module.weight, f"{name}.weight"))
                module.bias.copy_(tensor(node.bias, module.bias, f"{name}.bias"))
            else:
                if float(np.asarray(node.eps).reshape(-1)[0]) != module.eps:
                    raise NIRError(f"{name}: eps {float(node.eps[0])} differs from the "
                                   f"configuration's {module.eps}")
                module.weight.copy_(tensor(node.weight, module.weight, f"{name}.weight"))
                module.bias.copy_(tensor(node.bias, module.bias, f"{name}.bias"))
        elif op == "neuron" and module.kind.amplitude:
            want = module.spec
            text = (node.metadata or {}).get("neurolang.neuron")
            try:
                found = json.loads(text) if isinstance(text, str) else None
            except json.JSONDecodeError:
                found = None
            if not isinstance(found, dict) or found.get("kind") != want.kind:
                raise NIRError(f"{name}: the file's neurolang.neuron metadata does not describe "
                               f"the configured {want.kind} neuron")
            alpha = np.asarray(node.alpha, dtype=np.float64)
            if alpha.shape != tuple(module.alpha.shape):
                raise NIRError(f"{name}: {alpha.size} spike amplitudes in the file, the model "
                               f"has {module.time_steps} time steps")
            module.alpha.copy_(tensor(alpha, module.alpha, f"{name}.alpha"))
        elif op == "neuron":
            spec = lif_spec(node, dt, name)
            want = module.spec
            same = (np.isclose(spec["beta"], want.beta, rtol=1e-12, atol=0)
                    and spec["v_threshold"] == want.v_threshold
                    and spec["decay_input"] == want.decay_input
                    and spec["reset"] == want.reset
                    and spec["threshold_comparison"] == want.threshold_comparison)
            if not same:
                raise NIRError(f"{name}: the LIF in the file ({spec}) is not the configured "
                               f"neuron ({want})")
        elif op == "attention_product":
            if (int(node.num_heads[0]) != module.num_heads or float(node.scale[0]) != module.scale
                    or bool(node.masked[0]) != module.masked):
                raise NIRError(f"{name}: attention parameters differ from the configuration")
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

"""The NIR import's rules, one per op of the rebuilt model's primitives.

``from_nir_graph`` rebuilds the model from the file's configuration, then hands every
primitive module to ``IMPORT_RULES[module.op]`` with the file's node of the same name: the
rule loads the module's parameters from the node, or checks that the node describes the
configured module. The table covers the ops of every primitive
(``neurolang.graph.primitive_ops()`` less the graph's own node kinds, which are no modules).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import nir
import numpy as np
import torch
from torch import nn

from neurolang.graph import OpTable
from neurolang.nir.errors import NIRError
from neurolang.nir.flatten import FlatGraph
from neurolang.nir.lif import lif_spec
from neurolang.primitives import Norm


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


@dataclass
class ImportContext:
    """What the rules of one import share: the file's flattened graph and its dt, and the
    BatchNorms folded into a Linear (norm name -> the Affine that holds them)."""

    flat: FlatGraph
    dt: float
    folded: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        for name, node in self.flat.nodes.items():
            if isinstance(node, nir.Affine) and "neurolang.folded" in (node.metadata or {}):
                self.folded[node.metadata["neurolang.folded"]] = name

    @staticmethod
    def tensor(arr, like: torch.Tensor, what: str) -> torch.Tensor:
        """``arr`` as a tensor like ``like``; NIRError if the shape differs or not finite."""
        arr = np.asarray(arr, dtype=np.float64)
        if tuple(arr.shape) != tuple(like.shape):
            raise NIRError(f"{what}: shape {list(arr.shape)} in the file, the model's "
                           f"configuration needs {list(like.shape)}")
        if not np.all(np.isfinite(arr)):
            raise NIRError(f"{what}: not finite")
        return torch.from_numpy(arr.copy()).to(like.dtype)

    def load(self, param: torch.Tensor, arr, what: str) -> None:
        param.copy_(self.tensor(arr, param, what))


def _identity(norm: Norm) -> None:
    norm.weight.fill_(1.0)
    norm.bias.fill_(0.0)
    norm.running_mean.fill_(0.0)
    norm.running_var.fill_(_identity_var(norm.eps))


# --------------------------------------------------------------------------------------------
# Rules: (ctx, module name, module, the file's node of that name)


def _embedding(ctx: ImportContext, name: str, module: nn.Module, node) -> None:
    ctx.load(module.weight, node.weight, name)


def _linear(ctx: ImportContext, name: str, module: nn.Module, node) -> None:
    ctx.load(module.weight, node.weight, f"{name}.weight")
    ctx.load(module.bias, node.bias, f"{name}.bias")


def _norm(ctx: ImportContext, name: str, module: nn.Module, node) -> None:
    if module.kind == "batch" and name in ctx.folded:
        _identity(module)  # the Linear before it holds the norm
    elif module.kind == "batch":
        w = np.asarray(node.weight)
        if not np.array_equal(w, np.diag(np.diag(w))):
            raise NIRError(f"{name}: a BatchNorm must be a diagonal Affine")
        _identity(module)
        ctx.load(module.weight, np.diag(w), f"{name}.weight")
        ctx.load(module.bias, node.bias, f"{name}.bias")
    else:
        if float(np.asarray(node.eps).reshape(-1)[0]) != module.eps:
            raise NIRError(f"{name}: eps {float(node.eps[0])} differs from the "
                           f"configuration's {module.eps}")
        ctx.load(module.weight, node.weight, f"{name}.weight")
        ctx.load(module.bias, node.bias, f"{name}.bias")


def _neuron(ctx: ImportContext, name: str, module: nn.Module, node) -> None:
    if module.kind.amplitude:
        _elastic_bispike(ctx, name, module, node)
    else:
        _lif(ctx, name, module, node)


def _elastic_bispike(ctx: ImportContext, name: str, module: nn.Module, node) -> None:
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
    ctx.load(module.alpha, alpha, f"{name}.alpha")


def _lif(ctx: ImportContext, name: str, module: nn.Module, node) -> None:
    """Nothing to load (the neuron is the configuration's): the file's LIF must be it."""
    spec = lif_spec(node, ctx.dt, name)
    want = module.spec
    same = (np.isclose(spec["beta"], want.beta, rtol=1e-12, atol=0)
            and spec["v_threshold"] == want.v_threshold
            and spec["decay_input"] == want.decay_input
            and spec["reset"] == want.reset
            and spec["threshold_comparison"] == want.threshold_comparison)
    if not same:
        raise NIRError(f"{name}: the LIF in the file ({spec}) is not the configured "
                       f"neuron ({want})")


def _attention_product(ctx: ImportContext, name: str, module: nn.Module, node) -> None:
    if (int(node.num_heads[0]) != module.num_heads or float(node.scale[0]) != module.scale
            or bool(node.masked[0]) != module.masked):
        raise NIRError(f"{name}: attention parameters differ from the configuration")


def _coincidence_sum(ctx: ImportContext, name: str, module: nn.Module, node) -> None:
    if float(node.scale[0]) != module.scale or bool(node.masked[0]) != module.masked:
        raise NIRError(f"{name}: coincidence-sum parameters (scale {float(node.scale[0])}, "
                       f"masked {bool(node.masked[0])}) differ from the configuration "
                       f"({module.scale}, {module.masked})")


def _no_parameters(ctx: ImportContext, name: str, module: nn.Module, node) -> None:
    """Nothing to load: the module is fully given by the configuration (the structure was
    checked against the model's own export)."""


IMPORT_RULES = OpTable(
    "NIR import",
    rules={
        "embedding": _embedding, "position_embedding": _embedding, "linear": _linear,
        "norm": _norm, "neuron": _neuron, "attention_product": _attention_product,
        "coincidence_sum": _coincidence_sum, "spike_gate": _no_parameters,
        "encode": _no_parameters, "token_mean": _no_parameters, "time_mean": _no_parameters,
    },
    refused={
        "softmax_attention": "SpikeLM's softmax attention is not exported to NIR",
        "gelu": "SpikeLM's GELU is not exported to NIR",
        "representation_tap": "distillation taps are not exported to NIR",
    },
    error=NIRError,
)

"""neurolang's extension node types: NIR nodes with a namespaced ``neurolang.<Name>`` type.

Each is a NIR node (``input_type``/``output_type`` per token) for what standard NIR cannot
express exactly; ``to_dict``/``from_dict`` are their (de)serialisation, validated on
construction. What every node computes is specified in ``docs/nir-extensions.md``. Torch-free
(numpy and nir only).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import nir
import numpy as np

from neurolang.nir.errors import NIRError

EXTENSION_PREFIX = "neurolang."

# Standard node types a file may hold (nir 1.0.8's registry).
STANDARD_TYPES = (
    "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d",
    "Delay", "Threshold", "I", "IF", "LI", "LIF", "CubaLI", "CubaLIF", "Input", "Output",
    "NIRGraph",
)


def _array(value: Any, dtype=np.float64, name: str = "value") -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim == 0:  # 0-d datasets break nir.write's gzip compression
        arr = arr.reshape(1)
    return arr


def _scalar(value: Any, kind=float) -> Any:
    arr = np.asarray(value)
    if arr.size != 1:
        raise NIRError(f"expected one value, got an array of shape {arr.shape}")
    return kind(arr.reshape(-1)[0])


def as_text(value: Any) -> str:
    """A string stored as ``str``, ``bytes`` or a one-element array."""
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray) and value.size == 1:
        return as_text(value.reshape(-1)[0])
    if isinstance(value, str):
        return value
    raise NIRError(f"expected a string, got {type(value).__name__}")


@dataclass(eq=False)
class ExtensionNode(nir.NIRNode):
    """Base of neurolang's extension nodes: a namespaced ``type`` in the file."""

    TYPE: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["type"] = self.TYPE
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtensionNode:
        data = dict(data)
        if data.pop("type", cls.TYPE) != cls.TYPE:
            raise NIRError(f"not a {cls.TYPE} node")
        metadata = data.pop("metadata", {}) or {}
        return cls(**cls._convert(data), metadata=dict(metadata))

    @classmethod
    def _convert(cls, data: dict[str, Any]) -> dict[str, Any]:
        return data


@dataclass(eq=False)
class Embedding(ExtensionNode):
    """``y[l] = weight[x[l, 0]]``: token id (one number per token) -> (D,)."""

    TYPE: ClassVar[str] = "neurolang.Embedding"
    weight: np.ndarray

    def __post_init__(self):
        self.weight = _array(self.weight)
        if self.weight.ndim != 2:
            raise NIRError(f"{self.TYPE}: weight must be (vocab, D), got {self.weight.shape}")
        self.input_type = {"input": np.array([1])}
        self.output_type = {"output": np.array([self.weight.shape[1]])}

    @classmethod
    def _convert(cls, data):
        return {"weight": data["weight"]}


@dataclass(eq=False)
class PositionEmbedding(ExtensionNode):
    """``y[l] = x[l] + weight[l]`` for token position ``l`` (0-based), ``L <= weight.shape[0]``."""

    TYPE: ClassVar[str] = "neurolang.PositionEmbedding"
    weight: np.ndarray

    def __post_init__(self):
        self.weight = _array(self.weight)
        if self.weight.ndim != 2:
            raise NIRError(f"{self.TYPE}: weight must be (max_length, D), got {self.weight.shape}")
        d = np.array([self.weight.shape[1]])
        self.input_type, self.output_type = {"input": d}, {"output": d.copy()}

    @classmethod
    def _convert(cls, data):
        return {"weight": data["weight"]}


@dataclass(eq=False)
class LayerNorm(ExtensionNode):
    """Per token: ``y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias`` (biased var)."""

    TYPE: ClassVar[str] = "neurolang.LayerNorm"
    weight: np.ndarray
    bias: np.ndarray
    eps: np.ndarray

    def __post_init__(self):
        self.weight, self.bias, self.eps = _array(self.weight), _array(self.bias), _array(self.eps)
        if self.weight.ndim != 1 or self.weight.shape != self.bias.shape:
            raise NIRError(f"{self.TYPE}: weight {self.weight.shape} and bias "
                           f"{self.bias.shape} must be the same (D,)")
        if self.eps.size != 1:
            raise NIRError(f"{self.TYPE}: eps must be one number")
        d = np.array(self.weight.shape)
        self.input_type, self.output_type = {"input": d}, {"output": d.copy()}

    @classmethod
    def _convert(cls, data):
        return {k: data[k] for k in ("weight", "bias", "eps")}


class OperandNode:
    """A node whose incoming edges are separate operands, not a sum: ``operands`` (a JSON
    list of sibling node names, in operand order) names their sources. ``OPERANDS`` is how
    many it takes."""

    OPERANDS: ClassVar[int] = 0

    def _check_operands(self) -> None:
        self.operands = as_text(self.operands)
        names = self.operand_names
        if len(names) != self.OPERANDS or len(set(names)) != self.OPERANDS:
            raise NIRError(f"{self.TYPE}: operands must name {self.OPERANDS} distinct nodes, "
                           f"got {names}")

    @property
    def operand_names(self) -> list[str]:
        try:
            names = json.loads(self.operands)
        except json.JSONDecodeError:
            raise NIRError(f"{self.TYPE}: operands {self.operands!r} is not JSON") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise NIRError(f"{self.TYPE}: operands must be a list of node names")
        return names


@dataclass(eq=False)
class SpikeAttention(OperandNode, ExtensionNode):
    """SpikeBERT's attention product, per head: ``Y = (Q K^T) V * scale`` (no softmax).

    Its incoming edges are NOT summed: they are three operands, named in ``operands``
    (the source nodes of Q, K, V in this order, in the same graph).
    """

    TYPE: ClassVar[str] = "neurolang.SpikeAttention"
    OPERANDS: ClassVar[int] = 3
    num_heads: np.ndarray
    scale: np.ndarray
    masked: np.ndarray
    operands: str  # JSON list of the three source node names
    features: np.ndarray

    def __post_init__(self):
        self.num_heads = _array(self.num_heads, np.int64)
        self.scale = _array(self.scale)
        self.masked = _array(self.masked, np.int64)
        self.features = _array(self.features, np.int64)
        self._check_operands()
        d, h = _scalar(self.features, int), _scalar(self.num_heads, int)
        if h < 1 or d % h:
            raise NIRError(f"{self.TYPE}: {d} features do not split into {h} heads")
        self.input_type = {"input": np.array([d])}
        self.output_type = {"output": np.array([d])}

    @classmethod
    def _convert(cls, data):
        return {k: data[k] for k in ("num_heads", "scale", "masked", "operands", "features")}


@dataclass(eq=False)
class CoincidenceSum(OperandNode, ExtensionNode):
    """The key-value half of spike-driven self-attention (SDSA): per channel,
    ``g = scale * sum over the tokens of K * V``; (L, D) and (L, D) -> (D,), one row per step
    (the token axis ends here). Two operands, ``K`` and ``V`` in this order."""

    TYPE: ClassVar[str] = "neurolang.CoincidenceSum"
    OPERANDS: ClassVar[int] = 2
    scale: np.ndarray
    masked: np.ndarray
    operands: str  # JSON list: the source nodes of K and V
    features: np.ndarray

    def __post_init__(self):
        self.scale = _array(self.scale)
        self.masked = _array(self.masked, np.int64)
        self.features = _array(self.features, np.int64)
        self._check_operands()
        if self.scale.size != 1 or not np.isfinite(self.scale[0]):
            raise NIRError(f"{self.TYPE}: scale must be one finite number")
        d = np.array([_scalar(self.features, int)])
        self.input_type, self.output_type = {"input": d}, {"output": d.copy()}

    @classmethod
    def _convert(cls, data):
        return {k: data[k] for k in ("scale", "masked", "operands", "features")}


@dataclass(eq=False)
class SpikeGate(OperandNode, ExtensionNode):
    """The query half of SDSA: ``Y[l] = Q[l] * G`` for every token ``l``; ``Q`` (L, D)
    spikes, ``G`` (D,) the gate's spikes (one row per step, no token axis) -> (L, D) spikes.
    Two operands, ``Q`` and ``G`` in this order."""

    TYPE: ClassVar[str] = "neurolang.SpikeGate"
    OPERANDS: ClassVar[int] = 2
    operands: str  # JSON list: the source nodes of Q and G
    features: np.ndarray

    def __post_init__(self):
        self.features = _array(self.features, np.int64)
        self._check_operands()
        d = np.array([_scalar(self.features, int)])
        self.input_type, self.output_type = {"input": d}, {"output": d.copy()}

    @classmethod
    def _convert(cls, data):
        return {k: data[k] for k in ("operands", "features")}


@dataclass(eq=False)
class TokenMean(ExtensionNode):
    """Mean over the tokens of the sequence: (L, D) -> (D,); the token axis ends here."""

    TYPE: ClassVar[str] = "neurolang.TokenMean"
    features: np.ndarray
    masked: np.ndarray

    def __post_init__(self):
        self.features = _array(self.features, np.int64)
        self.masked = _array(self.masked, np.int64)
        d = np.array([_scalar(self.features, int)])
        self.input_type, self.output_type = {"input": d}, {"output": d.copy()}

    @classmethod
    def _convert(cls, data):
        return {k: data[k] for k in ("features", "masked")}


@dataclass(eq=False)
class Threshold(ExtensionNode):
    """``y = H(x - threshold)`` with ``H(z) = [z >= 0]`` (comparison ``>=``); NIR's own
    ``Threshold`` is used for ``>``."""

    TYPE: ClassVar[str] = "neurolang.Threshold"
    threshold: np.ndarray
    comparison: str

    def __post_init__(self):
        self.threshold = _array(self.threshold)
        self.comparison = as_text(self.comparison)
        if self.comparison not in (">", ">="):
            raise NIRError(f"{self.TYPE}: comparison must be '>' or '>=', got {self.comparison!r}")
        d = np.array(self.threshold.shape)
        self.input_type, self.output_type = {"input": d}, {"output": d.copy()}

    @classmethod
    def _convert(cls, data):
        return {k: data[k] for k in ("threshold", "comparison")}


@dataclass(eq=False)
class LIF(ExtensionNode):
    """A LIF population that standard NIR cannot express: subtract reset and/or ``>=``.

    ``tau, r, v_leak, v_threshold`` mean what they mean in NIR's ``LIF`` (forward Euler with
    the file's ``dt``); ``reset`` is ``"zero"`` or ``"subtract"`` (``v -= v_threshold``),
    ``comparison`` is ``">"`` or ``">="``.
    """

    TYPE: ClassVar[str] = "neurolang.LIF"
    tau: np.ndarray
    r: np.ndarray
    v_leak: np.ndarray
    v_threshold: np.ndarray
    reset: str
    comparison: str

    def __post_init__(self):
        for name in ("tau", "r", "v_leak", "v_threshold"):
            setattr(self, name, _array(getattr(self, name)))
        self.reset, self.comparison = as_text(self.reset), as_text(self.comparison)
        shapes = {self.tau.shape, self.r.shape, self.v_leak.shape, self.v_threshold.shape}
        if len(shapes) != 1:
            raise NIRError(f"{self.TYPE}: parameters have different shapes {sorted(shapes)}")
        if self.reset not in ("zero", "subtract") or self.comparison not in (">", ">="):
            raise NIRError(f"{self.TYPE}: reset {self.reset!r} / comparison "
                           f"{self.comparison!r} not supported")
        d = np.array(self.tau.shape)
        self.input_type, self.output_type = {"input": d}, {"output": d.copy()}

    @classmethod
    def _convert(cls, data):
        return {k: data[k] for k in ("tau", "r", "v_leak", "v_threshold", "reset", "comparison")}


@dataclass(eq=False)
class ElasticBiSpike(ExtensionNode):
    """SpikeLM's elastic bi-spiking population: graded, signed spikes ``alpha[t] * {-1, 0, 1}``.

    Per neuron, for step ``t = 0..T-1`` of a sample (``c = 0`` before the first step)::

        u = c + x[t];  s[t] = alpha[t] * clamp(round_half_even(u / alpha[t]), -1, 1)
        c = (0.25 * (alpha[t] - s[t])) * u

    ``alpha`` (T,) holds one amplitude per time step for the whole population (``T`` is the
    file's ``time_steps``); ``features`` is the population's width.
    """

    TYPE: ClassVar[str] = "neurolang.ElasticBiSpike"
    alpha: np.ndarray
    features: np.ndarray

    def __post_init__(self):
        self.alpha = _array(self.alpha)
        self.features = _array(self.features, np.int64)
        if self.alpha.ndim != 1 or not np.all(np.isfinite(self.alpha)) or np.any(
                self.alpha <= 0):
            raise NIRError(f"{self.TYPE}: alpha must be positive finite numbers, one per time "
                           f"step, got {self.alpha.tolist()}")
        d = np.array([_scalar(self.features, int)])
        self.input_type, self.output_type = {"input": d}, {"output": d.copy()}

    @classmethod
    def _convert(cls, data):
        return {k: data[k] for k in ("alpha", "features")}


EXTENSIONS: dict[str, type[ExtensionNode]] = {
    cls.TYPE: cls
    for cls in (Embedding, PositionEmbedding, LayerNorm, SpikeAttention, CoincidenceSum,
                SpikeGate, TokenMean, Threshold, LIF, ElasticBiSpike)
}


def node_type(node: nir.NIRNode) -> str:
    """The type name a node has in a file (``"Affine"``, ``"neurolang.LayerNorm"``, ...)."""
    return node.TYPE if isinstance(node, ExtensionNode) else type(node).__name__



def extension_types(graph: nir.NIRGraph) -> list[str]:
    """The extension node types a graph uses (empty: it is standard NIR)."""
    found: set[str] = set()

    def walk(g):
        for node in g.nodes.values():
            if isinstance(node, nir.NIRGraph):
                walk(node)
            elif isinstance(node, ExtensionNode):
                found.add(node.TYPE)

    walk(graph)
    return sorted(found)


def iter_nodes(graph: nir.NIRGraph, prefix: str = "") -> Iterable[tuple[str, nir.NIRNode]]:
    """Every node with its dotted path, nested graphs included (depth first)."""
    for name, node in graph.nodes.items():
        yield f"{prefix}{name}", node
        if isinstance(node, nir.NIRGraph):
            yield from iter_nodes(node, f"{prefix}{name}.")

"""neurolang's NIR files: the extension nodes, reading, writing, flattening, checking.

Torch-free on purpose (numpy, h5py and nir only): the Lava side, which runs in its own Python
3.10 environment without torch, reads model files through this module. The exact meaning of
every extension node and metadata key is specified in ``docs/nir-extensions.md``.

A neurolang NIR file is an ordinary NIR 1.0.8 HDF5 file (``nir.write``). Standard NIR nodes
are used wherever NIR can express the computation exactly; the rest are *extension nodes*
whose type names start with ``neurolang.`` (for example ``neurolang.Embedding``). A reader
that does not know the extensions fails on them: ``nir.read`` raises (an ``AssertionError``
in ``nir.str2NIRNode``, a ``KeyError`` under ``python -O``) instead of skipping or passing
them through. :func:`read_nir` reads both kinds.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import h5py
import nir
import numpy as np

FORMAT = "neurolang-nir"
FORMAT_VERSION = 1
EXTENSION_PREFIX = "neurolang."
DEFAULT_DT = 1e-4  # snnTorch's hard-coded import dt, so its importer needs no compensation

# Standard node types this module accepts from a file (nir 1.0.8's registry).
STANDARD_TYPES = (
    "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d",
    "Delay", "Threshold", "I", "IF", "LI", "LIF", "CubaLI", "CubaLIF", "Input", "Output",
    "NIRGraph",
)


class NIRError(ValueError):
    """A NIR file is unreadable, malformed, inconsistent, or uses something unsupported."""


# --------------------------------------------------------------------------------------------
# Extension nodes


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


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _text(value.reshape(-1)[0])
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


@dataclass(eq=False)
class SpikeAttention(ExtensionNode):
    """SpikeBERT's attention product, per head: ``Y = (Q K^T) V * scale`` (no softmax).

    Its incoming edges are NOT summed: they are three operands, named in ``operands``
    (the source nodes of Q, K, V in this order, in the same graph).
    """

    TYPE: ClassVar[str] = "neurolang.SpikeAttention"
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
        self.operands = _text(self.operands)
        names = self.operand_names
        if len(names) != 3 or len(set(names)) != 3:
            raise NIRError(f"{self.TYPE}: operands must name three distinct nodes, got {names}")
        d, h = _scalar(self.features, int), _scalar(self.num_heads, int)
        if h < 1 or d % h:
            raise NIRError(f"{self.TYPE}: {d} features do not split into {h} heads")
        self.input_type = {"input": np.array([d])}
        self.output_type = {"output": np.array([d])}

    @property
    def operand_names(self) -> list[str]:
        try:
            names = json.loads(self.operands)
        except json.JSONDecodeError:
            raise NIRError(f"{self.TYPE}: operands {self.operands!r} is not JSON") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise NIRError(f"{self.TYPE}: operands must be a list of node names")
        return names

    @classmethod
    def _convert(cls, data):
        return {k: data[k] for k in ("num_heads", "scale", "masked", "operands", "features")}


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
        self.comparison = _text(self.comparison)
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
        self.reset, self.comparison = _text(self.reset), _text(self.comparison)
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
    for cls in (Embedding, PositionEmbedding, LayerNorm, SpikeAttention, TokenMean, Threshold, LIF,
                ElasticBiSpike)
}


def node_type(node: nir.NIRNode) -> str:
    """The type name a node has in a file (``"Affine"``, ``"neurolang.LayerNorm"``, ...)."""
    return node.TYPE if isinstance(node, ExtensionNode) else type(node).__name__


# --------------------------------------------------------------------------------------------
# LIF parameters for an explicit dt


def exact_tau(beta: float, dt: float) -> float:
    """``tau = dt / (1 - beta)``, nudged to the nearest float for which ``1 - dt/tau == beta``
    in float64 (how snnTorch's importer and the Lava side recover the decay)."""
    tau = dt / (1.0 - beta)
    if 1.0 - dt / tau == beta:
        return tau
    down = up = tau
    for _ in range(64):
        down, up = math.nextafter(down, 0.0), math.nextafter(up, math.inf)
        for candidate in (down, up):
            if 1.0 - dt / candidate == beta:
                return candidate
    return tau


def lif_parameters(spec: dict[str, Any], dt: float, size: int) -> dict[str, np.ndarray]:
    """NIR ``LIF`` parameters (per neuron) equivalent to a neurolang ``NeuronSpec`` dict.

    NIR (forward Euler, step ``dt``): ``v <- (1 - dt/tau) v + (dt/tau) (v_leak + r x)``.
    With ``beta = 1 - dt/tau``:

    - snnTorch form (``decay_input=False``), ``beta v + x``: ``r = 1 / (1 - beta)``;
    - SpikingJelly form (``decay_input=True``), ``v + (x - v)/tau_steps = beta v + (1-beta) x``:
      ``r = 1``.
    """
    beta = float(spec["beta"])
    tau = exact_tau(beta, dt)
    r = 1.0 if spec["decay_input"] else 1.0 / (1.0 - beta)
    return {
        "tau": np.full(size, tau),
        "r": np.full(size, r),
        "v_leak": np.zeros(size),
        "v_threshold": np.full(size, float(spec["v_threshold"])),
        "v_reset": np.zeros(size),
    }


def lif_spec(node: nir.NIRNode, dt: float, where: str = "") -> dict[str, Any]:
    """The neurolang neuron specification of a ``LIF`` / ``neurolang.LIF`` node.

    Taken from the node's ``neurolang.neuron`` metadata when present (checked against the
    standard parameters), else derived from the parameters (uniform populations only).
    """
    label = f"LIF node {where!r}" if where else "LIF node"
    params = {k: np.asarray(getattr(node, k), dtype=np.float64)
              for k in ("tau", "r", "v_leak", "v_threshold")}
    for name, arr in params.items():
        if arr.size == 0 or not np.all(arr == arr.reshape(-1)[0]):
            raise NIRError(f"{label}: {name} differs between neurons; neurolang populations "
                           "share one neuron specification")
        if not np.all(np.isfinite(arr)):
            raise NIRError(f"{label}: {name} is not finite")
    tau, r = float(params["tau"].reshape(-1)[0]), float(params["r"].reshape(-1)[0])
    v_leak, th = float(params["v_leak"].reshape(-1)[0]), float(params["v_threshold"].reshape(-1)[0])
    v_reset = np.asarray(getattr(node, "v_reset", np.zeros(1)), dtype=np.float64)
    if v_leak != 0 or (v_reset.size and np.any(v_reset != 0)):
        raise NIRError(f"{label}: v_leak and v_reset must be 0")
    if tau <= 0 or dt <= 0:
        raise NIRError(f"{label}: tau and dt must be positive (tau={tau}, dt={dt})")
    beta = 1.0 - dt / tau
    if not 0 <= beta < 1:
        raise NIRError(f"{label}: tau={tau} with dt={dt} gives a decay {beta} outside [0, 1)")
    if math.isclose(r, 1.0, rel_tol=1e-9):
        decay_input = True
    elif math.isclose(r * (1.0 - beta), 1.0, rel_tol=1e-9):
        decay_input = False
    else:
        raise NIRError(f"{label}: r={r} is neither 1 nor 1/(1-beta)={1 / (1 - beta)}; "
                       "fold input scaling into the preceding Affine")
    derived = {
        "kind": "lif", "beta": beta, "tau": 1.0 / (1.0 - beta), "decay_input": decay_input,
        "v_threshold": th,
        "reset": getattr(node, "reset", "zero"),
        "threshold_comparison": getattr(node, "comparison", ">"),
    }
    meta = (node.metadata or {}).get("neurolang.neuron")
    if meta is None:
        return derived
    try:
        spec = json.loads(_text(meta))
    except (json.JSONDecodeError, NIRError):
        raise NIRError(f"{label}: metadata neurolang.neuron is not a JSON object") from None
    if not isinstance(spec, dict):
        raise NIRError(f"{label}: metadata neurolang.neuron is not a JSON object")
    problems = []
    for key in ("decay_input", "reset", "threshold_comparison"):
        if spec.get(key) != derived[key]:
            problems.append(f"{key} {spec.get(key)!r} vs {derived[key]!r}")
    for key in ("beta", "v_threshold"):
        if not isinstance(spec.get(key), (int, float)) or not math.isclose(
                spec[key], derived[key], rel_tol=1e-9, abs_tol=1e-12):
            problems.append(f"{key} {spec.get(key)!r} vs {derived[key]!r}")
    if problems:
        raise NIRError(f"{label}: its neurolang.neuron metadata disagrees with its parameters "
                       f"({'; '.join(problems)})")
    return spec


# --------------------------------------------------------------------------------------------
# Writing


def _check_writable(value: Any, where: str) -> None:
    if value is None:
        raise NIRError(f"{where} is None; NIR files cannot store None")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_writable(v, f"{where}.{k}")
    elif isinstance(value, np.ndarray) and value.ndim == 0:
        raise NIRError(f"{where} is a 0-d array; give it shape (1,)")


def write_nir(graph: nir.NIRGraph, path: str | os.PathLike) -> Path:
    """Write ``graph`` with ``nir.write``, atomically (a temporary file, then a rename)."""
    path = Path(path)
    _check_writable(graph.to_dict(), "graph")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        nir.write(tmp, graph)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# --------------------------------------------------------------------------------------------
# Reading


def _read_group(group: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = _read_group(item)
        else:
            value = item[()]
            if isinstance(value, bytes):
                value = value.decode("utf8")
            out[key] = value
    return out


def _metadata(data: dict[str, Any]) -> dict[str, Any]:
    meta = data.get("metadata", {})
    if not isinstance(meta, dict):
        raise NIRError("metadata must be a group")

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, np.generic):
            return v.item()
        return v

    return {k: plain(v) for k, v in meta.items()}


def _node_from_dict(data: dict[str, Any], where: str) -> nir.NIRNode:
    if not isinstance(data, dict) or "type" not in data:
        raise NIRError(f"node {where!r} has no type (corrupted file?)")
    kind = data["type"]
    if isinstance(kind, bytes):
        kind = kind.decode("utf8")
    if not isinstance(kind, str):
        raise NIRError(f"node {where!r} has a malformed type {kind!r}")
    data = dict(data)
    data["metadata"] = _metadata(data)
    if kind == "NIRGraph":
        nodes_data = data.get("nodes")
        if not isinstance(nodes_data, dict):
            raise NIRError(f"graph {where!r} has no nodes")
        nodes = {name: _node_from_dict(sub, f"{where}.{name}" if where else name)
                 for name, sub in nodes_data.items()}
        raw_edges = data.get("edges", np.zeros((0, 2)))
        edges = []
        try:
            for pair in np.asarray(raw_edges).reshape(-1, 2) if np.size(raw_edges) else []:
                a, b = (x.decode("utf8") if isinstance(x, bytes) else str(x) for x in pair)
                edges.append((a, b))
        except ValueError:
            raise NIRError(f"graph {where!r}: edges are not pairs of node names") from None
        for a, b in edges:
            for end in (a, b):
                if end not in nodes:
                    raise NIRError(f"graph {where or '<root>'!r}: edge ({a!r}, {b!r}) names "
                                   f"a node {end!r} that does not exist")
        if len(set(edges)) != len(edges):
            raise NIRError(f"graph {where or '<root>'!r} has duplicate edges")
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=data["metadata"],
                            type_check=False)
    if kind in EXTENSIONS:
        try:
            return EXTENSIONS[kind].from_dict(data)
        except NIRError as err:
            raise NIRError(f"node {where!r}: {err}") from None
        except (KeyError, TypeError, ValueError) as err:
            raise NIRError(f"node {where!r}: malformed {kind} node ({err!r})") from None
    if kind.startswith(EXTENSION_PREFIX):
        raise NIRError(f"node {where!r} has the unknown neurolang extension type {kind!r} "
                       f"(a newer neurolang?); known: {sorted(EXTENSIONS)}")
    if kind not in STANDARD_TYPES:
        raise NIRError(f"node {where!r} has the unknown node type {kind!r}; known: standard NIR "
                       f"{list(STANDARD_TYPES)} and neurolang's {sorted(EXTENSIONS)}")
    try:
        return nir.dict2NIRNode(data)
    except Exception as err:  # nir validates with asserts and assorted errors
        raise NIRError(f"node {where!r}: malformed {kind} node ({err!r})") from None


def read_nir(path: str | os.PathLike, check: bool = True) -> nir.NIRGraph:
    """Read a NIR file with standard and neurolang extension nodes.

    Raises :class:`NIRError` (one line) for a missing, truncated or corrupted file, an
    unknown node type, or (with ``check``) edges whose shapes do not match.
    """
    path = Path(path)
    if not path.is_file():
        raise NIRError(f"no NIR file at {path}")
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise NIRError(f"{path} is an HDF5 file but not a NIR graph (no 'node' group)")
            data = _read_group(f["node"])
    except NIRError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        raise NIRError(f"{path} is not a readable NIR file (truncated or corrupted?): "
                       f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    graph = _node_from_dict(data, "")
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"{path}: the root node is a {node_type(graph)}, not a NIRGraph")
    if check:
        flatten(graph).check_shapes()
    return graph


def read_metadata(graph: nir.NIRGraph) -> dict[str, Any]:
    """The root metadata of a neurolang file (``config`` parsed); NIRError if not neurolang's."""
    meta = {k: (v.item() if isinstance(v, np.generic) else v)
            for k, v in (graph.metadata or {}).items()}  # nir.read gives numpy scalars
    if isinstance(meta.get("neurolang.format"), bytes):
        meta = {k: (v.decode("utf8") if isinstance(v, bytes) else v) for k, v in meta.items()}
    if meta.get("neurolang.format") != FORMAT:
        raise NIRError("not a neurolang NIR file (root metadata has no neurolang.format); only "
                       "files written by neurolang carry the model configuration")
    version = meta.get("neurolang.format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise NIRError(f"neurolang NIR format version {version!r} is not supported "
                       f"(this neurolang reads up to {FORMAT_VERSION})")
    try:
        meta["config"] = json.loads(_text(meta["neurolang.config"]))
    except (KeyError, json.JSONDecodeError, NIRError):
        raise NIRError("the file's neurolang.config metadata is missing or not JSON") from None
    dt = meta.get("dt")
    if not isinstance(dt, (int, float)) or not dt > 0:
        raise NIRError(f"the file's dt metadata {dt!r} is not a positive number")
    return meta


# --------------------------------------------------------------------------------------------
# Flattening and checking


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
            if isinstance(node, SpikeAttention):
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
            if isinstance(node, SpikeAttention):
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

"""Operation counts of a spiking model: spikes, synaptic operations, MACs and additions.

Two ways to get the same table (:class:`ModelCounts`, one :class:`LayerCounts` per node of
``neurolang.graph.trace(model)``, in graph order):

* :class:`OpCounter` counts a run of the model itself on a torch-side simulator (``torch``,
  ``snntorch``, ``norse``): forward hooks on the primitives read the spikes each population
  emitted and the input of every layer, over real tokens only.
* :func:`counts_from_spikes` turns the spike count of every population reported by another
  simulator (Lava) into the same table through the graph's fan-outs and shapes.

The rules (``docs/energy.md`` works them through on an example). Only real tokens count: a
padded position costs nothing, as if every sample ran alone at its own length.

* **Spiking population** (a ``neuron``, or the Heaviside ``encode``): ``spikes`` it emitted,
  ``neuron_updates`` = features x real tokens x T (one membrane update per neuron per step).
* **Linear fed by spikes** (input from a population): every input spike costs
  ``out_features`` accumulates: ``sops = input spikes x out_features``. The input is checked
  to be binary at run time. Biases are not counted (once per output, like the teacher's).
* **Linear fed by real values** (the embedding under ``encoding="repeat"``, the integer
  residual stream, the pooled vector of the head): dense ``macs = rows x in x out``, rows = the
  real tokens at every step (or the samples at every step in the head). Zeros in the input are
  not skipped; their fraction is reported (``input_density``), and ``decomposed_accumulates``
  = sum of |input| x out_features says what it would cost to feed an integer input as that many
  unit spikes.
* **Attention product** ``(Q K^T) V`` with binary Q, K, V, per head, step and sample, over
  real tokens: ``Q K^T`` costs one accumulate per pair of coincident spikes, AND then
  accumulate: ``sum_c nq_c * nk_c`` with ``nq_c`` the real tokens whose Q spiked in channel
  ``c``. Then every V spike of token ``j`` adds ``A_ij`` into ``Y_i`` for every ``i`` with
  ``A_ij != 0``: ``sum_ij [A_ij != 0] * nv_j``. The scale is folded into the threshold of the
  attention neuron (exact for zero and subtract resets) and costs nothing. The other
  association ``Q (K^T V)``, which the model computes when L > head width, gives the same
  result; its count is kept in ``detail["sops_kv_first"]``.
* **Residual add** ``x + branch`` with a spiking branch: each branch spike is one accumulate
  into the stream (a synapse of fan-out 1): ``sops = branch spikes``. A real-valued operand
  other than the stream would cost one addition per element.
* **Norm**, per real element: LayerNorm 3 MACs + 2 additions (mean sum; subtract the mean;
  variance MAC; multiply by 1/sigma; affine MAC; the per-token square root is not counted),
  BatchNorm in evaluation 1 MAC (``x * scale + shift``; 0 if folded into the Linear before).
* **Position embedding**: one addition per real element. **Embedding lookup**: 0 (a memory
  read, no arithmetic). **Encode** with ``repeat``: 0 (a copy).
* **Means** (over tokens, over time): one addition per real input element and one
  multiplication (counted as a MAC) per output.
* **Graded spikes** (SpikeLM's elastic bi-spiking neurons, ``alpha[t] * {-1, 0, 1}``): a
  nonzero spike is one event (a graded spike on Loihi 2 carries its value) and costs what a
  binary spike costs: ``out_features`` accumulates into a Linear (the amplitude, one number per
  population and step, scales the result once per output, like a bias: not counted), one
  accumulate per coincident nonzero pair in ``Q K^T``, and so on. The rules above then hold
  with ``[x != 0]`` in place of the binary spike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from neurolang.graph import Graph, Node, trace
from neurolang.primitives import fold_mask

COUNT_KEYS = ("spikes", "neuron_updates", "sops", "macs", "adds")
"""The additive counts of a layer."""

NORM_COST = {"layer": (3, 2), "batch": (1, 0)}
"""(MACs, additions) per element of a norm; see the module docstring."""

# how many rows a node's output has: tokens once, tokens at every step, samples at every step,
# samples once
TOKEN, TOKEN_STEP, SAMPLE_STEP, SAMPLE = "token", "token_step", "sample_step", "sample"


class CountingError(ValueError):
    """A model or a simulator's report cannot be counted under the rules."""


COUNTED_OPS = ("input", "fold_mask", "embedding", "position_embedding", "encode", "neuron",
               "linear", "norm", "attention_product", "add", "token_mean", "time_mean")
"""The graph operations the rules above cover; a model with any other is refused."""


@dataclass
class LayerCounts:
    """The counts of one node of the model graph (totals over every sample counted).

    ``role`` says which rule applies: ``population`` (emits spikes), ``synaptic`` (Linear fed
    by spikes), ``dense`` (Linear fed by real values), ``attention`` (spike x spike product),
    ``residual``, ``norm``, ``pooling``, ``position``, ``embedding``, ``encode``.
    ``estimated`` marks counts that are not exact (see :func:`counts_from_spikes`).
    """

    name: str
    op: str
    role: str
    inputs: list[str]
    width: int
    spikes: int = 0
    neuron_updates: int = 0
    sops: int = 0
    macs: int = 0
    adds: int = 0
    input_elements: int = 0
    input_nonzero: int | None = None
    estimated: bool = False
    detail: dict[str, int] = field(default_factory=dict)

    @property
    def firing_rate(self) -> float | None:
        return self.spikes / self.neuron_updates if self.neuron_updates else None

    @property
    def input_density(self) -> float | None:
        if self.input_nonzero is None or not self.input_elements:
            return None
        return self.input_nonzero / self.input_elements

    def accumulate(self, other: LayerCounts) -> None:
        for key in COUNT_KEYS + ("input_elements",):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        if other.input_nonzero is not None:
            self.input_nonzero = (self.input_nonzero or 0) + other.input_nonzero
        for key, value in other.detail.items():
            self.detail[key] = self.detail.get(key, 0) + value
        self.estimated = self.estimated or other.estimated

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["firing_rate"] = self.firing_rate
        out["input_density"] = self.input_density
        return out


@dataclass
class ModelCounts:
    """Counts of a whole model over ``samples`` samples holding ``tokens`` real tokens."""

    simulator: str
    time_steps: int
    samples: int = 0
    tokens: int = 0
    layers: dict[str, LayerCounts] = field(default_factory=dict)

    def total(self, key: str) -> int:
        return sum(getattr(layer, key) for layer in self.layers.values())

    def per_sample(self, key: str) -> float:
        return self.total(key) / self.samples if self.samples else 0.0

    @property
    def firing_rate(self) -> float | None:
        """Spikes over neuron updates, all populations together (the encoder included)."""
        updates = self.total("neuron_updates")
        return self.total("spikes") / updates if updates else None

    @property
    def estimated(self) -> list[str]:
        return [name for name, layer in self.layers.items() if layer.estimated]

    def populations(self) -> list[LayerCounts]:
        return [layer for layer in self.layers.values() if layer.role == "population"]

    def summary(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "tokens": self.tokens,
            "firing_rate": self.firing_rate,
            **{f"{key}_per_sample": self.per_sample(key) for key in COUNT_KEYS},
            **{f"{key}_total": self.total(key) for key in COUNT_KEYS},
            "estimated_layers": self.estimated,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "simulator": self.simulator,
            "time_steps": self.time_steps,
            **self.summary(),
            "layers": [layer.to_dict() for layer in self.layers.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCounts:
        counts = cls(data["simulator"], data["time_steps"], data["samples"], data["tokens"])
        names = {f.name for f in LayerCounts.__dataclass_fields__.values()}
        for layer in data["layers"]:
            counts.layers[layer["name"]] = LayerCounts(
                **{k: v for k, v in layer.items() if k in names})
        return counts


# ---- the graph: who feeds whom, widths, rows ----------------------------------------------


class CountingPlan:
    """What the counter needs from ``trace(model)``: per node, whether it emits spikes, its
    width (features of its output) and what its rows are (tokens, tokens x steps, ...)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.time_steps: int = model.config.time_steps
        self.graph: Graph = trace(model)
        uncounted: dict[str, str] = {}  # op -> its first node
        for name, n in self.graph.nodes.items():
            if n.op not in COUNTED_OPS:
                uncounted.setdefault(n.op, name)
        if uncounted:
            where = ", ".join(f"{op} ({name})" for op, name in sorted(uncounted.items()))
            block = getattr(model.config, "block", "spikformer")
            raise CountingError(
                f"no energy counting rule for {where}: the rules cover the Spikformer "
                f"block's primitives only, this model has block={block!r} (SpikeLM: "
                "real-valued softmax attention and GELU are not counted)")
        self.nodes: dict[str, Node] = {
            name: node for name, node in self.graph.nodes.items()
            if node.op not in ("input", "fold_mask")
        }
        self.spiking: dict[str, bool] = {}
        self.graded: dict[str, bool] = {}  # spikes alpha[t] * {-1, 0, 1} (amplitude kinds)
        self.width: dict[str, int] = {}
        self.rows: dict[str, str] = {}
        for name, node in self.nodes.items():
            self.spiking[name] = self._is_spiking(node)
            self.graded[name] = node.op == "neuron" and node.module.kind.amplitude
            self.width[name] = self._width(node)
            self.rows[name] = self._rows(node)
        self.module_names: dict[int, str] = {}
        for name, node in self.nodes.items():
            if node.module is not None:
                if id(node.module) in self.module_names:
                    raise CountingError(f"{name}: a primitive called twice cannot be counted "
                                        "by forward hooks")
                self.module_names[id(node.module)] = name

    def data_inputs(self, node: Node) -> list[str]:
        return [i for i in node.inputs if i in self.nodes]

    @staticmethod
    def _is_spiking(node: Node) -> bool:
        return node.op == "neuron" or (node.op == "encode" and node.module.encoding == "heaviside")

    def _width(self, node: Node) -> int:
        module = node.module
        if node.op in ("embedding", "position_embedding"):
            return int(module.weight.shape[1])
        if node.op == "linear":
            return int(module.out_features)
        if node.op == "norm":
            return int(module.features)
        return self.width[self.data_inputs(node)[0]]

    def _rows(self, node: Node) -> str:
        if node.op in ("embedding", "position_embedding"):
            return TOKEN
        if node.op == "encode":
            return TOKEN_STEP
        if node.op == "token_mean":
            return SAMPLE_STEP
        if node.op == "time_mean":
            return SAMPLE
        return self.rows[self.data_inputs(node)[0]]

    def row_count(self, kind: str, samples: int, tokens: int) -> int:
        steps = self.time_steps
        return {TOKEN: tokens, TOKEN_STEP: steps * tokens, SAMPLE_STEP: steps * samples,
                SAMPLE: samples}[kind]

    def role(self, name: str) -> str:
        node = self.nodes[name]
        if self.spiking[name]:
            return "population"
        if node.op == "linear":
            return "synaptic" if self.spiking[self.data_inputs(node)[0]] else "dense"
        return {"attention_product": "attention", "add": "residual", "norm": "norm",
                "token_mean": "pooling", "time_mean": "pooling", "position_embedding": "position",
                "embedding": "embedding", "encode": "encode"}.get(node.op, node.op)

    def empty_counts(self, simulator: str) -> ModelCounts:
        counts = ModelCounts(simulator, self.time_steps)
        for name, node in self.nodes.items():
            counts.layers[name] = LayerCounts(
                name=display_name(self, name), op=node.op, role=self.role(name),
                inputs=[display_name(self, i) for i in self.data_inputs(node)],
                width=self.width[name])
        return counts


def display_name(plan: CountingPlan, name: str) -> str:
    """Graph names, except residual adds: ``blocks.0.attention.residual`` for the ``add``
    whose branch is ``blocks.0.attention.output.neuron``."""
    node = plan.nodes.get(name)
    if node is None or node.op != "add":
        return name
    branch = plan.data_inputs(node)[-1]
    parts = branch.split(".")
    if plan.nodes[branch].op == "neuron" and len(parts) > 2:
        return ".".join(parts[:-2]) + ".residual"
    return name


def _check_binary(x: torch.Tensor, keep: torch.Tensor, where: str) -> None:
    bad = ((x != 0) & (x != 1)) & keep
    if bool(bad.any()):
        value = x[bad][0].item()
        raise CountingError(f"{where} should be binary spikes but holds the value {value}; "
                            "only 0/1 spikes can be counted as synaptic operations")


def attention_sops(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor,
                   heads: int) -> dict[str, int]:
    """Accumulates of ``(Q K^T) V`` with binary ``q, k, v`` (rows, L, D), over real tokens
    (``keep`` (rows, L) bool), per head: ``sops_qk``, ``sops_av``, and the other association's
    ``sops_kv_first`` (``K^T V`` pairs, then each Q spike adds a row of it, zeros skipped)."""
    rows, length, width = q.shape
    real = keep.to(torch.float64)[:, None, :, None]

    def split(x):
        return x.to(torch.float64).reshape(rows, length, heads, width // heads).transpose(1, 2) * real

    q, k, v = split(q), split(k), split(v)
    nq, nk = q.sum(2), k.sum(2)                       # (rows, heads, d) tokens per channel
    sops_qk = (nq * nk).sum()
    scores = q @ k.transpose(-2, -1)                  # (rows, heads, L, L) integer counts
    nv = v.sum(-1)                                    # (rows, heads, L) V spikes per token
    sops_av = ((scores != 0).to(torch.float64) @ nv.unsqueeze(-1)).sum()
    pairs_kv = (k.sum(-1) * nv).sum()                 # K^T V: coincident (k_jc, v_jc') pairs
    kv = k.transpose(-2, -1) @ v                      # (rows, heads, d, d)
    row_nonzero = (kv != 0).sum(-1).to(torch.float64)  # (rows, heads, d)
    sops_q_kv = (q.sum(2) * row_nonzero).sum()
    return {"sops_qk": int(sops_qk), "sops_av": int(sops_av),
            "sops_kv_first": int(pairs_kv + sops_q_kv)}


# ---- counting a run through forward hooks -------------------------------------------------


class OpCounter:
    """Count a model's own runs: forward hooks on its primitives, padding excluded.

    ::

        with OpCounter(model) as counter:
            for batch in batches:
                counter.run(batch["input_ids"], batch["attention_mask"])
        counts = counter.counts

    ``model`` is a Spikformer compiled for any torch-side backend; put it in evaluation mode
    first. Every call of :meth:`run` adds to :attr:`counts`.
    """

    def __init__(self, model: nn.Module, simulator: str | None = None):
        self.model = model
        self.plan = CountingPlan(model)
        self.counts = self.plan.empty_counts(simulator or getattr(model, "backend", "torch"))
        self._handles: list[Any] = []
        self._masks: dict[str, torch.Tensor] = {}
        self._batch_spikes: dict[str, int] = {}
        self._running = False

    def __enter__(self) -> OpCounter:
        for name, node in self.plan.nodes.items():
            if node.module is not None:
                self._handles.append(node.module.register_forward_hook(
                    lambda module, args, out, name=name: self._hook(name, args, out)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @torch.no_grad()
    def run(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """Run the model on one batch and count it; returns the model's output."""
        if not self._handles:
            raise RuntimeError("use OpCounter as a context manager: with OpCounter(model) as c:")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        tokens = attention_mask.bool()
        folded = fold_mask(attention_mask, self.plan.time_steps).bool()
        self._masks = {TOKEN: tokens, TOKEN_STEP: folded}
        self._batch_spikes = {}
        self._running = True
        try:
            out = self.model(input_ids, attention_mask)
        finally:
            self._running = False
        self._count_adds(int(tokens.sum()), input_ids.shape[0])
        self.counts.samples += int(input_ids.shape[0])
        self.counts.tokens += int(tokens.sum())
        return out

    # masks: ``keep`` broadcastable over the rows of a node's output (None: every row is real)
    def _keep(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        if kind in self._masks:
            return self._masks[kind]
        return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)

    def _hook(self, name: str, args: tuple, out: Any) -> None:
        if not self._running:
            return
        plan, layer = self.plan, self.counts.layers[name]
        node = plan.nodes[name]
        if plan.spiking[name]:
            keep = self._keep(plan.rows[name], out).to(out.device)
            if not plan.graded[name]:
                _check_binary(out, keep[..., None], f"{name} (output)")
            spikes = int(((out != 0) & keep[..., None]).sum())
            layer.spikes += spikes
            layer.neuron_updates += int(keep.sum()) * out.shape[-1]
            self._batch_spikes[name] = spikes
            return
        op = node.op
        if op == "linear":
            x = args[0]
            source = plan.data_inputs(node)[0]
            keep = self._keep(plan.rows[source], x).to(x.device)[..., None]
            real_rows = int(keep.sum())
            nonzero = int(((x != 0) & keep).sum())
            layer.input_elements += real_rows * x.shape[-1]
            layer.input_nonzero = (layer.input_nonzero or 0) + nonzero
            if plan.spiking[source]:
                if not plan.graded[source]:
                    _check_binary(x, keep, f"{name} (input from {source})")
                layer.sops += nonzero * node.module.out_features
            else:
                layer.macs += real_rows * node.module.in_features * node.module.out_features
                real = x.masked_select(keep)
                if "non_integer_input" in layer.detail or not torch.equal(real, real.round()):
                    layer.detail.pop("decomposed_accumulates", None)
                    layer.detail["non_integer_input"] = 1
                else:
                    layer.detail["decomposed_accumulates"] = layer.detail.get(
                        "decomposed_accumulates", 0) + int(real.abs().sum().item()
                                                           ) * node.module.out_features
        elif op == "norm":
            x = args[0]
            elements = int(self._keep(plan.rows[name], x).sum()) * x.shape[-1]
            macs, adds = NORM_COST[node.module.kind]
            layer.macs += macs * elements
            layer.adds += adds * elements
        elif op == "attention_product":
            keep = self._masks[TOKEN_STEP].to(args[0].device)
            sources = zip(args[:3], plan.data_inputs(node), "QKV", strict=True)
            q, k, v = (self._events(tensor, source, keep, f"{name} ({which})")
                       for tensor, source, which in sources)
            found = attention_sops(q, k, v, keep, node.module.num_heads)
            layer.sops += found["sops_qk"] + found["sops_av"]
            for key, value in found.items():
                layer.detail[key] = layer.detail.get(key, 0) + value
        elif op in ("token_mean", "time_mean"):
            x = args[0]
            source = plan.data_inputs(node)[0]
            layer.adds += int(self._keep(plan.rows[source], x).sum()) * x.shape[-1]
            layer.macs += out.numel()
        elif op == "position_embedding":
            x = args[0]
            layer.adds += int(self._keep(TOKEN, x).sum()) * x.shape[-1]
        # embedding (a lookup) and encode with "repeat" (a copy) cost nothing

    def _events(self, x: torch.Tensor, source: str, keep: torch.Tensor, where: str):
        """The spike events of ``x`` from population ``source`` as 0/1: binary spikes checked
        as they are, graded spikes as ``[x != 0]``."""
        if self.plan.graded.get(source):
            return (x != 0).to(x.dtype)
        _check_binary(x, keep[..., None], where)
        return x

    def _count_adds(self, tokens: int, samples: int) -> None:
        plan = self.plan
        for name, node in plan.nodes.items():
            if node.op != "add":
                continue
            layer = self.counts.layers[name]
            for operand in plan.data_inputs(node)[1:]:
                if plan.spiking[operand]:
                    layer.sops += self._batch_spikes[operand]
                else:
                    rows = plan.row_count(plan.rows[operand], samples, tokens)
                    layer.adds += rows * plan.width[operand]


def count_batches(model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]],
                  simulator: str | None = None) -> tuple[ModelCounts, torch.Tensor]:
    """Count ``model`` over ``batches`` (dicts with ``input_ids`` and ``attention_mask``) in
    evaluation mode; returns the counts and the logits of every sample in order."""
    was_training = model.training
    model.eval()
    logits = []
    try:
        with OpCounter(model, simulator) as counter:
            for batch in batches:
                out = counter.run(batch["input_ids"], batch["attention_mask"])
                logits.append(out["logits"].detach().cpu())
    finally:
        model.train(was_training)
    return counter.counts, torch.cat(logits) if logits else torch.empty(0)


# ---- counts from another simulator's spike counts -----------------------------------------


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def _match_names(reported: Mapping[str, Any], wanted: Sequence[str], what: str) -> dict[str, Any]:
    exact = {name: reported[name] for name in wanted if name in reported}
    loose = {_normalise(k): v for k, v in reported.items()}
    for name in wanted:
        if name not in exact and _normalise(name) in loose:
            exact[name] = loose[_normalise(name)]
    missing = [name for name in wanted if name not in exact]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4
                                          else "")
        raise CountingError(f"the simulator reported no {what} for {shown}; expected one per "
                            f"population of the graph, got {sorted(reported)[:6]}")
    return exact


def _total(value: Any) -> int:
    if isinstance(value, (int, float)):
        return int(value)
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return sum(_total(v) for v in value)
    raise CountingError(f"a spike count must be a number or a list of numbers, got {value!r}")


def estimate_attention_sops(rate_q: float, rate_k: float, rate_v: float, lengths: Sequence[int],
                            head_width: int, heads: int, time_steps: int) -> int:
    """Expected accumulates of ``(Q K^T) V`` if every spike were independent with the given
    rates: per head, step and sample of L tokens, ``d (r_q L)(r_k L)`` coincidences for
    ``Q K^T``, and ``L^2 (1 - (1 - r_q r_k)^d) r_v d`` for ``A V`` (a non-zero score times the
    V spikes of its token)."""
    d = head_width
    nonzero_score = 1.0 - (1.0 - rate_q * rate_k) ** d
    per_length = sum(d * rate_q * rate_k * n * n + n * n * nonzero_score * rate_v * d
                     for n in lengths)
    return round(per_length * heads * time_steps)


def counts_from_spikes(model_or_config: Any, spikes: Mapping[str, Any], lengths: Sequence[int],
                       *, simulator: str = "lava",
                       attention: Mapping[str, Any] | None = None) -> ModelCounts:
    """The counts table from per-population spike counts reported by another simulator.

    Args:
        model_or_config: the model (any backend) or its ``SpikformerConfig``: only the graph
            and shapes are used.
        spikes: ``{population: spikes}`` for every spiking population (``neuron`` nodes and a
            Heaviside ``encode``), summed over real tokens, features and steps; a list (one
            count per step) is summed. Names are the graph's (``blocks.0.mlp.fc1.neuron``);
            ``.`` / ``_`` / ``/`` spellings are matched loosely.
        lengths: the real length of every sample run.
        attention: ``{product node: accumulates}`` counted by the simulator inside its
            attention process (an int, or ``{"sops_qk": ..., "sops_av": ...}``). Products it
            does not give are estimated (:func:`estimate_attention_sops`) from the Q, K, V
            spike rates and the lengths, and marked ``estimated``.

    Every other count follows from the spike counts, the fan-outs and the shapes with the rules
    of this module, so it equals the count :class:`OpCounter` makes of a run with the same
    spikes.
    """
    from neurolang.config import SpikformerConfig

    if isinstance(model_or_config, SpikformerConfig):
        from neurolang.spikformer import Spikformer

        with torch.device("meta"):
            model = Spikformer(model_or_config.replace(representation_taps=False))
    else:
        model = model_or_config
    plan = CountingPlan(model)
    lengths = [int(n) for n in lengths]
    samples, tokens = len(lengths), sum(lengths)
    counts = plan.empty_counts(simulator)
    counts.samples, counts.tokens = samples, tokens
    populations = [name for name in plan.nodes if plan.spiking[name]]
    reported = {name: _total(v) for name, v in _match_names(spikes, populations,
                                                              "spike count").items()}
    products = [name for name, node in plan.nodes.items() if node.op == "attention_product"]
    given: dict[str, Any] = {}
    loose = {_normalise(k): v for k, v in (attention or {}).items()}
    for product in products:
        if attention and product in attention:
            given[product] = attention[product]
        elif _normalise(product) in loose:
            given[product] = loose[_normalise(product)]
    unknown = {_normalise(k) for k in attention or {}} - {_normalise(p) for p in products}
    if unknown:
        raise CountingError(f"attention counts given for {sorted(unknown)}, which are not "
                            f"attention products of the graph ({products})")

    def rows_of(name: str) -> int:
        return plan.row_count(plan.rows[name], samples, tokens)

    for name, node in plan.nodes.items():
        layer = counts.layers[name]
        inputs = plan.data_inputs(node)
        if plan.spiking[name]:
            layer.spikes = reported[name]
            layer.neuron_updates = rows_of(name) * plan.width[name]
            if layer.spikes > layer.neuron_updates:
                raise CountingError(f"{name}: {layer.spikes} spikes reported, more than its "
                                    f"{layer.neuron_updates} neuron updates")
        elif node.op == "linear":
            source = inputs[0]
            layer.input_elements = rows_of(source) * node.module.in_features
            if plan.spiking[source]:
                layer.input_nonzero = reported[source]
                layer.sops = reported[source] * node.module.out_features
            else:
                layer.macs = rows_of(source) * node.module.in_features * node.module.out_features
        elif node.op == "norm":
            macs, adds = NORM_COST[node.module.kind]
            elements = rows_of(name) * plan.width[name]
            layer.macs, layer.adds = macs * elements, adds * elements
        elif node.op == "attention_product":
            if name in given:
                value = given[name]
                if isinstance(value, Mapping):
                    layer.detail = {k: int(v) for k, v in value.items()}
                    layer.sops = int(value["sops_qk"]) + int(value["sops_av"])
                else:
                    layer.sops = _total(value)
            else:
                q, k, v = inputs[:3]
                sites = rows_of(q) * plan.width[q]
                rates = [reported[p] / sites if sites else 0.0 for p in (q, k, v)]
                heads = node.module.num_heads
                layer.sops = estimate_attention_sops(
                    *rates, lengths, plan.width[q] // heads, heads, plan.time_steps)
                layer.estimated = True
        elif node.op in ("token_mean", "time_mean"):
            layer.adds = rows_of(inputs[0]) * plan.width[inputs[0]]
            layer.macs = rows_of(name) * plan.width[name]
        elif node.op == "position_embedding":
            layer.adds = tokens * plan.width[name]
        elif node.op == "add":
            for operand in inputs[1:]:
                if plan.spiking[operand]:
                    layer.sops += reported[operand]
                else:
                    layer.adds += rows_of(operand) * plan.width[operand]
    return counts


# ---- comparing simulators -----------------------------------------------------------------


def first_difference(a: ModelCounts, b: ModelCounts,
                     skip_estimated: bool = True) -> dict[str, Any] | None:
    """The first layer (graph order) where two count tables differ, or None if they agree.

    Layers estimated in either table are skipped unless ``skip_estimated`` is False."""
    for name, layer in a.layers.items():
        other = b.layers.get(name)
        if other is None:
            return {"layer": name, "field": "missing", a.simulator: "present",
                    b.simulator: "absent"}
        if skip_estimated and (layer.estimated or other.estimated):
            continue
        for key in COUNT_KEYS:
            x, y = getattr(layer, key), getattr(other, key)
            if x != y:
                return {"layer": layer.name, "field": key, a.simulator: x, b.simulator: y,
                        "estimated": layer.estimated or other.estimated}
    extra = [n for n in b.layers if n not in a.layers]
    if extra:
        return {"layer": extra[0], "field": "missing", a.simulator: "absent",
                b.simulator: "present"}
    if (a.samples, a.tokens) != (b.samples, b.tokens):
        return {"layer": None, "field": "samples/tokens",
                a.simulator: (a.samples, a.tokens), b.simulator: (b.samples, b.tokens)}
    return None


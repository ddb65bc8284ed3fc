"""Counting a model's own run on a torch-side simulator (``torch``, ``snntorch``, ``norse``).

:class:`OpCounter` puts forward hooks on the primitives of the model: each hook measures what
its node's rule reads (:mod:`neurolang.energy.rules`) from the tensors of the run, over real
tokens only, and has the rule count it. Graph functions (the residual ``add``) have no module
to hook; they are counted after the run from the spikes the populations emitted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

import torch
from torch import nn

from neurolang.energy.plan import CountingPlan
from neurolang.energy.records import CountingError, Input, ModelCounts, Seen
from neurolang.energy.rules import TOKEN, TOKEN_STEP
from neurolang.primitives import fold_mask


def _check_binary(x: torch.Tensor, keep: torch.Tensor, where: str) -> None:
    bad = ((x != 0) & (x != 1)) & keep
    if bool(bad.any()):
        value = x[bad][0].item()
        raise CountingError(f"{where} should be binary spikes but holds the value {value}; "
                            "only 0/1 spikes can be counted as synaptic operations")


class _RunInput:
    """An :class:`~neurolang.energy.records.Input` measured from the tensor ``x`` a hooked
    node received, each number only when its rule asks for it."""

    def __init__(self, counter: OpCounter, node: str, source: str, x: torch.Tensor):
        plan = counter.plan
        self.source, self.spiking = source, plan.spiking[source]
        self.rows, self.width = counter._rows(plan.rows[source]), plan.width[source]
        self._counter, self._kind = counter, plan.rows[source]
        self._x, self._graded, self._where = x, plan.graded[source], f"{node} (input from {source})"

    @cached_property
    def keep(self) -> torch.Tensor:
        """Its real rows, (rows, L) or (rows,) bool."""
        return self._counter._keep(self._kind, self._x).to(self._x.device)

    @cached_property
    def events(self) -> int:
        """Nonzero values over real rows; binary spikes are checked."""
        if self.spiking and not self._graded:
            _check_binary(self._x, self.keep[..., None], self._where)
        return int(((self._x != 0) & self.keep[..., None]).sum())

    @cached_property
    def spikes(self) -> torch.Tensor:
        """The events as 0/1 (binary spikes checked as they are, graded ones as ``x != 0``)."""
        if not self._graded:
            _check_binary(self._x, self.keep[..., None], self._where)
        return (self._x != 0).to(self._x.dtype)

    @cached_property
    def _values(self) -> tuple[int | None, bool]:
        real = self._x.masked_select(self.keep[..., None])
        if not torch.equal(real, real.round()):
            return None, True
        return int(real.abs().sum().item()), False

    @property
    def abs_sum(self) -> int | None:
        return self._values[0]

    @property
    def non_integer(self) -> bool:
        return self._values[1]


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
        self._batch: tuple[int, int] = (0, 0)  # samples, real tokens
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
        self._batch = (int(input_ids.shape[0]), int(tokens.sum()))
        self._batch_spikes = {}
        self._running = True
        try:
            out = self.model(input_ids, attention_mask)
        finally:
            self._running = False
        self._count_unhooked()
        self.counts.samples += self._batch[0]
        self.counts.tokens += self._batch[1]
        return out

    def _rows(self, kind: str) -> int:
        """Real rows of this batch for a node whose rows are ``kind``."""
        return self.plan.row_count(kind, *self._batch)

    # masks: ``keep`` broadcastable over the rows of a node's output (None: every row is real)
    def _keep(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        if kind in self._masks:
            return self._masks[kind]
        return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)

    def _seen(self, name: str, inputs: list[Any], events: int | None) -> Seen:
        plan = self.plan
        return Seen(plan.nodes[name].module, self._rows(plan.rows[name]), plan.width[name],
                    inputs, plan.time_steps, events)

    def _hook(self, name: str, args: tuple, out: Any) -> None:
        if not self._running:
            return
        plan = self.plan
        events = None
        if plan.spiking[name]:
            keep = self._keep(plan.rows[name], out).to(out.device)
            if not plan.graded[name]:
                _check_binary(out, keep[..., None], f"{name} (output)")
            events = self._batch_spikes[name] = int(((out != 0) & keep[..., None]).sum())
        sources = plan.data_inputs(plan.nodes[name])
        inputs = [_RunInput(self, name, source, x)
                  for source, x in zip(sources, args[:len(sources)], strict=True)]
        plan.rule(name).count(self.counts.layers[name], self._seen(name, inputs, events))

    def _count_unhooked(self) -> None:
        """The graph functions (the residual add): from this batch's spikes and shapes."""
        plan = self.plan
        for name, node in plan.nodes.items():
            if node.module is not None:
                continue
            inputs = [Input(source, self._rows(plan.rows[source]), plan.width[source],
                            plan.spiking[source],
                            self._batch_spikes[source] if plan.spiking[source] else None)
                      for source in plan.data_inputs(node)]
            plan.rule(name).count(self.counts.layers[name], self._seen(name, inputs, None))


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

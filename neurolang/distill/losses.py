"""Distillation losses: SpikeBERT's feature, embedding and logit losses, and ICSFD.

All losses exclude padding and average per sample first, then over the batch, so the loss of a
batch split across processes averages back to the loss of the whole batch.
"""

from __future__ import annotations

import torch
from torch import nn


def layer_map(student_depth: int, teacher_layers: int, ignore: int = 0) -> list[tuple[int, int]]:
    """Pairs ``(student block i, teacher hidden state k)``; ``hidden_states[0]`` is the
    teacher's embedding output, ``hidden_states[k]`` its layer k.

    SpikeBERT: ``k(i) = i * N / M + 1`` for M student blocks and N teacher layers (0-based i),
    which needs N divisible by M; otherwise the same formula rounded down, which spreads the
    blocks proportionally. The first ``ignore`` pairs are dropped (SpikeBERT's "ignored
    layers").
    """
    if student_depth < 1 or teacher_layers < 1:
        raise ValueError("depths must be positive")
    if not 0 <= ignore < student_depth:
        raise ValueError(f"ignore must be in [0, {student_depth}), got {ignore}")
    pairs = [(i, i * teacher_layers // student_depth + 1) for i in range(student_depth)]
    return pairs[ignore:]


def masked_mse_per_sample(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the real tokens and features of each sample: (B,)."""
    weights = mask.to(a.dtype).unsqueeze(-1)
    squared = ((a - b) ** 2 * weights).sum(dim=(1, 2))
    return squared / (weights.sum(dim=(1, 2)) * a.shape[-1]).clamp(min=1)


def kd_kl_per_sample(student: torch.Tensor, teacher: torch.Tensor, temperature: float):
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))`` per sample: (B,)."""
    log_p_student = nn.functional.log_softmax(student / temperature, dim=-1)
    log_p_teacher = nn.functional.log_softmax(teacher / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)
    return kl * temperature**2


def icsfd_per_sample(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor,
                     labels: torch.Tensor, k: int, teacher_mask: torch.Tensor | None = None,
                     teacher_labels: torch.Tensor | None = None) -> torch.Tensor:
    """Intra-class similarity-guided feature distillation, per sample: (B,).

    Features are the final-layer token states, padding zeroed and flattened (L * D). For
    student sample i, among the batch samples j with the same label (i included), take the
    ``k`` whose teacher features are nearest to ``h_s[i]`` (squared L2) and sum
    ``mean((h_t[j] - h_s[i])^2)`` over them. A class with fewer than k members in the batch
    uses all of them, for that sample only (the reference shrinks k for good: a defect).

    ``student`` (B, L, D) with ``mask`` (B, L) and ``labels`` (B,). The candidates are
    ``teacher`` (P, Lp, D) with ``teacher_mask`` and ``teacher_labels``; by default they are
    the same samples (P = B, Lp = L). Under DDP they are the whole global batch while the
    student rows are this process's share: the student features are zero-padded to Lp, so the
    result is what one process computes on the global batch.
    """
    teacher_mask = mask if teacher_mask is None else teacher_mask
    teacher_labels = labels if teacher_labels is None else teacher_labels
    width = teacher.shape[1]
    if student.shape[1] > width:
        raise ValueError(f"student features are {student.shape[1]} tokens long, the teacher "
                         f"candidates only {width}")
    hs = student * mask.to(student.dtype).unsqueeze(-1)
    hs = nn.functional.pad(hs, (0, 0, 0, width - student.shape[1])).flatten(1)
    ht = (teacher * teacher_mask.to(teacher.dtype).unsqueeze(-1)).flatten(1)
    distances = torch.cdist(hs, ht.to(hs.dtype)) ** 2 / hs.shape[1]  # mean squared error
    same = labels[:, None] == teacher_labels[None, :]
    masked = distances.masked_fill(~same, float("inf"))
    losses = []
    for i in range(hs.shape[0]):
        count = min(k, int(same[i].sum()))
        losses.append(torch.topk(masked[i], count, largest=False).values.sum())
    return torch.stack(losses)


class Projections(nn.Module):
    """Learned maps from the student's width to the teacher's, used when they differ: one per
    distilled block (representations) and one for the embedding matrix."""

    def __init__(self, student_width: int, teacher_width: int, blocks: list[int]):
        super().__init__()
        self.needed = student_width != teacher_width
        if self.needed:
            self.representations = nn.ModuleDict(
                {str(i): nn.Linear(student_width, teacher_width) for i in blocks}
            )
            self.embedding = nn.Linear(student_width, teacher_width, bias=False)

    def representation(self, block: int, x: torch.Tensor) -> torch.Tensor:
        return self.representations[str(block)](x) if self.needed else x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x) if self.needed else x


class SpikeRecorder:
    """Keeps the output of every spiking population of ``model`` during one forward call,
    with its graph (for a loss on firing rates)::

        with SpikeRecorder(model) as spikes:
            out = model(ids, mask)
        loss = firing_rate_per_sample(spikes.outputs, mask, target=0.1)
    """

    def __init__(self, model: nn.Module):
        from neurolang.primitives import SpikingNeuron

        self.modules = {n: m for n, m in model.named_modules() if isinstance(m, SpikingNeuron)}
        self.outputs: dict[str, tuple[torch.Tensor, nn.Module]] = {}
        self._handles: list = []

    def __enter__(self) -> SpikeRecorder:
        self.outputs.clear()
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(
                lambda m, args, out, name=name: self.outputs.__setitem__(name, (out, m))))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def synapses_per_population(model: nn.Module) -> dict[str, int]:
    """The weights each spiking population's spikes drive: for population ``p``, the sum of
    ``in_features x out_features`` of every Linear reading it, directly or through residual
    sums (a spike entering the Spikformer's integer stream drives the Linears that read the
    stream). ``r_p`` times this is ``p``'s synaptic operations per token and step, what the
    energy rules count; populations read only by attention products, the head's pooling or
    nothing get 0 (their coincidences depend on both factors' spikes and are a few percent of
    the operations)."""
    from neurolang.graph import trace

    graph = trace(model)
    readers = graph.consumers()

    def driven(name: str, seen: set[str]) -> int:
        total = 0
        for reader in readers[name]:
            node = graph.nodes[reader]
            if node.op == "linear":
                total += node.module.in_features * node.module.out_features
            elif node.op in ("add", "fold_mask") and reader not in seen:
                seen.add(reader)
                total += driven(reader, seen)
        return total

    return {name: driven(name, set()) for name, node in graph.nodes.items()
            if node.op == "neuron" and "#" not in name}


def firing_rate_per_sample(outputs: dict[str, tuple[torch.Tensor, nn.Module]],
                           mask: torch.Tensor, target: float,
                           weights: dict[str, float] | None = None) -> torch.Tensor:
    """``sum_p w_p max(0, r_p - target) / sum_p w_p`` per sample, (B,): ``r_p`` is the
    firing rate of population ``p`` over the sample's real tokens, steps and features
    (``|s|``, divided by the step's amplitude for graded spikes, so a ternary spike counts
    1). Through the surrogate gradient it pushes every population above ``target`` down to
    it, and costs nothing below it. ``weights`` (by population name; default 1 each, the mean
    over populations): :func:`synapses_per_population` makes the penalty the excess firing
    per synapse, which tracks synaptic operations and leaves populations that drive no
    weights (the head's neuron, the attention factors) alone."""
    batch = mask.shape[0]
    penalties, factors = [], []
    for name, (x, module) in outputs.items():
        factor = 1.0 if weights is None else float(weights.get(name, 0.0))
        if factor == 0.0:
            continue
        factors.append(factor)
        steps = module.time_steps
        s = x.reshape(steps, batch, -1, x.shape[-1]).abs()
        if module.kind.amplitude:
            s = s / module.alpha.detach().to(s.dtype).clamp(min=1e-12).view(steps, 1, 1, 1)
        if s.shape[2] == mask.shape[1]:  # one row per token: real tokens only
            real = mask.to(s.dtype)[None, :, :, None]
            sites = real.sum((0, 2, 3)) * steps * s.shape[-1]
            rate = (s * real).sum((0, 2, 3)) / sites.clamp(min=1)
        else:  # one row per sample (an SDSA gate)
            rate = s.mean((0, 2, 3))
        penalties.append(factor * torch.relu(rate - target))
    if not penalties:
        return mask.new_zeros(batch, dtype=torch.float32)
    return torch.stack(penalties).sum(0) / sum(factors)

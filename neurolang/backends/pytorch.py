"""The ``torch`` backend: plain PyTorch, multi-step over the whole (T, B, ...) tensor.

It computes every :class:`~neurolang.neurons.NeuronSpec` setting exactly, with the reference
update of ``neurolang.neurons.lif_step`` written out inline (no per-step function lookup).
"""

from __future__ import annotations

import torch
from torch import nn

from neurolang.backends import Backend
from neurolang.neurons import NeuronSpec
from neurolang.surrogate import spike


class MultiStepLIF(nn.Module):
    """LIF over (T, B, ...) inputs in one module, the update of ``lif_step`` at each step."""

    def __init__(self, spec: NeuronSpec):
        super().__init__()
        self.spec = spec

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        s = self.spec
        v = torch.zeros_like(x_seq[0])
        out = torch.empty_like(x_seq)
        for t in range(x_seq.shape[0]):
            h = v + (x_seq[t] - v) / s.tau if s.decay_input else s.beta * v + x_seq[t]
            z = spike(h - s.v_threshold, s.surrogate, s.surrogate_alpha, s.threshold_comparison)
            r = z.detach() if s.detach_reset else z
            v = h * (1 - r) if s.reset == "zero" else h - r * s.v_threshold
            out[t] = z
        return out


class TorchBackend(Backend):
    def lower(self, spec: NeuronSpec) -> nn.Module:
        return MultiStepLIF(spec)


BACKEND = TorchBackend(
    name="torch",
    library=None,
    description="plain PyTorch, multi-step neurons over (T, B, ...): the reference and fast path",
    notes=["computes every neuron setting exactly"],
)

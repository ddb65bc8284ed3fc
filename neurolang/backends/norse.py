"""The ``norse`` backend: every population is a real Norse ``LIFBoxCell``.

Mapping, with ``dt = 1`` (verified against the reference step function in the parity tests)::

    decay_input:     LIFBoxParameters(tau_mem_inv=1/tau, v_leak=0, v_th=v_threshold, v_reset=0)
                     input x           -> v + (x - v)/tau, the reference's own form
    otherwise:       tau_mem_inv = 1 - beta, input x / (1 - beta)   -> beta v + x

Norse's ``LIFBoxCell`` integrates ``v + dt * tau_mem_inv * (x + v_leak - v)``, fires on
``v - v_th > 0`` and resets with ``reset_value`` (to ``v_reset = 0``) or ``reset_subtract``;
for ``detach_reset=True`` neurolang passes those same resets with the spike detached through
Norse's ``reset_method`` parameter. The surrogate is Norse's own ``triangle``
(``alpha * relu(1 - |x|)``); Norse 1.1.0 has no atan, sigmoid or straight-through surrogate
and no ``>=`` comparison, so those are refused.

Elastic bi-spiking neurons (``kind="elastic_bispike"``, SpikeLM) are NOT Norse's: Norse 1.1.0
has no ternary spike ``alpha * {-1, 0, 1}`` with a spike-dependent decay, so this backend runs
neurolang's own ``neurolang.backends.pytorch.FusedElasticBiSpike`` for them.
"""

from __future__ import annotations

import torch
from norse.torch.functional.reset import reset_subtract, reset_value
from norse.torch.module.lif_box import LIFBoxCell, LIFBoxParameters
from torch import nn

from neurolang.backends import Backend
from neurolang.backends.pytorch import FusedElasticBiSpike
from neurolang.neurons import NeuronSpec


def _reset_value_detached(z, v, reset, th):
    return reset_value(z.detach(), v, reset, th)


def _reset_subtract_detached(z, v, reset, th):
    return reset_subtract(z.detach(), v, reset, th)


_RESETS = {
    ("zero", False): reset_value,
    ("subtract", False): reset_subtract,
    ("zero", True): _reset_value_detached,
    ("subtract", True): _reset_subtract_detached,
}


class NorseLIF(nn.Module):
    dt = 1.0

    def __init__(self, spec: NeuronSpec):
        super().__init__()
        self.spec = spec
        if spec.decay_input:
            self.tau_mem_inv, self.input_scale = 1.0 / spec.tau, 1.0
        else:
            self.tau_mem_inv, self.input_scale = 1.0 - spec.beta, 1.0 / (1.0 - spec.beta)
        self.cell = LIFBoxCell(self._parameters_for(torch.float32, "cpu"), dt=self.dt)

    def _parameters_for(self, dtype, device) -> LIFBoxParameters:
        s = self.spec

        def tensor(value):
            return torch.tensor(value, dtype=dtype, device=device)

        return LIFBoxParameters(
            tau_mem_inv=tensor(self.tau_mem_inv / self.dt),
            v_leak=tensor(0.0),
            v_th=tensor(s.v_threshold),
            v_reset=tensor(0.0),
            method="triangle",
            alpha=tensor(s.surrogate_alpha),
            reset_method=_RESETS[(s.reset, s.detach_reset)],
        )

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if self.cell.p.v_th.dtype != x_seq.dtype or self.cell.p.v_th.device != x_seq.device:
            self.cell.p = self._parameters_for(x_seq.dtype, x_seq.device)
        state = None
        spikes = []
        for t in range(x_seq.shape[0]):
            x = x_seq[t] * self.input_scale if self.input_scale != 1.0 else x_seq[t]
            z, state = self.cell(x, state)
            spikes.append(z)
        return torch.stack(spikes)


class NorseBackend(Backend):
    def lower(self, spec: NeuronSpec) -> nn.Module:
        if spec.kind == "elastic_bispike":
            return FusedElasticBiSpike(spec)  # neurolang's: Norse has no ternary neuron
        return NorseLIF(spec)


BACKEND = NorseBackend(
    name="norse",
    library="norse",
    description="norse LIFBoxCell neurons (dt = 1), stepped over T",
    kinds=("lif", "elastic_bispike"),
    own_kinds=("elastic_bispike",),
    comparisons=(">",),
    surrogates=("triangle",),
    notes=[
        "neurons: norse LIFBoxCell with Norse's triangle surrogate; detach_reset through "
        "Norse's reset_method parameter",
        "refuses surrogates other than 'triangle' and threshold_comparison '>='",
        "elastic_bispike: NOT Norse's: neurolang's FusedElasticBiSpike (Norse 1.1.0 has no "
        "ternary neuron with spike-dependent decay)",
    ],
)

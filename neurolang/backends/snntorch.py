"""The ``snntorch`` backend: every population is a real ``snntorch.Leaky``.

Mapping (verified against the reference step function in the parity tests)::

    Leaky(beta=1 - 1/tau, threshold=v_threshold, reset_mechanism="zero", reset_delay=False,
          spike_grad=<neurolang surrogate>)            input x / tau if decay_input, else x

With ``reset_delay=False`` and zero reset, snnTorch computes ``v = (beta v + x)(1 - s)`` in the
step of the spike, as the reference does. The spike function is neurolang's (passed through
snnTorch's own ``spike_grad`` argument) because snnTorch's surrogates return float32 spikes and
so round float64 gradients; it also carries the threshold comparison.

Elastic bi-spiking neurons (``kind="elastic_bispike"``, SpikeLM) are NOT snnTorch's:
snnTorch 1.0.0 has no ternary spike ``alpha * {-1, 0, 1}`` with a spike-dependent decay and
nothing it has composes to one exactly, so this backend runs neurolang's own
``neurolang.backends.pytorch.FusedElasticBiSpike`` for them (``neurolang backends`` says so).

Refused, because snnTorch 1.0.0 computes something else:
- ``reset="subtract"`` without delay subtracts the threshold twice when the membrane is still
  above threshold after a reset (an input above 2 * threshold in one step);
- ``detach_reset=True``: the same spike tensor feeds the output and the reset, so the reset's
  gradient cannot be cut.
"""

from __future__ import annotations

import snntorch
import torch
from torch import nn

from neurolang.backends import Backend
from neurolang.backends.pytorch import FusedElasticBiSpike
from neurolang.neurons import NeuronSpec
from neurolang.surrogate import spike_function


class SnnTorchLIF(nn.Module):
    def __init__(self, spec: NeuronSpec):
        super().__init__()
        self.spec = spec
        self.leaky = snntorch.Leaky(
            beta=spec.beta,
            threshold=spec.v_threshold,
            spike_grad=spike_function(
                spec.surrogate, spec.surrogate_alpha, spec.threshold_comparison
            ),
            reset_mechanism="zero",
            reset_delay=False,
        )
        self.input_scale = 1.0 / spec.tau if spec.decay_input else 1.0

    def _match(self, x: torch.Tensor) -> None:
        # snnTorch keeps beta and threshold as buffers; give them the input's dtype from the
        # exact values of the spec (a float32 buffer cast up would carry float32 rounding).
        if self.leaky.beta.dtype != x.dtype or self.leaky.beta.device != x.device:
            self.leaky.beta = torch.tensor(self.spec.beta, dtype=x.dtype, device=x.device)
            self.leaky.threshold = torch.tensor(
                self.spec.v_threshold, dtype=x.dtype, device=x.device
            )

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        self._match(x_seq)
        mem = torch.zeros_like(x_seq[0])
        spikes = []
        for t in range(x_seq.shape[0]):
            x = x_seq[t] * self.input_scale if self.input_scale != 1.0 else x_seq[t]
            spk, mem = self.leaky(x, mem)
            spikes.append(spk)
        return torch.stack(spikes).to(x_seq.dtype)


class SnnTorchBackend(Backend):
    def lower(self, spec: NeuronSpec) -> nn.Module:
        if spec.kind == "elastic_bispike":
            return FusedElasticBiSpike(spec)  # neurolang's: snnTorch has no ternary neuron
        return SnnTorchLIF(spec)


BACKEND = SnnTorchBackend(
    name="snntorch",
    library="snntorch",
    description="snntorch.Leaky neurons (reset_delay=False), stepped over T",
    kinds=("lif", "elastic_bispike"),
    own_kinds=("elastic_bispike",),
    resets=("zero",),
    detach_reset=(False,),
    notes=[
        "neurons: snntorch.Leaky; spike function: neurolang's, via Leaky(spike_grad=...) "
        "(snnTorch's surrogates return float32)",
        "refuses reset='subtract' (double subtraction without reset delay) and "
        "detach_reset=True (spike and reset share one tensor)",
        "elastic_bispike: NOT snnTorch's: neurolang's FusedElasticBiSpike (snnTorch 1.0.0 has "
        "no ternary neuron with spike-dependent decay)",
    ],
)

"""A spiking MLP classifier over pooled sentence embeddings: the strict-NIR model.

Everything it computes is standard NIR (``Affine`` with BatchNorm folded in, ``LIF`` with zero
reset and ``>``), so ``export_nir(..., strict=True)`` accepts it and the file loads in
snnTorch's and Norse's own NIR importers. The input is a pooled embedding per sentence (for
example the mean of a teacher's token embeddings), presented unchanged at each of
``time_steps`` steps; the logits are the mean over time of the last ``Linear``::

    x = Encode(features)                                   repeat over T
    for each layer:  x = LIF(BatchNorm(W x + b))
    logits = mean_T (W_c x + b_c)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from neurolang.neurons import NeuronSpec
from neurolang.primitives import Encode, Linear, Norm, SpikingNeuron, TimeMean, fold_mask

NORMS = ("batch", "none")


@dataclass(frozen=True)
class PooledClassifierConfig:
    """Sizes and neuron of :class:`PooledSpikingClassifier`.

    ``encoding`` is always ``"repeat"`` (kept so tools written for the Spikformer config can
    read it); ``norm`` is ``"batch"`` (folded into the Linear on export) or ``"none"``.
    """

    input_size: int = 64
    hidden_sizes: tuple[int, ...] = (64, 64)
    num_labels: int = 2
    time_steps: int = 4
    norm: str = "batch"
    norm_eps: float = 1e-5
    neuron: NeuronSpec = field(default_factory=lambda: NeuronSpec(tau=2.0))
    initializer_range: float = 0.1
    encoding: str = "repeat"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        if isinstance(self.neuron, dict):
            object.__setattr__(self, "neuron", NeuronSpec(**self.neuron))
        for name in ("input_size", "num_labels", "time_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes must be positive, got {self.hidden_sizes}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.encoding != "repeat":
            raise ValueError("the pooled classifier only repeats its input over time")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PooledClassifierConfig:
        from neurolang.validation import from_table

        return from_table(cls, data, kind="pooled-classifier",
                          table="a pooled-classifier configuration")


class SpikingLayer(nn.Module):
    """``LIF(Norm(W x + b))`` (no norm with ``norm="none"``)."""

    def __init__(self, config: PooledClassifierConfig, in_features: int, out_features: int):
        super().__init__()
        self.linear = Linear(in_features, out_features)
        self.norm = (Norm("batch", out_features, config.norm_eps) if config.norm == "batch"
                     else None)
        self.neuron = SpikingNeuron(config.neuron, config.time_steps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        if self.norm is not None:
            y = self.norm(y, mask)
        return self.neuron(y)


POOLED_FORMAT = "neurolang-pooled-classifier"


class PooledSpikingClassifier(nn.Module):
    """Spiking MLP over (B, input_size) features; returns ``logits`` and ``logits_per_step``.
    Saved and loaded like every family (``neurolang.checkpoint``)."""

    folder_format = POOLED_FORMAT

    def __init__(self, config: PooledClassifierConfig):
        super().__init__()
        self.config = config
        self.encode = Encode(config.time_steps, "repeat", config.neuron)
        sizes = (config.input_size, *config.hidden_sizes)
        self.layers = nn.ModuleList(
            SpikingLayer(config, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.classifier = Linear(sizes[-1], config.num_labels)
        self.time_mean = TimeMean(config.time_steps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, Linear):
                nn.init.normal_(module.weight, std=self.config.initializer_range)
                nn.init.zeros_(module.bias)

    def forward(
        self,
        features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_representations: bool = False,
    ) -> dict[str, torch.Tensor]:
        """``features`` (B, input_size); ``attention_mask`` (B, 1), all ones (BatchNorm's
        training statistics use it like the Spikformer's token mask)."""
        if output_representations:
            raise ValueError("the pooled classifier has no representation taps")
        if attention_mask is None:
            attention_mask = torch.ones(features.shape[0], 1, dtype=torch.long,
                                        device=features.device)
        mask = fold_mask(attention_mask, self.config.time_steps)
        x = self.encode(features)
        for layer in self.layers:
            x = layer(x, mask)
        logits_per_step = self.classifier(x)
        return {"logits": self.time_mean(logits_per_step), "logits_per_step": logits_per_step}


@torch.no_grad()
def calibrate_rates(model: PooledSpikingClassifier, features: torch.Tensor, seed: int = 0,
                    band: tuple[float, float] = (0.10, 0.35)) -> dict[str, float]:
    """Give the BatchNorms random gains and running statistics, then shift each layer's
    bias (bisection, in forward order) so that it fires at a rate drawn from ``band`` on
    ``features`` (evaluation mode). Returns the rates reached, by neuron name."""
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    for layer in model.layers:
        n = layer.linear.out_features
        if layer.norm is not None:
            layer.norm.weight.copy_(0.7 + 0.8 * torch.rand(n, generator=gen, dtype=torch.float64))
            layer.norm.running_mean.copy_(0.1 * torch.randn(n, generator=gen, dtype=torch.float64))
            layer.norm.running_var.copy_(0.5 + torch.rand(n, generator=gen, dtype=torch.float64))

    def rates() -> dict[str, float]:
        out = {}
        hooks = [layer.neuron.register_forward_hook(
            lambda _m, _i, o, i=i: out.__setitem__(f"layers.{i}.neuron", float(o.mean())))
            for i, layer in enumerate(model.layers)]
        try:
            model(features)
        finally:
            for h in hooks:
                h.remove()
        return out

    for i, layer in enumerate(model.layers):
        target = band[0] + (band[1] - band[0]) * float(torch.rand(1, generator=gen))
        shifted = layer.norm.bias if layer.norm is not None else layer.linear.bias
        base = shifted.clone()
        low, high = -8.0, 8.0
        for _ in range(30):
            mid = (low + high) / 2
            shifted.copy_(base + mid)
            if rates()[f"layers.{i}.neuron"] < target:
                low = mid
            else:
                high = mid
        shifted.copy_(base + (low + high) / 2)
    return rates()

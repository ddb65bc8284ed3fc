"""Backend parity: the same weights and tokens must give the same spikes on every backend.

``run_parity`` builds one model, gives it realistic weights (every population firing between
5% and 50% of the time on the probe batch), runs the reference (the pure step functions) and
every requested backend on the same padded token batch, and compares every neuron population
spike by spike, the logits, and the surrogate gradients of a loss with respect to every
parameter.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from neurolang.backends import compile as compile_model
from neurolang.config import SpikformerConfig
from neurolang.models import SpikingClassifier, build_model
from neurolang.primitives import Encode, Norm, SpikingNeuron, fold_mask
from neurolang.validation import check_int

RATE_BAND = (0.05, 0.50)


@contextlib.contextmanager
def record_spikes(model: nn.Module):
    """Record the output of every spiking population (and a spiking encoder) by module name."""
    record: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        spiking_encoder = isinstance(module, Encode) and module.encoding == "heaviside"
        if isinstance(module, SpikingNeuron) or spiking_encoder:
            handles.append(module.register_forward_hook(
                lambda _m, _i, out, name=name: record.__setitem__(name, out.detach())
            ))
    try:
        yield record
    finally:
        for handle in handles:
            handle.remove()


def firing_rates(record: dict[str, torch.Tensor], folded_mask: torch.Tensor) -> dict[str, float]:
    """Fraction of (real token, feature, step) sites that spiked (a nonzero spike: graded
    and signed spikes count once), per population."""
    rates = {}
    for name, spikes in record.items():
        keep = folded_mask.to(spikes.dtype).unsqueeze(-1)
        fired = (spikes != 0).to(spikes.dtype)
        rates[name] = float((fired * keep).sum() / (keep.sum() * spikes.shape[-1]))
    return rates


def probe_batch(config: SpikformerConfig, batch_size: int, seed: int):
    """A token batch with padding: lengths from 40% of max_length to full, labels."""
    gen = torch.Generator().manual_seed(seed)
    length = config.max_length
    ids = torch.randint(1, config.vocab_size, (batch_size, length), generator=gen)
    lengths = torch.randint(max(2, int(0.4 * length)), length + 1, (batch_size,), generator=gen)
    lengths[0] = length
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    ids = ids * mask  # pad id 0
    labels = torch.randint(0, config.num_labels, (batch_size,), generator=gen)
    return ids, mask, labels


@torch.no_grad()
def realistic_init(model: SpikingClassifier, input_ids, attention_mask, seed: int,
                   band: tuple[float, float] = (0.10, 0.35)) -> dict[str, float]:
    """Give ``model`` weights under which every population fires inside ``band``.

    Random init leaves spiking Transformers nearly silent (or saturated), and parity of a
    silent network proves nothing. The model names its populations' controls,
    ``model.rate_controls()`` (by default every population that reads a Norm or a Linear
    directly, in any family; SpikeLM names its own). Each steering Norm gets a random gain
    in [0.7, 1.5], random per-feature biases, and then, in forward order, a common bias
    shift found by bisection so that its population's firing rate on the given batch hits a
    target drawn from ``band``; a steering Linear first gets weights N(0, 1/in_features).
    A population without a control (the attention neuron after the product, a neuron
    reading a residual sum or the encoder, such as a membrane shortcut's stream neuron) is
    not steered: its rate follows from the populations and weights before it, and may lie
    outside ``band``. Returns the rates reached.

    Populations with spike amplitudes (``elastic_bispike``) fire when ``|u| >= alpha/2``,
    which a bias shift does not steer monotonically: in forward order, each gets its
    ``alpha`` initialised on the batch (SpikeLM's first-batch rule, after everything before
    it is set), then a common factor ``2^k`` on its norm's weight and bias, ``k`` found by
    bisection; one without a norm (the attention neuron) keeps its first-batch ``alpha``.
    """
    gen = torch.Generator().manual_seed(seed)
    mask = fold_mask(attention_mask, model.config.time_steps)
    if model.config.encoding == "heaviside":
        # embeddings a little more often negative than positive: ~30% of inputs spike
        model.embedding.weight.sub_(0.5 * model.config.initializer_range)
    # (population whose rate is steered, the Norm or Linear whose bias steers it), in
    # forward order: the model names them (SpikingClassifier.rate_controls)
    steer = list(model.rate_controls())
    for _, norm in steer:
        if isinstance(norm, Norm):
            n = norm.features
            norm.weight.copy_(0.7 + 0.8 * torch.rand(n, generator=gen, dtype=torch.float64))
        else:  # a Linear: weights N(0, 1/in), so its outputs vary as much as its inputs
            n = norm.out_features
            norm.weight.copy_(torch.randn(norm.weight.shape, generator=gen,
                                          dtype=torch.float64) / norm.in_features ** 0.5)
        norm.bias.copy_(0.3 * torch.randn(n, generator=gen, dtype=torch.float64))

    def rate_of(name: str) -> float:
        with record_spikes(model) as rec:
            model(input_ids, attention_mask)
        return firing_rates({name: rec[name]}, mask)[name]

    graded = {name: module for name, module in model.named_modules()
              if isinstance(module, SpikingNeuron) and module.kind.amplitude}
    if not graded:
        for name, norm in steer:
            target = band[0] + (band[1] - band[0]) * float(torch.rand(1, generator=gen))
            base = norm.bias.clone()
            low, high = -4.0, 4.0
            for _ in range(30):
                mid = (low + high) / 2
                norm.bias.copy_(base + mid)
                if rate_of(name) < target:
                    low = mid
                else:
                    high = mid
            norm.bias.copy_(base + (low + high) / 2)
    else:
        norms = dict(steer)
        for name, module in model.named_modules():
            if not isinstance(module, SpikingNeuron):
                continue
            norm = norms.get(name)
            if module.kind.amplitude:
                module.reset_alpha()
                if norm is None:
                    model(input_ids, attention_mask)  # sets alpha (and downstream ones)
                    continue
            if norm is None:
                continue
            target = band[0] + (band[1] - band[0]) * float(torch.rand(1, generator=gen))
            weight, bias = norm.weight.clone(), norm.bias.clone()
            if module.kind.amplitude:
                model(input_ids, attention_mask)  # alpha from the unscaled norm
                knob, low, high = "gain", -4.0, 4.0
            else:
                knob, low, high = "shift", -4.0, 4.0

            def set_knob(k, knob=knob, norm=norm, weight=weight, bias=bias):
                if knob == "gain":
                    norm.weight.copy_(weight * 2.0 ** k)
                    norm.bias.copy_(bias * 2.0 ** k)
                else:
                    norm.bias.copy_(bias + k)

            for _ in range(30):
                mid = (low + high) / 2
                set_knob(mid)
                if rate_of(name) < target:
                    low = mid
                else:
                    high = mid
            set_knob((low + high) / 2)
    with record_spikes(model) as rec:
        model(input_ids, attention_mask)
    return firing_rates(rec, mask)


@dataclass
class PopulationReport:
    name: str
    rate: float
    spikes: dict[str, int]
    mismatches: dict[str, int]


@dataclass
class ParityReport:
    config: dict
    backends: list[str]
    dtype: str
    seed: int
    populations: list[PopulationReport] = field(default_factory=list)
    logits_max_diff: dict[str, float] = field(default_factory=dict)
    grad_max_diff: dict[str, float] = field(default_factory=dict)
    float32_mismatches: dict[str, int] = field(default_factory=dict)
    float32_logits_max_diff: dict[str, float] = field(default_factory=dict)
    float32_vs_float64_mismatches: int | None = None

    @property
    def total_mismatches(self) -> int:
        return sum(sum(p.mismatches.values()) for p in self.populations)

    @property
    def rates_in_band(self) -> bool:
        return all(RATE_BAND[0] <= p.rate <= RATE_BAND[1] for p in self.populations)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["total_mismatches"] = self.total_mismatches
        out["rates_in_band"] = self.rates_in_band
        out["rate_band"] = list(RATE_BAND)
        return out


def _run(model: nn.Module, ids, mask, labels, with_grad: bool):
    model.zero_grad(set_to_none=True)
    with record_spikes(model) as rec:
        out = model(ids, mask, output_representations=model.config.representation_taps)
    grads = {}
    if with_grad:
        loss = nn.functional.cross_entropy(out["logits"], labels)
        for rep in out.get("representations", []):
            loss = loss + rep.pow(2).mean()
        loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
                 if p.grad is not None}
    return dict(rec), out["logits"].detach(), grads


def run_parity(config: SpikformerConfig, backends: list[str], seed: int = 0,
               dtype: torch.dtype = torch.float64, batch_size: int = 4,
               check_float32: bool = True) -> ParityReport:
    """Compare ``backends`` with the reference step functions on one model and batch."""
    batch_size = check_int("", "batch_size", batch_size, at_least=1)
    torch.manual_seed(seed)
    reference = build_model(config).to(dtype)
    ids, mask, labels = probe_batch(config, batch_size, seed)
    realistic_init(reference, ids, mask, seed)
    state = reference.state_dict()
    report = ParityReport(config.to_dict(), list(backends), str(dtype).replace("torch.", ""), seed)

    ref_spikes, ref_logits, ref_grads = _run(reference, ids, mask, labels, with_grad=True)
    folded = fold_mask(mask, config.time_steps)
    rates = firing_rates(ref_spikes, folded)
    results = {}
    for name in backends:
        model = compile_model(build_model(config), name).to(dtype)
        model.load_state_dict(state, strict=True)
        results[name] = _run(model, ids, mask, labels, with_grad=True)

    for pop, ref in ref_spikes.items():
        report.populations.append(PopulationReport(
            name=pop,
            rate=rates[pop],
            spikes={"reference": int((ref != 0).sum()),
                    **{b: int((results[b][0][pop] != 0).sum()) for b in backends}},
            mismatches={b: int((results[b][0][pop] != ref).sum()) for b in backends},
        ))
    for b in backends:
        _, logits, grads = results[b]
        report.logits_max_diff[b] = float((logits - ref_logits).abs().max())
        missing = set(ref_grads) ^ set(grads)
        if missing:
            raise RuntimeError(f"backend {b}: gradients missing for {sorted(missing)}")
        report.grad_max_diff[b] = max(float((grads[n] - g).abs().max()) for n, g in ref_grads.items())

    if check_float32 and dtype != torch.float32:
        # float32: every backend against the float32 reference, and that against float64
        ref32 = build_model(config).float()
        ref32.load_state_dict(state)
        spikes32, logits32, _ = _run(ref32, ids, mask, labels, with_grad=False)
        for b in backends:
            s, logits, _ = _run(compile_model(ref32, b), ids, mask, labels, with_grad=False)
            report.float32_mismatches[b] = int(sum((s[p] != spikes32[p]).sum() for p in s))
            report.float32_logits_max_diff[b] = float((logits - logits32).abs().max())
        report.float32_vs_float64_mismatches = int(sum(
            (spikes32[p] != ref_spikes[p].float()).sum() for p in ref_spikes))
    return report


def print_report(report: ParityReport, console) -> None:
    """The parity report as tables on a rich console."""
    from rich.table import Table

    table = Table(title=f"spikes per population ({report.dtype}, seed {report.seed}); "
                        "mismatches against the reference step functions")
    table.add_column("population")
    table.add_column("rate", justify="right")
    table.add_column("spikes (ref)", justify="right")
    for b in report.backends:
        table.add_column(f"{b} spikes / mismatches", justify="right")
    for p in report.populations:
        rate = f"{p.rate:.1%}"
        if not RATE_BAND[0] <= p.rate <= RATE_BAND[1]:
            rate = f"[yellow]{rate}[/]"
        cells = [f"{p.spikes[b]} / " + (f"[red]{p.mismatches[b]}[/]" if p.mismatches[b]
                                        else "0") for b in report.backends]
        table.add_row(p.name, rate, str(p.spikes["reference"]), *cells)
    console.print(table)
    summary = Table(title="outputs and gradients against the reference")
    for column in ("backend", "spike mismatches", "logits max |diff|", "grad max |diff|",
                   "float32 mismatches", "float32 logits max |diff|"):
        summary.add_column(column, justify="right")
    for b in report.backends:
        mism = sum(p.mismatches[b] for p in report.populations)
        summary.add_row(
            b, str(mism), f"{report.logits_max_diff[b]:.2e}", f"{report.grad_max_diff[b]:.2e}",
            str(report.float32_mismatches.get(b, "-")),
            f"{report.float32_logits_max_diff[b]:.2e}" if b in report.float32_logits_max_diff
            else "-",
        )
    console.print(summary)
    if report.float32_vs_float64_mismatches is not None:
        console.print(f"float32 reference vs float64 reference: "
                      f"{report.float32_vs_float64_mismatches} spike mismatches (rounding)")
    band = "all populations" if report.rates_in_band else "[yellow]NOT all populations[/]"
    console.print(f"firing rates: {band} in {RATE_BAND[0]:.0%}-{RATE_BAND[1]:.0%}; "
                  f"total spike mismatches: {report.total_mismatches}")

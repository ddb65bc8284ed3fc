"""``neurolang bench``: training and inference throughput per backend, side by side.

For one preset, every *variant* gets the same weights and the same padded token batch:

``torch``, ``snntorch``, ``norse``
    the Spikformer compiled to that backend (``neurolang.compile``);
``torch-stepwise``
    the ``torch`` backend with the unfused neuron (:class:`~neurolang.backends.pytorch.
    ReferenceDynamics`), to show what the fused neuron buys;
``handwritten``
    :class:`HandwrittenSpikformer`, the same network written directly in plain PyTorch
    (``nn.Linear``, ``nn.LayerNorm``, no neurolang layer) around the same kernels as the
    ``torch`` backend: the fused LIF (:func:`~neurolang.backends.pytorch.lif_multistep`) and
    the products that keep binary spikes for backward as ``torch.bool``
    (:mod:`neurolang.spikes`). The difference to ``torch`` is what neurolang's abstraction
    costs;
``handwritten-stepwise``
    the same network with none of those kernels: a plain step-by-step LIF written here
    (SpikingJelly's multi-step LIF in its ``torch`` back-end, as SpikeBERT's reference code
    runs it) and plain products, which keep float spikes for backward.

Both hand-written networks load the neurolang model's ``state_dict``; their logits are checked
to equal neurolang's before anything is timed.

A training step is forward, cross-entropy, backward and an AdamW step; inference is one
forward in ``torch.inference_mode`` with the model in eval mode. After ``warmup`` untimed
rounds (which also compile kernels), each of ``repeats`` rounds times every variant once,
interleaved and in a rotating order, so machine noise hits all alike; figures are medians, and
every ratio is the median of the ratios measured within the same round. Peak memory is
measured in one more, separate step per variant: on CUDA ``torch.cuda.max_memory_allocated``,
on CPU the allocations the torch profiler records (``profile_memory``), as the peak of the
running sum over the step, above what was allocated before it (weights, AdamW state and the
gradients of the step before, which the step frees and allocates again). All variants share
one set of weights, gradients and AdamW state (:func:`build_variants`).
"""

from __future__ import annotations

import functools
import json
import math
import platform
import statistics
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from neurolang.config import SpikformerConfig
    from neurolang.neurons import NeuronSpec

# preset -> (batch, sequence length) of the timed batch
SHAPES: dict[str, tuple[int, int]] = {"tiny": (4, 16), "small": (16, 64), "spikebert": (4, 64)}
BASELINE, BASELINE_STEPWISE, STEPWISE = "handwritten", "handwritten-stepwise", "torch-stepwise"
TARGETS = {  # the speed targets, on the spikebert preset on CPU (README, Benchmarks)
    "overhead_vs_handwritten_below": 0.05,
    "fused_speedup_at_least": 1.5,
    "torch_vs_snntorch_at_least": 2.0,
}


# --------------------------------------------------------------------------------------------
# The hand-written network: plain PyTorch, same math and parameter names as neurolang's


@functools.cache
def _classes() -> types.SimpleNamespace:
    """The hand-written network's classes, defined on first use so that importing this module
    (the CLI does, to register the command) needs no torch."""
    import torch
    from torch import nn

    from neurolang.backends.pytorch import lif_multistep
    from neurolang.neurons import run_reference
    from neurolang.spikes import spike_attention, spike_linear
    from neurolang.surrogate import spike

    class PlainLIF(nn.Module):
        """Multi-step LIF over (T*B, ...) inputs, one autograd step at a time (SpikingJelly's
        ``LIFNode`` in multi-step mode with its ``torch`` back-end)."""

        def __init__(self, spec: NeuronSpec, time_steps: int, fused: bool):
            super().__init__()
            self.spec, self.time_steps, self.fused = spec, time_steps, fused

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x_seq = x.reshape(self.time_steps, -1, *x.shape[1:])
            if self.fused:
                return lif_multistep(x_seq, self.spec).reshape(x.shape)
            return run_reference(x_seq, self.spec).reshape(x.shape)

    class _Projection(nn.Module):
        def __init__(self, d_in: int, d_out: int, eps: float, spec: NeuronSpec, steps: int,
                     fused: bool, spike_input: bool = False):
            super().__init__()
            self.linear = nn.Linear(d_in, d_out)
            self.norm = nn.LayerNorm(d_out, eps=eps)
            self.neuron = PlainLIF(spec, steps, fused)
            self.bool_spikes = fused and spike_input

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.bool_spikes:
                return self.neuron(self.norm(spike_linear(x, self.linear.weight,
                                                          self.linear.bias)))
            return self.neuron(self.norm(self.linear(x)))

    class _Attention(nn.Module):
        def __init__(self, c: SpikformerConfig, fused: bool):
            super().__init__()
            d, eps, steps = c.hidden_size, c.norm_eps, c.time_steps
            self.query = _Projection(d, d, eps, c.neuron, steps, fused)
            self.key = _Projection(d, d, eps, c.neuron, steps, fused)
            self.value = _Projection(d, d, eps, c.neuron, steps, fused)
            self.attention_neuron = PlainLIF(c.attention_neuron, steps, fused)
            self.output = _Projection(d, d, eps, c.neuron, steps, fused, spike_input=True)
            self.heads, self.scale, self.masked = c.num_heads, c.attention_scale, c.padding_mask
            self.fused = fused

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            q, k, v = self.query(x), self.key(x), self.value(x)
            tb, length, width = q.shape
            q, k, v = (t.reshape(tb, length, self.heads, width // self.heads).transpose(1, 2)
                       for t in (q, k, v))
            if self.masked:
                keep = mask.to(k.dtype)[:, None, :, None]
                k, v = k * keep, v * keep
            if self.fused:
                y = spike_attention(q, k, v, self.scale)
            elif length > width // self.heads:
                y = q @ (k.transpose(-2, -1) @ v) * self.scale
            else:
                y = (q @ k.transpose(-2, -1)) @ v * self.scale
            y = y.transpose(1, 2).reshape(tb, length, width)
            return self.output(self.attention_neuron(y))

    class _Block(nn.Module):
        def __init__(self, c: SpikformerConfig, fused: bool):
            super().__init__()
            self.attention = _Attention(c, fused)
            self.mlp = nn.Module()
            self.mlp.fc1 = _Projection(c.hidden_size, c.mlp_hidden_size, c.norm_eps, c.neuron,
                                       c.time_steps, fused)
            self.mlp.fc2 = _Projection(c.mlp_hidden_size, c.hidden_size, c.norm_eps, c.neuron,
                                       c.time_steps, fused, spike_input=True)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            x = x + self.attention(x, mask)
            return x + self.mlp.fc2(self.mlp.fc1(x))

    class HandwrittenSpikformer(nn.Module):
        """SpikeBERT's Spikformer written directly in PyTorch: ``forward(ids, mask) -> logits``.

        Same computation, in the same floating-point order, and the same parameter names as
        :class:`neurolang.Spikformer` (without the distillation taps), so it loads that model's
        ``state_dict`` (:meth:`load_from`) and returns the same logits. LayerNorm models only.
        ``fused``: the kernels of the ``torch`` backend (fused LIF, spikes kept as
        ``torch.bool`` for backward), else the stepwise :class:`PlainLIF` and plain products.
        LIF models only (binary spikes).
        """

        def __init__(self, config: SpikformerConfig, fused: bool = True):
            super().__init__()
            if config.norm != "layer":
                raise ValueError("the hand-written baseline implements LayerNorm models only")
            if {config.neuron.kind, config.attention_neuron.kind} != {"lif"}:
                raise ValueError("the hand-written baseline implements LIF models only")
            self.config = c = config
            self.embedding = nn.Embedding(c.vocab_size, c.hidden_size)
            if c.position_embedding:
                self.position = nn.Module()
                self.position.weight = nn.Parameter(torch.empty(c.max_length, c.hidden_size))
            self.blocks = nn.ModuleList(_Block(c, fused) for _ in range(c.depth))
            self.head = nn.Module()
            self.head.norm = nn.LayerNorm(c.hidden_size, eps=c.norm_eps)
            self.head.classifier = nn.Linear(c.hidden_size, c.num_labels)

        def load_from(self, model: nn.Module) -> HandwrittenSpikformer:
            """Load the weights of a neurolang Spikformer (strict, its taps aside)."""
            state = {k: v for k, v in model.state_dict().items() if not k.startswith("taps.")}
            self.load_state_dict(state, strict=True)
            return self

        def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            c = self.config
            steps = c.time_steps
            mask = attention_mask.unsqueeze(0).expand(steps, *attention_mask.shape)
            mask = mask.reshape(-1, attention_mask.shape[-1])
            x = self.embedding(ids)
            if c.position_embedding:
                x = x + self.position.weight[: x.shape[1]]
            if c.encoding == "heaviside":
                n = c.neuron
                x = spike(x, n.surrogate, n.surrogate_alpha, n.threshold_comparison)
            x = x.unsqueeze(0).expand(steps, *x.shape).reshape(-1, *x.shape[1:])
            for block in self.blocks:
                x = block(x, mask)
            x = self.head.norm(x)
            if c.padding_mask:
                weights = mask.to(x.dtype).unsqueeze(-1)
                x = (x * weights).sum(1) / weights.sum(1).clamp(min=1)
            else:
                x = x.mean(1)
            logits = self.head.classifier(x)
            return logits.reshape(steps, -1, logits.shape[-1]).mean(0)
    for cls in (HandwrittenSpikformer, PlainLIF):
        cls.__qualname__ = cls.__name__
    return types.SimpleNamespace(HandwrittenSpikformer=HandwrittenSpikformer, PlainLIF=PlainLIF)


def __getattr__(name: str):
    if name in ("HandwrittenSpikformer", "PlainLIF"):
        return getattr(_classes(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Variant:
    name: str
    model: nn.Module
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    neuron: str
    train_s: list[float] = field(default_factory=list)
    infer_s: list[float] = field(default_factory=list)
    train_cpu_s: list[float] = field(default_factory=list)
    infer_cpu_s: list[float] = field(default_factory=list)
    train_peak: int | None = None
    infer_peak: int | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def _train_step(v: Variant, ids, mask, labels) -> torch.Tensor:
    from torch.nn import functional as F

    v.model.train()
    v.optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(v.forward(ids, mask), labels)
    loss.backward()
    v.optimizer.step()
    return loss


def _infer(v: Variant, ids, mask) -> torch.Tensor:
    import torch

    v.model.eval()
    with torch.inference_mode():
        return v.forward(ids, mask)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of ``fn()``."""
    _sync(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - start, time.process_time() - start_cpu


def peak_memory(fn: Callable[[], Any], device: torch.device) -> int | None:
    """Bytes allocated by torch at the peak of ``fn()``, above what was allocated before.

    CUDA: the caching allocator's statistics. CPU: the allocation and free events of the torch
    profiler (``profile_memory=True``), summed in time order (frees of blocks allocated
    before any profiling are not seen: run a discarded step first). None if neither is
    available.
    """
    import torch

    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    try:
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except AttributeError:  # a profiler without kineto results
        return None
    events = [e for e in events if str(e.device_type()).rpartition(".")[2] == "CPU"]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        running += event.nbytes()
        peak = max(peak, running)
    return peak


def _max_rss_mib() -> float | None:
    """The process's peak resident memory so far (all variants, weights included)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    scale = 1 if platform.system() == "Darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _median_ratio(numerator: list[float], denominator: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def _share_parameters(model: nn.Module, source: nn.Module) -> None:
    """Give ``model`` the very parameter tensors of ``source`` (matched by name)."""
    params = dict(source.named_parameters())
    for name, _ in list(model.named_parameters()):
        path, _, attr = name.rpartition(".")
        setattr(model.get_submodule(path), attr, params[name])


def build_variants(config: SpikformerConfig, backends: list[str], baseline: bool,
                   stepwise: bool, device: torch.device, dtype: torch.dtype, seed: int = 0,
                   lr: float = 1e-4) -> dict[str, Variant]:
    """Every variant (see the module docstring for the names), all on one set of weights.

    The backends' models come from ``neurolang.compile`` of one Spikformer, the hand-written
    ones load its ``state_dict``; then all of them share its parameter tensors, and so one
    set of gradients and one AdamW state (the fused AdamW where torch has it), which keeps
    the memory of six models of SpikeBERT's size to that of one. Each variant's training step
    updates the weights the next one starts from; the work per step does not depend on them.
    """
    import torch

    from neurolang.backends import compile as compile_model
    from neurolang.backends import get_backend
    from neurolang.models import build_model
    from neurolang.primitives import SpikingNeuron

    Handwritten = _classes().HandwrittenSpikformer
    for name in backends:
        get_backend(name)  # unknown or not installed: BackendError now, not halfway
    torch.manual_seed(seed)
    base = build_model(config).to(device=device, dtype=dtype)
    models: dict[str, tuple[nn.Module, str]] = {}
    for name in backends:
        models[name] = (compile_model(base, name), "fused" if name == "torch" else name)
        if name == "torch" and stepwise:
            model = compile_model(base, "torch")
            for neuron in model.modules():
                if isinstance(neuron, SpikingNeuron):
                    neuron.set_dynamics(get_backend("torch").lower(neuron.spec, fused=False))
            models[STEPWISE] = (model, "stepwise")
    if baseline:
        models[BASELINE] = (Handwritten(config, True).to(device, dtype), "fused")
        if stepwise:
            models[BASELINE_STEPWISE] = (
                Handwritten(config, False).to(device, dtype), "stepwise")
        for name in (BASELINE, BASELINE_STEPWISE):
            if name in models:
                models[name][0].load_from(base)
    for model, _ in models.values():
        _share_parameters(model, base)
    try:  # the fused (one kernel) AdamW where this torch has it
        optimizer = torch.optim.AdamW(base.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        optimizer = torch.optim.AdamW(base.parameters(), lr=lr)
    variants = {}
    for name, (model, neuron) in models.items():
        if isinstance(model, Handwritten):
            forward = model
        else:
            def forward(ids, mask, model=model):
                return model(ids, mask)["logits"]
        variants[name] = Variant(name, model, forward, optimizer, neuron)
    return variants


def check_baselines(variants: dict[str, Variant], ids, mask) -> dict[str, bool]:
    """The hand-written networks' logits equal the neurolang model's, in eval and train mode.

    Compares ``handwritten`` with ``torch`` (else the first backend) and
    ``handwritten-stepwise`` with ``torch-stepwise`` (else the same); raises if they differ.
    """
    import torch

    backends = [v for v in variants.values() if v.name not in (BASELINE, BASELINE_STEPWISE)]
    checked = {}
    for name, partner in ((BASELINE, "torch"), (BASELINE_STEPWISE, STEPWISE)):
        if name not in variants or not backends:
            continue
        other = variants.get(partner, backends[0])
        mine = variants[name]
        for train in (False, True):
            for v in (mine, other):
                v.model.train(train)
            with torch.no_grad():
                a, b = mine.forward(ids, mask), other.forward(ids, mask)
            if not torch.equal(a, b):
                raise AssertionError(
                    f"{name} and {other.name} give different logits ({'train' if train else 'eval'}"
                    f" mode, max difference {(a - b).abs().max().item():.3e})")
        checked[f"{name}=={other.name}"] = True
    return checked


def run_bench(backends: list[str], preset_name: str = "small", device: str = "cpu",
              repeats: int = 3, warmup: int = 1, batch_size: int | None = None,
              length: int | None = None, baseline: bool = True, stepwise: bool = True,
              dtype: str | torch.dtype = "float32", seed: int = 0,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the result as a JSON-ready dict (see :func:`print_table`)."""
    import torch

    from neurolang.config import preset
    from neurolang.parity import probe_batch

    # named as the command's options; batch_size and length None: the preset's shape
    for option, value, at_least in (("--repeats", repeats, 1), ("--warmup", warmup, 0),
                                    ("--batch-size", batch_size, 1), ("--length", length, 2)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < at_least):
            raise ValueError(f"{option} must be an integer >= {at_least}, got {value!r}")
    if isinstance(dtype, str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"--dtype must be float32 or float64, got {dtype!r}")
        dtype = getattr(torch, dtype)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"--dtype must be float32 or float64, got {dtype}")
    if not (isinstance(device, str) and (device in ("cpu", "cuda") or (
            device.startswith("cuda:") and device[5:].isdigit()))):
        raise ValueError(f"--device must be cpu or cuda (cuda:N), got {device!r}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    default_batch, default_length = SHAPES.get(preset_name, (8, 64))
    batch_size, length = batch_size or default_batch, length or default_length
    config = preset(preset_name)
    config = config.replace(max_length=max(config.max_length, length))
    variants = build_variants(config, backends, baseline, stepwise, dev, dtype, seed)
    ids, mask, labels = (t.to(dev) for t in probe_batch(config.replace(max_length=length),
                                                         batch_size, seed))
    say = log or (lambda _message: None)
    checked = check_baselines(variants, ids, mask)

    order = list(variants.values())
    for round_ in range(warmup):
        for v in order:
            say(f"warm-up {round_ + 1}/{warmup}: {v.name}")
            _train_step(v, ids, mask, labels)
            _infer(v, ids, mask)
    for r in range(repeats):
        say(f"repeat {r + 1}/{repeats}")
        rotated = order[r % len(order):] + order[: r % len(order)]
        for v in rotated:
            wall, cpu = _timed(lambda v=v: _train_step(v, ids, mask, labels), dev)
            v.train_s.append(wall)
            v.train_cpu_s.append(cpu)
        for v in rotated:
            wall, cpu = _timed(lambda v=v: _infer(v, ids, mask), dev)
            v.infer_s.append(wall)
            v.infer_cpu_s.append(cpu)
    # The profiler counts the free of a block only if it saw the block allocated: one
    # discarded step first, so that every measured step frees the gradients of a profiled one.
    peak_memory(lambda: _train_step(order[0], ids, mask, labels), dev)
    for v in order:
        say(f"peak memory: {v.name}")
        v.train_peak = peak_memory(lambda v=v: _train_step(v, ids, mask, labels), dev)
        v.infer_peak = peak_memory(lambda v=v: _infer(v, ids, mask), dev)

    tokens = batch_size * length
    rows = []
    for v in order:
        train, infer = statistics.median(v.train_s), statistics.median(v.infer_s)
        row = {
            "variant": v.name, "neuron": v.neuron,
            "train_step_s": train, "train_samples_per_s": batch_size / train,
            "train_tokens_per_s": tokens / train,
            "infer_s": infer, "infer_samples_per_s": batch_size / infer,
            "infer_tokens_per_s": tokens / infer,
            "train_peak_mib": None if v.train_peak is None else v.train_peak / 2**20,
            "infer_peak_mib": None if v.infer_peak is None else v.infer_peak / 2**20,
            "train_vs_handwritten": None, "infer_vs_handwritten": None,
            "train_cpu_s": statistics.median(v.train_cpu_s),
            "infer_cpu_s": statistics.median(v.infer_cpu_s),
            "train_times_s": v.train_s, "infer_times_s": v.infer_s,
            "train_cpu_times_s": v.train_cpu_s, "infer_cpu_times_s": v.infer_cpu_s,
        }
        if BASELINE in variants:
            b = variants[BASELINE]
            row["train_vs_handwritten"] = _median_ratio(v.train_s, b.train_s)
            row["infer_vs_handwritten"] = _median_ratio(v.infer_s, b.infer_s)
        rows.append(row)

    ratios = _ratios(variants, "s")
    train = ratios["train"]
    targets = {}
    if "torch_time_over_handwritten" in train:
        targets["overhead_vs_handwritten_below_5pct"] = (
            train["torch_time_over_handwritten"] < 1 + TARGETS["overhead_vs_handwritten_below"])
    if "fused_speedup" in train:
        targets["fused_speedup_at_least_1.5x"] = (
            train["fused_speedup"] >= TARGETS["fused_speedup_at_least"])
    if "torch_vs_snntorch" in train:
        targets["torch_vs_snntorch_at_least_2x"] = (
            train["torch_vs_snntorch"] >= TARGETS["torch_vs_snntorch_at_least"])
    return {
        "preset": preset_name, "device": str(dev), "dtype": str(dtype).removeprefix("torch."),
        "batch_size": batch_size, "length": length, "tokens_per_batch": tokens,
        "time_steps": config.time_steps, "hidden_size": config.hidden_size,
        "depth": config.depth, "repeats": repeats, "warmup": warmup,
        "threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "process_max_rss_mib": _max_rss_mib(),
        "baseline_checks": checked, "rows": rows, "ratios": ratios,
        "ratios_cpu_time": _ratios(variants, "cpu_s"), "targets": targets,
    }


# (slower, faster): the ratio is t_slower / t_faster, how many times faster "faster" is;
# torch_time_over_handwritten is 1 + neurolang's overhead.
RATIOS = {
    "torch_time_over_handwritten": ("torch", BASELINE),
    "fused_speedup": (STEPWISE, "torch"),
    "handwritten_fused_speedup": (BASELINE_STEPWISE, BASELINE),
    "torch_vs_snntorch": ("snntorch", "torch"),
    "torch_vs_norse": ("norse", "torch"),
    "torch_vs_handwritten_stepwise": (BASELINE_STEPWISE, "torch"),
}


def _ratios(variants: dict[str, Variant], kind: str) -> dict[str, dict[str, float]]:
    """Median over rounds of the time ratios of :data:`RATIOS`; ``kind``: "s" (wall clock)
    or "cpu_s" (process CPU time, steadier on a shared machine with one thread)."""
    out: dict[str, dict[str, float]] = {"train": {}, "infer": {}}
    for key, (slow, fast) in RATIOS.items():
        if slow in variants and fast in variants:
            for phase in out:
                out[phase][key] = _median_ratio(getattr(variants[slow], f"{phase}_{kind}"),
                                                getattr(variants[fast], f"{phase}_{kind}"))
    return out


def print_table(result: dict[str, Any], console=None) -> None:
    """The result as a table (rich if a console is given, else plain text)."""
    head = (f"{result['preset']} on {result['device']}: batch {result['batch_size']} x "
            f"{result['length']} tokens, T={result['time_steps']}, {result['threads']} threads, "
            f"median of {result['repeats']} (warm-up {result['warmup']}), torch "
            f"{result['torch_version']}")
    columns = ["variant", "neuron", "train step s", "train samples/s", "train tokens/s",
               "infer samples/s", "infer tokens/s", "train peak MiB", "infer peak MiB",
               "train / handwritten", "infer / handwritten"]

    def num(value, fmt):
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
            else format(value, fmt)

    lines = [[r["variant"], r["neuron"], num(r["train_step_s"], ".3f"),
              num(r["train_samples_per_s"], ".2f"), num(r["train_tokens_per_s"], ".0f"),
              num(r["infer_samples_per_s"], ".2f"), num(r["infer_tokens_per_s"], ".0f"),
              num(r["train_peak_mib"], ".1f"), num(r["infer_peak_mib"], ".1f"),
              num(r["train_vs_handwritten"], ".3f"), num(r["infer_vs_handwritten"], ".3f")]
             for r in result["rows"]]
    ratio_lines = [
        f"{phase} {key}: {value:.3f} (by CPU time {result['ratios_cpu_time'][phase][key]:.3f})"
        for phase in ("train", "infer") for key, value in result["ratios"][phase].items()]
    target_lines = [f"target {k}: {'met' if v else 'NOT met'}"
                    for k, v in result["targets"].items()]
    if console is None:
        print(head)
        widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(columns)]
        print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
        for line in lines:
            print("  ".join(x.rjust(w) for x, w in zip(line, widths, strict=True)))
        print("\n".join(ratio_lines + target_lines))
        return
    from rich.table import Table

    table = Table(title=head)
    for column in columns:
        table.add_column(column, justify="left" if column in ("variant", "neuron") else "right")
    for line in lines:
        table.add_row(*line)
    console.print(table)
    for line in ratio_lines + target_lines:
        console.print(line, highlight=False)


# --------------------------------------------------------------------------------------------
# The command


def register(app, fail) -> None:
    """Add the ``bench`` command to a ``typer.Typer`` app; ``fail(message)`` reports bad input."""
    import typer

    @app.command()
    def bench(
        backends: str = typer.Option("torch,snntorch,norse", help="Comma-separated backends."),
        preset: str = typer.Option("small", help="Model preset (tiny, small, spikebert)."),
        device: str = typer.Option("cpu", help="cpu or cuda."),
        repeats: int = typer.Option(3, help="Timed rounds; figures are their medians."),
        warmup: int = typer.Option(1, help="Untimed rounds first (kernels compile here)."),
        batch_size: int | None = typer.Option(None, help="Sequences per batch (preset default)."),
        length: int | None = typer.Option(None, help="Tokens per sequence (preset default)."),
        baseline: bool = typer.Option(True, help="Time the hand-written PyTorch network too."),
        stepwise: bool = typer.Option(True, help="Time the unfused step-by-step neuron too."),
        threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's)."),
        dtype: str = typer.Option("float32", help="float32 or float64."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the result here."),
    ) -> None:
        """Training and inference throughput and peak memory per backend, side by side, with a
        hand-written PyTorch baseline and the unfused neuron."""
        import torch
        from rich.console import Console

        from neurolang.backends import BackendError
        from neurolang.config import ConfigError

        console = Console(width=max(Console().width, 160))
        if threads is not None and threads < 0:
            fail(f"--threads must be an integer >= 0 (0: torch's default), got {threads}")
        if threads:
            torch.set_num_threads(threads)
        names = [b.strip() for b in backends.split(",") if b.strip()]
        if json_out:
            from neurolang.outputs import claim_file

            claim_file(json_out, what="--json")
        try:
            result = run_bench(names, preset, device, repeats, warmup, batch_size, length,
                               baseline, stepwise, dtype,
                               log=lambda m: console.print(f"[dim]{m}[/]", highlight=False))
        except (BackendError, ConfigError, ValueError) as err:
            fail(str(err))
        print_table(result, console)
        if json_out:
            from neurolang.outputs import write_text_atomic

            write_text_atomic(json_out, json.dumps(result, indent=2) + "\n")
            console.print(f"result written to {json_out}")

"""Measuring ``neurolang bench``'s variants: the same weights and batch for every backend and
the hand-written baselines, timed rounds interleaved, peak memory, the ratios and targets."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from neurolang.config import SpikformerConfig

# preset -> (batch, sequence length) of the timed batch
SHAPES: dict[str, tuple[int, int]] = {"tiny": (4, 16), "small": (16, 64), "spikebert": (4, 64),
                                     "spike-driven-small": (16, 64), "spike-driven-base": (4, 64)}
BASELINE, BASELINE_STEPWISE, STEPWISE = "handwritten", "handwritten-stepwise", "torch-stepwise"
TARGETS = {  # the speed targets, on the spikebert preset on CPU (README, Benchmarks)
    "overhead_vs_handwritten_below": 0.05,
    "fused_speedup_at_least": 1.5,
    "torch_vs_snntorch_at_least": 2.0,
}



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


AUTOCAST: dict[str, Any] = {"device": None}  # set by run_bench for --dtype bf16


def _autocast():
    import contextlib

    import torch

    if AUTOCAST["device"] is None:
        return contextlib.nullcontext()
    return torch.autocast(AUTOCAST["device"], dtype=torch.bfloat16)


def _train_step(v: Variant, ids, mask, labels) -> torch.Tensor:
    from torch.nn import functional as F

    v.model.train()
    v.optimizer.zero_grad(set_to_none=True)
    with _autocast():
        loss = F.cross_entropy(v.forward(ids, mask).float(), labels)
    loss.backward()
    v.optimizer.step()
    return loss


def _infer(v: Variant, ids, mask) -> torch.Tensor:
    import torch

    v.model.eval()
    with torch.inference_mode(), _autocast():
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
    from neurolang.bench.handwritten import HandwrittenSpikformer as Handwritten
    from neurolang.models import build_model
    from neurolang.primitives import SpikingNeuron
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
              log: Callable[[str], None] | None = None,
              compare: str | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the result as a JSON-ready dict (see :func:`print_table`).

    ``compare``: a second preset (e.g. another family at the same size) whose backends are
    timed in the same rounds on the same token batch, as variants ``PRESET/BACKEND``; the
    ratios ``COMPARE_over_PRESET/BACKEND`` (its step time over the first preset's) come from
    the same rounds, so machine noise hits both alike."""
    import torch

    from neurolang.config import preset
    from neurolang.parity import probe_batch

    # named as the command's options; batch_size and length None: the preset's shape
    for option, value, at_least in (("--repeats", repeats, 1), ("--warmup", warmup, 0),
                                    ("--batch-size", batch_size, 1), ("--length", length, 2)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < at_least):
            raise ValueError(f"{option} must be an integer >= {at_least}, got {value!r}")
    mixed = dtype == "bf16"  # float32 weights, bfloat16 autocast (the trainer's bf16)
    if mixed:
        dtype = "float32"
    if isinstance(dtype, str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"--dtype must be float32, float64 or bf16, got {dtype!r}")
        dtype = getattr(torch, dtype)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"--dtype must be float32 or float64, got {dtype}")
    if not (isinstance(device, str) and (device in ("cpu", "cuda") or (
            device.startswith("cuda:") and device[5:].isdigit()))):
        raise ValueError(f"--device must be cpu or cuda (cuda:N), got {device!r}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    AUTOCAST["device"] = dev.type if mixed else None
    default_batch, default_length = SHAPES.get(preset_name, (8, 64))
    batch_size, length = batch_size or default_batch, length or default_length
    config = preset(preset_name)
    config = config.replace(max_length=max(config.max_length, length))
    if config.block != "spikformer":  # the hand-written network is a Spikformer
        baseline = False
    variants = build_variants(config, backends, baseline, stepwise, dev, dtype, seed)
    if compare:
        other = preset(compare)
        other = other.replace(max_length=max(other.max_length, length),
                              vocab_size=config.vocab_size)
        for name, v in build_variants(other, backends, False, False, dev, dtype, seed).items():
            v.name = f"{compare}/{name}"
            variants[v.name] = v
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
    cpu_ratios = _ratios(variants, "cpu_s")
    if compare:
        for name in backends:
            for phase in ("train", "infer"):
                key = f"{compare}_over_{preset_name}/{name}"
                for out, kind in ((ratios, "s"), (cpu_ratios, "cpu_s")):
                    out[phase][key] = _median_ratio(
                        getattr(variants[f"{compare}/{name}"], f"{phase}_{kind}"),
                        getattr(variants[name], f"{phase}_{kind}"))
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
        "preset": preset_name, "compare": compare, "device": str(dev), "dtype": "bf16 (autocast)" if mixed else str(dtype).removeprefix("torch."),
        "batch_size": batch_size, "length": length, "tokens_per_batch": tokens,
        "time_steps": config.time_steps, "hidden_size": config.hidden_size,
        "depth": config.depth, "repeats": repeats, "warmup": warmup,
        "threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "process_max_rss_mib": _max_rss_mib(),
        "baseline_checks": checked, "rows": rows, "ratios": ratios,
        "ratios_cpu_time": cpu_ratios, "targets": targets,
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



"""Spikes kept for backward packed against float: memory saved, time it costs.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spike_storage.py [--preset spikebert]
        [--batch 4] [--length 64] [--repeats 5] [--neuron lif|elastic_bispike]

One model (``torch`` backend, fused neurons), one batch. The products that read spikes
(``neurolang.spikes``: the attention output and second MLP projections, the spiking attention
product) are switched between keeping their spikes packed (the default: ``torch.bool`` for
LIF, int8 signs and per-row amplitudes for elastic bi-spiking neurons) and the float tensors
plain autograd keeps. Per setting, side by side in one run:

* bytes autograd keeps for backward at the end of the forward pass (``saved_tensors_hooks``,
  each storage counted once), split into what the neurons, the norms, the Linears and the
  attention product keep;
* peak memory of a whole training step (``neurolang.bench.peak_memory``);
* training-step time, interleaved in alternating order, median of ``--repeats``, and the
  median of the per-round ratios.

Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import torch

import neurolang
from neurolang.bench import peak_memory
from neurolang.config import preset
from neurolang.models import build_model
from neurolang.parity import probe_batch


def _switches(model: torch.nn.Module) -> list[tuple[torch.nn.Module, str]]:
    """(module, its spike format) for every product that packs the spikes it reads."""
    return [(m, m.spikes) for m in model.modules() if getattr(m, "spikes", None) is not None]


def _saved_bytes(model, ids, mask) -> dict[str, int]:
    """Bytes of the tensors autograd keeps after one forward, by the leaf module saving them."""
    stack, seen, tally = ["other"], set(), collections.Counter()
    hooks = []
    for module in model.modules():
        if not list(module.children()):
            name = type(module).__name__
            hooks.append(module.register_forward_pre_hook(
                lambda _m, _i, name=name: stack.append(name)))
            hooks.append(module.register_forward_hook(lambda _m, _i, _o: stack.pop() and None))

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            tally[stack[-1]] += storage.nbytes()
        return t

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(ids, mask)["logits"]
    finally:
        for hook in hooks:
            hook.remove()
    del out
    return dict(tally)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="spikebert")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--neuron", default="lif", help="every neuron's kind")
    args = parser.parse_args()

    config = preset(args.preset)
    config = config.replace(neuron=config.neuron.replace(kind=args.neuron),
                            attention_neuron=config.attention_neuron.replace(kind=args.neuron))
    config = config.replace(max_length=max(config.max_length, args.length))
    torch.manual_seed(0)
    model = neurolang.compile(build_model(config), "torch")
    ids, mask, labels = probe_batch(config.replace(max_length=args.length), args.batch, 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    switches = _switches(model)
    device = torch.device("cpu")

    def use_packed(on: bool) -> None:
        for module, fmt in switches:
            module.spikes = fmt if on else None

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(ids, mask)["logits"], labels)
        loss.backward()
        optimizer.step()

    print(f"{args.preset}: batch {args.batch} x {args.length} tokens, T={config.time_steps}, "
          f"{torch.get_num_threads()} threads, {args.neuron}, {len(switches)} products switched")
    saved, peak = {}, {}
    for on in (True, False):
        use_packed(on)
        step()  # warm-up (kernels compile)
        saved[on] = _saved_bytes(model, ids, mask)
        # The profiler sees a block freed only if it saw it allocated: one discarded profiled
        # step first, so that the measured step's frees of the gradients it replaces count.
        peak_memory(step, device)
        peak[on] = peak_memory(step, device)
    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(args.repeats):
        for on in ((True, False) if r % 2 else (False, True)):
            use_packed(on)
            start = time.perf_counter()
            step()
            times[on].append(time.perf_counter() - start)

    mib = 2**20
    parts = sorted(set(saved[True]) | set(saved[False]), key=lambda k: -saved[False].get(k, 0))
    print(f"{'kept for backward (MiB)':<28}{'packed':>10}{'float':>10}")
    for part in parts:
        print(f"  {part:<26}{saved[True].get(part, 0) / mib:>10.1f}"
              f"{saved[False].get(part, 0) / mib:>10.1f}")
    total = {on: sum(saved[on].values()) for on in saved}
    print(f"  {'total':<26}{total[True] / mib:>10.1f}{total[False] / mib:>10.1f}"
          f"   packed / float {total[True] / total[False]:.3f}")
    if peak[True] is not None and peak[False] is not None:
        print(f"{'training-step peak (MiB)':<28}{peak[True] / mib:>10.1f}{peak[False] / mib:>10.1f}"
              f"   packed / float {peak[True] / peak[False]:.3f}")
    median = {on: statistics.median(times[on]) for on in times}
    ratio = statistics.median(a / b for a, b in zip(times[True], times[False], strict=True))
    print(f"{'training step (s)':<28}{median[True]:>10.3f}{median[False]:>10.3f}"
          f"   packed / float {ratio:.3f}")


if __name__ == "__main__":
    main()

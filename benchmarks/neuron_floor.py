"""How fast could the training step be if the neurons cost nothing?

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/neuron_floor.py [--preset spikebert]
        [--batch 4] [--length 64] [--repeats 7]

One Spikformer on the ``torch`` backend, one batch; its neurons' dynamics are switched between
the fused LIF, the stepwise LIF and the identity (``free``: no neuron at all, the floor every
neuron implementation shares: products, norms, AdamW, copies). The same weights compiled to
snnTorch run beside them. Training steps (forward, loss, backward, AdamW) are interleaved in
rotating order; medians and the medians of the per-round ratios are printed. ``stepwise /
free`` bounds what any fused neuron can give over the stepwise one, ``snntorch / free`` what
any ``torch``-backend neuron can give over snnTorch. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import neurolang
from neurolang.backends import get_backend
from neurolang.config import preset
from neurolang.models import build_model
from neurolang.parity import probe_batch
from neurolang.primitives import SpikingNeuron


class _Free(torch.nn.Module):
    """No neuron: the input current passes through (same shapes, so the same products)."""

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return x_seq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="spikebert")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    config = preset(args.preset)
    config = config.replace(max_length=max(config.max_length, args.length))
    torch.manual_seed(0)
    base = build_model(config)
    model = neurolang.compile(base, "torch")
    other = neurolang.compile(base, "snntorch")
    ids, mask, labels = probe_batch(config.replace(max_length=args.length), args.batch, 0)
    neurons = [m for m in model.modules() if isinstance(m, SpikingNeuron)]
    dynamics = {
        "fused": [n.dynamics for n in neurons],
        "stepwise": [get_backend("torch").lower(n.spec, fused=False) for n in neurons],
        "free": [_Free() for _ in neurons],
    }
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)  # as the bench
                  for name, m in (("torch", model), ("snntorch", other))}

    def step(name: str) -> float:
        net = other if name == "snntorch" else model
        if name != "snntorch":
            for neuron, dyn in zip(neurons, dynamics[name], strict=True):
                neuron.set_dynamics(dyn)
        optimizer = optimizers["snntorch" if name == "snntorch" else "torch"]
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(ids, mask)["logits"], labels)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    names = ["fused", "stepwise", "free", "snntorch"]
    for name in names:  # warm-up (kernels compile)
        step(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(step(name))

    print(f"{args.preset}: batch {args.batch} x {args.length} tokens, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    for name in names:
        print(f"  {name:<10}{statistics.median(times[name]):8.3f} s/step")
    for name in ("fused", "stepwise", "snntorch"):
        ratio = statistics.median(a / b for a, b in zip(times[name], times["free"], strict=True))
        print(f"  {name} / free: {ratio:.3f}")


if __name__ == "__main__":
    main()

"""Training-step time per backend: forward + backward of one batch, side by side.

    .venv/bin/python benchmarks/backend_step_time.py [--presets small,spikebert] [--repeats 5]

Every backend gets the same weights and batch; the backends are timed in turn within each
repeat (so machine noise hits all alike) and the median per backend is reported with its
ratio to the ``torch`` backend. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from neurolang import Spikformer, compile, preset
from neurolang.parity import probe_batch

SHAPES = {  # preset -> (batch, sequence length) of the timed batch
    "tiny": (8, 16),
    "small": (16, 64),
    "spikebert": (4, 64),
}


def step(model, ids, mask, labels):
    model.zero_grad(set_to_none=True)
    out = model(ids, mask)
    torch.nn.functional.cross_entropy(out["logits"], labels).backward()


def bench_preset(name: str, backends: list[str], repeats: int, threads: int) -> list[dict]:
    batch, length = SHAPES[name]
    config = preset(name, max_length=length)
    torch.manual_seed(0)
    base = Spikformer(config)
    ids, mask, labels = probe_batch(config, batch, seed=0)
    models = {b: compile(base, b) for b in backends}
    for model in models.values():
        step(model, ids, mask, labels)  # warm-up
    times: dict[str, list[float]] = {b: [] for b in backends}
    for _ in range(repeats):
        for b, model in models.items():
            start = time.perf_counter()
            step(model, ids, mask, labels)
            times[b].append(time.perf_counter() - start)
    rows = []
    ref = statistics.median(times[backends[0]])
    for b in backends:
        median = statistics.median(times[b])
        rows.append({
            "preset": name, "backend": b, "batch": batch, "length": length,
            "time_steps": config.time_steps, "threads": threads,
            "step_s": median, "samples_per_s": batch / median,
            f"ratio_to_{backends[0]}": median / ref,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="small,spikebert")
    parser.add_argument("--backends", default="torch,snntorch,norse")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    rows = []
    for name in args.presets.split(","):
        rows += bench_preset(name, args.backends.split(","), args.repeats, threads)
    first = args.backends.split(",")[0]
    print(f"forward+backward per training step, median of {args.repeats}, "
          f"{threads} threads, torch {torch.__version__}")
    print(f"{'preset':10} {'backend':9} {'batch x len':>11} {'step (s)':>9} "
          f"{'samples/s':>10} {'ratio to ' + first:>16}")
    for r in rows:
        print(f"{r['preset']:10} {r['backend']:9} {r['batch']:>5} x {r['length']:<3} "
              f"{r['step_s']:9.3f} {r['samples_per_s']:10.2f} {r['ratio_to_' + first]:16.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()

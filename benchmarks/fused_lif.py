"""The LIF neuron alone: stepwise autograd vs the fused kernels (eager, TorchScript, compiled).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fused_lif.py [--shape 4,4,64,3072] [--repeats 7]

Forward + backward of one population of SpikeBERT's LIF (tau 2, threshold 1, zero reset,
triangle surrogate), timed side by side, interleaved within each repeat, median reported. The
TorchScript variant is written here only to compare: ``torch.jit.script`` runs the same ATen
kernels one by one (CPU fusion is off by default), so it removes Python overhead but no memory
traffic, and it is deprecated in this torch. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from neurolang.backends.pytorch import FusedLIF
from neurolang.neurons import NeuronSpec
from neurolang.primitives import ReferenceDynamics


def _scripted_forward(x: torch.Tensor, tau: float, th: float) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.zeros_like(x[0])
    spikes, membranes = [], []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / tau
        s = (h - th > 0).to(x.dtype)
        v = h * (1 - s)
        spikes.append(s)
        membranes.append(h)
    return torch.stack(spikes), torch.stack(membranes)


def _scripted_backward(gs: torch.Tensor, h: torch.Tensor, tau: float, th: float) -> torch.Tensor:
    grads: list[torch.Tensor] = []
    gv = torch.zeros_like(h[0])
    for i in range(h.shape[0]):
        t = h.shape[0] - 1 - i
        z = h[t] - th
        s = (z > 0).to(h.dtype)
        gh = gv * (1 - s) + (gs[t] - gv * h[t]) * torch.relu(1 - z.abs())
        gx = gh / tau
        gv = gh - gx
        grads.append(gx)
    grads.reverse()
    return torch.stack(grads)


class _ScriptedLIF(torch.autograd.Function):
    forward_kernel = backward_kernel = None

    @staticmethod
    def forward(ctx, x):  # noqa: D102
        s, h = _ScriptedLIF.forward_kernel(x.detach(), 2.0, 1.0)
        ctx.save_for_backward(h)
        return s

    @staticmethod
    def backward(ctx, gs):  # noqa: D102
        (h,) = ctx.saved_tensors
        return _ScriptedLIF.backward_kernel(gs.contiguous(), h, 2.0, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="4,4,64,3072", help="T,B,L,D of the population")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = parser.parse_args()
    shape = tuple(int(n) for n in args.shape.split(","))
    dtype = getattr(torch, args.dtype)
    spec = NeuronSpec(tau=2.0, v_threshold=1.0, reset="zero", surrogate="triangle")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _ScriptedLIF.forward_kernel = torch.jit.script(_scripted_forward)
        _ScriptedLIF.backward_kernel = torch.jit.script(_scripted_backward)
    variants = {
        "stepwise": ReferenceDynamics(spec),
        "fused-eager": FusedLIF(spec, "eager"),
        "fused-torchscript": _ScriptedLIF.apply,
        "fused-compiled": FusedLIF(spec, "compile"),
    }
    gen = torch.Generator().manual_seed(0)
    x = (1.5 * torch.randn(shape, generator=gen) + 0.6).to(dtype).requires_grad_()
    gs = torch.randn(shape, generator=gen).to(dtype)

    def run(neuron, grad: bool):
        if not grad:
            with torch.no_grad():
                return neuron(x), None
        s = neuron(x)
        (g,) = torch.autograd.grad(s, x, gs)
        return s, g

    ref_s, ref_g = run(variants["stepwise"], True)
    for name, neuron in variants.items():  # warm-up (compiles) and check
        s, g = run(neuron, True)
        run(neuron, False)
        assert torch.equal(s, ref_s), name
        print(f"{name:18} spikes exact, max |grad - stepwise| = "
              f"{(g - ref_g).abs().max().item():.1e}")
    times = {(n, g): [] for n in variants for g in (True, False)}
    for _ in range(args.repeats):
        for name, neuron in variants.items():
            for grad in (True, False):
                start = time.perf_counter()
                run(neuron, grad)
                times[name, grad].append(time.perf_counter() - start)
    print(f"\nshape {shape} {args.dtype}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} (ms)")
    print(f"{'variant':18} {'fwd+bwd':>9} {'speed-up':>9} {'no_grad':>9} {'speed-up':>9}")
    base = {g: statistics.median(times["stepwise", g]) for g in (True, False)}
    for name in variants:
        t_train = statistics.median(times[name, True])
        t_inf = statistics.median(times[name, False])
        print(f"{name:18} {1e3 * t_train:9.2f} {base[True] / t_train:8.1f}x "
              f"{1e3 * t_inf:9.2f} {base[False] / t_inf:8.1f}x")


if __name__ == "__main__":
    main()

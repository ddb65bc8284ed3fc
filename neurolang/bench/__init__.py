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
    the same network with none of those kernels: the reference step function step by step
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

``handwritten`` holds the hand-written network, ``measure`` the timing, ``report`` the table;
this module the command. Importing it (the CLI does) needs no torch.
"""


from __future__ import annotations

import json
from pathlib import Path

from neurolang.errors import reporting_commands
from neurolang.lazy import lazy_exports

_EXPORTS = {
    "HandwrittenSpikformer": "neurolang.bench.handwritten",
    "PlainLIF": "neurolang.bench.handwritten",
    "SHAPES": "neurolang.bench.measure",
    "TARGETS": "neurolang.bench.measure",
    "Variant": "neurolang.bench.measure",
    "build_variants": "neurolang.bench.measure",
    "check_baselines": "neurolang.bench.measure",
    "peak_memory": "neurolang.bench.measure",
    "run_bench": "neurolang.bench.measure",
    "print_table": "neurolang.bench.report",
}

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())


# --------------------------------------------------------------------------------------------
# The command


def register(app, fail) -> None:
    """Add the ``bench`` command to a ``typer.Typer`` app; ``fail(message)`` reports bad input."""
    import typer

    command = reporting_commands(app, fail)

    @command()
    def bench(
        backends: str = typer.Option("torch,snntorch,norse", help="Comma-separated backends."),
        preset: str = typer.Option("small", help="Model preset (tiny, small, spikebert, "
                                   "spike-driven-small, ...)."),
        device: str = typer.Option("cpu", help="cpu or cuda."),
        repeats: int = typer.Option(3, help="Timed rounds; figures are their medians."),
        warmup: int = typer.Option(1, help="Untimed rounds first (kernels compile here)."),
        batch_size: int | None = typer.Option(None, help="Sequences per batch (preset default)."),
        length: int | None = typer.Option(None, help="Tokens per sequence (preset default)."),
        baseline: bool = typer.Option(True, help="Time the hand-written PyTorch network too."),
        stepwise: bool = typer.Option(True, help="Time the unfused step-by-step neuron too."),
        threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's)."),
        dtype: str = typer.Option("float32", help="float32, float64, or bf16 (float32 "
                                  "weights, bfloat16 autocast, as training with "
                                  "mixed_precision = 'bf16')."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the result here."),
        compare: str | None = typer.Option(None, help="A second preset timed in the same "
                                           "rounds (e.g. spike-driven-small beside small)."),
    ) -> None:
        """Training and inference throughput and peak memory per backend, side by side, with a
        hand-written PyTorch baseline and the unfused neuron."""
        import torch
        from rich.console import Console

        console = Console(width=max(Console().width, 160))
        if threads is not None and threads < 0:
            fail(f"--threads must be an integer >= 0 (0: torch's default), got {threads}")
        if threads:
            torch.set_num_threads(threads)
        names = [b.strip() for b in backends.split(",") if b.strip()]
        if json_out:
            from neurolang.outputs import claim_file

            claim_file(json_out, what="--json")
        from neurolang.bench.measure import run_bench
        from neurolang.bench.report import print_table

        result = run_bench(names, preset, device, repeats, warmup, batch_size, length,
                           baseline, stepwise, dtype,
                           log=lambda m: console.print(f"[dim]{m}[/]", highlight=False),
                           compare=compare)
        print_table(result, console)
        if json_out:
            from neurolang.outputs import write_text_atomic

            write_text_atomic(json_out, json.dumps(result, indent=2) + "\n")
            console.print(f"result written to {json_out}")

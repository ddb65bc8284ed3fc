"""The Lava runner: ``python -m neurolang.lava.run --nir MODEL.nir --inputs IN.npz --out OUT.json``.

Runs inside ``.venv-lava`` (Python 3.10, no torch). ``IN.npz`` holds ``ids`` (N, L) token ids
(padding beyond each length is ignored) and ``lengths`` (N,). All N samples run in one Lava
network, one after the other (``time_steps`` steps each, pipelined); only small summaries
are read back: spike counts per population, sample and step, and the logits per step.
Progress goes to stderr as ``progress <done> <total>`` lines; errors as one ``error: ...`` line
and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _progress(done: int, total: int) -> None:
    print(f"progress {done} {total}", file=sys.stderr, flush=True)


def run(nir_path: str, inputs: str, out: str, fixed_point: bool = False,
        exact_lif: bool = False, chunk: int = 32, progress: bool = True) -> dict:
    from neurolang.lava.network import LavaNetwork
    from neurolang.lava.plan import plan_network
    from neurolang.nir.errors import NIRError
    from neurolang.nir.io import read_metadata, read_nir

    start = time.perf_counter()
    graph = read_nir(nir_path)
    meta = read_metadata(graph)
    plan = plan_network(graph, fixed_point=fixed_point, exact_lif=exact_lif)
    try:
        data = np.load(inputs)
        ids, lengths = data["ids"], data["lengths"]
    except (OSError, KeyError, ValueError) as err:
        raise NIRError(f"{inputs}: not an input file with 'ids' and 'lengths' ({err})") from None
    n = int(len(lengths))
    net = LavaNetwork(plan, ids, lengths)
    built = time.perf_counter()
    T = plan.time_steps
    try:
        done = 0
        if progress:
            _progress(0, n)
        while done < n:
            k = min(chunk, n - done)
            net.run(k * T + (plan.max_latency if done + k == n else 0))
            done += k
            if progress:
                _progress(done, n)
        ran = time.perf_counter()
        counts, logits = net.results()
        attention_sops = net.attention_sops()
    finally:
        net.stop()
    end = time.perf_counter()
    from importlib.metadata import version

    result = {
        "simulator": "lava",
        "lava_version": version("lava-nc"),
        "mode": "fixed_pt" if fixed_point else "floating_pt",
        "neurolang_version": meta.get("neurolang.version"),
        "samples": n,
        "time_steps": T,
        "lava_steps": int(net.total_steps),
        "processes": len(plan.steps),
        "latency_compensated_steps": int(plan.max_latency),
        "timing": {"build_s": built - start, "run_s": ran - built, "readback_s": end - ran,
                   "total_s": end - start},
        "lengths": [int(x) for x in lengths],
        "spike_counts": {k: v.tolist() for k, v in counts.items()},
        "logits_per_step": logits.tolist(),
        "logits": logits.mean(axis=1).tolist(),
        "predictions": logits.mean(axis=1).argmax(-1).tolist(),
        "quantisation": plan.quantisation,
        "attention_sops": attention_sops,
    }
    Path(out).write_text(json.dumps(result) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neurolang.lava.run", description=__doc__)
    parser.add_argument("--nir", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--fixed-point", action="store_true")
    parser.add_argument("--exact-lif", action="store_true",
                        help="neurolang's reference LIF process instead of Lava's LIF")
    parser.add_argument("--chunk", type=int, default=32, help="samples per Lava run call")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    from neurolang.lava.plan_types import LavaModelError
    from neurolang.nir.errors import NIRError

    try:
        run(args.nir, args.inputs, args.out, fixed_point=args.fixed_point,
            exact_lif=args.exact_lif, chunk=max(1, args.chunk), progress=not args.no_progress)
    except (NIRError, LavaModelError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

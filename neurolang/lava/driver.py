"""Driving the Lava simulation from the main (torch) environment.

Runs on the torch side but imports torch only inside ``torch_reference``; it knows no NIR
export (``neurolang.parity_lava`` exports a model and runs it here).
``simulate_lava`` writes the token ids to a temporary ``.npz``, runs ``python -m
neurolang.lava.run`` in the Lava environment (``.venv-lava``, Python 3.10, no torch), shows
its progress, and reads back the JSON summary: spike counts per population, sample and step,
and the logits. ``torch_reference`` computes the same summary with the torch backend (the
model the NIR file describes, ``import_nir``), and ``compare`` lines the two up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurolang.errors import NeurolangError
from neurolang.lava.env import LavaEnvError, require_lava, subprocess_env
from neurolang.lava.plan import plan_network
from neurolang.lava.plan_types import LavaModelError
from neurolang.nir.errors import NIRError
from neurolang.nir.io import read_metadata, read_nir


class LavaError(NeurolangError, RuntimeError):
    """The Lava runner failed."""


@dataclass
class SimulationResult:
    """Summaries of one simulation: counts (N, T) per population, logits (N, C)."""

    simulator: str
    spike_counts: dict[str, np.ndarray]
    logits: np.ndarray
    logits_per_step: np.ndarray
    lengths: np.ndarray
    wall_time_s: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(-1)


def pack_ids(sequences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token id lists -> (N, max_len) ids padded with 0 and (N,) lengths."""
    if not sequences:
        raise ValueError("no sequences to simulate")
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    if lengths.min() < 1:
        raise ValueError("every sequence needs at least one token")
    ids = np.zeros((len(sequences), int(lengths.max())), dtype=np.int64)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = s
    return ids, lengths


def simulate_lava(
    nir_path: str | Path,
    ids: np.ndarray,
    lengths: np.ndarray,
    fixed_point: bool = False,
    exact_lif: bool = False,
    progress: bool = True,
    venv: str | Path | None = None,
    chunk: int = 32,
    timeout: float | None = None,
    description: str | None = None,
) -> SimulationResult:
    """Run every sample of ``ids``/``lengths`` through the NIR model in Lava.

    Raises :class:`~neurolang.lava.env.LavaEnvError` if ``.venv-lava`` is missing (run
    ``neurolang setup-lava``), :class:`~neurolang.lava.plan.LavaModelError` for a model
    Lava cannot run (checked here, before starting Lava), :class:`LavaError` if the runner
    fails.
    """
    python = require_lava(venv)
    plan_network(read_nir(nir_path), fixed_point=fixed_point, exact_lif=exact_lif)
    ids, lengths = np.asarray(ids, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="neurolang-lava-") as tmp:
        inputs, out = Path(tmp) / "inputs.npz", Path(tmp) / "result.json"
        np.savez(inputs, ids=ids, lengths=lengths)
        cmd = [str(python), "-m", "neurolang.lava.run", "--nir", str(Path(nir_path).resolve()),
               "--inputs", str(inputs), "--out", str(out), "--chunk", str(chunk)]
        if fixed_point:
            cmd.append("--fixed-point")
        if exact_lif:
            cmd.append("--exact-lif")
        start = time.perf_counter()
        errors, tail = _run_with_progress(cmd, len(lengths), progress, timeout,
                                          description or ("Lava fixed point" if fixed_point
                                                          else "Lava float"))
        wall = time.perf_counter() - start
        if errors or not out.is_file():
            message = errors[-1] if errors else (tail[-1] if tail else "no output")
            raise LavaError(f"the Lava runner failed: {message}")
        data = json.loads(out.read_text())
    counts = {k: np.asarray(v, dtype=np.int64) for k, v in data.pop("spike_counts").items()}
    logits_per_step = np.asarray(data.pop("logits_per_step"), dtype=np.float64)
    return SimulationResult(
        simulator=f"lava-{data['mode']}", spike_counts=counts,
        logits=logits_per_step.mean(axis=1), logits_per_step=logits_per_step,
        lengths=np.asarray(data.pop("lengths")), wall_time_s=wall,
        info={k: v for k, v in data.items() if k not in ("logits", "predictions")})


def _run_with_progress(cmd, total, progress, timeout, description):
    from neurolang.progress import progress as tqdm

    bar = tqdm(total=total, desc=description, unit="sample", disable=not progress,
               file=sys.stderr)
    errors: list[str] = []
    tail: list[str] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env())
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        for line in proc.stderr:
            line = line.rstrip()
            if line.startswith("progress "):
                done = int(line.split()[1])
                bar.update(done - bar.n)
            elif line.startswith("error: "):
                errors.append(line[len("error: "):])
            elif line:
                tail = (tail + [line])[-20:]
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                raise LavaError(f"the Lava runner took longer than {timeout} s")
        proc.wait(timeout=None if deadline is None else max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        raise LavaError(f"the Lava runner took longer than {timeout} s") from None
    finally:
        bar.close()
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    if proc.returncode != 0 and not errors:
        errors.append(tail[-1] if tail else f"exit code {proc.returncode}")
    return errors, tail


@contextmanager
def _record_populations(model):
    """Every population's output by module name: the spiking neurons and a spiking encoder
    (``neurolang.parity.record_spikes``), and SDSA's spike gates (``Q * G``, spikes too)."""
    from neurolang.parity import record_spikes

    with record_spikes(model) as record:
        handles = [module.register_forward_hook(
            lambda _m, _i, out, name=name: record.__setitem__(name, out.detach()))
            for name, module in model.named_modules()
            if getattr(module, "op", None) == "spike_gate"]
        try:
            yield record
        finally:
            for handle in handles:
                handle.remove()


def torch_reference(model, ids: np.ndarray, lengths: np.ndarray, batch_size: int = 32,
                    progress: bool = False) -> SimulationResult:
    """The same summaries from a neurolang model (padded batches, real tokens counted; a
    population without token axis, an SDSA gate neuron's (T*B, 1, D), one row a step)."""
    import torch

    ids, lengths = np.asarray(ids), np.asarray(lengths)
    T = model.config.time_steps
    dtype = next(model.parameters()).dtype
    counts: dict[str, list[np.ndarray]] = {}
    logits, per_step = [], []
    order = np.argsort(lengths, kind="stable")  # similar lengths together: less padding
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if not getattr(model.config, "padding_mask", True):
        # an unmasked model attends to (and pools) padding: batch equal lengths only, so that
        # each sequence is computed on its own tokens, as in the NIR file's semantics
        batches = [chunk for n in np.unique(lengths)
                   for group in [order[lengths[order] == n]]
                   for chunk in np.array_split(group, -(-len(group) // batch_size))]
    start = time.perf_counter()
    model.eval()
    with torch.no_grad():
        for idx in batches:
            width = int(lengths[idx].max())
            batch = torch.as_tensor(ids[idx, :width])
            mask = (torch.arange(width)[None, :] < torch.as_tensor(lengths[idx])[:, None]).long()
            with _record_populations(model) as rec:
                out = model(batch * mask, mask)
            for name, spikes in rec.items():
                fired = (spikes != 0).to(dtype)  # graded, signed spikes count once
                if fired.dim() == 3 and fired.shape[1] == width:  # (T*B, L, D): real tokens
                    s4 = (fired.reshape(T, len(idx), width, -1)
                          * mask[None, :, :, None].to(dtype))
                else:  # one row per sample and step
                    s4 = fired.reshape(T, len(idx), 1, -1)
                counts.setdefault(name, []).append(s4.sum((2, 3)).T.round().long().numpy())
            logits.append(out["logits"].double().numpy())
            per_step.append(out["logits_per_step"].reshape(T, len(idx), -1).transpose(0, 1)
                            .double().numpy())
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return SimulationResult(
        simulator=f"torch-{getattr(model, 'backend', 'torch')}",
        spike_counts={k: np.concatenate(v)[inverse] for k, v in counts.items()},
        logits=np.concatenate(logits)[inverse], logits_per_step=np.concatenate(per_step)[inverse],
        lengths=lengths, wall_time_s=time.perf_counter() - start)


def compare(reference: SimulationResult, other: SimulationResult,
            labels: np.ndarray | None = None) -> dict[str, Any]:
    """Per population: spikes on both sides and ``sum |count difference|`` over samples and
    steps (0 for identical spike counts); prediction agreement; accuracies with ``labels``."""
    layers = []
    for name, ref in reference.spike_counts.items():
        if name not in other.spike_counts:
            raise ValueError(f"population {name} missing from {other.simulator}")
        o = other.spike_counts[name]
        diff = int(np.abs(ref - o).sum())
        total = int(ref.sum())
        layers.append({"population": name, reference.simulator: total,
                       other.simulator: int(o.sum()), "count_mismatches": diff,
                       "agreement": 1.0 - diff / max(total, 1)})
    agree = float((reference.predictions == other.predictions).mean())
    out = {
        "reference": reference.simulator, "other": other.simulator,
        "layers": layers,
        "total_count_mismatches": int(sum(layer["count_mismatches"] for layer in layers)),
        "prediction_agreement": agree,
        "logits_max_abs_diff": float(np.abs(reference.logits - other.logits).max()),
    }
    if labels is not None:
        labels = np.asarray(labels)
        out["accuracy"] = {reference.simulator: float((reference.predictions == labels).mean()),
                           other.simulator: float((other.predictions == labels).mean())}
    return out


__all__ = ["LavaEnvError", "LavaError", "LavaModelError", "NIRError", "SimulationResult",
           "compare", "pack_ids", "read_metadata", "simulate_lava",
           "torch_reference"]

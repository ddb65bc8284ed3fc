"""The Lava network of a plan (``neurolang.lava.plan``): its processes, connected, and runs.

Lava is imported when a network is built, not before: the main environment imports this
module (without Lava) for its names. Each planned process's ``kind`` has a builder here, which
makes the Lava process (Lava's own ``LIFReset`` and ``Dense``, or one of neurolang's
``neurolang.lava.processes``), and its ports in ``_PORTS``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from neurolang.lava.plan_types import LavaModelError, Plan, PlannedProcess


def exact_dv(beta: float) -> float:
    """``dv`` with ``1 - dv == beta`` exactly in float64 (Lava computes ``v * (1 - dv)``)."""
    dv = 1.0 - beta
    for _ in range(64):
        if 1.0 - dv == beta:
            return dv
        dv = math.nextafter(dv, 2.0) if 1.0 - dv > beta else math.nextafter(dv, -1.0)
    return 1.0 - beta


# --------------------------------------------------------------------------------------------
# Builders: (planned process, the run's schedule and inputs) -> a Lava process


def _encoder(step: PlannedProcess, run: dict[str, Any]):
    from neurolang.lava.processes import TokenEncoder

    p, ids, max_len = step.params, run["ids"], run["max_len"]
    vocab = p["embedding"].shape[0]
    if np.any(ids < 0) or np.any(ids >= vocab):
        raise ValueError(f"token ids outside the vocabulary of {vocab}")
    pos = p["position"]
    if pos is not None and max_len > pos.shape[0]:
        raise ValueError(f"sequences of {max_len} tokens are longer than the "
                         f"position embedding ({pos.shape[0]})")
    return TokenEncoder(ids=ids, embedding=p["embedding"], position=pos,
                        heaviside=p["heaviside"], x_scale=p["x_scale"], norm=p.get("norm"),
                        current=p.get("current"), **run["common"])


def _dense(step: PlannedProcess, run: dict[str, Any]):
    from neurolang.lava.processes import TokenDense

    p = step.params
    return TokenDense(weight=p["weight"], bias=p["bias"], max_len=run["max_len"],
                      layer_norm=p["layer_norm"], gain=p["gain"], count=p["count"],
                      quant=p.get("quant"), **run["common"])


def _shape(step: PlannedProcess, run: dict[str, Any]) -> tuple[int, int]:
    """A population's (token slots, features); one row for a value without token axis."""
    return (step.params.get("rows") or run["max_len"], step.params["features"])


def _lif(step: PlannedProcess, run: dict[str, Any]):
    from lava.proc.lif.process import LIFReset

    p, T = step.params, run["time_steps"]
    spec = p["spec"]
    shape = _shape(step, run)
    reset = {"reset_interval": T, "reset_offset": (1 + step.latency) % T}
    if run["fixed"]:
        return LIFReset(shape=shape, du=4095, dv=p["dv"], vth=p["vth"], **reset)
    return LIFReset(shape=shape, du=1.0, dv=exact_dv(spec["beta"]),
                    vth=float(spec["v_threshold"]), **reset)


def _reference_lif(step: PlannedProcess, run: dict[str, Any]):
    from neurolang.lava.processes import ReferenceLIF

    p = step.params
    spec = p["spec"]
    return ReferenceLIF(shape=_shape(step, run), tau=spec["tau"],
                        beta=spec["beta"], decay_input=spec["decay_input"],
                        v_threshold=spec["v_threshold"], reset=spec["reset"],
                        comparison=spec["threshold_comparison"], **run["common"])


def _elastic(step: PlannedProcess, run: dict[str, Any]):
    from neurolang.lava.processes import ElasticBiSpike

    p = step.params
    return ElasticBiSpike(shape=_shape(step, run), alpha=p["alpha"],
                          **run["common"])


def _attention(step: PlannedProcess, run: dict[str, Any]):
    from neurolang.lava.processes import SpikeAttention

    p = step.params
    return SpikeAttention(max_len=run["max_len"], features=p["features"],
                          num_heads=p["num_heads"], scale=p["scale"], gain=p["gain"],
                          quant=p.get("quant"), **run["common"])


def _coincidence(step: PlannedProcess, run: dict[str, Any]):
    from neurolang.lava.processes import CoincidenceSum

    p = step.params
    return CoincidenceSum(max_len=run["max_len"], features=p["features"], scale=p["scale"],
                          gain=p["gain"], quant=p.get("quant"), **run["common"])


def _gate(step: PlannedProcess, run: dict[str, Any]):
    from neurolang.lava.processes import SpikeGate

    return SpikeGate(max_len=run["max_len"], features=step.params["features"],
                     **run["common"])


def _residual(step: PlannedProcess, run: dict[str, Any]):
    from neurolang.lava.processes import Residual

    p = step.params
    return Residual(shape=(run["max_len"], p["features"]), b_scale=p["b_scale"],
                    current=p.get("current"), **run["common"])


def _readout(step: PlannedProcess, run: dict[str, Any]):
    from neurolang.lava.processes import TokenReadout

    p = step.params
    return TokenReadout(max_len=run["max_len"], features=p["features"],
                        layer_norm=p["layer_norm"], affine=p["affine"],
                        quant=p.get("quant"), **run["common"])


def _classifier(step: PlannedProcess, run: dict[str, Any]):
    from lava.proc.dense.process import Dense

    return Dense(weights=step.params["weight"], num_message_bits=24)


def _logits(step: PlannedProcess, run: dict[str, Any]):
    from neurolang.lava.processes import LogitsReadout

    p = step.params
    return LogitsReadout(classes=p["classes"], bias=p["bias"], out_scale=p["out_scale"],
                         **run["common"])


_BUILDERS = {
    "encoder": _encoder, "dense": _dense, "lif": _lif, "ref_lif": _reference_lif,
    "elastic": _elastic, "attention": _attention, "coincidence": _coincidence,
    "gate": _gate, "residual": _residual, "readout": _readout, "classifier": _classifier,
    "logits": _logits,
}
# input ports in the order of a planned process's inputs, and the (default) output port, by
# kind; a planned process's ``ports`` names another output port of a source (``c_out``)
_PORTS = {"encoder": ((), "s_out"), "attention": (("q_in", "k_in", "v_in"), "s_out"),
          "coincidence": (("k_in", "v_in"), "s_out"), "gate": (("q_in", "g_in"), "s_out"),
          "residual": (("a_in", "b_in"), "s_out"), "classifier": (("s_in",), "a_out")}
_DEFAULT_PORTS = (("a_in",), "s_out")


class LavaNetwork:
    """The Lava processes of a plan for a batch of token sequences."""

    def __init__(self, plan: Plan, ids: np.ndarray, lengths: np.ndarray):
        self.plan = plan
        ids = np.asarray(ids, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        if ids.ndim != 2 or lengths.shape != (ids.shape[0],):
            raise ValueError(f"ids {ids.shape} and lengths {lengths.shape} do not match")
        if np.any(lengths < 1) or np.any(lengths > ids.shape[1]):
            raise ValueError("every sample needs 1..max_len tokens")
        self.n = ids.shape[0]
        max_len = int(lengths.max())
        ids = ids[:, :max_len]
        T = plan.time_steps
        sched = {"lengths": lengths, "time_steps": T}
        self.procs: dict[str, Any] = {}
        for step in plan.steps.values():
            if step.kind not in _BUILDERS:  # pragma: no cover
                raise LavaModelError(f"unknown step kind {step.kind}")
            run = {"ids": ids, "max_len": max_len, "time_steps": T,
                   "fixed": plan.fixed_point, "common": {**sched, "latency": step.latency}}
            self.procs[step.name] = _BUILDERS[step.kind](step, run)
        for step in plan.steps.values():
            ins = _PORTS.get(step.kind, _DEFAULT_PORTS)[0]
            for i, (port, src) in enumerate(zip(ins, step.inputs, strict=True)):
                out = step.ports.get(i) or _PORTS.get(plan.steps[src].kind, _DEFAULT_PORTS)[1]
                getattr(self.procs[src], out).connect(getattr(self.procs[step.name], port))
        self.logits_proc = self.procs["logits"]
        self.total_steps = self.n * T + plan.max_latency
        self.done_steps = 0
        self._cfg = None

    def run(self, steps: int) -> None:
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg

        if self._cfg is None:
            from neurolang.lava.processes import process_models

            tag = "fixed_pt" if self.plan.fixed_point else "floating_pt"
            models = process_models(tag)
            # keyed by process, not class: Lava's compiler then skips its search of the
            # processes' folder (which re-executes every file there for every process)
            chosen = {p: models[type(p)] for p in self.procs.values() if type(p) in models}
            self._cfg = Loihi2SimCfg(select_tag=tag, exception_proc_model_map=chosen)
        steps = min(steps, self.total_steps - self.done_steps)
        if steps > 0:
            self.logits_proc.run(condition=RunSteps(num_steps=steps), run_cfg=self._cfg)
            self.done_steps += steps

    def attention_sops(self) -> dict[str, dict[str, int]]:
        """Accumulates counted inside every attention process: ``{step: {sops_qk, sops_av}}``
        for an attention product, ``{step: {sops}}`` (coincidences) for an SDSA coincidence
        sum."""
        found = {}
        for name, step in self.plan.steps.items():
            if step.kind == "attention":
                qk, av = np.rint(np.asarray(self.procs[name].sops.get())).astype(np.int64)
                found[name] = {"sops_qk": int(qk), "sops_av": int(av)}
            elif step.kind == "coincidence":
                (sops,) = np.rint(np.asarray(self.procs[name].sops.get())).astype(np.int64)
                found[name] = {"sops": int(sops)}
        return found

    def results(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Spike counts per population (N, T) and logits per step (N, T, C)."""
        by_step: dict[str, np.ndarray] = {}
        counts = {}
        for pop, (step, port) in self.plan.populations.items():
            if step not in by_step:
                by_step[step] = np.asarray(self.procs[step].counts.get())
            counts[pop] = np.rint(by_step[step][port]).astype(np.int64)
        return counts, np.asarray(self.logits_proc.logits.get(), dtype=np.float64)

    def stop(self) -> None:
        try:
            self.logits_proc.stop()
        except Exception:  # noqa: BLE001 - stopping a runtime that never started
            pass

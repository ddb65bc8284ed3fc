"""LIF parameters for an explicit dt: neurolang's neuron specification as NIR's ``LIF``
parameters, and back (``docs/nir-extensions.md``, section 2). Torch-free.
"""

from __future__ import annotations

import json
import math
from typing import Any

import nir
import numpy as np

from neurolang.nir.errors import NIRError
from neurolang.nir.nodes import as_text

DEFAULT_DT = 1e-4  # snnTorch's hard-coded import dt, so its importer needs no compensation


def exact_tau(beta: float, dt: float) -> float:
    """``tau = dt / (1 - beta)``, nudged to the nearest float for which ``1 - dt/tau == beta``
    in float64 (how snnTorch's importer and the Lava side recover the decay)."""
    tau = dt / (1.0 - beta)
    if 1.0 - dt / tau == beta:
        return tau
    down = up = tau
    for _ in range(64):
        down, up = math.nextafter(down, 0.0), math.nextafter(up, math.inf)
        for candidate in (down, up):
            if 1.0 - dt / candidate == beta:
                return candidate
    return tau


def lif_parameters(spec: dict[str, Any], dt: float, size: int) -> dict[str, np.ndarray]:
    """NIR ``LIF`` parameters (per neuron) equivalent to a neurolang ``NeuronSpec`` dict.

    NIR (forward Euler, step ``dt``): ``v <- (1 - dt/tau) v + (dt/tau) (v_leak + r x)``.
    With ``beta = 1 - dt/tau``:

    - snnTorch form (``decay_input=False``), ``beta v + x``: ``r = 1 / (1 - beta)``;
    - SpikingJelly form (``decay_input=True``), ``v + (x - v)/tau_steps = beta v + (1-beta) x``:
      ``r = 1``.
    """
    beta = float(spec["beta"])
    tau = exact_tau(beta, dt)
    r = 1.0 if spec["decay_input"] else 1.0 / (1.0 - beta)
    return {
        "tau": np.full(size, tau),
        "r": np.full(size, r),
        "v_leak": np.zeros(size),
        "v_threshold": np.full(size, float(spec["v_threshold"])),
        "v_reset": np.zeros(size),
    }


def lif_spec(node: nir.NIRNode, dt: float, where: str = "") -> dict[str, Any]:
    """The neurolang neuron specification of a ``LIF`` / ``neurolang.LIF`` node.

    Taken from the node's ``neurolang.neuron`` metadata when present (checked against the
    standard parameters), else derived from the parameters (uniform populations only).
    """
    label = f"LIF node {where!r}" if where else "LIF node"
    params = {k: np.asarray(getattr(node, k), dtype=np.float64)
              for k in ("tau", "r", "v_leak", "v_threshold")}
    for name, arr in params.items():
        if arr.size == 0 or not np.all(arr == arr.reshape(-1)[0]):
            raise NIRError(f"{label}: {name} differs between neurons; neurolang populations "
                           "share one neuron specification")
        if not np.all(np.isfinite(arr)):
            raise NIRError(f"{label}: {name} is not finite")
    tau, r = float(params["tau"].reshape(-1)[0]), float(params["r"].reshape(-1)[0])
    v_leak, th = float(params["v_leak"].reshape(-1)[0]), float(params["v_threshold"].reshape(-1)[0])
    v_reset = np.asarray(getattr(node, "v_reset", np.zeros(1)), dtype=np.float64)
    if v_leak != 0 or (v_reset.size and np.any(v_reset != 0)):
        raise NIRError(f"{label}: v_leak and v_reset must be 0")
    if tau <= 0 or dt <= 0:
        raise NIRError(f"{label}: tau and dt must be positive (tau={tau}, dt={dt})")
    beta = 1.0 - dt / tau
    if not 0 <= beta < 1:
        raise NIRError(f"{label}: tau={tau} with dt={dt} gives a decay {beta} outside [0, 1)")
    if math.isclose(r, 1.0, rel_tol=1e-9):
        decay_input = True
    elif math.isclose(r * (1.0 - beta), 1.0, rel_tol=1e-9):
        decay_input = False
    else:
        raise NIRError(f"{label}: r={r} is neither 1 nor 1/(1-beta)={1 / (1 - beta)}; "
                       "fold input scaling into the preceding Affine")
    derived = {
        "kind": "lif", "beta": beta, "tau": 1.0 / (1.0 - beta), "decay_input": decay_input,
        "v_threshold": th,
        "reset": getattr(node, "reset", "zero"),
        "threshold_comparison": getattr(node, "comparison", ">"),
    }
    meta = (node.metadata or {}).get("neurolang.neuron")
    if meta is None:
        return derived
    try:
        spec = json.loads(as_text(meta))
    except (json.JSONDecodeError, NIRError):
        raise NIRError(f"{label}: metadata neurolang.neuron is not a JSON object") from None
    if not isinstance(spec, dict):
        raise NIRError(f"{label}: metadata neurolang.neuron is not a JSON object")
    problems = []
    for key in ("decay_input", "reset", "threshold_comparison"):
        if spec.get(key) != derived[key]:
            problems.append(f"{key} {spec.get(key)!r} vs {derived[key]!r}")
    for key in ("beta", "v_threshold"):
        if not isinstance(spec.get(key), (int, float)) or not math.isclose(
                spec[key], derived[key], rel_tol=1e-9, abs_tol=1e-12):
            problems.append(f"{key} {spec.get(key)!r} vs {derived[key]!r}")
    if problems:
        raise NIRError(f"{label}: its neurolang.neuron metadata disagrees with its parameters "
                       f"({'; '.join(problems)})")
    return spec

"""Loading neurolang's strict NIR files in snnTorch's and Norse's own importers.

Only standard NIR files (``export_nir(..., strict=True)``) load there. What each importer
does differently from the file's semantics, and what neurolang compensates:

snnTorch 1.0.0, ``snntorch.import_nir.import_from_nir``
    - dt is hard-coded to 1e-4: neurolang exports with ``dt = 1e-4`` by default and picks each
      ``tau`` so that snnTorch's ``beta = 1 - dt/tau`` is the neuron's beta exactly;
      :func:`load_snntorch` refuses files written with another dt.
    - ``r * dt / tau != 1`` (the SpikingJelly input decay, ``r = 1``): snnTorch divides the
      threshold by ``w_scale = r dt / tau = 1 - beta`` instead of scaling the input (a membrane
      scaled by ``1/(1 - beta)``; the same spikes). Its warnings go to stdout: silenced here.
    - parameters become float32 (``torch.Tensor(...)``, nirtorch's default dtype): compare in
      float32. The neurons keep their membrane between calls (``init_hidden=True``): reset
      them per sample (``snntorch.utils.reset``), done in :func:`run_snntorch`.
Norse 1.1.0, ``norse.torch.from_nir``
    - dt defaults to 1e-3: :func:`load_norse` passes the file's dt.
    - ``r`` is ignored (a warning): :func:`norse_ready` folds ``r`` into the preceding
      ``Affine`` (weights and bias times ``r``) and writes ``r = 1``; for the SpikingJelly form
      ``r`` is 1 already and nothing changes.
    - parameters become float32 (``_to_tensor(...).float()``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from pathlib import Path

import nir
import numpy as np
import torch

from neurolang.nir import NIRError, extension_types, read_metadata, read_nir

SNNTORCH_DT = 1e-4


def _sanitize(name: str) -> str:  # nirtorch 2.6's module naming
    import keyword

    name = name.replace(".", "_")
    return f"nir_node_{name}" if keyword.iskeyword(name) else name


def _standard_graph(path_or_graph) -> tuple[nir.NIRGraph, dict]:
    graph = path_or_graph if isinstance(path_or_graph, nir.NIRGraph) else read_nir(path_or_graph)
    ext = extension_types(graph)
    if ext:
        raise NIRError(f"the graph uses neurolang extensions {ext}; snnTorch and Norse read "
                       "standard NIR only (export with strict=True)")
    return graph, read_metadata(graph)


def lif_names(graph: nir.NIRGraph) -> list[str]:
    return [k for k, n in graph.nodes.items() if isinstance(n, nir.LIF)]


def load_snntorch(path_or_graph: str | Path | nir.NIRGraph) -> torch.nn.Module:
    """snnTorch's own ``import_from_nir`` on a strict neurolang file (float32 module)."""
    from snntorch.import_nir import import_from_nir

    graph, meta = _standard_graph(path_or_graph)
    if not np.isclose(meta["dt"], SNNTORCH_DT, rtol=1e-12, atol=0):
        raise NIRError(f"snnTorch's importer assumes dt = {SNNTORCH_DT}; this file was written "
                       f"with dt = {meta['dt']}")
    with contextlib.redirect_stdout(io.StringIO()):
        module = import_from_nir(copy.deepcopy(graph))
    module.neurolang_lif_names = {_sanitize(n): n for n in lif_names(graph)}
    module.neurolang_time_steps = int(meta["time_steps"])
    return module


def norse_ready(graph: nir.NIRGraph) -> nir.NIRGraph:
    """A copy of ``graph`` with each LIF's ``r`` folded into the ``Affine`` feeding it."""
    graph = copy.deepcopy(graph)
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.LIF) or np.all(node.r == 1):
            continue
        sources = [a for a, b in graph.edges if b == name]
        src = graph.nodes[sources[0]] if len(sources) == 1 else None
        users = [b for a, b in graph.edges if a == sources[0]] if src is not None else []
        if not isinstance(src, nir.Affine) or users != [name]:
            raise NIRError(f"{name}: r != 1 and no Affine of its own before it to fold r into")
        src.weight = src.weight * node.r[:, None]
        src.bias = src.bias * node.r
        node.r = np.ones_like(node.r)
    return graph


def load_norse(path_or_graph: str | Path | nir.NIRGraph) -> torch.nn.Module:
    """Norse's own ``from_nir`` on a strict neurolang file, with the file's dt (float32)."""
    import norse.torch

    graph, meta = _standard_graph(path_or_graph)
    logging.getLogger().disabled, was = True, logging.getLogger().disabled
    try:
        with warnings.catch_warnings():  # nirtorch.load's deprecation notice
            warnings.simplefilter("ignore", DeprecationWarning)
            module = norse.torch.from_nir(norse_ready(graph), dt=float(meta["dt"]))
    finally:
        logging.getLogger().disabled = was
    module.neurolang_lif_names = {_sanitize(n): n for n in lif_names(graph)}
    module.neurolang_time_steps = int(meta["time_steps"])
    return module


@torch.no_grad()
def run_snntorch(module, features: torch.Tensor):
    """Present ``features`` (B, D) at every step; spikes per LIF (T, B, n) and outputs
    (T, B, C), float32."""
    import snntorch
    import snntorch.utils

    names = module.neurolang_lif_names
    record: dict[str, list[torch.Tensor]] = {n: [] for n in names.values()}
    hooks = []
    for sub_name, sub in module.named_modules():
        if isinstance(sub, snntorch.Leaky) and sub_name in names:
            hooks.append(sub.register_forward_hook(
                lambda _m, _i, out, n=names[sub_name]: record[n].append(
                    out[0] if isinstance(out, tuple) else out)))
    snntorch.utils.reset(module)
    outputs = []
    try:
        for _ in range(module.neurolang_time_steps):
            out = module(features.float())
            outputs.append(out[0] if isinstance(out, tuple) else out)
    finally:
        for h in hooks:
            h.remove()
    return {n: torch.stack(v) for n, v in record.items()}, torch.stack(outputs)


@torch.no_grad()
def run_norse(module, features: torch.Tensor):
    """Like :func:`run_snntorch` for a module from :func:`load_norse`."""
    names = module.neurolang_lif_names
    record: dict[str, list[torch.Tensor]] = {n: [] for n in names.values()}
    state, outputs = None, []
    for _ in range(module.neurolang_time_steps):
        out, state = module(features.float(), state)
        outputs.append(out)
        for key, name in names.items():
            record[name].append(state.cache[key])
    return {n: torch.stack(v) for n, v in record.items()}, torch.stack(outputs)

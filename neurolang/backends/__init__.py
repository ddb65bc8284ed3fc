"""Training backends: each lowers the neurons of a model to one library.

A backend is a module in this package that defines ``BACKEND``, an instance of
:class:`Backend`. Adding a backend means adding one module here; nothing else changes.
``compile`` copies a model and replaces the ``dynamics`` of every
:class:`~neurolang.primitives.SpikingNeuron` with the backend's lowering. Parameters and
buffers stay on the core modules, so one ``state_dict`` loads strictly into every backend.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import importlib.util
import pkgutil
from dataclasses import dataclass, field

import torch
from torch import nn

from neurolang.config import SpikformerConfig
from neurolang.errors import NeurolangError
from neurolang.neurons import NeuronSpec
from neurolang.primitives import SpikingNeuron


class BackendError(NeurolangError, ValueError):
    """A backend cannot compute what a model specifies, or is not installed."""


@dataclass
class Backend:
    """What a backend is and can do. Subclasses implement :meth:`lower`.

    Attributes:
        name: the name users pass (``--backend``).
        library: the Python package it needs (None: torch only).
        description: one line for ``neurolang backends``.
        kinds, resets, comparisons, surrogates, detach_reset: the settings of
            :class:`~neurolang.neurons.NeuronSpec` it computes exactly (the LIF settings are
            checked for LIF populations only).
        own_kinds: the kinds it computes with neurolang's implementation rather than the
            library's (the library has no such neuron); ``neurolang backends`` marks them.
        notes: what a user should know (what is the library's own and what is neurolang's).
    """

    name: str
    library: str | None
    description: str
    kinds: tuple[str, ...] = ("lif",)
    resets: tuple[str, ...] = ("zero", "subtract")
    comparisons: tuple[str, ...] = (">", ">=")
    surrogates: tuple[str, ...] = ("atan", "sigmoid", "triangle", "straight_through")
    detach_reset: tuple[bool, ...] = (False, True)
    notes: list[str] = field(default_factory=list)
    own_kinds: tuple[str, ...] = ()

    def available(self) -> bool:
        return self.library is None or importlib.util.find_spec(self.library) is not None

    def version(self) -> str | None:
        if self.library is None:
            return torch.__version__
        try:
            return importlib.metadata.version(self.library)
        except importlib.metadata.PackageNotFoundError:
            return None

    def problems(self, spec: NeuronSpec) -> list[str]:
        """Every setting of ``spec`` this backend cannot compute exactly, as messages."""
        checks = [("kind", spec.kind, self.kinds)]
        if spec.kind == "lif":
            checks += [
                ("reset", spec.reset, self.resets),
                ("threshold_comparison", spec.threshold_comparison, self.comparisons),
                ("surrogate", spec.surrogate, self.surrogates),
                ("detach_reset", spec.detach_reset, self.detach_reset),
            ]
        return [
            f"{setting}={value!r} (supported: {', '.join(repr(s) for s in allowed)})"
            for setting, value, allowed in checks
            if value not in allowed
        ] + self.extra_problems(spec)

    def extra_problems(self, spec: NeuronSpec) -> list[str]:
        return []

    def lower(self, spec: NeuronSpec) -> nn.Module:
        """A module mapping input currents (T, B, ...) to spikes (T, B, ...)."""
        raise NotImplementedError


def _discover() -> dict[str, Backend]:
    found: dict[str, Backend] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        backend = getattr(module, "BACKEND", None)
        if isinstance(backend, Backend):
            found[backend.name] = backend
    order = {"torch": 0, "snntorch": 1, "norse": 2}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], 9), kv[0])))


BACKENDS: dict[str, Backend] = _discover()


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    backend = BACKENDS[name]
    if not backend.available():
        raise BackendError(
            f"backend {name!r} needs the package {backend.library!r}, which is not installed "
            "(run the set-up in the README)"
        )
    return backend


def check(model_or_config: nn.Module | SpikformerConfig, backend: str) -> list[str]:
    """Every reason ``backend`` cannot run the model exactly (empty: it can)."""
    impl = get_backend(backend)
    model = model_or_config
    if isinstance(model, SpikformerConfig):
        from neurolang.models import build_model

        model = build_model(model)
    reasons = []
    for name, neuron in model.named_modules():
        if isinstance(neuron, SpikingNeuron):
            reasons += [f"{name}: {p}" for p in impl.problems(neuron.spec)]
    return reasons


def compile(model_or_config: nn.Module | SpikformerConfig, backend: str = "torch") -> nn.Module:
    """A copy of the model whose neurons run on ``backend`` (a config builds a new model).

    Raises :class:`BackendError` naming every population and setting the backend cannot
    compute exactly; never falls back to something else.
    """
    from neurolang.models import build_model

    impl = get_backend(backend)
    if isinstance(model_or_config, SpikformerConfig):
        model = build_model(model_or_config)
    else:
        model = copy.deepcopy(model_or_config)
    reasons = check(model, backend)
    if reasons:
        settings = sorted({r.split(": ", 1)[1] for r in reasons})
        where = sorted({r.split(": ", 1)[0] for r in reasons})
        shown = ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
        raise BackendError(
            f"backend {backend!r} cannot compute {'; '.join(settings)} exactly "
            f"(populations: {shown}); change the neuron settings or use another backend"
        )
    for neuron in model.modules():
        if isinstance(neuron, SpikingNeuron):
            neuron.set_dynamics(impl.lower(neuron.spec))
    model.backend = backend
    return model


__all__ = ["BACKENDS", "Backend", "BackendError", "check", "compile", "get_backend"]

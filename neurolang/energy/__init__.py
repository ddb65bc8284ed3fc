"""Energy: operation counts of a spiking model's own run, energy models, the teacher's cost.

``counting`` counts spikes, synaptic operations, MACs and additions per layer (hooks on the
torch-side backends, or spike counts reported by another simulator such as Lava); ``models``
turns counts into energy under documented per-operation figures (45 nm CMOS, Loihi, your
own); ``teacher`` counts a Hugging Face teacher's MACs from its config and the real lengths;
``report`` runs the ``neurolang energy`` comparison; ``spikebert`` re-derives SpikeBERT's
published ratio with our rules. The rules are stated in ``docs/energy.md``.

Names are imported lazily so that ``neurolang.energy.models`` stays light.
"""

from importlib import import_module

_EXPORTS = {
    "CountingError": "neurolang.energy.counting",
    "LayerCounts": "neurolang.energy.counting",
    "ModelCounts": "neurolang.energy.counting",
    "OpCounter": "neurolang.energy.counting",
    "count_batches": "neurolang.energy.counting",
    "counts_from_spikes": "neurolang.energy.counting",
    "first_difference": "neurolang.energy.counting",
    "BUILTIN_MODELS": "neurolang.energy.models",
    "EnergyConfigError": "neurolang.energy.models",
    "EnergyModel": "neurolang.energy.models",
    "load_energy_models": "neurolang.energy.models",
    "select_models": "neurolang.energy.models",
    "teacher_counts": "neurolang.energy.teacher",
    "transformer_counts": "neurolang.energy.teacher",
    "EnergyReport": "neurolang.energy.report",
    "run_energy": "neurolang.energy.report",
    "spikebert_estimate": "neurolang.energy.spikebert",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neurolang.energy' has no attribute {name!r}")

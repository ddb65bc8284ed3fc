"""Energy: operation counts of a spiking model's own run, energy models, the teacher's cost.

Counting spikes, synaptic operations, MACs and additions per layer: ``rules`` says what each op
of the model graph costs (one rule per op), ``plan`` which node is which, ``hooks`` counts a
run on the torch-side backends, ``from_spikes`` the spike counts reported by another simulator
such as Lava, ``records`` holds the tables (``ModelCounts``, ``LayerCounts``); ``models``
turns counts into energy under documented per-operation figures (45 nm CMOS, Loihi, your
own); ``teacher`` counts a Hugging Face teacher's MACs from its config and the real lengths;
``report`` runs the ``neurolang energy`` comparison; ``spikebert`` re-derives SpikeBERT's
published ratio with our rules. The rules are stated in ``docs/energy.md``.

Names are imported lazily so that ``neurolang.energy.models`` stays light.
"""

from neurolang.lazy import lazy_exports

_EXPORTS = {
    "CountingError": "neurolang.energy.records",
    "LayerCounts": "neurolang.energy.records",
    "ModelCounts": "neurolang.energy.records",
    "first_difference": "neurolang.energy.records",
    "COUNTING_RULES": "neurolang.energy.rules",
    "OpCounter": "neurolang.energy.hooks",
    "count_batches": "neurolang.energy.hooks",
    "counts_from_spikes": "neurolang.energy.from_spikes",
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


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())

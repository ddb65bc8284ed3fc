"""neurolang: spiking language models defined once, compiled to several backends."""

from neurolang.backends import BACKENDS, BackendError, compile
from neurolang.config import ConfigError, SpikformerConfig, preset
from neurolang.neurons import NEURON_KINDS, NeuronSpec, lif_step
from neurolang.spikformer import Spikformer

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "NEURON_KINDS",
    "BackendError",
    "ConfigError",
    "NeuronSpec",
    "Spikformer",
    "SpikformerConfig",
    "compile",
    "lif_step",
    "preset",
    "__version__",
]

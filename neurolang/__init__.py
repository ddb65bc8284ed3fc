"""neurolang: spiking language models defined once, compiled to several backends.

The top-level names are imported lazily, so that torch-free parts of the package (the Lava
side, which runs in its own Python 3.10 environment without torch) can import
``neurolang.<subpackage>`` without pulling in torch.
"""

from neurolang.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "BACKENDS": "neurolang.backends",
    "BackendError": "neurolang.backends",
    "compile": "neurolang.backends",
    "ConfigError": "neurolang.config",
    "SpikformerConfig": "neurolang.config",
    "preset": "neurolang.config",
    "NEURON_KINDS": "neurolang.neurons",
    "NeuronSpec": "neurolang.neurons",
    "lif_step": "neurolang.neurons",
    "FAMILIES": "neurolang.models",
    "SpikeLM": "neurolang.models",
    "Spikformer": "neurolang.models",
    "SpikingClassifier": "neurolang.models",
    "build_model": "neurolang.models",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())

"""The model families and their registry.

Each family is one module in its paper's words: ``spikformer`` (SpikeBERT's Spikformer),
``spikelm`` (SpikeLM's BERT with spiking inputs), ``spike_driven`` (the Spike-driven
Transformer's membrane shortcut: every weight multiplication reads spikes), ``pooled`` (a spiking MLP over pooled
sentence embeddings, the strict-NIR model). :data:`FAMILIES` maps a configuration's ``block``
to its class; :func:`build_model` builds the model a configuration names, and
:data:`FOLDER_FORMATS` tells ``neurolang.checkpoint`` how to read each family's folder.

Adding a family: its module, one line in :data:`FAMILIES` (and its name in
``neurolang.config.BLOCKS``), one entry per target table (backends need none).
"""

from __future__ import annotations

from typing import Any

from neurolang.config import ConfigError, SpikformerConfig
from neurolang.models.base import FORMAT, ClassificationHead, SpikingClassifier
from neurolang.models.pooled import (
    POOLED_FORMAT,
    PooledClassifierConfig,
    PooledSpikingClassifier,
    calibrate_rates,
)
from neurolang.models.spike_driven import SpikeDriven
from neurolang.models.spikelm import SpikeLM
from neurolang.models.spikformer import Spikformer

FAMILIES: dict[str, type[SpikingClassifier]] = {
    "spikformer": Spikformer,
    "spikelm": SpikeLM,
    "spike_driven": SpikeDriven,
}

# folder format -> (the configuration's reader, the builder)
FOLDER_FORMATS: dict[str, tuple[Any, Any]] = {
    FORMAT: (SpikformerConfig.from_dict, lambda config: build_model(config)),
    POOLED_FORMAT: (PooledClassifierConfig.from_dict, PooledSpikingClassifier),
}


def build_model(config: SpikformerConfig | PooledClassifierConfig):
    """A new model of the family ``config`` names (``config.block``), initialised."""
    if isinstance(config, PooledClassifierConfig):
        return PooledSpikingClassifier(config)
    if config.block not in FAMILIES:
        raise ConfigError(f"no model family {config.block!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[config.block](config)


__all__ = ["FAMILIES", "FOLDER_FORMATS", "ClassificationHead", "PooledClassifierConfig",
           "PooledSpikingClassifier", "SpikeDriven", "SpikeLM", "Spikformer", "SpikingClassifier",
           "build_model", "calibrate_rates"]

"""neurolang's own Lava processes, one module each with its process models.

Lava looks for a process's models in the module that defines the process, then re-executes
every ``.py`` file of its folder, once per module of the package and per process of the
network, so each process lives with its models, this package holds Lava processes and what
they share (``schedule``, ``numerics``) only, and ``process_models`` hands Lava the models
directly (``LavaNetwork.run``: no search at all). Needs Lava (the Lava environment);
importable under Python 3.10 without torch.
"""

import sys

from neurolang.lava.processes.attention import SpikeAttention
from neurolang.lava.processes.coincidence import CoincidenceSum
from neurolang.lava.processes.dense import TokenDense
from neurolang.lava.processes.elastic import ElasticBiSpike
from neurolang.lava.processes.encoder import TokenEncoder
from neurolang.lava.processes.gate import SpikeGate
from neurolang.lava.processes.lif import ReferenceLIF
from neurolang.lava.processes.logits import LogitsReadout
from neurolang.lava.processes.readout import TokenReadout
from neurolang.lava.processes.residual import Residual

__all__ = ["process_models", "CoincidenceSum", "ElasticBiSpike", "LogitsReadout", "ReferenceLIF",
           "Residual", "SpikeAttention", "SpikeGate", "TokenDense", "TokenEncoder",
           "TokenReadout"]


def process_models(tag: str) -> dict[type, type]:
    """Each process class of this package -> its process model tagged ``tag``
    (``floating_pt`` or ``fixed_pt``), as Lava's own search would select it."""
    found = {}
    for name, module in sorted(sys.modules.items()):
        if not name.startswith(f"{__name__}.") or module is None:
            continue
        for value in vars(module).values():
            proc = getattr(value, "implements_process", None)
            if (isinstance(value, type) and proc is not None and value.__module__ == name
                    and tag in getattr(value, "tags", ())):
                found[proc] = value
    return found

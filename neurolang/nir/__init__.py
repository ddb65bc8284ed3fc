"""neurolang's NIR files, torch-free: both the torch side (``neurolang.export``) and the Lava
side (``neurolang.lava``, Python 3.10 without torch) read model files through here.

- ``neurolang.nir.nodes``: the extension node types (``neurolang.Embedding``, ...) and their
  (de)serialisation;
- ``neurolang.nir.lif``: neurolang's neuron specification as NIR ``LIF`` parameters, and back;
- ``neurolang.nir.io``: reading and writing files, the root metadata, ``NIRError``;
- ``neurolang.nir.flatten``: nested graphs inlined, topological order, shape checks.

Inside this package ``import nir`` is the NIR library and ``neurolang.nir`` is this package:
its modules use absolute imports only. Every node type and metadata key is specified in
``docs/nir-extensions.md``.
"""

from neurolang.nir.errors import NIRError
from neurolang.nir.flatten import FlatGraph, flatten
from neurolang.nir.io import FORMAT, FORMAT_VERSION, read_metadata, read_nir, write_nir
from neurolang.nir.lif import DEFAULT_DT, exact_tau, lif_parameters, lif_spec
from neurolang.nir.nodes import EXTENSIONS, ExtensionNode, extension_types, iter_nodes, node_type

__all__ = ["DEFAULT_DT", "EXTENSIONS", "FORMAT", "FORMAT_VERSION", "ExtensionNode", "FlatGraph",
           "NIRError", "exact_tau", "extension_types", "flatten", "iter_nodes", "lif_parameters",
           "lif_spec", "node_type", "read_metadata", "read_nir", "write_nir"]

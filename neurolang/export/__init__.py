"""Exchange formats, the torch side: neurolang models as NIR graphs and back.

The names are imported lazily, so that ``import neurolang.export`` does not pull in torch.
The file format itself is ``neurolang.nir`` (torch-free, shared with the Lava side); the Lava
simulator is ``neurolang.lava``.
"""

from neurolang.lazy import lazy_exports

_EXPORTS = {
    "NIRError": "neurolang.nir.errors",
    "read_nir": "neurolang.nir.io",
    "write_nir": "neurolang.nir.io",
    "flatten": "neurolang.nir.flatten",
    "export_nir": "neurolang.export.nir_export",
    "import_nir": "neurolang.export.nir_export",
    "to_nir": "neurolang.export.nir_export",
    "from_nir_graph": "neurolang.export.nir_export",
    "PooledClassifierConfig": "neurolang.models",
    "PooledSpikingClassifier": "neurolang.models",
    "load_snntorch": "neurolang.export.interop",
    "load_norse": "neurolang.export.interop",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())

"""Exchange formats: neurolang models as NIR graphs (and back), and the Lava simulation driver.

The names are imported lazily: ``neurolang.export.nir_format`` (the file format) is
torch-free and is imported by the Lava side, which runs without torch.
"""

from importlib import import_module

_EXPORTS = {
    "NIRError": "neurolang.export.nir_format",
    "read_nir": "neurolang.export.nir_format",
    "write_nir": "neurolang.export.nir_format",
    "flatten": "neurolang.export.nir_format",
    "export_nir": "neurolang.export.nir_export",
    "import_nir": "neurolang.export.nir_export",
    "to_nir": "neurolang.export.nir_export",
    "from_nir_graph": "neurolang.export.nir_export",
    "PooledClassifierConfig": "neurolang.export.pooled",
    "PooledSpikingClassifier": "neurolang.export.pooled",
    "load_snntorch": "neurolang.export.interop",
    "load_norse": "neurolang.export.interop",
    "simulate_lava": "neurolang.export.simulate",
    "LavaError": "neurolang.export.simulate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neurolang.export' has no attribute {name!r}")

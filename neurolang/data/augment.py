"""SpikeBERT's data augmentation for stage 2 (Tang et al. 2019, "Distilling Task-Specific
Knowledge from BERT into Simple Neural Networks", section 3.3).

Every train sentence gets up to ``copies`` augmented copies (Tang et al.'s ``n_iter`` = 20),
the teacher labels them (its argmax becomes their hard label, its logits and hidden states
are cached like any other row) and they join the stage-2 train split. SpikeBERT reports
-0.76 points on average when the augmentation is removed.

One copy of a sentence ``w_1 ... w_n`` (its words) is made in two steps:

1. word by word, one uniform draw ``u_i ~ U[0, 1)`` per word:

   * ``u_i < p_mask``: masking, ``w_i`` becomes the teacher's mask token (``[MASK]``,
     ``<mask>``);
   * ``p_mask <= u_i < p_mask + p_replace``: replacement, ``w_i`` becomes one of its ``k``
     nearest neighbours, picked uniformly at random (a word without neighbours stays);
   * else ``w_i`` stays.

   The two are exclusive, so ``p_mask + p_replace <= 1``. Tang et al.: ``p_mask = p_replace =
   0.1``.
2. n-gram sampling: with probability ``p_ngram`` (Tang et al.: ``p_ng = 0.25``) only a random
   n-gram of the result is kept: ``n ~ U{1, ..., max_ngram}`` (default 5), the start uniform
   over the ``len - n + 1`` possible ones (a sentence of at most ``n`` words is kept whole).

A copy identical to the original, or to an earlier copy of the same sentence, is dropped, so
a sentence has at most ``copies`` copies (none when every probability is 0). Everything is
seeded: the copies of row ``r`` come from a generator seeded with ``(seed, r)``, the same seed
gives the same copies whatever the other rows.

**Words.** Space-separated text: a word is a whitespace token (punctuation attached to it is
part of it; copies join the words with one space). CJK text has no spaces: a sentence is
"CJK" when more than half of its alphanumeric characters are CJK ideographs or kana; then a
word is a single character (every CJK ideograph, kana or CJK/full-width punctuation mark is
a word of its own; runs of other non-space characters, e.g. a Latin name or a number, stay one
word). The words of a CJK copy are joined without spaces, except between two non-CJK words.
The choice is made per sentence, so mixed data sets work.

**Neighbours.** Tang et al. replace a word by another of the same part of speech; there is no
offline POS tagger here, so the candidates are the word's ``k`` nearest neighbours in the
teacher's input-embedding space (cosine similarity), among the whole-word vocabulary entries:
no special tokens (nor ``[unused..]``/``<...>`` entries), no WordPiece ``##`` continuations,
for a SentencePiece (``▁``) or byte-level BPE (``Ġ``) vocabulary only the pieces that start a
word, and only entries with a letter or digit in them. A text word has neighbours only when
the tokenizer makes it one such entry (``tokenizer.tokenize(word)`` is one whole-word piece;
an uncased tokenizer thus matches ``Movie`` to ``movie``); any other word (``movie,``,
``unbelievable`` split into pieces) is left as it is. The table is computed only for the
words of the texts, in chunks, so 8k words against a 30k vocabulary stays cheap.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# CJK ideographs (unified, extension A and B+, compatibility) and Japanese kana
_CJK_LETTERS = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
                (0x20000, 0x2FA1F))
# CJK symbols and punctuation, full-width forms (，。！ ...)
_CJK_MARKS = ((0x3000, 0x303F), (0xFF00, 0xFFEF))


def _in(char: str, ranges) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in ranges)


def is_cjk_char(char: str) -> bool:
    """A CJK ideograph, a kana, or a CJK / full-width punctuation mark: a word of its own."""
    return _in(char, _CJK_LETTERS) or _in(char, _CJK_MARKS)


def is_cjk_text(text: str) -> bool:
    """More than half of the alphanumeric characters are CJK ideographs or kana."""
    alnum = [c for c in text if c.isalnum()]
    cjk = sum(1 for c in alnum if _in(c, _CJK_LETTERS))
    return bool(alnum) and 2 * cjk > len(alnum)


def split_words(text: str) -> tuple[list[str], bool]:
    """The words of a sentence and whether it is CJK (then a word is one character)."""
    if not is_cjk_text(text):
        return text.split(), False
    words: list[str] = []
    run = ""
    for char in text:
        if char.isspace() or is_cjk_char(char):
            if run:
                words.append(run)
                run = ""
            if not char.isspace():
                words.append(char)
        else:
            run += char
    if run:
        words.append(run)
    return words, True


def _is_cjk_word(word: str) -> bool:
    return len(word) == 1 and is_cjk_char(word)


def join_words(words: Sequence[str], cjk: bool) -> str:
    """Words back to a sentence: spaces between them, or (CJK) none except between two
    non-CJK words."""
    if not cjk:
        return " ".join(words)
    out = ""
    for i, word in enumerate(words):
        if i and not _is_cjk_word(word) and not _is_cjk_word(words[i - 1]):
            out += " "
        out += word
    return out


def augment_sentence(text: str, *, p_mask: float, p_replace: float, p_ngram: float,
                     max_ngram: int, mask_token: str,
                     neighbours: Mapping[str, Sequence[str]], rng: random.Random) -> str:
    """One augmented copy of ``text`` (the rules of the module docstring), drawn from ``rng``."""
    words, cjk = split_words(text)
    out = []
    for word in words:
        u = rng.random()
        if u < p_mask:
            out.append(mask_token)
        elif u < p_mask + p_replace and neighbours.get(word):
            out.append(rng.choice(list(neighbours[word])))
        else:
            out.append(word)
    if out and rng.random() < p_ngram:
        n = rng.randint(1, max_ngram)
        if n < len(out):
            start = rng.randint(0, len(out) - n)
            out = out[start : start + n]
    return join_words(out, cjk)


def augment_texts(texts: Sequence[str], *, copies: int, p_mask: float = 0.1,
                  p_replace: float = 0.1, p_ngram: float = 0.25, max_ngram: int = 5,
                  mask_token: str, neighbours: Mapping[str, Sequence[str]] | None = None,
                  seed: int = 0) -> list[tuple[int, str]]:
    """Up to ``copies`` augmented copies of every text, as ``(source row, text)`` in row
    order; copies identical to the original (its words re-joined) or to an earlier copy of
    the same row are dropped. Row ``r`` draws from ``random.Random(f"{seed}:{r}")``."""
    neighbours = neighbours or {}
    rows: list[tuple[int, str]] = []
    for row, text in enumerate(texts):
        words, cjk = split_words(text or "")
        if not words:
            continue
        rng = random.Random(f"{seed}:{row}")
        seen = {join_words(words, cjk), text}
        for _ in range(copies):
            copy = augment_sentence(text, p_mask=p_mask, p_replace=p_replace, p_ngram=p_ngram,
                                    max_ngram=max_ngram, mask_token=mask_token,
                                    neighbours=neighbours, rng=rng)
            if copy not in seen:
                seen.add(copy)
                rows.append((row, copy))
    return rows


def text_words(texts: Iterable[str]) -> set[str]:
    """Every word (as :func:`split_words` cuts them) occurring in ``texts``."""
    words: set[str] = set()
    for text in texts:
        words.update(split_words(text or "")[0])
    return words


# ---- the neighbour table ------------------------------------------------------------------

_BRACKETED = re.compile(r"^(\[.*\]|<.*>)$")


def _word_marker(vocab: Mapping[str, int]) -> str:
    """``"▁"`` (SentencePiece), ``"Ġ"`` (byte-level BPE) or ``""`` (WordPiece): the marker
    the pieces starting a word carry, if a tenth of the vocabulary carries one."""
    for marker in ("▁", "Ġ"):
        if 10 * sum(1 for token in vocab if token.startswith(marker)) > len(vocab):
            return marker
    return ""


def _whole_words(tokenizer: Any) -> dict[str, tuple[str, int]]:
    """Whole-word vocabulary entries: {piece: (word, id)}."""
    vocab = tokenizer.get_vocab()
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    marker = _word_marker(vocab)
    entries = {}
    for piece, index in vocab.items():
        if piece in special or _BRACKETED.match(piece):
            continue
        if marker:
            if not piece.startswith(marker) or len(piece) == len(marker):
                continue
            word = piece[len(marker):]
            if marker == "Ġ" and hasattr(tokenizer, "convert_tokens_to_string"):
                word = tokenizer.convert_tokens_to_string([piece]).strip()
        elif piece.startswith("##"):
            continue
        else:
            word = piece
        if word and any(c.isalnum() for c in word):
            entries[piece] = (word, int(index))
    return entries


def _entry(tokenizer: Any, word: str, entries: Mapping[str, tuple[str, int]],
           marker: str) -> str | None:
    """The whole-word piece ``word`` is, or ``None`` if the tokenizer makes it anything else."""
    if hasattr(tokenizer, "tokenize"):
        pieces = tokenizer.tokenize(" " + word if marker == "Ġ" else word)
        return pieces[0] if len(pieces) == 1 and pieces[0] in entries else None
    piece = marker + word
    return piece if piece in entries else None


def embedding_neighbours(tokenizer: Any, embedding_matrix: Any, k: int,
                         words: Iterable[str] | None = None,
                         chunk: int = 512) -> dict[str, list[str]]:
    """``{word: its k nearest whole-word entries}`` by cosine similarity of the rows of
    ``embedding_matrix`` (the teacher's input embeddings, a tensor or array ``(vocab, D)``),
    nearest first (ties: lower id first), the word itself excluded. ``words``: the words to
    look up (the words of the texts; default: every whole-word entry); a word that is not one
    whole-word entry gets no neighbours (it is absent from the table)."""
    import numpy as np

    if hasattr(embedding_matrix, "detach"):
        embedding_matrix = embedding_matrix.detach().float().cpu().numpy()
    matrix = np.asarray(embedding_matrix, dtype=np.float32)
    entries = {piece: value for piece, value in _whole_words(tokenizer).items()
               if value[1] < matrix.shape[0]}
    marker = _word_marker(tokenizer.get_vocab())
    if words is None:
        queries = {word: piece for piece, (word, _) in entries.items()}
    else:
        queries = {}
        for word in sorted(set(words)):
            piece = _entry(tokenizer, word, entries, marker)
            if piece is not None:
                queries[word] = piece
    if not queries or k < 1 or len(entries) < 2:
        return {}
    pieces = sorted(entries, key=lambda p: entries[p][1])
    ids = np.array([entries[p][1] for p in pieces])
    names = [entries[p][0] for p in pieces]
    position = {p: i for i, p in enumerate(pieces)}
    unit = matrix[ids]
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    k = min(k, len(pieces) - 1)
    table: dict[str, list[str]] = {}
    items = sorted(queries.items())
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        rows = np.array([position[piece] for _, piece in part])
        sims = unit[rows] @ unit.T
        sims[np.arange(len(rows)), rows] = -np.inf  # never the word itself
        best = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # k < len(pieces)
        for j, (word, _) in enumerate(part):
            order = sorted(best[j], key=lambda c: (-sims[j, c], c))
            found = [names[c] for c in order[:k] if names[c] != word]
            if found:
                table[word] = found
    return table


def teacher_labels(teacher: Any, texts: Sequence[str], pairs: Sequence[str] | None,
                   max_length: int, device: Any = "cpu", batch_size: int = 64,
                   what: str = "the augmented rows") -> list[int]:
    """The teacher's argmax class of every text (``pairs``: the second texts of a pair task),
    encoded as stage 2 encodes its rows (truncated to ``max_length``); eval mode, batches
    sorted by length, no autograd. The only function here besides the table that needs torch."""
    import torch

    from neurolang.progress import progress

    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    labels = [0] * len(texts)
    tokenizer = teacher.tokenizer
    was_training = teacher.training
    teacher.eval()
    with torch.no_grad():
        for start in progress(range(0, len(order), batch_size), desc=f"stage 2: teacher labels "
                              f"of {what}", unit="batch"):
            rows = order[start : start + batch_size]
            encoded = tokenizer([texts[i] for i in rows],
                                [pairs[i] for i in rows] if pairs is not None else None,
                                truncation=True, max_length=max_length, padding=True,
                                return_attention_mask=True,
                                return_token_type_ids=pairs is not None, return_tensors="pt")
            types = encoded.get("token_type_ids")
            out = teacher(encoded["input_ids"].to(device), encoded["attention_mask"].to(device),
                          types.to(device) if types is not None else None)
            for i, label in zip(rows, out.logits.argmax(-1).tolist(), strict=True):
                labels[i] = int(label)
    teacher.train(was_training)
    return labels

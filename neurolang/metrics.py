"""Classification metrics: accuracy, F1, macro-F1 and Matthews correlation, computed by
scikit-learn (``sklearn.metrics``); this module checks the inputs, names the metrics and
fixes the conventions below (a test checks them against worked examples).

All functions take predicted class ids and true class ids (lists, numpy arrays or torch
tensors of the same length). ``compute_metrics`` also accepts logits of shape ``(N, C)``
and takes their arg-max.

Definitions, with ``C`` the confusion matrix, ``C[i, j]`` = number of examples of true class
``i`` predicted as class ``j``, ``s = sum(C)``:

- accuracy = ``trace(C) / s``.
- F1 of a positive class ``p``: ``2 TP / (2 TP + FP + FN)``, 0 when there are no true and no
  predicted positives.
- macro-F1: the unweighted mean of the per-class F1 over the classes (``num_labels`` when given,
  else every class that occurs in the labels or the predictions).
- Matthews correlation, multiclass (Gorodkin 2004), with ``t_k = sum_j C[k, j]`` (times class
  ``k`` truly occurs), ``p_k = sum_i C[i, k]`` (times it was predicted), ``c = trace(C)``::

      MCC = (c s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2) (s^2 - sum_k t_k^2))

  For two classes this is the usual ``(TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))``.
  It is 0 when the denominator is 0 (every prediction or every label in one class).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "METRICS",
    "accuracy",
    "canonical_metric",
    "compute_metrics",
    "confusion_matrix",
    "f1_score",
    "macro_f1",
    "matthews_corrcoef",
    "selection_metrics",
]


def _as_int_array(values: Any, what: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one class id per example (1-D), got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.equal(np.mod(array, 1), 0)):
            raise ValueError(f"{what} must be integer class ids, got dtype {array.dtype}")
        array = array.astype(np.int64)
    return array.astype(np.int64, copy=False)


def _check_pair(preds: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    preds = _as_int_array(preds, "preds")
    labels = _as_int_array(labels, "labels")
    if preds.shape != labels.shape:
        raise ValueError(f"preds and labels differ in length: {len(preds)} vs {len(labels)}")
    if preds.size == 0:
        raise ValueError("cannot compute a metric on zero examples")
    if preds.min() < 0 or labels.min() < 0:
        raise ValueError(
            "class ids must be >= 0 (unlabelled examples, e.g. label -1, cannot be scored)"
        )
    return preds, labels


def confusion_matrix(preds: Any, labels: Any, num_labels: int | None = None) -> np.ndarray:
    """``C[i, j]`` = number of examples with true class ``i`` predicted as ``j``."""
    preds, labels = _check_pair(preds, labels)
    size = int(max(preds.max(), labels.max())) + 1
    if num_labels is not None:
        if size > num_labels:
            raise ValueError(f"class id {size - 1} is out of range for num_labels={num_labels}")
        size = num_labels
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (labels, preds), 1)
    return matrix


def accuracy(preds: Any, labels: Any) -> float:
    """Fraction of examples whose predicted class equals the true class."""
    from sklearn.metrics import accuracy_score

    preds, labels = _check_pair(preds, labels)
    return float(accuracy_score(labels, preds))


def f1_score(preds: Any, labels: Any, positive: int = 1) -> float:
    """Binary F1 of the class ``positive`` (default 1, as GLUE scores MRPC); 0 when it is
    neither in the labels nor predicted."""
    from sklearn.metrics import f1_score as sklearn_f1

    preds, labels = _check_pair(preds, labels)
    return float(sklearn_f1(labels, preds, labels=[positive], average="macro",
                            zero_division=0.0))


def macro_f1(preds: Any, labels: Any, num_labels: int | None = None) -> float:
    """Unweighted mean of the per-class F1 scores.

    With ``num_labels`` every class ``0..num_labels-1`` counts (a class that never occurs and is
    never predicted scores 0); without it, the classes present in labels or predictions count.
    """
    from sklearn.metrics import f1_score as sklearn_f1

    preds, labels = _check_pair(preds, labels)
    if num_labels is None:
        classes = np.union1d(preds, labels).tolist()
    else:
        confusion_matrix(preds, labels, num_labels)  # class ids within range
        classes = list(range(num_labels))
    return float(sklearn_f1(labels, preds, labels=classes, average="macro", zero_division=0.0))


def matthews_corrcoef(preds: Any, labels: Any) -> float:
    """Matthews correlation coefficient, binary or multiclass (Gorodkin's formula, see module);
    0 when every prediction or every label is one class."""
    from sklearn.metrics import matthews_corrcoef as sklearn_mcc

    preds, labels = _check_pair(preds, labels)
    return float(sklearn_mcc(labels, preds))


METRICS: dict[str, Callable[[Any, Any], float]] = {
    "accuracy": accuracy,
    "f1": f1_score,
    "macro_f1": macro_f1,
    "mcc": matthews_corrcoef,
}

_ALIASES = {
    "acc": "accuracy",
    "matthews_correlation": "mcc",
    "matthews_corrcoef": "mcc",
    "f1_macro": "macro_f1",
    "binary_f1": "f1",
}


def _canonical(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in METRICS:
        known = ", ".join(sorted(METRICS))
        raise ValueError(f"unknown metric {name!r}; known metrics: {known}")
    return key


def canonical_metric(name: str) -> str:
    """The registry name of a metric (``acc`` -> ``accuracy``, ``matthews_correlation`` ->
    ``mcc``); ``ValueError`` listing the known ones for anything else."""
    return _canonical(name)


def selection_metrics(
    task_metrics: Sequence[str], task_selection: str, override: str | None = None
) -> tuple[list[str], str]:
    """The metrics to report and the one that selects a checkpoint.

    ``override`` (a config's ``select_metric``; empty or ``None``: the task's own
    ``task_selection``) is added to the task's metrics when the task does not report it, so
    that e.g. SST-5 can be selected on multiclass MCC as IceSpike does.
    """
    names = [_canonical(name) for name in task_metrics]
    chosen = _canonical(override) if override else _canonical(task_selection)
    if chosen not in names:
        names.append(chosen)
    return names, chosen


def compute_metrics(task_metric_names: str | Sequence[str], preds: Any, labels: Any) -> dict:
    """Score predictions with each named metric: ``{"accuracy": 0.91, "mcc": 0.42, ...}``.

    ``preds`` may be class ids ``(N,)`` or logits / probabilities ``(N, C)`` (arg-max is taken).
    Names: ``accuracy``, ``f1`` (binary, positive class 1), ``macro_f1``, ``mcc``; also the aliases
    ``acc``, ``matthews_correlation``.
    """
    if isinstance(task_metric_names, str):
        task_metric_names = [task_metric_names]
    names = [_canonical(name) for name in task_metric_names]
    if hasattr(preds, "detach"):
        preds = preds.detach().cpu().numpy()
    preds = np.asarray(preds)
    if preds.ndim == 2:
        preds = preds.argmax(axis=-1)
    return {name: METRICS[name](preds, labels) for name in names}

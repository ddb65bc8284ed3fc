"""Classification metrics, checked against hand-worked examples."""

import math

import numpy as np
import pytest
import torch

from neurolang.metrics import (
    accuracy,
    compute_metrics,
    confusion_matrix,
    f1_score,
    macro_f1,
    matthews_corrcoef,
    selection_metrics,
)

# Binary example: TP = 2 (rows 0, 3), FP = 1 (row 1), FN = 1 (row 4), TN = 1 (row 2).
BINARY_PREDS = [1, 1, 0, 1, 0]
BINARY_LABELS = [1, 0, 0, 1, 1]

# Three classes; confusion matrix (rows true, columns predicted):
#   [[1, 1, 0],
#    [0, 2, 0],
#    [1, 0, 1]]
MULTI_LABELS = [0, 0, 1, 1, 2, 2]
MULTI_PREDS = [0, 1, 1, 1, 2, 0]


def test_confusion_matrix_rows_are_true_classes():
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    np.testing.assert_array_equal(confusion_matrix(MULTI_PREDS, MULTI_LABELS), expected)


def test_accuracy_counts_exact_matches():
    assert accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 0.75
    assert accuracy(MULTI_PREDS, MULTI_LABELS) == pytest.approx(4 / 6)


def test_binary_f1_of_the_positive_class():
    # 2 TP / (2 TP + FP + FN) = 4 / 6
    assert f1_score(BINARY_PREDS, BINARY_LABELS) == pytest.approx(2 / 3)
    # class 0 as positive: TP = 1, FP = 1 (row 4), FN = 1 (row 1) -> 2 / 4
    assert f1_score(BINARY_PREDS, BINARY_LABELS, positive=0) == pytest.approx(0.5)


def test_f1_is_zero_without_any_positive():
    assert f1_score([0, 0], [0, 0]) == 0.0


def test_macro_f1_is_the_mean_of_per_class_f1():
    # class 0: 2/4, class 1: 4/5, class 2: 2/3
    assert macro_f1(MULTI_PREDS, MULTI_LABELS) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_macro_f1_with_num_labels_counts_absent_classes_as_zero():
    assert macro_f1([0, 1], [0, 1], num_labels=3) == pytest.approx(2 / 3)


def test_binary_mcc_hand_worked():
    # (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 - 1) / sqrt(3 * 3 * 2 * 2)
    assert matthews_corrcoef(BINARY_PREDS, BINARY_LABELS) == pytest.approx(1 / 6)


def test_multiclass_mcc_gorodkin_hand_worked():
    # s = 6, c = 4, t = (2, 2, 2), p = (2, 3, 1):
    # (4 * 6 - 12) / sqrt((36 - 14) * (36 - 12))
    assert matthews_corrcoef(MULTI_PREDS, MULTI_LABELS) == pytest.approx(12 / math.sqrt(22 * 24))


def test_mcc_extremes():
    assert matthews_corrcoef([0, 1, 2, 1], [0, 1, 2, 1]) == pytest.approx(1.0)
    assert matthews_corrcoef([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert matthews_corrcoef([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0  # one predicted class


def test_gorodkin_equals_the_binary_formula_on_random_data():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, 2, 50)
        preds = rng.integers(0, 2, 50)
        tp = np.sum((preds == 1) & (labels == 1))
        tn = np.sum((preds == 0) & (labels == 0))
        fp = np.sum((preds == 1) & (labels == 0))
        fn = np.sum((preds == 0) & (labels == 1))
        binary = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        assert matthews_corrcoef(preds, labels) == pytest.approx(binary)


def _mcc_by_covariance(preds, labels, classes):
    """Gorodkin's definition, independently of the confusion-matrix formula: the correlation
    of the one-hot matrices X (predictions) and Y (labels), cov(X, Y) = sum over classes of
    the covariance of the indicator columns."""
    x = np.eye(classes)[preds]
    y = np.eye(classes)[labels]

    def cov(a, b):
        return float(((a - a.mean(0)) * (b - b.mean(0))).sum())

    return cov(x, y) / math.sqrt(cov(x, x) * cov(y, y))


@pytest.mark.parametrize("classes", [4, 5])
def test_multiclass_mcc_equals_the_covariance_definition(classes):
    rng = np.random.default_rng(classes)
    for _ in range(10):
        labels = rng.integers(0, classes, 300)
        preds = np.where(rng.random(300) < 0.5, labels, rng.integers(0, classes, 300))
        assert matthews_corrcoef(preds, labels) == pytest.approx(
            _mcc_by_covariance(preds, labels, classes))


def test_five_class_mcc_hand_worked():
    # SST-5-like: confusion matrix (rows true) diag(2, 1, 1, 1, 2) plus one 0->1, one 3->4
    labels = [0, 0, 0, 1, 2, 3, 3, 4, 4]
    preds = [0, 0, 1, 1, 2, 3, 4, 4, 4]
    # s = 9, c = 7, t = (3, 1, 1, 2, 2), p = (2, 2, 1, 1, 3): sum p t = 6+2+1+2+6 = 17
    # (7 * 9 - 17) / sqrt((81 - (4+4+1+1+9)) * (81 - (9+1+1+4+4)))
    expected = (63 - 17) / math.sqrt((81 - 19) * (81 - 19))
    assert matthews_corrcoef(preds, labels) == pytest.approx(expected)
    assert compute_metrics(["mcc"], np.eye(5)[preds], labels)["mcc"] == pytest.approx(expected)


def test_selection_metric_override_is_added_to_the_reported_ones():
    assert selection_metrics(["accuracy", "macro_f1"], "accuracy") == (
        ["accuracy", "macro_f1"], "accuracy")
    assert selection_metrics(["accuracy", "macro_f1"], "accuracy", "matthews_correlation") == (
        ["accuracy", "macro_f1", "mcc"], "mcc")
    assert selection_metrics(["f1", "accuracy"], "f1", "acc") == (["f1", "accuracy"], "accuracy")
    with pytest.raises(ValueError, match="unknown metric 'kappa'"):
        selection_metrics(["accuracy"], "accuracy", "kappa")


def test_agrees_with_sklearn_when_installed():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 200)
    preds = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 4, 200))
    assert matthews_corrcoef(preds, labels) == pytest.approx(
        sklearn_metrics.matthews_corrcoef(labels, preds)
    )
    assert macro_f1(preds, labels) == pytest.approx(
        sklearn_metrics.f1_score(labels, preds, average="macro")
    )
    assert f1_score(preds % 2, labels % 2) == pytest.approx(
        sklearn_metrics.f1_score(labels % 2, preds % 2)
    )


def test_compute_metrics_takes_names_logits_and_tensors():
    logits = torch.tensor([[0.1, 0.9], [2.0, -1.0], [0.0, 3.0], [0.3, 0.2], [1.0, 0.0]])
    scores = compute_metrics(["f1", "accuracy", "mcc"], logits, torch.tensor(BINARY_LABELS))
    assert list(scores) == ["f1", "accuracy", "mcc"]
    # arg-max of the logits is [1, 0, 1, 0, 0]: TP 1, TN 1, FP 1, FN 2
    assert scores["accuracy"] == pytest.approx(2 / 5)
    assert scores["f1"] == pytest.approx(2 / (2 + 1 + 2))
    assert scores["mcc"] == pytest.approx((1 * 1 - 1 * 2) / math.sqrt(2 * 3 * 2 * 3))
    assert compute_metrics("matthews_correlation", [0, 1], [0, 1]) == {"mcc": 1.0}


def test_bad_metric_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown metric 'auc'.*accuracy"):
        compute_metrics(["auc"], [0], [0])
    with pytest.raises(ValueError, match="differ in length"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="zero examples"):
        accuracy([], [])
    with pytest.raises(ValueError, match="-1"):
        accuracy([0, 1], [0, -1])

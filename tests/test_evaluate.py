"""asymcl.evaluate against hand-computed cases and the paper's binary formulas."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from asymcl.evaluate import classification_metrics


def _pairwise_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC as the probability that a positive outscores a negative (ties count 1/2)."""
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_binary_hand_computed():
    # class 1 ("shirt") is the minority / positive class
    y_true = [0, 0, 0, 0, 1, 1]
    y_pred = [0, 0, 0, 1, 1, 0]
    p1 = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.38])
    scores = np.stack([1 - p1, p1], axis=1)
    m = classification_metrics(y_true, y_pred, scores, ["T-shirt", "Shirt"])
    # TP = 1 (shirt as shirt), FN = 1, TN = 3, FP = 1
    tp, fn, tn, fp = 1, 1, 3, 1
    assert m["accuracy"] == pytest.approx(100 * (tp + tn) / (tp + tn + fn + fp))  # paper Eq. 27
    assert m["uwa"] == pytest.approx(100 * 0.5 * (tp / (tp + fn) + tn / (tn + fp)))  # paper Eq. 28
    assert m["accuracy"] == pytest.approx(400 / 6)
    assert m["uwa"] == pytest.approx(62.5)
    assert m["per_class_recall"] == {"T-shirt": pytest.approx(75.0), "Shirt": pytest.approx(50.0)}
    assert m["confusion"] == [[3, 1], [1, 1]]
    # positives 0.7, 0.38 vs negatives 0.1, 0.4, 0.35, 0.8: 3 + 2 wins of 8 pairs
    assert m["roc_auc"] == pytest.approx(5 / 8)
    assert m["roc_auc_note"] is None
    assert m["n_test"] == 6 and m["n_test_per_class"] == {"T-shirt": 4, "Shirt": 2}


def test_multiclass_against_pairwise_definition():
    rng = np.random.default_rng(0)
    y_true = np.array([0] * 7 + [1] * 5 + [2] * 4)
    logits = rng.normal(size=(16, 3)) + 1.5 * np.eye(3)[y_true]
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y_pred = scores.argmax(1)
    m = classification_metrics(y_true, y_pred, scores, ["a", "b", "c"])
    recalls = [100 * np.mean(y_pred[y_true == k] == k) for k in range(3)]
    assert list(m["per_class_recall"].values()) == pytest.approx(recalls)
    assert m["uwa"] == pytest.approx(np.mean(recalls))
    assert m["accuracy"] == pytest.approx(100 * np.mean(y_pred == y_true))
    cm = np.zeros((3, 3), int)
    for t, p in zip(y_true, y_pred):
        cm[t, p] += 1
    assert m["confusion"] == cm.tolist()
    ovr = [_pairwise_auc(scores[y_true == k, k], scores[y_true != k, k]) for k in range(3)]
    assert m["roc_auc"] == pytest.approx(np.mean(ovr))


def test_absent_class_gives_none_with_reason():
    y_true = [0, 0, 1, 1]
    y_pred = [0, 2, 1, 1]
    scores = np.full((4, 3), 1 / 3)
    m = classification_metrics(y_true, y_pred, scores, ["a", "b", "c"])
    assert m["per_class_recall"] == {"a": 50.0, "b": 100.0, "c": None}
    assert m["uwa"] == pytest.approx(75.0)  # mean over the classes present
    assert m["roc_auc"] is None and "c" in m["roc_auc_note"]
    assert m["confusion"] == [[1, 0, 1], [0, 2, 0], [0, 0, 0]]


def test_all_majority_predictions_show_the_imbalance_gap():
    # 95:5 test set, a model that always says "majority": high accuracy, UWA 50
    y_true = [0] * 19 + [1]
    m = classification_metrics(y_true, [0] * 20, None, ["maj", "min"])
    assert m["accuracy"] == pytest.approx(95.0)
    assert m["uwa"] == pytest.approx(50.0)
    assert m["roc_auc"] is None and m["roc_auc_note"] == "no scores given"


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="outside"):
        classification_metrics([0, 3], [0, 1], None, ["a", "b"])
    with pytest.raises(ValueError, match="scores"):
        classification_metrics([0, 1], [0, 1], np.zeros((2, 3)), ["a", "b"])

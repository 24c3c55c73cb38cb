"""Evaluation metrics from true labels, predicted labels and class scores.

With ``K`` classes, ``n_k`` test samples of class ``k`` and ``C[i, j]`` the number of
samples of true class ``i`` predicted as class ``j`` (the confusion matrix, rows = truth):

- accuracy (percent)            ``100 * sum_k C[k, k] / sum_{i,j} C[i, j]``
  (the paper's Eq. 27, ``(TP + TN) / (TP + TN + FP + FN)`` in the binary case);
- recall of class ``k`` (percent) ``100 * C[k, k] / n_k`` (undefined, reported ``None``,
  when ``n_k = 0``);
- UWA, unweighted accuracy (percent) ``(1 / K') * sum_k recall_k`` over the ``K'`` classes
  present in the test labels (the paper's Eq. 28,
  ``(TP / (TP + FN) + TN / (TN + FP)) / 2`` in the binary case; scikit-learn calls it
  balanced accuracy);
- ROC-AUC (a fraction in [0, 1], the usual scale; the paper does not report it): binary,
  the area under the ROC curve of the score of the last class (the minority class in the
  paper's setups, taken as "positive"); multi-class, the unweighted mean over classes of the
  one-vs-rest AUCs. It is ``None`` when a class is missing from the test labels (one-vs-rest
  needs positives and negatives of every class), with the reason in ``roc_auc_note``.

Long-tailed (> 2 classes) runs add many/medium/few-shot accuracy (`shot_group_metrics`):
classes are grouped by their number of *training* images ``t_k`` -- many-shot
``t_k > many`` (default 100), few-shot ``t_k < few`` (default 20), medium-shot otherwise
(the usual long-tailed-recognition thresholds) -- and a group's accuracy is the mean of its
classes' recalls (percent), i.e. the UWA restricted to the group; it equals the group's
accuracy on a class-balanced test set and is ``None`` for an empty group.

Computation is delegated to scikit-learn.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, roc_auc_score


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    scores: np.ndarray | None,
    classes: Sequence[str],
) -> dict[str, Any]:
    """Metrics for class indices ``y_true``/``y_pred`` in ``range(len(classes))``.

    ``scores`` is ``[N, K]`` (e.g. softmax probabilities; any monotone score works for the
    AUC) or ``None`` to skip the AUC. Returns a JSON-ready dict with ``accuracy``, ``uwa``,
    ``per_class_recall`` (class label -> percent or ``None``), ``confusion`` (nested list,
    rows = true class in ``classes`` order), ``roc_auc``, ``roc_auc_note``, ``n_test`` and
    ``n_test_per_class``.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    k = len(classes)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal 1-d shapes")
    if y_true.size == 0:
        raise ValueError("no test samples to evaluate")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= k:
            raise ValueError(f"{name} holds class indices outside [0, {k}) for classes {list(classes)}")

    labels = np.arange(k)
    confusion = confusion_matrix(y_true, y_pred, labels=labels)
    support = confusion.sum(axis=1)
    recalls = [100.0 * confusion[i, i] / support[i] if support[i] > 0 else None for i in range(k)]
    present = [r for r in recalls if r is not None]

    roc_auc, note = None, None
    if scores is None:
        note = "no scores given"
    else:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (y_true.size, k):
            raise ValueError(f"scores must be [N, K] = [{y_true.size}, {k}], got {list(scores.shape)}")
        absent = [str(classes[i]) for i in range(k) if support[i] == 0]
        if absent:
            note = f"class(es) {absent} absent from the test labels: ROC-AUC is undefined"
        elif k == 2:
            roc_auc = float(roc_auc_score(y_true, scores[:, 1]))
        else:
            roc_auc = float(roc_auc_score(y_true, scores, multi_class="ovr", average="macro", labels=labels))

    return {
        "accuracy": 100.0 * float(accuracy_score(y_true, y_pred)),
        "uwa": float(np.mean(present)),
        "per_class_recall": {str(c): (None if r is None else float(r)) for c, r in zip(classes, recalls)},
        "confusion": confusion.astype(int).tolist(),
        "roc_auc": roc_auc,
        "roc_auc_note": note,
        "n_test": int(y_true.size),
        "n_test_per_class": {str(c): int(s) for c, s in zip(classes, support)},
    }


SHOT_GROUPS = ("many", "medium", "few")


def shot_group(n_train: int, many: int = 100, few: int = 20) -> str:
    """``"many"`` when ``n_train > many``, ``"few"`` when ``n_train < few``, else ``"medium"``."""
    if n_train > many:
        return "many"
    if n_train < few:
        return "few"
    return "medium"


def shot_group_metrics(
    per_class_recall: dict[str, float | None],
    n_train_per_class: dict[str, int],
    many: int = 100,
    few: int = 20,
) -> dict[str, Any]:
    """Many/medium/few-shot accuracy from per-class recalls and training counts.

    Returns ``many_shot_accuracy``, ``medium_shot_accuracy``, ``few_shot_accuracy`` (mean
    recall of the group's classes with test images, percent, ``None`` when there is none)
    and ``shot_groups`` (group -> class labels, plus the thresholds used).
    """
    missing = sorted(set(per_class_recall) - set(n_train_per_class))
    if missing:
        raise ValueError(f"no training count for class(es) {missing}")
    groups: dict[str, list[str]] = {g: [] for g in SHOT_GROUPS}
    for label in per_class_recall:
        groups[shot_group(int(n_train_per_class[label]), many, few)].append(label)
    out: dict[str, Any] = {}
    for g in SHOT_GROUPS:
        recalls = [per_class_recall[c] for c in groups[g] if per_class_recall[c] is not None]
        out[f"{g}_shot_accuracy"] = float(np.mean(recalls)) if recalls else None
    out["shot_groups"] = {**groups, "thresholds": {"many": many, "few": few}}
    return out

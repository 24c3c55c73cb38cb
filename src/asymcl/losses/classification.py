r"""Classifier losses for one-stage training of encoder + linear head under class imbalance.

All take logits :math:`f(x) \in \mathbb{R}^C` ([N, C]) and integer labels ([N]), compute in
float32 (float64 for float64 logits), and reduce by ``reduction`` ("mean": the plain mean
over the N samples of the batch, "sum", or "none": per-sample [N]). ``class_counts`` are the
training set's per-class counts :math:`n_c` (position = class id); any positive multiple,
e.g. priors :math:`\pi_c = n_c / n`, gives the same loss, since each method depends only on
the ratios. Every class needs :math:`n_c > 0`.

Prediction is :math:`\arg\max_c f_c(x)` on the *raw* logits for all of them: the adjustments
below act only inside the training loss (Menon et al. and Ren et al. both predict with the
unadjusted logits, which then estimate the balanced posterior).

=========================  =============================================================
``CrossEntropy``           :math:`-\log \mathrm{softmax}(f)_y`
``WeightedCrossEntropy``   :math:`w_y \cdot (-\log \mathrm{softmax}(f)_y)`,
                           :math:`w_c = n / (C\, n_c)`
``LogitAdjustedCrossEntropy``  :math:`-\log \mathrm{softmax}(f + \tau \log \pi)_y`
``BalancedSoftmaxCrossEntropy``  :math:`-\log \mathrm{softmax}(f + \log n)_y`
``FocalLoss`` (focal.py)   :math:`-(1 - p_y)^\gamma \log p_y`
=========================  =============================================================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asymcl.errors import InputError
from asymcl.losses._inputs import (
    check_logits_targets,
    check_number,
    check_reduction,
    class_counts_tensor,
    compute_dtype,
    reduce,
)
from asymcl.losses.focal import FocalLoss

__all__ = [
    "CrossEntropy",
    "WeightedCrossEntropy",
    "LogitAdjustedCrossEntropy",
    "BalancedSoftmaxCrossEntropy",
    "CLASSIFIER_LOSSES",
    "classifier_loss",
]


def _per_sample_ce(logits: torch.Tensor, targets: torch.Tensor, shift: torch.Tensor | None):
    """-log softmax(logits + shift)_y per sample, in the loss's compute dtype."""
    dtype = compute_dtype(logits)
    z = logits.to(dtype)
    if shift is not None:
        z = z + shift.to(device=z.device, dtype=dtype)
    return F.cross_entropy(z, targets.long(), reduction="none")


class CrossEntropy(nn.Module):
    r"""Plain cross-entropy :math:`\ell = -\log \mathrm{softmax}(f)_y` (no class counts)."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_logits_targets(logits, targets)
        return reduce(_per_sample_ce(logits, targets, None), self.reduction)


class WeightedCrossEntropy(nn.Module):
    r"""Class-weighted cross-entropy with "balanced" weights (sklearn's
    ``compute_class_weight("balanced")``).

    .. math::

        w_c = \frac{n}{C\, n_c}, \qquad
        \ell_i = w_{y_i} \bigl(-\log \mathrm{softmax}(f_i)_{y_i}\bigr), \qquad
        L = \frac{1}{N} \sum_{i=1}^N \ell_i \;(\text{reduction="mean"})

    with :math:`n = \sum_c n_c` the training-set size. Normalisation: :math:`\sum_c w_c n_c /
    n = 1`, i.e. the average weight over the training set is 1, so the loss has the scale of
    cross-entropy, and every class carries the same total weight :math:`n / C`. With equal
    counts all weights are 1 and this is exactly :class:`CrossEntropy`.

    Note: "mean" is the plain mean over the batch, an unbiased estimate of the class-balanced
    risk. ``torch.nn.CrossEntropyLoss(weight=w)`` instead divides by :math:`\sum_i w_{y_i}`
    of the batch, which undoes the weighting on a one-class batch.
    """

    def __init__(self, class_counts, reduction: str = "mean"):
        super().__init__()
        counts = class_counts_tensor(class_counts)
        self.reduction = check_reduction(reduction)
        self.n_classes = counts.numel()
        self.register_buffer("weights", counts.sum() / (self.n_classes * counts), persistent=False)

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}, reduction={self.reduction!r}"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_logits_targets(logits, targets, self.n_classes)
        per_sample = _per_sample_ce(logits, targets, None)
        w = self.weights.to(device=per_sample.device, dtype=per_sample.dtype)
        return reduce(w[targets.long()] * per_sample, self.reduction)


class LogitAdjustedCrossEntropy(nn.Module):
    r"""Logit-adjusted softmax cross-entropy (Menon et al., ICLR 2021).

    .. math::

        \ell(y, f(x)) = -\log \frac{\exp(f_y + \tau \log \pi_y)}
                                   {\sum_{c} \exp(f_c + \tau \log \pi_c)},
        \qquad \pi_c = n_c / n

    ``tau`` (default 1, the paper's choice) scales the adjustment; ``tau = 0`` is plain
    cross-entropy. Only the loss is adjusted: predict with :math:`\arg\max_c f_c(x)` on the
    raw logits (which then targets the balanced error).
    """

    def __init__(self, class_counts, tau: float = 1.0, reduction: str = "mean"):
        super().__init__()
        counts = class_counts_tensor(class_counts)
        self.tau = check_number("tau", tau, positive=False)
        self.reduction = check_reduction(reduction)
        self.n_classes = counts.numel()
        self.register_buffer("log_prior", torch.log(counts / counts.sum()), persistent=False)

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}, tau={self.tau:g}, reduction={self.reduction!r}"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_logits_targets(logits, targets, self.n_classes)
        per_sample = _per_sample_ce(logits, targets, self.tau * self.log_prior)
        return reduce(per_sample, self.reduction)


class BalancedSoftmaxCrossEntropy(nn.Module):
    r"""Balanced softmax cross-entropy (Ren et al., NeurIPS 2020).

    .. math::

        \ell(y, f(x)) = -\log \frac{n_y \exp(f_y)}{\sum_c n_c \exp(f_c)}
                      = -\log \mathrm{softmax}(f + \log n)_y

    This equals :class:`LogitAdjustedCrossEntropy` with ``tau = 1`` on the same counts:
    :math:`\log n_c = \log \pi_c + \log n` and the constant :math:`\log n` cancels in the
    softmax. Predict with the raw logits.
    """

    def __init__(self, class_counts, reduction: str = "mean"):
        super().__init__()
        counts = class_counts_tensor(class_counts)
        self.reduction = check_reduction(reduction)
        self.n_classes = counts.numel()
        self.register_buffer("log_counts", torch.log(counts), persistent=False)

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}, reduction={self.reduction!r}"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_logits_targets(logits, targets, self.n_classes)
        return reduce(_per_sample_ce(logits, targets, self.log_counts), self.reduction)


#: Names of the classifier losses, as `classifier_loss` takes them.
CLASSIFIER_LOSSES = ("ce", "weighted_ce", "focal", "logit_adjusted", "balanced_softmax")


def classifier_loss(
    name: str,
    class_counts=None,
    *,
    focal_gamma: float = 2.0,
    logit_adjust_tau: float = 1.0,
    reduction: str = "mean",
) -> nn.Module:
    """The classifier loss called ``name`` (one of `CLASSIFIER_LOSSES`).

    ``class_counts`` (training-set counts per class id) is required by "weighted_ce",
    "logit_adjusted" and "balanced_softmax" and ignored by "ce" and "focal".
    """
    if name not in CLASSIFIER_LOSSES:
        raise InputError(
            f"classifier loss must be one of {', '.join(CLASSIFIER_LOSSES)}, got {name!r}"
        )
    if name == "ce":
        return CrossEntropy(reduction)
    if name == "focal":
        return FocalLoss(focal_gamma, reduction)
    if class_counts is None:
        raise InputError(f"classifier loss {name!r} needs the training set's class counts")
    if name == "weighted_ce":
        return WeightedCrossEntropy(class_counts, reduction)
    if name == "logit_adjusted":
        return LogitAdjustedCrossEntropy(class_counts, logit_adjust_tau, reduction)
    return BalancedSoftmaxCrossEntropy(class_counts, reduction)

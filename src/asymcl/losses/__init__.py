"""Losses: the paper's contrastive losses and the imbalance baselines.

=========================  ==========================================================
module                     contents
=========================  ==========================================================
`asymcl.losses.afcl`       AFCL and its special cases CL, FCL, ACL; LossDiagnostics
`asymcl.losses.focal`      FocalLoss (stage 2 on ISIC; one-stage baseline)
`asymcl.losses.classification`  CrossEntropy, WeightedCrossEntropy,
                           LogitAdjustedCrossEntropy, BalancedSoftmaxCrossEntropy,
                           classifier_loss (by name)
`asymcl.losses.kcl`        KCL (k-positive contrastive loss)
`asymcl.losses.class_averaged`  ClassAveragedSupCon (BCL's class-averaged loss)
=========================  ==========================================================

Contrastive losses take L2-normalised features [N, D] or [N, V, D] and labels [N];
classifier losses take logits [N, C] and labels [N]. Each module's docstring has the maths.
"""

from asymcl.losses.afcl import ACL, AFCL, CL, FCL, NORMALIZATIONS, LossDiagnostics
from asymcl.losses.class_averaged import ClassAveragedSupCon
from asymcl.losses.classification import (
    CLASSIFIER_LOSSES,
    BalancedSoftmaxCrossEntropy,
    CrossEntropy,
    LogitAdjustedCrossEntropy,
    WeightedCrossEntropy,
    classifier_loss,
)
from asymcl.losses.focal import FocalLoss
from asymcl.losses.kcl import KCL, kcl_positive_mask

__all__ = [
    "AFCL",
    "CL",
    "FCL",
    "ACL",
    "LossDiagnostics",
    "NORMALIZATIONS",
    "FocalLoss",
    "CrossEntropy",
    "WeightedCrossEntropy",
    "LogitAdjustedCrossEntropy",
    "BalancedSoftmaxCrossEntropy",
    "CLASSIFIER_LOSSES",
    "classifier_loss",
    "KCL",
    "kcl_positive_mask",
    "ClassAveragedSupCon",
]

"""The loss a run trains with, from its `RunSpec`.

* two-stage (the paper): the stage-1 contrastive loss, ``stage1_loss`` = ``afcl`` (AFCL with
  eta, gamma, temperature, normalization), ``kcl`` (KCL, ``kcl_k`` positives per anchor) or
  ``class-averaged`` (BCL's class-averaged SupCon); all take the temperature.
* one-stage: the classifier loss on the logits, ``classifier_loss`` with the training
  split's per-class counts (`asymcl.losses.classifier_loss`).

KCL draws its positives from a CPU generator seeded with ``seed + 3`` (``seed`` and
``seed + 1`` seed the batches and the augmentation, ``seed + 2`` the stage-2 batches), so
the positives are the same on every device; stage 1 checkpoints the generator's state, so a
resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import torch

from asymcl.engine.spec import RunSpec

#: Offset of the KCL generator's seed from the run seed (see the module docstring).
KCL_SEED_OFFSET = 3


def stage1_loss(spec: RunSpec) -> torch.nn.Module:
    """The two-stage method's stage-1 loss named by ``spec.stage1_loss``."""
    from asymcl import losses

    if spec.stage1_loss == "kcl":
        generator = torch.Generator().manual_seed(spec.seed + KCL_SEED_OFFSET)
        return losses.KCL(k=spec.kcl_k, temperature=spec.temperature, generator=generator)
    if spec.stage1_loss == "class-averaged":
        return losses.ClassAveragedSupCon(temperature=spec.temperature)
    return losses.AFCL(eta=spec.eta, gamma=spec.gamma, temperature=spec.temperature,
                       normalization=spec.normalization)


def one_stage_loss(spec: RunSpec, class_counts: list[int]) -> torch.nn.Module:
    """The one-stage classifier loss named by ``spec.classifier_loss``.

    ``class_counts``: training images per class id (the training split's counts); used by
    weighted-ce, logit-adjusted and balanced-softmax.
    """
    from asymcl.losses import classifier_loss

    return classifier_loss(spec.classifier_loss.replace("-", "_"), class_counts,
                           focal_gamma=spec.focal_gamma, logit_adjust_tau=spec.logit_adjust_tau)

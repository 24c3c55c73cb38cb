r"""Focal loss on logits (Lin et al., ICCV 2017): the paper's stage-2 loss on ISIC, and a
one-stage classifier baseline.

.. math::

    FL(x, y) = -(1 - p_y)^\gamma \log p_y, \qquad p = \mathrm{softmax}(f(x))

``gamma = 0`` is exactly cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asymcl.losses._inputs import (
    check_logits_targets,
    check_number,
    check_reduction,
    compute_dtype,
    reduce,
)

__all__ = ["FocalLoss"]


class FocalLoss(nn.Module):
    r"""Focal loss on logits: :math:`FL = -(1 - p_t)^\gamma \log p_t`.

    ``logits`` [N, C], integer ``targets`` [N]; :math:`\log p_t` comes from log_softmax and
    :math:`1 - p_t` from ``-expm1(log p_t)`` floored at the dtype's epsilon (finite gradient
    for gamma < 1 when p_t -> 1). ``gamma = 0`` is exactly cross-entropy. ``reduction`` is
    "mean", "sum" or "none". Needs no class counts.
    """

    def __init__(self, gamma: float = 2.0, reduction: str = "mean"):
        super().__init__()
        self.gamma = check_number("gamma", gamma, positive=False)
        self.reduction = check_reduction(reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma:g}, reduction={self.reduction!r}"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_logits_targets(logits, targets)
        dtype = compute_dtype(logits)
        logp_t = F.log_softmax(logits.to(dtype), dim=1).gather(1, targets.long()[:, None])
        logp_t = logp_t.squeeze(1)
        if self.gamma == 0.0:
            per_sample = -logp_t
        else:
            one_minus = torch.expm1(logp_t).neg().clamp_min(torch.finfo(dtype).eps)
            per_sample = -one_minus.pow(self.gamma) * logp_t
        return reduce(per_sample, self.reduction)

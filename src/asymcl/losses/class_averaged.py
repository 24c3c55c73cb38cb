r"""Class-averaged supervised contrastive loss: the class-averaging term of balanced
contrastive learning, BCL (Zhu et al., "Balanced contrastive learning for long-tailed visual
recognition", CVPR 2022).

The maths
=========

Anchor rows :math:`z_i` (L2-normalised by the caller; ``[N, D]`` or ``[N, V, D]`` flattened to
M = N*V rows), labels :math:`y_i`, temperature :math:`\tau`, :math:`s_{ij} = z_i \cdot z_j /
\tau`. For anchor i and class c let :math:`B_c(i) = \{j \ne i : y_j = c\}` (the class's rows
other than the anchor). SupCon's denominator :math:`\sum_{j \ne i} \exp s_{ij}` is replaced
by the sum over the classes present of each class's *mean*:

.. math::

    D_i = \sum_{c : B_c(i) \ne \emptyset} \frac{1}{|B_c(i)|} \sum_{j \in B_c(i)} \exp s_{ij},
    \qquad
    L = \frac{1}{M} \sum_i \frac{-1}{|P_i|} \sum_{p \in P_i} \log \frac{\exp s_{ip}}{D_i},

with SupCon's positives :math:`P_i = B_{y_i}(i)` (an anchor with no positive contributes 0).
So a head class with many rows in the batch weighs as much in the denominator as a tail class
with one, which is BCL's remedy for SupCon's bias towards head classes. Computed as
:math:`\log D_i = \mathrm{logsumexp}_{j \ne i}(s_{ij} - \log |B_{y_j}(i)|)`, with
:math:`|B_{y_j}(i)| = n_{y_j} - [y_j = y_i]` and :math:`n_c` the rows of class c.

Special cases: with all rows of one class, :math:`D_i` is SupCon's denominator divided by
M - 1, so L = SupCon - log(M - 1). With C classes of m rows each, the own class is averaged
over m - 1 rows and the others over m, so SupCon - log m <= L <= SupCon - log(m - 1).

Not included: BCL's *class-complement* (learnable class prototypes appended to the batch as
extra rows, so every class appears in every batch) and its logit-compensation classifier
branch; this is the class-averaged loss on the batch's own rows only.
"""

from __future__ import annotations

import torch
from torch import nn

from asymcl.losses._contrastive import masked_logsumexp, mean_positive_nll, similarity_logits
from asymcl.losses._inputs import anchor_rows, check_number, no_autocast

__all__ = ["ClassAveragedSupCon"]


class ClassAveragedSupCon(nn.Module):
    """Class-averaged SupCon of BCL, without prototypes (see the module docstring).

    Args:
        temperature: tau (> 0).

    Call as ``loss(features, labels)`` like `AFCL`: features [N, D] or [N, V, D],
    L2-normalised by the caller, labels [N] integer class ids; needs no training-set class
    counts (the averaging uses the batch's own counts). Returns a 0-dim float32 tensor
    (float64 for float64 features).
    """

    def __init__(self, temperature: float = 0.07):
        super().__init__()
        self.temperature = check_number("temperature", temperature, positive=True)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}"

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z, row_labels, _views = anchor_rows(features, labels)
        same = row_labels[:, None] == row_labels[None, :]
        eye = torch.eye(same.shape[0], dtype=torch.bool, device=same.device)
        class_rows = same.sum(dim=1)  # n_{y_j} for each row j
        with no_autocast(z.device):
            # |B_{y_j}(i)| = n_{y_j} - [y_j = y_i] >= 1 off the diagonal
            size = class_rows[None, :] - same.to(class_rows.dtype)
            log_size = torch.log(size.clamp_min(1).to(z.dtype))
            s = similarity_logits(z, self.temperature)
            return mean_positive_nll(s, same & ~eye, masked_logsumexp(s, -log_size))

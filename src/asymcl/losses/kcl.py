r"""k-positive contrastive loss, KCL (Kang et al., "Exploring balanced feature spaces for
representation learning", ICLR 2021), on the batch.

The maths
=========

Anchor rows :math:`z_i` (L2-normalised by the caller; ``[N, D]`` or ``[N, V, D]`` flattened to
M = N*V rows, row n*V + v being view v of sample n), labels :math:`y_i`, temperature
:math:`\tau`, :math:`s_{ij} = z_i \cdot z_j / \tau`, :math:`A_i = \{j \ne i\}`. For anchor i:

* :math:`O_i` = the other V-1 views of i's own sample (always positives);
* :math:`C_i` = the rows of *other* samples with label :math:`y_i` (the candidates);
* :math:`K_i \subseteq C_i`: :math:`\min(k, |C_i|)` candidates drawn uniformly at random
  without replacement, independently for each anchor row;
* positives :math:`Q_i = O_i \cup K_i`, and

.. math::

    L = \frac{1}{M} \sum_i \frac{-1}{|Q_i|} \sum_{p \in Q_i}
        \log \frac{\exp s_{ip}}{\sum_{a \in A_i} \exp s_{ia}}

(an anchor with :math:`Q_i = \emptyset`, e.g. a lone sample of its class with V = 1,
contributes 0). The denominator runs over all other rows, as in SupCon: only the *numerator*
is limited to k positives, so every class, however large in the batch, pulls each anchor
towards at most k + V - 1 rows. With :math:`k \ge |C_i|` for every anchor this is exactly
SupCon (`CL` with ``normalization="paper"``).

How the positives are drawn (deterministic given the generator)
================================================================

Each call draws one matrix of keys ``u = torch.rand((M, M), dtype=torch.float64,
generator=g)`` on the generator's device (the global RNG on the features' device when no
generator is given). For anchor row i, :math:`K_i` is the set of the :math:`\min(k, |C_i|)`
candidates :math:`j \in C_i` with the smallest keys :math:`u_{ij}`: a uniformly random
k-subset of :math:`C_i`. The same generator state and the same labels therefore give the same
positives, and each call consumes exactly M*M float64 draws, whatever the labels.

Differences from the paper: Kang et al. train KCL in a MoCo framework and draw the k
positives from a momentum-encoder queue; here they come from the current batch (SupCon
style), so an anchor has fewer than k positives when its class has fewer than k other
samples in the batch. Their default is k = 6.
"""

from __future__ import annotations

import torch
from torch import nn

from asymcl.errors import InputError
from asymcl.losses._contrastive import masked_logsumexp, mean_positive_nll, similarity_logits
from asymcl.losses._inputs import anchor_rows, check_number, no_autocast

__all__ = ["KCL", "kcl_positive_mask"]


def kcl_positive_mask(
    row_labels: torch.Tensor,
    views: int,
    k: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """KCL's positives Q_i as an [M, M] bool mask (see the module docstring).

    ``row_labels`` [M] are the labels of the anchor rows (row n*V + v = view v of sample n).
    """
    m = row_labels.shape[0]
    device = row_labels.device
    sample = torch.arange(m, device=device) // views
    eye = torch.eye(m, dtype=torch.bool, device=device)
    own_sample = sample[:, None] == sample[None, :]
    candidates = (row_labels[:, None] == row_labels[None, :]) & ~own_sample
    key_device = generator.device if generator is not None else device
    keys = torch.rand((m, m), dtype=torch.float64, generator=generator, device=key_device)
    keys = keys.to(device).masked_fill_(~candidates, 2.0)  # non-candidates sort last
    take = min(k, m)
    chosen = torch.zeros_like(candidates)
    if take > 0:
        chosen.scatter_(1, keys.topk(take, dim=1, largest=False).indices, True)
    return (own_sample & ~eye) | (chosen & candidates)


class KCL(nn.Module):
    """k-positive contrastive loss (see the module docstring for the maths).

    Args:
        k: at most k positives per anchor from other samples of its class (>= 0; the
            paper's default 6); the anchor's own other views are positives on top.
        temperature: tau (> 0).
        generator: the torch.Generator that draws the positives (None: torch's global RNG
            on the features' device). A ``generator`` passed to ``forward`` overrides it.

    Call as ``loss(features, labels)`` like `AFCL`: features [N, D] or [N, V, D],
    L2-normalised by the caller, labels [N] integer class ids. Returns a 0-dim float32
    tensor (float64 for float64 features).
    """

    def __init__(
        self,
        k: int = 6,
        temperature: float = 0.07,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise InputError(f"k (positives per anchor) must be an integer >= 0, got {k!r}")
        self.k = k
        self.temperature = check_number("temperature", temperature, positive=True)
        self.generator = generator

    def extra_repr(self) -> str:
        return f"k={self.k}, temperature={self.temperature:g}"

    def forward(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        z, row_labels, views = anchor_rows(features, labels)
        gen = generator if generator is not None else self.generator
        positives = kcl_positive_mask(row_labels, views, self.k, gen)
        with no_autocast(z.device):
            s = similarity_logits(z, self.temperature)
            return mean_positive_nll(s, positives, masked_logsumexp(s))

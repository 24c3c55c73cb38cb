"""The SupCon-style skeleton shared by the stage-1 baselines (KCL, class-averaged SupCon).

For anchor row i with positive set Q_i and log-denominator log D_i:

    loss_i = -1/|Q_i| sum_{p in Q_i} (s_ip - log D_i),   s_ij = z_i . z_j / tau,

and the loss is the mean over all M anchor rows, an anchor with Q_i empty contributing 0
(the convention of AFCL's "paper" normalisation, so that these losses reduce to CL there).
"""

from __future__ import annotations

import torch


def similarity_logits(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """s = z z^T / tau, [M, M]."""
    return torch.mm(z, z.t()).div(temperature)


def masked_logsumexp(s: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    """log sum_{j != i} exp(s_ij + offset_ij), [M, 1]; the diagonal is -inf before the sum."""
    eye = torch.eye(s.shape[0], dtype=torch.bool, device=s.device)
    if offset is not None:
        s = s + offset
    return torch.logsumexp(s.masked_fill(eye, -torch.inf), dim=1, keepdim=True)


def mean_positive_nll(s: torch.Tensor, positives: torch.Tensor, log_den: torch.Tensor):
    """Mean over anchors of -1/|Q_i| sum_{p in Q_i} (s_ip - log D_i); 0 for empty Q_i.

    Each summand is formed as a difference before summing (log p <= 0 for SupCon), so no
    large sums cancel at small tau; -inf never enters (the diagonal is not a positive and s
    itself is finite).
    """
    log_p = s - log_den
    n_pos = positives.sum(dim=1)
    pos_sum = torch.where(positives, log_p, torch.zeros((), dtype=s.dtype, device=s.device))
    per_anchor = -pos_sum.sum(dim=1) / n_pos.clamp_min(1).to(s.dtype)
    return per_anchor.mean()

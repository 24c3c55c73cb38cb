"""A direct, vectorised transcription of the authors' released AFCL arithmetic.

Used by tests/test_losses.py (equality wherever this is finite) and bench/loss.py (the
speed baseline), so it exists once. It deliberately keeps the released code's arithmetic,
including its NaN paths (no max subtraction, the diagonal p_ii kept inside the focal weight
and only masked afterwards, log(1 - p) on every entry, division by the batch size N):

    log_prob_ij = s_ij - log(sum_{k != i} exp(s_ik))
    weight_ij   = (1 - exp(log_prob_ij)) ** gamma                  (diagonal included)
    pos_i       = -(1/N) sum_j [j in P_i] weight_ij log_prob_ij
    neg_i       = -(1/N) sum_j [j in N_i] log(1 - exp(log_prob_ij)) (diagonal set to log 1)
    loss        = mean_i (pos_i + eta * neg_i)

Single view only ([N, D] features), as released. No NaN-to-zero replacement: callers see
the NaN.
"""

from __future__ import annotations

import torch


def released_afcl(features, labels, eta=0.0, gamma=0.0, temperature=0.07):
    n = features.shape[0]
    z = features if features.dtype == torch.float64 else features.float()
    lab = labels.reshape(-1, 1)
    not_self = torch.ones(n, n, dtype=z.dtype, device=z.device)
    not_self.fill_diagonal_(0.0)
    pos_mask = (lab == lab.t()).to(z.dtype) * not_self
    neg_mask = (1.0 - pos_mask) * not_self

    logits = z @ z.t() / temperature
    log_prob = logits - torch.log((torch.exp(logits) * not_self).sum(1, keepdim=True))

    weight = (1.0 - torch.exp(log_prob)) ** gamma
    pos = -(weight * pos_mask * log_prob).mean(1)

    one_minus_p = 1.0 - torch.exp(log_prob)
    one_minus_p.fill_diagonal_(1.0)  # log 1 = 0 on the diagonal
    neg = -(neg_mask * torch.log(one_minus_p)).mean(1)
    return (pos + eta * neg).mean()

"""When the authors' released AFCL arithmetic fails: the ``--nan-policy released`` check.

The released training code computes the loss with its own arithmetic and, when that is NaN,
replaces it by a constant zero: no gradient, so the step does not train. Our loss
(`asymcl.losses.AFCL`, ``normalization="reference"``) equals the released value wherever the
latter is finite, and is finite everywhere. To reproduce the released *protocol*, the engine
evaluates the released arithmetic on the same batch features and skips exactly the steps
where it is not finite.

The released arithmetic (single view, batch of N, s_ij = z_i . z_j / tau), kept with its NaN
paths on purpose: no max subtraction, the diagonal p_ii kept inside the focal weight and only
masked afterwards, log(1 - p) on every entry, and both inner sums divided by N::

    log p_ij  = s_ij - log sum_{k != i} exp(s_ik)
    w_ij      = (1 - exp(log p_ij)) ** gamma                 (diagonal included: p_ii > 1)
    pos_i     = -(1/N) sum_{j in P_i} w_ij log p_ij
    neg_i     = -(1/N) sum_{j in N_i} log(1 - exp(log p_ij)) (diagonal set to log 1)
    loss      = (1/N) sum_i (pos_i + eta * neg_i)

It is non-finite e.g. for every non-integer gamma (negative base), when some p_ij rounds to 1
(log 0: two samples of different classes that are the only ones of their class pair, or a
lone minority sample late in training), or when exp(s) overflows (tau small).
"""

from __future__ import annotations

import torch


@torch.no_grad()
def released_afcl_value(features: torch.Tensor, labels: torch.Tensor, eta: float, gamma: float,
                        temperature: float) -> torch.Tensor:
    """The released code's loss value on ``features`` [N, D] (float32 unless float64 given)."""
    if features.dim() != 2:
        raise ValueError(f"the released arithmetic is single-view: features must be [N, D], got {tuple(features.shape)}")
    z = features if features.dtype == torch.float64 else features.float()
    n = z.shape[0]
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=z.device)
    same = labels.reshape(-1, 1) == labels.reshape(1, -1)
    positives = same & off_diagonal
    negatives = ~same & off_diagonal

    logits = z @ z.t() / temperature
    denominator = torch.where(off_diagonal, torch.exp(logits), torch.zeros_like(logits)).sum(1, keepdim=True)
    log_prob = logits - torch.log(denominator)
    prob = torch.exp(log_prob)
    # A masked NaN stays NaN (0 * NaN), as in the released multiplication by the mask.
    focal_weight = (1.0 - prob) ** gamma
    pos = -(focal_weight * positives * log_prob).sum(1) / n
    log_one_minus_p = torch.log((1.0 - prob).masked_fill(~off_diagonal, 1.0))
    neg = -(negatives * log_one_minus_p).sum(1) / n
    return (pos + eta * neg).mean()


def released_step_fails(features: torch.Tensor, labels: torch.Tensor, eta: float, gamma: float,
                        temperature: float) -> bool:
    """True when the released code would have replaced this batch's loss by a constant zero."""
    return not bool(torch.isfinite(released_afcl_value(features.detach(), labels, eta, gamma, temperature)))

r"""Asymmetric (focal) contrastive losses: AFCL and its special cases CL, FCL, ACL.

The maths
=========

Features :math:`z_i` (rows of the batch, L2-normalised by the caller), labels :math:`y_i`,
temperature :math:`\tau`. For anchor :math:`i`, :math:`A_i = \{j \ne i\}`,
:math:`P_i = \{j \in A_i : y_j = y_i\}`, :math:`N_i = A_i \setminus P_i`, and

.. math::

    s_{ij} = z_i \cdot z_j / \tau, \qquad
    p_{ij} = \frac{\exp s_{ij}}{\sum_{k \in A_i} \exp s_{ik}}, \qquad
    L_i^+ = \frac{1}{|P_i|} \sum_{j \in P_i} (1 - p_{ij})^\gamma \log p_{ij}, \qquad
    L_i^- = \frac{1}{|N_i|} \sum_{j \in N_i} \log(1 - p_{ij}).

``eta = gamma = 0`` is SupCon (CL), ``gamma = 1, eta = 0`` the focal contrastive loss (FCL),
``gamma = 0`` the asymmetric contrastive loss (ACL); the general case is AFCL.

The two normalisations
======================

``normalization="paper"`` -- the paper's formula, reported as the mean over the M anchors
(the paper's sum only rescales it)::

    L_paper = -(1/M) sum_i (L_i+ + eta * L_i-)

An anchor with no positive contributes 0 to the first sum and one with no negative 0 to the
second (the empty mean is taken as 0).

``normalization="reference"`` (default) -- the arithmetic of the authors' released code,
which divides both inner sums by the batch size M instead of by |P_i| and |N_i| and then
averages the anchors over M::

    L_ref = (1/M) sum_i [ (|P_i|/M) (-L_i+) + eta (|N_i|/M) (-L_i-) ]

So under "reference" ``eta = gamma = 0`` is *not* SupCon (anchors with few positives weigh
less), and each anchor's eta term is weighted by its share of negatives |N_i|/M and its
positive term by |P_i|/M: relative to "paper", eta's strength on an anchor is multiplied by
|N_i|/|P_i|, which depends on the class mix of the batch (1 when balanced; 1/49 for a
majority anchor and 98 for a minority anchor at 98:2). The paper's eta values (60 ... 300)
only mean what the paper's tables say under "reference". :class:`LossDiagnostics` shows the
two terms' actual sizes per batch.

Multi-view input ``[N, V, D]`` is flattened to M = N*V anchor rows (views of one sample share
its label and so are positives of each other); "reference" then divides by M = N*V.

Numerics (the released code's NaN paths, and how they are avoided)
==================================================================

* The diagonal is excluded *before* the log-sum-exp (set to -inf, so exp gives exactly 0)
  and the row maximum is subtracted before exponentiating; once p is formed, the diagonal
  of log p is reset to 0 so no -inf ever meets a zero weight. The released code keeps
  :math:`p_{ii} = \exp(s_{ii}) / \sum_{k \ne i} \exp(s_{ik})`, which is usually > 1, and
  raises the negative :math:`1 - p_{ii}` to the power gamma: NaN for every non-integer gamma
  (and overflow for large integer gamma in float32), masked by a multiplication by 0, which
  keeps the NaN.
* Only one entry per row can have p near 1: the row's largest logit ("top"). Its
  neighbours' mass :math:`R_i = \sum_{k \ne top} \exp(s_{ik} - s_{i,top})` is summed
  separately, so :math:`\log p = s - \max - \log1p(R_i)` and
  :math:`1 - p = -\mathrm{expm1}(\log p)` stay accurate for 1 - p far below the float
  resolution 6e-8 (the released code computes ``1 - exp(log_prob)`` and loses all digits
  there). 1 - p is floored at sqrt(tiny) (float32: 1.1e-19, float64: 1.5e-154), so
  log(1 - p) is never log 0 (the released code gives -inf/NaN when a negative, or an
  unmasked positive, has p = 1, e.g. N = 2), the focal weight (1 - p)^gamma has a finite derivative for
  gamma < 1, and no 0 * log 0 is ever formed. Where the exact loss is +inf (N = 2 with two
  classes: the only other row has p = 1) the eta term is large (-log 1.1e-19 = 43.7 per
  unit weight) but finite.
* The gradient of log(1 - p) is ~1/(1 - p) and the softmax Jacobian multiplies it by
  (1 - p) again; at the top entry this product is formed analytically, so there is no
  large-minus-large cancellation in the gradient either.
* The focal weight is not detached (as released). Its derivative is written in the bounded
  form :math:`\partial_\ell [(1-p)^\gamma \ell] = (1-p)^\gamma (1 + \gamma r)` with
  :math:`\ell = \log p`, :math:`r = p(-\ell)/(1-p) \in [0, 1]`, so no
  :math:`(1-p)^{\gamma-1}` ever blows up.
* Everything runs in float32 (float64 when the features are float64), also for bf16/fp16
  features and under autocast; the loss is returned as a 0-dim float32 (float64) tensor and
  gradients flow back to the features in their own dtype.

Cost
====

O(M^2 D) time with a handful of M x M temporaries and no Python loop over anchors. The loss
and its gradient are computed together in one pass (the loss is a scalar, so the backward
only rescales the stored M x D gradient by the incoming scalar); nothing M x M is kept for
the backward. Consequence: the loss is differentiable once (no double backward).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from asymcl.losses._inputs import anchor_rows
from asymcl.losses._inputs import check_number as _check_number

__all__ = ["AFCL", "CL", "FCL", "ACL", "LossDiagnostics", "NORMALIZATIONS"]

NORMALIZATIONS = ("reference", "paper")

@dataclass(frozen=True)
class LossDiagnostics:
    """What one batch looked like to the loss (python floats, detached).

    ``loss == positive_term + eta_term``. Both terms are the actual contributions to the
    loss under the chosen normalisation, i.e. means over the anchors of each anchor's
    positive (focal) part and of its eta-weighted negative part; their ratio is the
    effective strength of eta on this batch.
    """

    n_anchors: int
    frac_no_positive: float  # anchors with |P_i| = 0
    frac_one_positive: float  # anchors with |P_i| = 1
    positive_term: float
    eta_term: float

    @property
    def loss(self) -> float:
        return self.positive_term + self.eta_term


def _same_label_counts(labels: torch.Tensor) -> torch.Tensor:
    """For each row, how many rows (itself included) carry its label; O(M log M), no sync."""
    ordered = labels.sort().values
    return (
        torch.searchsorted(ordered, labels, right=True)
        - torch.searchsorted(ordered, labels, right=False)
    ).view(-1, 1)


def _anchor_weights(labels: torch.Tensor, eta: float, normalization: str, dtype: torch.dtype):
    """Per-anchor factors a_i (positive sum) and b_i (negative sum), shape [M, 1].

    The loss is -sum_i [a_i sum_{P_i} (1-p)^g log p + b_i sum_{N_i} log(1-p)]:
    "reference": a_i = 1/M^2, b_i = eta/M^2; "paper": a_i = 1/(M |P_i|), b_i = eta/(M |N_i|)
    (0 for an empty set).
    """
    m = labels.shape[0]
    if normalization == "reference":
        a = torch.full((m, 1), 1.0 / (m * m), dtype=dtype, device=labels.device)
        b = torch.full((m, 1), eta / (m * m), dtype=dtype, device=labels.device)
    else:
        n_pos = _same_label_counts(labels) - 1
        n_neg = (m - 1) - n_pos
        a = torch.where(n_pos > 0, 1.0 / (m * n_pos.to(dtype).clamp_min(1)), 0.0)
        b = torch.where(n_neg > 0, eta / (m * n_neg.to(dtype).clamp_min(1)), 0.0)
    return a, b


def _afcl_loss_and_grad(z, same, a, b, gamma, use_eta, inv_tau, want_grad):
    """Positive term, eta term and (optionally) d(loss)/dz from one M x M pass.

    z: [M, D] float32/float64; same: [M, M] bool (label equality, diagonal included);
    a, b: [M, 1] per-anchor factors. At most four M x M float buffers are allocated and
    reused in place (on CPU a fresh large buffer costs as much as an arithmetic pass).
    Buffers: S = logits -> log p -> d loss/d s; P = p; O = 1 - p -> p/(1-p); W = log(1-p)
    on negatives -> X = a_i (1-p)^gamma on positives.
    """
    floor = torch.finfo(z.dtype).tiny ** 0.5  # 1.1e-19 (float32), 1.5e-154 (float64)
    S = torch.mm(z * inv_tau, z.t())
    S.diagonal().fill_(-math.inf)  # A_i excludes i: masked before the log-sum-exp
    row_max, top = S.max(dim=1, keepdim=True)  # top: the one entry per row whose p may be ~1
    S.sub_(row_max)
    P = torch.exp(S)  # diagonal: exactly 0
    P.scatter_(1, top, 0.0)
    rest = P.sum(dim=1, keepdim=True)  # R_i = sum_{k in A_i, k != top} exp(s_ik - max), exact
    P.scatter_(1, top, 1.0)
    S.sub_(torch.log1p(rest))  # log p_ij = s_ij - max - log(1 + R_i); diagonal -inf
    inv = rest.add(1.0).reciprocal_()
    P.mul_(inv)  # p_ij
    omp_top = rest.mul_(inv)  # 1 - p at the top entry, R/(1 + R): no cancellation

    O = W = None
    if gamma != 0.0 or use_eta:
        # 1 - p = -expm1(log p): accurate for small p and, since log p at the top entry is
        # -log1p(R), also for p -> 1. Floored: never log 0, never 0 ** (gamma - 1).
        # Diagonal: 1 - 0 = 1, so log(1 - p) = 0 and the focal weight is 1 there.
        O = torch.expm1(S).neg_().clamp_min_(floor)
    S.diagonal().zero_()  # no -inf left to meet a 0 weight (0 * -inf = NaN)
    if use_eta:
        W = torch.log(O).masked_fill_(same, 0.0)  # log(1 - p) on N_i only
        eta_term = -(b * W.sum(dim=1, keepdim=True)).sum()
    else:
        eta_term = torch.zeros((), dtype=z.dtype, device=z.device)
    zero = a.new_zeros(())
    if gamma != 0.0:
        W = torch.pow(O, gamma, out=W) if W is not None else O.pow(gamma)
        torch.where(same, W, zero, out=W).mul_(a)
    else:
        W = torch.where(same, a, zero, out=W) if W is not None else torch.where(same, a, zero)
    W.diagonal().zero_()  # now X = a_i (1 - p)^gamma on P_i, 0 elsewhere
    pos_term = -torch.dot(W.view(-1), S.view(-1))
    if not want_grad:
        return pos_term, eta_term, None

    # g_ij = d loss / d log p_ij:  positives  X (gamma u log p - 1) = -X (1 + gamma r),
    # negatives  b_i u,  with u = p/(1-p) and r = p(-log p)/(1-p) in [0, 1].
    if gamma != 0.0:
        U = torch.div(P, O, out=O)
        S.mul_(U).mul_(gamma).sub_(1.0).mul_(W)
    else:
        torch.neg(W, out=S)
        if use_eta:
            U = torch.div(P, O, out=O)
    if use_eta:
        torch.where(same, S, U.mul_(b), out=S)
    # Softmax over A_i: d loss / d s_ij = g_ij - p_ij sum_k g_ik (the diagonal stays 0).
    # At the top entry g may be ~ b/(1-p), so it is kept out of the row sum and its own
    # derivative is formed as g_top (1 - p_top) - p_top sum_{k != top} g_ik (no cancellation).
    g_top = S.gather(1, top)
    S.scatter_(1, top, 0.0)
    g_rest = S.sum(dim=1, keepdim=True)
    S.addcmul_(P, g_rest + g_top, value=-1.0)
    S.scatter_(1, top, g_top * omp_top - P.gather(1, top) * g_rest)
    grad = torch.mm(S, z).add_(torch.mm(S.t(), z)).mul_(inv_tau)
    return pos_term, eta_term, grad


class _AFCLFunction(torch.autograd.Function):
    """Loss forward with the exact gradient computed alongside (see module docstring)."""

    @staticmethod
    def forward(ctx, z, same, a, b, gamma, use_eta, inv_tau):
        want_grad = ctx.needs_input_grad[0]
        dev = z.device.type
        no_autocast = (
            torch.autocast(dev, enabled=False)
            if dev in ("cuda", "cpu") and torch.is_autocast_enabled(dev)
            else contextlib.nullcontext()
        )
        with no_autocast:
            pos_term, eta_term, grad = _afcl_loss_and_grad(
                z, same, a, b, gamma, use_eta, inv_tau, want_grad
            )
        if want_grad:
            ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(pos_term, eta_term)
        return pos_term + eta_term, pos_term, eta_term

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, _grad_pos, _grad_eta):
        (grad,) = ctx.saved_tensors
        return grad * grad_loss, None, None, None, None, None, None


class AFCL(nn.Module):
    """Asymmetric focal contrastive loss (see the module docstring for the maths).

    Args:
        eta: weight of the negative term (>= 0); 0 gives CL/FCL.
        gamma: focal exponent on the positives (>= 0, any real); 0 gives CL/ACL.
        temperature: tau (> 0).
        normalization: "reference" (the authors' released code; default, the one the
            paper's eta values belong to) or "paper" (the paper's formula, mean over
            anchors).

    Call as ``loss(features, labels)`` with features ``[N, D]`` (one view) or ``[N, V, D]``
    (V views per sample, all N*V rows are anchors) that the caller has L2-normalised (they
    are used as given), and labels ``[N]`` (any integer class ids, any number of classes).
    Returns a 0-dim float32 tensor (float64 for float64 features). After each call
    :attr:`last_diagnostics` describes the batch.
    """

    def __init__(
        self,
        eta: float = 0.0,
        gamma: float = 0.0,
        temperature: float = 0.07,
        normalization: str = "reference",
    ):
        super().__init__()
        self.eta = _check_number("eta", eta, positive=False)
        self.gamma = _check_number("gamma", gamma, positive=False)
        self.temperature = _check_number("temperature", temperature, positive=True)
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {', '.join(NORMALIZATIONS)}, "
                f"got {normalization!r}"
            )
        self.normalization = normalization
        self._diag_state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def extra_repr(self) -> str:
        return (
            f"eta={self.eta:g}, gamma={self.gamma:g}, temperature={self.temperature:g}, "
            f"normalization={self.normalization!r}"
        )

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z, lab = self._anchors(features, labels)
        same = lab.unsqueeze(1) == lab.unsqueeze(0)
        a, b = _anchor_weights(lab, self.eta, self.normalization, z.dtype)
        loss, pos_term, eta_term = _AFCLFunction.apply(
            z, same, a, b, self.gamma, self.eta != 0.0, 1.0 / self.temperature
        )
        # Kept as tensors; counted and turned into floats only when read (no device sync).
        self._diag_state = (lab, pos_term.detach(), eta_term.detach())
        return loss

    def diagnostics_tensors(self) -> dict[str, torch.Tensor] | None:
        """The latest call's diagnostics as 0-dim tensors on the loss's device (no sync).

        Same fields as `LossDiagnostics`; a training loop can sum these over an epoch on the
        device and read them once, instead of syncing every step through `last_diagnostics`.
        """
        if self._diag_state is None:
            return None
        lab, pos_term, eta_term = self._diag_state
        n_pos = _same_label_counts(lab) - 1
        return {
            "n_anchors": torch.tensor(lab.shape[0], device=lab.device),
            "frac_no_positive": (n_pos == 0).to(pos_term.dtype).mean(),
            "frac_one_positive": (n_pos == 1).to(pos_term.dtype).mean(),
            "positive_term": pos_term,
            "eta_term": eta_term,
        }

    @property
    def last_diagnostics(self) -> LossDiagnostics | None:
        """Diagnostics of the latest call (None before the first); reading syncs the device."""
        tensors = self.diagnostics_tensors()
        if tensors is None:
            return None
        n_anchors = int(tensors.pop("n_anchors"))
        stats = torch.stack(list(tensors.values())).tolist()  # one device sync
        return LossDiagnostics(n_anchors, *stats)

    def forward_with_diagnostics(self, features, labels) -> tuple[torch.Tensor, LossDiagnostics]:
        loss = self(features, labels)
        return loss, self.last_diagnostics

    @staticmethod
    def _anchors(features: torch.Tensor, labels: torch.Tensor):
        z, labels, _views = anchor_rows(features, labels)
        return z, labels


class CL(AFCL):
    """Supervised contrastive loss: AFCL with eta = gamma = 0.

    Under "paper" this is SupCon exactly; under "reference" it is the released code's
    variant (anchors with fewer positives weigh less).
    """

    def __init__(self, temperature: float = 0.07, normalization: str = "reference"):
        super().__init__(0.0, 0.0, temperature, normalization)


class FCL(AFCL):
    """Focal contrastive loss: AFCL with eta = 0 (gamma = 1 in the paper)."""

    def __init__(
        self, gamma: float = 1.0, temperature: float = 0.07, normalization: str = "reference"
    ):
        super().__init__(0.0, gamma, temperature, normalization)


class ACL(AFCL):
    """Asymmetric contrastive loss: AFCL with gamma = 0 and the given eta."""

    def __init__(self, eta: float, temperature: float = 0.07, normalization: str = "reference"):
        super().__init__(eta, 0.0, temperature, normalization)

"""asymcl.losses against independent references.

* ``naive_afcl``: per-anchor Python loops in float64, written from the formulas of DESIGN.md
  section 2 (sets A_i, P_i, N_i built explicitly; math.exp/math.log per pair).
* ``released_afcl`` (tests/released_formula.py): the released code's arithmetic, NaN paths
  included; ours must equal it wherever it is finite.
* ``supcon_multiview``: the standard SupCon formula for [N, V, D] input, written
  independently (view-major rows, -inf-masked log_softmax).
* hand-derived values for a 3-sample batch, gradcheck, and the NaN-prone batches.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from asymcl.losses import ACL, AFCL, CL, FCL, FocalLoss, LossDiagnostics
from released_formula import released_afcl

NORMS = ("reference", "paper")


# --------------------------------------------------------------------------- references
def naive_afcl(rows, labels, eta, gamma, tau, normalization, parts=False):
    """Per-anchor loops, float64. rows: [M, D] tensor (anchor rows), labels: length M.

    Returns the loss (or (positive_term, eta_term) with parts=True). float('inf') when the
    exact value is infinite (a negative with p = 1).
    """
    rows = rows.detach().to(torch.float64)
    gram = (rows @ rows.t()).tolist()  # plain dot products z_i . z_j
    y = [int(v) for v in labels]
    m = len(gram)
    pos_total, neg_total = 0.0, 0.0
    for i in range(m):
        a_set = [j for j in range(m) if j != i]
        p_set = [j for j in a_set if y[j] == y[i]]
        n_set = [j for j in a_set if y[j] != y[i]]
        s = {j: gram[i][j] / tau for j in a_set}
        top = max(s.values())
        log_denominator = top + math.log(math.fsum(math.exp(s[k] - top) for k in a_set))
        log_p = {j: s[j] - log_denominator for j in a_set}
        pos_sum = math.fsum((1.0 - math.exp(log_p[j])) ** gamma * log_p[j] for j in p_set)
        neg_terms = []
        for j in n_set:
            one_minus = 1.0 - math.exp(log_p[j])
            neg_terms.append(math.log(one_minus) if one_minus > 0 else -math.inf)
        neg_sum = math.fsum(neg_terms) if neg_terms else 0.0
        l_pos = pos_sum / len(p_set) if p_set else 0.0  # L_i+
        l_neg = neg_sum / len(n_set) if n_set else 0.0  # L_i-
        if normalization == "paper":
            pos_total += -l_pos / m
            neg_total += -eta * l_neg / m if eta else 0.0
        else:  # 1/M sum_i [ (|P_i|/M)(-L_i+) + eta (|N_i|/M)(-L_i-) ]
            pos_total += (len(p_set) / m) * (-l_pos) / m
            neg_total += eta * (len(n_set) / m) * (-l_neg) / m if eta else 0.0
    return (pos_total, neg_total) if parts else pos_total + neg_total


def supcon_multiview(features, labels, tau):
    """Khosla et al. SupCon: mean over the 2N (VN) anchors of
    -1/|P(i)| sum_{p in P(i)} log(exp(z_i.z_p/tau) / sum_{a != i} exp(z_i.z_a/tau))."""
    n, v, _ = features.shape
    rows = torch.cat(torch.unbind(features, dim=1), dim=0)  # view-major: row k*n + i
    lab = labels.repeat(v)
    logits = rows @ rows.t() / tau
    eye = torch.eye(n * v, dtype=torch.bool)
    log_prob = torch.log_softmax(logits.masked_fill(eye, float("-inf")), dim=1)
    positive = (lab[:, None] == lab[None, :]) & ~eye
    per_anchor = -(log_prob.masked_fill(~positive, 0.0).sum(1)) / positive.sum(1)
    return per_anchor.mean()


# --------------------------------------------------------------------------- random cases
def make_labels(kind: str, n: int, rng: random.Random) -> list[int]:
    if kind == "balanced":
        return [i % 2 for i in range(n)]
    if kind == "98:2":
        minority = max(1, round(0.02 * n))
        return [1] * minority + [0] * (n - minority)
    if kind == "lone":
        return [1] + [0] * (n - 1)
    if kind == "one-class":
        return [3] * n
    if kind == "multi":
        return [rng.randrange(5) for _ in range(n)]
    raise ValueError(kind)


def random_case(seed: int):
    rng = random.Random(seed)
    n = rng.choice([2, 3, 8, 37, 128])
    kind = rng.choice(["balanced", "98:2", "lone", "one-class", "multi"])
    if n == 2 and kind != "one-class":
        kind = "one-class"  # N = 2 with two classes has an infinite exact loss (own test)
    labels = make_labels(kind, n, rng)
    rng.shuffle(labels)
    dim = rng.choice([2, 5, 16, 64])
    eta = rng.choice([0.0, 0.7, 60.0, 180.0, 300.0, rng.uniform(0, 300)])
    gamma = rng.choice([0.0, 0.5, 1.0, 2.0, 2.5, 4.0, 7.0, 10.0, rng.uniform(0, 10)])
    tau = rng.choice([0.07, 0.07, 0.1, 0.5])
    gen = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(n, dim, generator=gen, dtype=torch.float64), dim=1)
    return feats, torch.tensor(labels), eta, gamma, tau


CASES = list(range(48))


@pytest.mark.parametrize("seed", CASES)
def test_matches_naive_loops_both_normalisations(seed):
    feats, labels, eta, gamma, tau = random_case(seed)
    for norm in NORMS:
        expected = naive_afcl(feats, labels, eta, gamma, tau, norm)
        got64 = AFCL(eta, gamma, tau, norm)(feats, labels)
        assert got64.dtype == torch.float64 and got64.dim() == 0
        assert got64.item() == pytest.approx(expected, rel=1e-5, abs=1e-12), (norm, seed)
        got32 = AFCL(eta, gamma, tau, norm)(feats.float(), labels)
        assert got32.dtype == torch.float32
        assert got32.item() == pytest.approx(expected, rel=2e-4, abs=1e-6), (norm, seed)


def test_random_cases_cover_the_required_grid():
    seen = [random_case(s) for s in CASES]
    assert {f.shape[0] for f, *_ in seen} == {2, 3, 8, 37, 128}
    gammas = {g for *_, g, _ in seen}
    assert {0.0, 0.5, 2.5, 7.0} <= gammas and max(gammas) <= 10
    etas = {e for *_, e, _, _ in seen}
    assert 0.0 in etas and 300.0 in etas
    mixes = {len(set(lab.tolist())) for _, lab, *_ in seen}
    assert {1, 2} <= mixes and max(mixes) >= 3


@pytest.mark.parametrize("seed", CASES)
def test_reference_equals_released_formula_wherever_finite(seed):
    feats, labels, eta, gamma, tau = random_case(seed)
    ours = AFCL(eta, gamma, tau, "reference")(feats, labels)
    assert torch.isfinite(ours)
    released = released_afcl(feats, labels, eta=eta, gamma=gamma, temperature=tau)
    if torch.isfinite(released):
        assert ours.item() == pytest.approx(released.item(), rel=1e-5, abs=1e-12)


def test_released_formula_comparison_is_not_vacuous():
    finite = 0
    nan_noninteger = 0
    for seed in CASES:
        feats, labels, eta, gamma, tau = random_case(seed)
        released = released_afcl(feats, labels, eta=eta, gamma=gamma, temperature=tau)
        finite += bool(torch.isfinite(released))
        nan_noninteger += bool(torch.isnan(released)) and gamma != int(gamma)
    assert finite >= 20  # most integer-gamma cases are compared
    assert nan_noninteger >= 1  # and the released NaN path (p_ii > 1, gamma = 0.5 ...) is hit


def test_reference_gradient_equals_released_autograd_where_finite():
    gen = torch.Generator().manual_seed(7)
    feats = F.normalize(torch.randn(128, 32, generator=gen, dtype=torch.float64), dim=1)
    labels = torch.tensor([1] * 13 + [0] * 115)
    for eta, gamma in [(0.0, 0.0), (60.0, 0.0), (0.0, 2.0), (300.0, 7.0)]:
        a = feats.clone().requires_grad_()
        AFCL(eta, gamma, 0.07, "reference")(a, labels).backward()
        b = feats.clone().requires_grad_()
        released_afcl(b, labels, eta=eta, gamma=gamma, temperature=0.07).backward()
        assert torch.isfinite(b.grad).all()
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("norm", NORMS)
def test_multiview_matches_naive_loops_on_flattened_rows(norm):
    gen = torch.Generator().manual_seed(3)
    feats = F.normalize(torch.randn(10, 3, 8, generator=gen, dtype=torch.float64), dim=2)
    labels = torch.tensor([0, 0, 1, 2, 0, 1, 1, 0, 0, 4])  # class 2 and 4: one sample each
    rows = feats.reshape(30, 8)
    row_labels = labels.repeat_interleave(3)
    expected = naive_afcl(rows, row_labels, 120.0, 2.5, 0.1, norm)
    assert AFCL(120.0, 2.5, 0.1, norm)(feats, labels).item() == pytest.approx(expected, rel=1e-9)


def test_multiview_paper_cl_is_supcon():
    gen = torch.Generator().manual_seed(11)
    feats = F.normalize(torch.randn(16, 2, 12, generator=gen, dtype=torch.float64), dim=2)
    labels = torch.tensor([0, 1, 2, 0, 0, 1, 3, 0, 0, 1, 0, 0, 2, 0, 0, 5])
    expected = supcon_multiview(feats, labels, 0.07)
    got = CL(temperature=0.07, normalization="paper")(feats, labels)
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)
    # "reference" is a different number (anchors weighted by |P_i|/M), as documented
    ref = CL(temperature=0.07, normalization="reference")(feats, labels)
    assert ref.item() != pytest.approx(expected.item(), rel=1e-3)


# --------------------------------------------------------------------------- by hand
def hand_case(gamma, eta, norm):
    """z0 = (1, 0), z1 = (0, 1), z2 = (-1, 0), labels (0, 0, 1), tau = 1.

    s01 = 0, s02 = -1, s12 = 0.  With q = 1/(1 + e^-1):
    anchor 0: p01 = q, p02 = 1 - q; P = {1}, N = {2}
    anchor 1: p10 = p12 = 1/2;      P = {0}, N = {2}
    anchor 2: p20 = 1 - q, p21 = q; P = {},  N = {0, 1}
    """
    q = 1.0 / (1.0 + math.exp(-1.0))
    lp = [(1 - q) ** gamma * math.log(q), 0.5**gamma * math.log(0.5), 0.0]  # L_i+
    ln = [math.log(q), math.log(0.5), 0.5 * (math.log(q) + math.log(1 - q))]  # L_i-
    n_pos, n_neg = [1, 1, 0], [1, 1, 2]
    if norm == "paper":
        return -sum(lp[i] + eta * ln[i] for i in range(3)) / 3
    return sum(n_pos[i] / 3 * -lp[i] + eta * n_neg[i] / 3 * -ln[i] for i in range(3)) / 3


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("gamma,eta", [(0.0, 0.0), (1.0, 2.0), (2.5, 60.0)])
def test_hand_computed_three_sample_batch(norm, gamma, eta):
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    got = AFCL(eta, gamma, 1.0, norm)(feats, labels)
    assert got.item() == pytest.approx(hand_case(gamma, eta, norm), rel=1e-12)


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("gamma,eta", [(0.0, 0.0), (0.5, 60.0), (2.5, 0.0), (7.3, 300.0)])
def test_gradcheck_float64(norm, gamma, eta):
    gen = torch.Generator().manual_seed(5)
    feats = F.normalize(torch.randn(9, 4, generator=gen, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 0, 1, 3])
    loss = AFCL(eta, gamma, 0.5, norm)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (feats.requires_grad_(),))
    views = F.normalize(torch.randn(4, 2, 3, generator=gen, dtype=torch.float64), dim=2)
    assert torch.autograd.gradcheck(
        lambda x: loss(x, torch.tensor([0, 1, 0, 2])), (views.requires_grad_(),)
    )


def _finite_loss_and_grad(loss_fn, feats, labels):
    x = feats.clone().requires_grad_()
    value = loss_fn(x, labels)
    value.backward()
    return bool(torch.isfinite(value)), bool(torch.isfinite(x.grad).all()), value


def tight_pair_batch(n, dim, dtype, seed=0, pair_labels=(1, 1)):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    feats[1] = feats[0] + 1e-7 * torch.randn(dim, generator=gen, dtype=torch.float64)
    feats = F.normalize(feats, dim=1).to(dtype)
    labels = torch.zeros(n, dtype=torch.long)
    labels[0], labels[1] = pair_labels
    return feats, labels


NAN_PRONE = [
    # name, features/labels builder, gammas
    ("tight single positive pair", lambda dt: tight_pair_batch(16, 8, dt), (0.5, 2.5, 7.0)),
    ("tight negative pair", lambda dt: tight_pair_batch(3, 4, dt, 1, (0, 1)), (0.0, 0.5, 2.5)),
    (
        "N=8 gamma 7",
        lambda dt: (F.normalize(torch.randn(8, 16, generator=torch.Generator().manual_seed(2)),
                                dim=1).to(dt), torch.tensor([0, 1] * 4)),
        (7.0, 10.0),
    ),
    (
        "all one class",
        lambda dt: (F.normalize(torch.randn(12, 8, generator=torch.Generator().manual_seed(3)),
                                dim=1).to(dt), torch.zeros(12, dtype=torch.long)),
        (0.0, 0.5, 2.5),
    ),
    (
        "lone minority",
        lambda dt: (F.normalize(torch.randn(12, 8, generator=torch.Generator().manual_seed(4)),
                                dim=1).to(dt), torch.tensor([1] + [0] * 11)),
        (0.0, 0.5, 7.0),
    ),
    (
        "N=2 two classes",
        lambda dt: (F.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(5)),
                                dim=1).to(dt), torch.tensor([0, 1])),
        (0.0, 0.5, 2.5),
    ),
    (
        "N=2 one class",
        lambda dt: (F.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(6)),
                                dim=1).to(dt), torch.tensor([4, 4])),
        (0.0, 0.5, 2.5),
    ),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name,build,gammas", NAN_PRONE, ids=[c[0] for c in NAN_PRONE])
def test_nan_prone_batches_give_finite_loss_and_gradients(name, build, gammas, dtype):
    feats, labels = build(dtype)
    for gamma in gammas:
        for eta in (0.0, 300.0):
            for norm in NORMS:
                loss_ok, grad_ok, value = _finite_loss_and_grad(
                    AFCL(eta, gamma, 0.07, norm), feats, labels
                )
                assert loss_ok and grad_ok, (name, gamma, eta, norm, value)


def test_nan_prone_batches_really_break_the_released_formula():
    # Non-integer gamma: p_ii > 1 makes (1 - p_ii) ** gamma NaN before the mask.
    feats, labels = tight_pair_batch(16, 8, torch.float32)
    assert torch.isnan(released_afcl(feats, labels, eta=0.0, gamma=0.5))
    assert torch.isfinite(AFCL(0.0, 0.5)(feats, labels))
    # N = 2 with two classes: log(1 - p) = log 0.
    feats = F.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(5)), dim=1)
    assert not torch.isfinite(released_afcl(feats, torch.tensor([0, 1]), eta=60.0))
    assert torch.isfinite(AFCL(60.0)(feats, torch.tensor([0, 1])))


def test_tight_positive_pair_value_matches_naive():
    # p -> 1 for the positive pair: the focal weight (1 - p)^0.5 must stay exact
    feats, labels = tight_pair_batch(16, 8, torch.float64)
    for norm in NORMS:
        expected = naive_afcl(feats, labels, 60.0, 0.5, 0.07, norm)
        got = AFCL(60.0, 0.5, 0.07, norm)(feats, labels)
        assert got.item() == pytest.approx(expected, rel=1e-6)


def test_near_one_negative_is_accurate_in_float32():
    # anchor 1's negative neighbour has 1 - p ~ 2.5e-7 (about 2 float32 ulps of 1): the
    # released arithmetic gives inf/NaN in float32; ours matches float64 in value and grad.
    feats = torch.tensor([[1.0, 0.0], [-0.0703, 0.9975], [-0.1797, 0.9837]], dtype=torch.float64)
    feats = F.normalize(feats, dim=1)
    labels = torch.tensor([4, 1, 2])
    x32 = feats.float().requires_grad_()
    assert not torch.isfinite(released_afcl(x32, labels, eta=180.0, gamma=2.0))
    for norm in NORMS:
        loss = AFCL(180.0, 2.0, 0.07, norm)
        x64, x32 = feats.clone().requires_grad_(), feats.float().requires_grad_()
        v64, v32 = loss(x64, labels), loss(x32, labels)
        (v64 + v32).backward()
        assert v64.item() == pytest.approx(naive_afcl(feats, labels, 180.0, 2.0, 0.07, norm),
                                           rel=1e-7)
        assert v32.item() == pytest.approx(v64.item(), rel=1e-6)
        torch.testing.assert_close(x32.grad.double(), x64.grad, rtol=1e-5, atol=1e-4)


def test_bf16_input_computes_in_float32():
    gen = torch.Generator().manual_seed(9)
    feats = F.normalize(torch.randn(24, 16, generator=gen), dim=1).to(torch.bfloat16)
    labels = torch.tensor([0, 1, 2] * 8)
    x = feats.clone().requires_grad_()
    value = AFCL(60.0, 2.5)(x, labels)
    value.backward()
    assert value.dtype == torch.float32 and x.grad.dtype == torch.bfloat16
    expected = AFCL(60.0, 2.5)(feats.float(), labels)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)


def test_autocast_does_not_lower_precision():
    gen = torch.Generator().manual_seed(10)
    feats = F.normalize(torch.randn(32, 16, generator=gen), dim=1)
    labels = torch.tensor([0, 1] * 16)
    plain = AFCL(60.0, 2.0)(feats, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = AFCL(60.0, 2.0)(feats, labels)
    assert cast.dtype == torch.float32
    assert cast.item() == pytest.approx(plain.item(), rel=1e-6)


# --------------------------------------------------------------------------- diagnostics
@pytest.mark.parametrize("norm", NORMS)
def test_diagnostics_on_hand_built_batch(norm):
    # labels 0,0,0,1,2,2: |P_i| = 2,2,2,0,1,1
    gen = torch.Generator().manual_seed(12)
    feats = F.normalize(torch.randn(6, 5, generator=gen, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    loss = AFCL(eta=120.0, gamma=2.0, temperature=0.2, normalization=norm)
    assert loss.last_diagnostics is None
    value, diag = loss.forward_with_diagnostics(feats, labels)
    assert isinstance(diag, LossDiagnostics) and diag == loss.last_diagnostics
    assert diag.n_anchors == 6
    assert diag.frac_no_positive == pytest.approx(1 / 6)
    assert diag.frac_one_positive == pytest.approx(2 / 6)
    pos, eta_term = naive_afcl(feats, labels, 120.0, 2.0, 0.2, norm, parts=True)
    assert diag.positive_term == pytest.approx(pos, rel=1e-9)
    assert diag.eta_term == pytest.approx(eta_term, rel=1e-9)
    assert diag.loss == pytest.approx(value.item(), rel=1e-12)
    assert all(isinstance(v, float) for v in (diag.positive_term, diag.eta_term))
    # eta's effective strength: the eta term is linear in eta, and 0 without it
    half = AFCL(60.0, 2.0, 0.2, norm)
    half(feats, labels)
    assert half.last_diagnostics.eta_term == pytest.approx(diag.eta_term / 2, rel=1e-12)
    none = AFCL(0.0, 2.0, 0.2, norm)
    none(feats, labels)
    assert none.last_diagnostics.eta_term == 0.0
    assert none.last_diagnostics.positive_term == pytest.approx(diag.positive_term, rel=1e-12)


def test_diagnostics_multiview_counts_other_views_as_positives():
    feats = F.normalize(torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(1)), dim=2)
    loss = AFCL()
    loss(feats, torch.tensor([0, 1, 2]))
    d = loss.last_diagnostics
    assert (d.n_anchors, d.frac_no_positive, d.frac_one_positive) == (6, 0.0, 1.0)


def test_reference_weights_eta_term_by_share_of_negatives():
    # "reference" = "paper" with each anchor's eta term times |N_i|/M (here 1/2 for a
    # balanced batch of any size) -- why eta values only mean something under one of them.
    gen = torch.Generator().manual_seed(13)
    small = F.normalize(torch.randn(16, 8, generator=gen, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 1] * 8)
    ratios = []
    for feats, lab in ((small, labels), (small.repeat(4, 1), labels.repeat(4))):
        terms = {}
        for norm in NORMS:
            loss = AFCL(60.0, 0.0, 0.07, norm)
            loss(feats, lab)
            terms[norm] = loss.last_diagnostics.eta_term
        ratios.append(terms["reference"] / terms["paper"])
    assert ratios[0] == pytest.approx(8 / 16, rel=1e-9)  # |N_i| / M = 8/16
    assert ratios[1] == pytest.approx(32 / 64, rel=1e-9)


# --------------------------------------------------------------------------- API
def test_special_cases_are_afcl():
    gen = torch.Generator().manual_seed(14)
    feats = F.normalize(torch.randn(10, 6, generator=gen, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 1, 1, 0, 0, 2, 0, 1, 0, 0])
    for norm in NORMS:
        pairs = [
            (CL(normalization=norm), AFCL(0.0, 0.0, normalization=norm)),
            (FCL(normalization=norm), AFCL(0.0, 1.0, normalization=norm)),
            (FCL(3.0, normalization=norm), AFCL(0.0, 3.0, normalization=norm)),
            (ACL(60.0, normalization=norm), AFCL(60.0, 0.0, normalization=norm)),
        ]
        for special, general in pairs:
            assert (special.eta, special.gamma) == (general.eta, general.gamma)
            assert special(feats, labels).item() == general(feats, labels).item()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"normalization": "mean"}, "normalization must be one of reference, paper"),
        ({"gamma": -0.5}, "gamma must be a finite number >= 0"),
        ({"eta": -1}, "eta must be a finite number >= 0"),
        ({"eta": float("nan")}, "eta must be a finite number"),
        ({"temperature": 0.0}, "temperature must be a finite number > 0"),
        ({"temperature": "hot"}, "temperature must be a number"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AFCL(**kwargs)


def test_invalid_inputs_are_rejected():
    loss = AFCL()
    with pytest.raises(ValueError, match=r"\[N, D\] or \[N, V, D\]"):
        loss(torch.zeros(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must have shape"):
        loss(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(TypeError, match="integer class ids"):
        loss(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="at least 2 anchor rows"):
        loss(torch.ones(1, 3), torch.zeros(1, dtype=torch.long))
    with pytest.raises(TypeError, match="floating-point"):
        loss(torch.ones(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long))


# --------------------------------------------------------------------------- focal loss
def test_focal_gamma_zero_is_cross_entropy():
    gen = torch.Generator().manual_seed(15)
    logits = torch.randn(20, 4, generator=gen, dtype=torch.float64) * 3
    targets = torch.randint(0, 4, (20,), generator=gen)
    for reduction in ("mean", "sum", "none"):
        got = FocalLoss(0.0, reduction)(logits, targets)
        torch.testing.assert_close(got, F.cross_entropy(logits, targets, reduction=reduction))


@pytest.mark.parametrize("gamma", [0.5, 2.0, 7.0])
def test_focal_matches_per_sample_formula(gamma):
    gen = torch.Generator().manual_seed(16)
    logits = torch.randn(12, 3, generator=gen, dtype=torch.float64) * 2
    targets = torch.randint(0, 3, (12,), generator=gen)
    expected = []
    for row, t in zip(logits.tolist(), targets.tolist()):
        p_t = math.exp(row[t]) / math.fsum(math.exp(v) for v in row)
        expected.append(-((1 - p_t) ** gamma) * math.log(p_t))
    got = FocalLoss(gamma, "none")(logits, targets)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))
    assert FocalLoss(gamma)(logits, targets).item() == pytest.approx(sum(expected) / 12)


def test_focal_finite_gradient_when_confident():
    logits = torch.tensor([[60.0, -60.0], [0.0, 0.0]], requires_grad=True)
    value = FocalLoss(0.5)(logits, torch.tensor([0, 1]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 0, 1])
    assert torch.autograd.gradcheck(lambda v: FocalLoss(2.5)(v, targets), (x,))


def test_focal_rejects_bad_arguments():
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
        FocalLoss(-1.0)
    with pytest.raises(ValueError, match="reduction"):
        FocalLoss(2.0, "avg")
    with pytest.raises(ValueError, match="logits must have shape"):
        FocalLoss()(torch.zeros(3), torch.zeros(3, dtype=torch.long))

"""The imbalance baselines in asymcl.losses against independent references.

* classifier losses (CE, balanced-weighted CE, logit-adjusted CE, balanced softmax) against
  per-sample float64 loops written from the papers' formulas (math.exp / math.log), and
  hand-computed two-class values;
* KCL and BCL's class-averaged SupCon against per-anchor float64 loops that build the sets
  (positives, per-class denominators) explicitly; KCL's draw is re-done from its documented
  rule (smallest keys of torch.rand((M, M), float64, generator)) in a Python loop;
* hand-computed small batches, gradcheck, finiteness for every batch composition and
  extreme temperatures, and the special-case identities (KCL with k >= all positives is
  SupCon; class-averaged with one class is SupCon - log(M - 1); balanced softmax is
  logit adjustment with tau = 1; weighted CE with equal counts is CE).
"""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from asymcl.errors import InputError
from asymcl.losses import (
    CL,
    CLASSIFIER_LOSSES,
    KCL,
    BalancedSoftmaxCrossEntropy,
    ClassAveragedSupCon,
    CrossEntropy,
    FocalLoss,
    LogitAdjustedCrossEntropy,
    WeightedCrossEntropy,
    classifier_loss,
    kcl_positive_mask,
)


# --------------------------------------------------------------------------- references
def _log_sum_exp(values):
    top = max(values)
    return top + math.log(math.fsum(math.exp(v - top) for v in values))


def naive_classifier(logits, targets, counts, method, tau=1.0):
    """Mean over samples, float64 loops, written from each paper's formula."""
    f = logits.detach().to(torch.float64).tolist()
    y = [int(t) for t in targets]
    n_total = math.fsum(counts) if counts is not None else None
    n_classes = len(f[0])
    total = []
    for row, target in zip(f, y):
        if method == "ce":
            loss = -(row[target] - _log_sum_exp(row))
        elif method == "weighted_ce":  # w_c = n / (C n_c)
            weight = n_total / (n_classes * counts[target])
            loss = weight * -(row[target] - _log_sum_exp(row))
        elif method == "logit_adjusted":  # -log e^{f_y + tau log pi_y} / sum e^{f_c + tau log pi_c}
            adjusted = [v + tau * math.log(counts[c] / n_total) for c, v in enumerate(row)]
            loss = -(adjusted[target] - _log_sum_exp(adjusted))
        elif method == "balanced_softmax":  # -log n_y e^{f_y} / sum_c n_c e^{f_c}
            top = max(row)
            numerator = counts[target] * math.exp(row[target] - top)
            denominator = math.fsum(counts[c] * math.exp(v - top) for c, v in enumerate(row))
            loss = -math.log(numerator / denominator)
        else:
            raise ValueError(method)
        total.append(loss)
    return math.fsum(total) / len(total)


def naive_contrastive(rows, labels, tau, positives_of, weight_of):
    """Mean over anchors of -1/|Q_i| sum_{p in Q_i} log(exp(s_ip) / D_i), D_i =
    sum_{j != i} weight_of(i, j) exp(s_ij); 0 for an empty Q_i. float64 loops."""
    rows = rows.detach().to(torch.float64)
    gram = (rows @ rows.t()).tolist()
    m = len(gram)
    per_anchor = []
    for i in range(m):
        others = [j for j in range(m) if j != i]
        s = {j: gram[i][j] / tau for j in others}
        top = max(s.values())
        log_d = top + math.log(math.fsum(weight_of(i, j) * math.exp(s[j] - top) for j in others))
        q = positives_of(i)
        assert i not in q
        per_anchor.append(-math.fsum(s[p] - log_d for p in q) / len(q) if q else 0.0)
    return math.fsum(per_anchor) / m


def naive_supcon(rows, labels, tau):
    y = [int(v) for v in labels]
    return naive_contrastive(
        rows,
        y,
        tau,
        lambda i: [j for j in range(len(y)) if j != i and y[j] == y[i]],
        lambda i, j: 1.0,
    )


def naive_class_averaged(rows, labels, tau):
    """BCL: each class c present among the rows j != i enters D_i as the mean of its exp."""
    y = [int(v) for v in labels]
    m = len(y)

    def class_size_without_anchor(i, j):
        return sum(1 for k in range(m) if k != i and y[k] == y[j])

    return naive_contrastive(
        rows,
        y,
        tau,
        lambda i: [j for j in range(m) if j != i and y[j] == y[i]],
        lambda i, j: 1.0 / class_size_without_anchor(i, j),
    )


def naive_kcl_positives(labels, views, k, seed):
    """KCL's documented draw, redone in a loop: the other views of the anchor's sample, plus
    the min(k, |C_i|) candidates (same class, other sample) with the smallest keys."""
    y = [int(v) for v in labels]
    m = len(y)
    keys = torch.rand((m, m), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    keys = keys.tolist()
    positives = []
    for i in range(m):
        own = [j for j in range(m) if j != i and j // views == i // views]
        candidates = [j for j in range(m) if y[j] == y[i] and j // views != i // views]
        candidates.sort(key=lambda j: keys[i][j])
        positives.append(sorted(own + candidates[:k]))
    return positives


def naive_kcl(rows, labels, views, k, seed, tau):
    positives = naive_kcl_positives(labels, views, k, seed)
    return naive_contrastive(rows, labels, tau, lambda i: positives[i], lambda i, j: 1.0)


def row_features(features):
    """[N, V, D] -> rows [N*V, D] in the package's order (row n*V + v = view v of sample n)."""
    return features.reshape(-1, features.shape[-1]) if features.dim() == 3 else features


# --------------------------------------------------------------------------- batches
def make_labels(kind, n, rng):
    if kind == "balanced":
        return [i % 2 for i in range(n)]
    if kind == "lone":
        return [1] + [0] * (n - 1)
    if kind == "one-class":
        return [4] * n
    if kind == "all-distinct":
        return list(range(n))
    if kind == "multi":
        return [rng.randrange(5) for _ in range(n)]
    raise ValueError(kind)


KINDS = ("balanced", "lone", "one-class", "all-distinct", "multi")


def random_batch(seed):
    rng = random.Random(seed)
    n = rng.choice([2, 3, 8, 21])
    views = rng.choice([1, 1, 2, 3])
    kind = KINDS[seed % len(KINDS)]
    labels = make_labels(kind, n, rng)
    rng.shuffle(labels)
    dim = rng.choice([2, 5, 16])
    tau = rng.choice([0.07, 0.1, 0.5, 1.0])
    gen = torch.Generator().manual_seed(seed)
    shape = (n, views, dim) if views > 1 else (n, dim)
    feats = F.normalize(torch.randn(*shape, generator=gen, dtype=torch.float64), dim=-1)
    return feats, torch.tensor(labels), views, tau


def row_labels(labels, views):
    return labels.repeat_interleave(views)


SEEDS = list(range(30))


# --------------------------------------------------------------------------- classifier losses
def random_logits(seed, n=17, c=4, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, c, generator=gen, dtype=torch.float64)
    targets = torch.randint(0, c, (n,), generator=gen)
    counts = [float(v) for v in torch.randint(1, 500, (c,), generator=gen)]
    return logits, targets, counts


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("method", ["ce", "weighted_ce", "logit_adjusted", "balanced_softmax"])
def test_classifier_losses_match_naive_loops(method, seed):
    logits, targets, counts = random_logits(seed)
    loss = classifier_loss(method, counts)
    got = loss(logits, targets)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert got.item() == pytest.approx(naive_classifier(logits, targets, counts, method), rel=1e-12)
    got32 = loss(logits.float(), targets)
    assert got32.dtype == torch.float32
    assert got32.item() == pytest.approx(got.item(), rel=1e-5)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_logit_adjusted_tau_matches_naive(tau):
    logits, targets, counts = random_logits(11)
    got = LogitAdjustedCrossEntropy(counts, tau=tau)(logits, targets)
    expected = naive_classifier(logits, targets, counts, "logit_adjusted", tau)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_classifier_losses_hand_computed_two_classes():
    # logits [0, 0] for both samples, targets [0, 1], counts [3, 1] (n = 4, priors 3/4, 1/4)
    logits = torch.zeros(2, 2, dtype=torch.float64)
    targets = torch.tensor([0, 1])
    counts = [3, 1]
    # CE = log 2 per sample
    assert CrossEntropy()(logits, targets).item() == pytest.approx(math.log(2), rel=1e-14)
    # weights n / (C n_c) = 4/6 and 4/2: mean of (2/3) log 2 and 2 log 2
    weighted = WeightedCrossEntropy(counts)(logits, targets).item()
    assert weighted == pytest.approx((2 / 3 + 2) / 2 * math.log(2), rel=1e-14)
    # adjusted logits [log 3/4, log 1/4]: -log 3/4 and -log 1/4
    expected_la = (math.log(4 / 3) + math.log(4)) / 2
    assert LogitAdjustedCrossEntropy(counts)(logits, targets).item() == pytest.approx(
        expected_la, rel=1e-14
    )
    assert BalancedSoftmaxCrossEntropy(counts)(logits, targets).item() == pytest.approx(
        expected_la, rel=1e-14
    )
    # tau = 2: adjusted [2 log 3/4, 2 log 1/4] -> softmax [9/10, 1/10]
    la2 = LogitAdjustedCrossEntropy(counts, tau=2.0)(logits, targets).item()
    assert la2 == pytest.approx((math.log(10 / 9) + math.log(10)) / 2, rel=1e-14)


def test_weighted_ce_weights_are_sklearn_balanced_and_average_to_one():
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    counts = [900, 60, 30, 10]
    labels = np.repeat(np.arange(4), counts)
    sk = compute_class_weight("balanced", classes=np.arange(4), y=labels)
    weights = WeightedCrossEntropy(counts).weights
    torch.testing.assert_close(weights, torch.tensor(sk, dtype=torch.float64), rtol=1e-14, atol=0)
    assert float(
        (weights * torch.tensor(counts, dtype=torch.float64)).sum() / sum(counts)
    ) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(4))
def test_balanced_softmax_equals_logit_adjusted_tau_one(seed):
    logits, targets, counts = random_logits(seed, n=31, c=6)
    bs = BalancedSoftmaxCrossEntropy(counts, reduction="none")(logits, targets)
    la = LogitAdjustedCrossEntropy(counts, tau=1.0, reduction="none")(logits, targets)
    torch.testing.assert_close(bs, la, rtol=1e-12, atol=1e-13)
    # only the ratios matter: priors give the same loss as counts
    priors = [c / sum(counts) for c in counts]
    torch.testing.assert_close(
        BalancedSoftmaxCrossEntropy(priors, reduction="none")(logits, targets),
        bs,
        rtol=1e-12,
        atol=1e-13,
    )
    # and it is not plain CE on imbalanced counts
    assert not torch.allclose(bs, CrossEntropy(reduction="none")(logits, targets))


def test_weighted_ce_with_equal_counts_is_ce_and_other_reductions():
    logits, targets, _ = random_logits(3, c=5)
    ce = CrossEntropy(reduction="none")(logits, targets)
    torch.testing.assert_close(WeightedCrossEntropy([7] * 5, reduction="none")(logits, targets), ce)
    torch.testing.assert_close(
        LogitAdjustedCrossEntropy([7] * 5, reduction="none")(logits, targets), ce
    )
    torch.testing.assert_close(
        LogitAdjustedCrossEntropy([3, 1, 9, 2, 5], tau=0.0, reduction="none")(logits, targets), ce
    )
    torch.testing.assert_close(FocalLoss(gamma=0.0, reduction="none")(logits, targets), ce)
    torch.testing.assert_close(ce, F.cross_entropy(logits, targets, reduction="none"))
    total = WeightedCrossEntropy([1, 2, 3, 4, 5], reduction="sum")(logits, targets)
    mean = WeightedCrossEntropy([1, 2, 3, 4, 5])(logits, targets)
    assert total.item() == pytest.approx(mean.item() * len(targets), rel=1e-12)


@pytest.mark.parametrize("method", CLASSIFIER_LOSSES)
def test_classifier_losses_gradcheck_and_extremes_finite(method):
    counts = [1e6, 3.0, 1.0]
    loss = classifier_loss(method, counts, focal_gamma=0.5)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 2, 0])
    assert torch.autograd.gradcheck(lambda v: loss(v, targets), (x,))
    for scale in (1e-6, 1.0, 1e4):  # tiny and huge logits, float32 and bfloat16 inputs
        for dtype in (torch.float32, torch.bfloat16):
            logits = (scale * torch.randn(6, 3, generator=gen)).to(dtype).requires_grad_()
            value = loss(logits, torch.tensor([0, 1, 2, 0, 1, 2]))
            value.backward()
            assert torch.isfinite(value) and torch.isfinite(logits.grad).all(), (scale, dtype)


def test_classifier_loss_inputs_are_checked():
    for bad in ([3, 0, 1], [3, -1], [3, float("nan")], [5], [[1, 2]], "abc"):
        with pytest.raises(InputError, match="class_counts"):
            WeightedCrossEntropy(bad)
    with pytest.raises(InputError, match="tau"):
        LogitAdjustedCrossEntropy([1, 2], tau=-1)
    with pytest.raises(InputError, match="needs the training set's class counts"):
        classifier_loss("balanced_softmax")
    with pytest.raises(InputError, match="must be one of"):
        classifier_loss("ldam", [1, 2])
    with pytest.raises(ValueError, match="3 class counts"):
        BalancedSoftmaxCrossEntropy([1, 2, 3])(torch.zeros(2, 4), torch.tensor([0, 1]))
    assert isinstance(classifier_loss("ce"), CrossEntropy)
    assert classifier_loss("focal", focal_gamma=1.5).gamma == 1.5
    assert classifier_loss("logit_adjusted", [1, 2], logit_adjust_tau=0.5).tau == 0.5


# --------------------------------------------------------------------------- KCL
@pytest.mark.parametrize("seed", SEEDS)
def test_kcl_matches_naive_loops(seed):
    feats, labels, views, tau = random_batch(seed)
    rows = row_features(feats)
    for k in (0, 1, 2, 6):
        got = KCL(k=k, temperature=tau)(feats, labels, torch.Generator().manual_seed(100 + seed))
        expected = naive_kcl(rows, row_labels(labels, views), views, k, 100 + seed, tau)
        assert got.dtype == torch.float64 and got.dim() == 0
        assert got.item() == pytest.approx(expected, rel=1e-10, abs=1e-12), (k, views)


def test_kcl_draw_follows_the_documented_rule():
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 9 + [1] * 3 + [2]).repeat_interleave(2)  # 13 samples, V = 2
    mask = kcl_positive_mask(labels, 2, 4, torch.Generator().manual_seed(5))
    expected = naive_kcl_positives(labels, 2, 4, 5)
    assert [torch.nonzero(r).flatten().tolist() for r in mask] == expected
    y = labels.tolist()
    for i, q in enumerate(expected):
        others = [j for j in q if j // 2 != i // 2]
        available = sum(1 for j in range(len(y)) if y[j] == y[i] and j // 2 != i // 2)
        assert len(others) == min(4, available)
        assert all(y[j] == y[i] for j in q) and (i ^ 1) in q  # same class; own other view
    # same generator state -> same draw; another state -> another draw
    again = kcl_positive_mask(labels, 2, 4, torch.Generator().manual_seed(5))
    assert torch.equal(mask, again)
    assert not torch.equal(mask, kcl_positive_mask(labels, 2, 4, gen))
    # each call consumes exactly M*M float64 draws
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    kcl_positive_mask(labels, 2, 4, g1)
    torch.rand((26, 26), dtype=torch.float64, generator=g2)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_kcl_draw_is_uniform_over_candidates():
    labels = torch.tensor([0] * 6)  # anchor 0 has 5 candidates, k = 2: each drawn w.p. 2/5
    gen = torch.Generator().manual_seed(1)
    draws = 4000
    hits = torch.zeros(6)
    for _ in range(draws):
        hits += kcl_positive_mask(labels, 1, 2, gen)[0].float()
    assert hits[0] == 0
    freq = hits[1:] / draws
    assert torch.all((freq - 0.4).abs() < 0.04), freq  # 5 standard deviations


def test_kcl_with_k_above_all_positives_is_supcon():
    gen = torch.Generator().manual_seed(4)
    feats = F.normalize(torch.randn(12, 2, 8, generator=gen, dtype=torch.float64), dim=-1)
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 3])
    # class 0: 7 samples x 2 views, so 12 candidate rows of other samples per anchor
    kcl = KCL(k=12, temperature=0.1)(feats, labels, torch.Generator().manual_seed(0))
    assert kcl.item() == pytest.approx(CL(0.1, "paper")(feats, labels).item(), rel=1e-12)
    rows = row_features(feats)
    assert kcl.item() == pytest.approx(naive_supcon(rows, row_labels(labels, 2), 0.1), rel=1e-12)
    # with k smaller than the largest class the loss differs (the draw matters)
    fewer = KCL(k=11, temperature=0.1)(feats, labels, torch.Generator().manual_seed(0))
    assert fewer.item() != pytest.approx(kcl.item(), rel=1e-6)


def test_kcl_hand_computed_k0_two_samples_two_views():
    # rows z0 = (1, 0), z1 = (0, 1) [sample 0]; z2 = (-1, 0), z3 = (0, -1) [sample 1]; tau = 1
    feats = torch.tensor(
        [[[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [0.0, -1.0]]], dtype=torch.float64
    )
    labels = torch.tensor([0, 0])
    # k = 0: the only positive of each row is its own other view, at dot product 0;
    # the other rows are at 0 and -1, so each anchor's loss is log(1 + 1 + e^-1)
    got = KCL(k=0, temperature=1.0)(feats, labels, torch.Generator().manual_seed(0))
    assert got.item() == pytest.approx(math.log(2 + math.exp(-1)), rel=1e-14)
    # k = 1: each row also gets one row of the other sample, at dot product 0
    # (log p = -log(2 + e^-1)) or -1 (log p = -1 - log(2 + e^-1)), whichever the draw picks
    mask = kcl_positive_mask(torch.tensor([0, 0, 0, 0]), 2, 1, torch.Generator().manual_seed(3))
    gram = feats.reshape(4, 2) @ feats.reshape(4, 2).t()
    expected = 0.0
    for i in range(4):
        drawn = [j for j in torch.nonzero(mask[i]).flatten().tolist() if j // 2 != i // 2]
        assert len(drawn) == 1
        extra = 1.0 if gram[i, drawn[0]] == -1 else 0.0
        expected += (math.log(2 + math.exp(-1)) + (extra + math.log(2 + math.exp(-1)))) / 2
    got = KCL(k=1, temperature=1.0)(feats, labels, torch.Generator().manual_seed(3))
    assert got.item() == pytest.approx(expected / 4, rel=1e-14)


def test_kcl_generator_in_constructor_and_global_rng():
    feats = F.normalize(torch.randn(10, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    labels = torch.tensor([0] * 8 + [1] * 2)
    a = KCL(k=2, generator=torch.Generator().manual_seed(7))(feats, labels)
    b = KCL(k=2)(feats, labels, torch.Generator().manual_seed(7))
    assert a.item() == b.item()
    torch.manual_seed(3)
    c = KCL(k=2)(feats, labels)
    torch.manual_seed(3)
    assert KCL(k=2)(feats, labels).item() == c.item()
    for bad in (-1, 1.5, True, "6"):
        with pytest.raises(InputError, match="k"):
            KCL(k=bad)
    with pytest.raises(InputError, match="temperature"):
        KCL(temperature=0)


# --------------------------------------------------------------------------- class-averaged (BCL)
@pytest.mark.parametrize("seed", SEEDS)
def test_class_averaged_matches_naive_loops(seed):
    feats, labels, views, tau = random_batch(seed)
    got = ClassAveragedSupCon(tau)(feats, labels)
    expected = naive_class_averaged(row_features(feats), row_labels(labels, views), tau)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert got.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_class_averaged_hand_computed_four_rows():
    # z0 = (1, 0) [class 0]; z1 = z2 = (0, 1), z3 = (0, -1) [class 1]; tau = 1
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 1])
    e = math.e
    # anchor 0: no positive -> 0
    # anchors 1, 2: class 1 mean (e + 1/e)/2, class 0 mean 1; positives at +1 and -1 -> log D
    d12 = (e + 1 / e) / 2 + 1
    # anchor 3: class 1 mean (1/e + 1/e)/2, class 0 mean 1; positives both at -1 -> 1 + log D
    d3 = 1 / e + 1
    expected = (2 * math.log(d12) + 1 + math.log(d3)) / 4
    got = ClassAveragedSupCon(1.0)(feats, labels)
    assert got.item() == pytest.approx(expected, rel=1e-14)
    supcon = (2 * math.log(e + 1 / e + 1) + 1 + math.log(2 / e + 1)) / 4  # not averaged
    assert CL(1.0, "paper")(feats, labels).item() == pytest.approx(supcon, rel=1e-14)
    assert abs(got.item() - supcon) > 0.1


@pytest.mark.parametrize("views", [1, 2])
def test_class_averaged_one_class_is_supcon_minus_log_rows(views):
    gen = torch.Generator().manual_seed(8)
    feats = F.normalize(torch.randn(9, views, 6, generator=gen, dtype=torch.float64), dim=-1)
    labels = torch.full((9,), 2)
    m = 9 * views
    got = ClassAveragedSupCon(0.2)(feats, labels).item()
    assert got == pytest.approx(CL(0.2, "paper")(feats, labels).item() - math.log(m - 1), rel=1e-12)


def test_class_averaged_equal_class_sizes_is_between_shifted_supcons():
    # C classes of m rows: own class averaged over m - 1 rows, others over m
    gen = torch.Generator().manual_seed(9)
    feats = F.normalize(torch.randn(12, 2, 5, generator=gen, dtype=torch.float64), dim=-1)
    labels = torch.arange(3).repeat_interleave(4)  # 3 classes x 4 samples x 2 views: m = 8
    got = ClassAveragedSupCon(0.1)(feats, labels).item()
    supcon = CL(0.1, "paper")(feats, labels).item()
    assert supcon - math.log(8) < got < supcon - math.log(7)


# ------------------------------------------------------------------- both contrastive losses
CONTRASTIVE = {
    "kcl": lambda tau: (
        lambda x, y: KCL(k=2, temperature=tau)(x, y, torch.Generator().manual_seed(0))
    ),
    "kcl-k0": lambda tau: (
        lambda x, y: KCL(k=0, temperature=tau)(x, y, torch.Generator().manual_seed(0))
    ),
    "class-averaged": lambda tau: ClassAveragedSupCon(tau),
}

COMPOSITIONS = {
    "all one class": [3] * 8,
    "lone minority": [1] + [0] * 7,
    "N=2 same class": [0, 0],
    "N=2 two classes": [0, 1],
    "no anchor has a positive": list(range(6)),
    "98:2-like": [1] + [0] * 49,
    "multi": [0, 1, 1, 2, 2, 2, 3, 3, 3, 3],
}


@pytest.mark.parametrize("name", sorted(CONTRASTIVE))
def test_contrastive_gradcheck_float64(name):
    gen = torch.Generator().manual_seed(5)
    loss = CONTRASTIVE[name](0.5)
    feats = F.normalize(torch.randn(6, 4, generator=gen, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (feats.requires_grad_(),))
    views = F.normalize(torch.randn(4, 2, 3, generator=gen, dtype=torch.float64), dim=-1)
    assert torch.autograd.gradcheck(
        lambda x: loss(x, torch.tensor([0, 1, 0, 2])), (views.requires_grad_(),)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("name", sorted(CONTRASTIVE))
def test_contrastive_finite_for_every_batch_composition(name, dtype):
    for tau in (1e-3, 0.07, 10.0):
        loss = CONTRASTIVE[name](tau)
        for comp, labels in COMPOSITIONS.items():
            for views in (1, 2):
                gen = torch.Generator().manual_seed(len(labels) + views)
                shape = (len(labels), views, 8) if views > 1 else (len(labels), 8)
                feats = F.normalize(torch.randn(*shape, generator=gen), dim=-1)
                if len(labels) > 2:  # a near-duplicate pair: the tight case at small tau
                    feats[1] = F.normalize(feats[0] + 1e-4 * feats[1], dim=-1)
                x = feats.to(dtype).requires_grad_()
                value = loss(x, torch.tensor(labels))
                value.backward()
                where = (comp, views, tau)
                assert value.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
                assert torch.isfinite(value) and value.item() >= 0, where
                assert torch.isfinite(x.grad.float()).all(), where
                if views == 1 and comp in ("no anchor has a positive", "N=2 two classes"):
                    assert value.item() == 0.0  # no positive anywhere: every anchor contributes 0
                    if name != "kcl-k0":
                        assert torch.all(x.grad == 0)


@pytest.mark.parametrize("name", sorted(CONTRASTIVE))
def test_contrastive_float32_matches_float64_and_autocast(name):
    feats, labels, views, tau = random_batch(7)
    loss = CONTRASTIVE[name](tau)
    want = loss(feats, labels).item()
    assert loss(feats.float(), labels).item() == pytest.approx(want, rel=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss(feats.float(), labels)
    assert got.dtype == torch.float32 and got.item() == pytest.approx(want, rel=1e-5)


def test_contrastive_inputs_are_checked():
    with pytest.raises(ValueError, match="at least 2 anchor rows"):
        ClassAveragedSupCon()(torch.ones(1, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="labels must have shape"):
        KCL()(torch.ones(3, 3), torch.tensor([0, 1]))
    with pytest.raises(InputError, match="temperature"):
        ClassAveragedSupCon(temperature=-1)

"""Summaries over seeds and paired comparisons against a baseline.

For values x_1..x_n (one per seed) of a cell:

    mean = (1/n) sum x_i,  std = sqrt( sum (x_i - mean)^2 / (n - 1) )  (sample std, ddof=1)
    95% interval of the mean: mean +- t_{0.975, n-1} * std / sqrt(n)

Paired comparison of a cell against the baseline cell over the seeds present in both
(same seed = same data split and same initialisation seed), d_i = x_i - b_i:

    mean_diff = mean(d),  se = std(d) / sqrt(n),  CI = mean_diff +- t_{0.975, n-1} * se
    p = two-sided paired t test (scipy.stats.ttest_rel)

With n < 2 the std, interval and p are undefined (NaN), never silently zero.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float
    n: int
    ci_low: float
    ci_high: float


def summarize(values, confidence: float = 0.95) -> Summary:
    """Mean, sample std, n and the t interval of the mean of finite ``values``."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = int(x.size)
    if n == 0:
        return Summary(math.nan, math.nan, 0, math.nan, math.nan)
    mean = float(x.mean())
    if n < 2:
        return Summary(mean, math.nan, 1, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(mean, std, n, mean - half, mean + half)


@dataclass(frozen=True)
class Paired:
    n: int
    mean_diff: float
    std_diff: float
    ci_low: float
    ci_high: float
    p_value: float

    def as_dict(self) -> dict:
        return asdict(self)


def paired_difference(cell: dict, baseline: dict, confidence: float = 0.95) -> Paired:
    """Paired difference cell - baseline over the keys (seeds) both have."""
    seeds = sorted(
        s for s in set(cell) & set(baseline) if np.isfinite(cell[s]) and np.isfinite(baseline[s])
    )
    d = np.asarray([cell[s] - baseline[s] for s in seeds], dtype=float)
    n = int(d.size)
    if n == 0:
        return Paired(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    s = summarize(d, confidence)
    if n < 2:
        return Paired(n, s.mean, math.nan, math.nan, math.nan, math.nan)
    if s.std == 0:
        # identical differences: the interval collapses; the t test is undefined
        return Paired(n, s.mean, 0.0, s.mean, s.mean, math.nan)
    p = float(stats.ttest_rel([cell[k] for k in seeds], [baseline[k] for k in seeds]).pvalue)
    return Paired(n, s.mean, s.std, s.ci_low, s.ci_high, p)

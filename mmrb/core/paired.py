"""Paired comparisons on the same test samples and training seeds: is A really above B? McNemar's test on the
discordant pairs, a two-level bootstrap, Holm's correction, and the smallest difference a run could detect.

Overlapping intervals are a weak test when both are scored on one test set; a paired test uses the pairing.

A figure measured on k training seeds × n test samples varies for two reasons: which models training produced
(the seeds) and which samples the test set happens to hold. `bootstrap_means` resamples both — seeds with
replacement, and samples with replacement (one draw of samples per replicate, shared by every seed, as every seed
is scored on the same test set) — so its percentile interval covers both sources of error. Two methods scored on
the same seeds and samples are compared on their per-(seed, sample) difference with the same resampling
(`paired_test`): the pairing removes the variance the two share (an easy sample is easy for both), which is what
makes differences of half a point detectable at all.

p-value: two-sided, from the bootstrap standard error SE of the difference (normal approximation); Holm's
step-down correction (`holm`) keeps the family-wise error at α over a table of comparisons. The minimal detectable
difference (`mdd`) is (z_{1-α/2} + z_{power}) · SE, SE the bootstrap standard error: a true difference smaller
than it would be missed more often than 1 − power, so "no difference found" below it means "not detectable".
`mcnemar` gives the exact and mid-p McNemar tests on the discordant pairs pooled over seeds (which treats a
sample's seeds as independent pairs: the leaderboard asks both it and the bootstrap to reject), and
`detectable_difference` McNemar's detectable difference (Connor 1987, normal approximation).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

REPLICATES = 2000


def bootstrap_means(values: np.ndarray, replicates: int = REPLICATES, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of the grand mean of `values` (seeds × samples): seeds and samples both resampled with
    replacement, the sample draw shared across seeds. NaN entries are not allowed."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    if not np.isfinite(values).all():
        raise ValueError("bootstrap_means: values must be finite (one row per seed, one column per sample)")
    k, n = values.shape
    rng = np.random.default_rng(seed)
    seed_weights = rng.multinomial(k, np.full(k, 1 / k), size=replicates) / k  # (R, k), rows sum to 1
    sample_weights = rng.multinomial(n, np.full(n, 1 / n), size=replicates) / n  # (R, n)
    return np.einsum("rk,kn,rn->r", seed_weights, values, sample_weights)


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The (low, high) percentile interval of bootstrap replicates."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Interval:
    """A mean over seeds × samples with its two-level bootstrap interval."""

    mean: float
    low: float
    high: float


def mean_interval(values: np.ndarray, confidence: float = 0.95, replicates: int = REPLICATES,
                  seed: int = 0) -> Interval:
    """Grand mean of `values` (seeds × samples) and its percentile interval over seeds and samples."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    low, high = percentile_interval(bootstrap_means(values, replicates, seed), confidence)
    return Interval(float(values.mean()), low, high)


def mdd(standard_error: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true difference a two-sided test at level α detects with probability `power`."""
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * standard_error)


@dataclass(frozen=True)
class Paired:
    """A − B on the same seeds and samples: the mean difference, its bootstrap interval, the bootstrap p-value
    (uncorrected), the minimal detectable difference of this comparison, and McNemar on the discordant pairs."""

    difference: float
    low: float
    high: float
    p_value: float
    mdd: float
    seeds: int
    samples: int
    a_only: int = 0  # (seed, sample) pairs A got right and B wrong
    b_only: int = 0
    p_exact: float = 1.0
    p_mid: float = 1.0

    @property
    def ci_low(self) -> float:
        return self.low

    @property
    def ci_high(self) -> float:
        return self.high

    @property
    def p_bootstrap(self) -> float:
        return self.p_value

    def separable(self, alpha: float = 0.05) -> bool:
        """Whether the mid-p McNemar test rejects "same accuracy" at level alpha."""
        return self.p_mid < alpha


def mcnemar(a_only: int, b_only: int) -> tuple[float, float]:
    """Two-sided exact McNemar p-value and its mid-p version on the discordant counts."""
    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return 1.0, 1.0
    tail = 2 * stats.binom.cdf(k, n, 0.5)
    return float(min(1.0, tail)), float(min(1.0, tail - stats.binom.pmf(k, n, 0.5)))


def paired_test(a: np.ndarray, b: np.ndarray, confidence: float = 0.95, replicates: int = REPLICATES,
                seed: int = 0, draws: int | None = None) -> Paired:
    """Compare per-(seed, sample) outcomes `a` and `b` (seeds × samples each, 1 = correct) of two methods scored on
    the same seeds and samples: the two-level bootstrap of their difference (module docstring) and McNemar on the
    discordant pairs; `draws`: another name for `replicates`."""
    replicates = draws or replicates
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape != b.shape:
        raise ValueError(f"paired_test: both methods must be scored on the same seeds and samples; shapes {a.shape} "
                         f"and {b.shape}")
    diff = a - b
    observed = float(diff.mean())
    draws_ = bootstrap_means(diff, replicates, seed)
    low, high = percentile_interval(draws_, confidence)
    se = float(draws_.std(ddof=1))
    # two-sided p from the bootstrap standard error (normal approximation, as `mdd`): no floor at 1/replicates,
    # which Holm's correction over a large table would turn into "nothing can ever be significant"
    p_value = 1.0 if not np.any(diff) or se == 0 else float(2 * stats.norm.sf(abs(observed) / se))
    a_only, b_only = int(((a > 0.5) & (b <= 0.5)).sum()), int(((a <= 0.5) & (b > 0.5)).sum())
    exact, mid = mcnemar(a_only, b_only)
    return Paired(observed, low, high, p_value, mdd(se, 1 - confidence), *a.shape,
                  a_only, b_only, exact, mid)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def detectable_difference(n: int, seeds: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest accuracy difference McNemar's test detects with `power` at level `alpha` on n samples × seeds
    pairs whose share of discordant pairs is `discordance` (Connor 1987, normal approximation)."""
    pairs, za, zb = n * seeds, stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    return float((za + zb) * np.sqrt(discordance / pairs))


def verdict(result: Paired, adjusted_p: float, names: tuple[str, str] = ("A", "B"), alpha: float = 0.05,
            scale: float = 100.0, unit: str = "pt") -> str:
    """A plain verdict: which is higher when the corrected test says so, else that no difference was detected and
    the smallest one this comparison could have detected."""
    if adjusted_p < alpha:
        return f"{names[0] if result.difference > 0 else names[1]} higher (p_holm = {adjusted_p:.2g})"
    return f"no difference detected (p_holm = {adjusted_p:.2g}; detectable: ≥ {scale * result.mdd:.1f} {unit})"

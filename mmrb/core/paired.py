"""Paired comparisons of two models scored on the same samples and seeds: is model A really above model B?

Overlapping intervals are a weak test when both models are scored on one test set; a paired test uses only the
samples on which they disagree. `paired_test` gives McNemar's exact test (and its mid-p) on the discordant pairs
pooled over seeds, and a bootstrap over seeds × samples of the accuracy difference; `holm` adjusts a family of
p-values; `detectable_difference` is the smallest accuracy difference the protocol detects (McNemar, normal
approximation, Connor 1987).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Paired:
    """A paired comparison: A's accuracy minus B's, its bootstrap interval, the discordant counts and p-values."""

    difference: float
    ci_low: float
    ci_high: float
    a_only: int  # pairs A got right and B wrong, pooled over seeds
    b_only: int
    p_exact: float
    p_mid: float
    p_bootstrap: float

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


def paired_test(a_correct: np.ndarray, b_correct: np.ndarray, draws: int = 2000, seed: int = 0) -> Paired:
    """Compare two (seeds, samples) boolean arrays of correct decisions on the same samples and seeds."""
    a, b = np.atleast_2d(np.asarray(a_correct, bool)), np.atleast_2d(np.asarray(b_correct, bool))
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in shape: {a.shape} vs {b.shape}")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    exact, mid = mcnemar(a_only, b_only)
    rng = np.random.default_rng(seed)
    diff = a.astype(float) - b.astype(float)
    seeds = rng.integers(diff.shape[0], size=(draws, diff.shape[0]))
    samples = rng.integers(diff.shape[1], size=(draws, diff.shape[1]))
    boot = np.array([diff[s][:, i].mean() for s, i in zip(seeds, samples)])
    low, high = np.quantile(boot, [0.025, 0.975])
    p_boot = min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean()))
    return Paired(float(diff.mean()), float(low), float(high), a_only, b_only, exact, mid, float(p_boot))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (same order as given)."""
    order = np.argsort(pvalues)
    adjusted, running = np.empty(len(pvalues)), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted.tolist()


def detectable_difference(n: int, seeds: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest accuracy difference McNemar's test detects with `power` at level `alpha` on n samples × seeds
    pairs whose share of discordant pairs is `discordance` (Connor 1987, normal approximation)."""
    pairs, za, zb = n * seeds, stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    return float((za + zb) * np.sqrt(discordance / pairs))

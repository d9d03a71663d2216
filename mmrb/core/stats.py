"""Intervals, from scipy: the one place mmrb computes a confidence interval or prints one."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def t_halfwidth(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> float:
    """Half-width of the Student-t interval of the mean of `values` (NaN dropped; 0 for fewer than two)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    k = len(values)
    if k < 2:
        return 0.0
    return float(stats.t.ppf((1 + confidence) / 2, k - 1) * values.std(ddof=1) / np.sqrt(k))


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and t half-width over `values` (NaN dropped; (nan, nan) when none is left)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    return float(values.mean()), t_halfwidth(values, confidence)


def wilson_interval(p: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion `p` observed on `n` samples (good coverage near 0 and 1)."""
    if n <= 0:
        return float("nan"), float("nan")
    z = float(stats.norm.ppf((1 + confidence) / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def seed_interval(values: Sequence[float] | np.ndarray, n: int, confidence: float = 0.95) -> dict[str, float]:
    """Mean, standard deviation and a confidence interval of an accuracy measured once per training seed on
    the same `n` test samples.

    Two independent sources of error are combined:
    - the seeds: which models training happens to produce. A t-interval of the mean over the k seeds,
      half-width h_seed = t_{(1+c)/2, k-1} · s / √k (s: sample standard deviation; 0 for one seed);
    - the test set: every seed is scored on the same n samples, so averaging seeds does not shrink this
      part. The Wilson interval [w_lo, w_hi] of the mean accuracy p̄ with n trials.
    Half-widths of independent errors add in quadrature (their variances add), side by side:
      low = p̄ − √(h_seed² + (p̄ − w_lo)²),  high = p̄ + √(h_seed² + (w_hi − p̄)²), clipped to [0, 1].
    Chosen over a bootstrap because it is exact to test, has no resampling noise, and with 3 seeds a
    bootstrap over seeds would underestimate their spread.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    k = len(values)
    if k == 0:
        return dict(mean=float("nan"), std=float("nan"), ci_low=float("nan"), ci_high=float("nan"))
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if k > 1 else 0.0
    h_seed = t_halfwidth(values, confidence)
    w_lo, w_hi = wilson_interval(mean, n, confidence)
    low = mean - np.sqrt(h_seed ** 2 + (mean - w_lo) ** 2)
    high = mean + np.sqrt(h_seed ** 2 + (w_hi - mean) ** 2)
    return dict(mean=mean, std=std, ci_low=float(max(0.0, low)), ci_high=float(min(1.0, high)))


def format_interval(mean: float, low: float | None = None, high: float | None = None, digits: int = 1,
                    scale: float = 100.0, halfwidth: float | None = None,
                    bounds: tuple[float, float] = (0.0, 1.0)) -> str:
    """'53.3 [44.5, 62.1]' in percent by default: a low/high interval, or mean ± `halfwidth` (a t-interval), cut to
    the metric's range `bounds` and holding the mean — never printed as a symmetric '±' that an asymmetric interval
    would make a lie; '—' for a missing mean, the mean alone without bounds."""
    if mean is None or not np.isfinite(mean):
        return "—"
    if halfwidth is not None and np.isfinite(halfwidth):
        low, high = mean - halfwidth, mean + halfwidth
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return f"{mean * scale:.{digits}f}"
    low, high = max(bounds[0], min(low, mean)), min(bounds[1], max(high, mean))
    return f"{mean * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"

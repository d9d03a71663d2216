"""Paired comparisons on the same test samples and training seeds: is A really above B? McNemar's test on the
discordant pairs, a two-level bootstrap, Holm's correction, and the smallest difference a run could detect.

Overlapping intervals are a weak test when both are scored on one test set; a paired test uses the pairing.

A figure measured on k training seeds × n test samples varies for two reasons: which models training produced
(the seeds) and which samples the test set happens to hold. `bootstrap_means` resamples both — seeds with
replacement, and samples with replacement (one draw of samples per replicate, shared by every seed, as every seed
is scored on the same test set) — so its percentile interval covers both sources of error. Resampling k seeds
underestimates their spread when k is small (the bootstrap variance of a mean of k is (k − 1)/k of the unbiased one,
and its normal tails are too thin for a t with k − 1 degrees of freedom): the seed part of every replicate (its
departure from the all-seeds value on the same sample draw) is scaled by `seed_correction(k)` =
√(k/(k − 1)) · t_{k−1}/z (2.69 at k = 3, 1.58 at k = 5, → 1 with many seeds), so the seed component is as wide as the
t-interval of k seeds. Every interval is then cut to the metric's range (`bounds`): it never leaves [0, 1] for an
accuracy, [−1, 1] for a difference of accuracies.

Two methods scored on the same seeds and samples are compared on their per-(seed, sample) difference with the same
resampling (`paired_test`): the pairing removes the variance the two share (an easy sample is easy for both).

Two p-values per comparison, both two-sided: the bootstrap's (from its standard error SE, normal approximation) and
the **clustered McNemar** test (`clustered_mcnemar`): per test sample the discordance summed over seeds (seeds where
A alone is right minus seeds where B alone is right); under "no difference" each sample's sum is as likely negative
as positive, and the p-value is the exact sign-flip randomisation distribution of their total (Monte Carlo beyond 16
discordant samples). A sample's decisions under different seeds are not independent pairs: pooling them
(`mcnemar`, kept for reference) counts one hard sample three times. `family` Holm-adjusts both over the comparisons
shown and calls a pair separable only when both adjusted p-values reject; its minimal detectable difference (`mdd`:
(z_{1−α'/2} + z_{power}) · SE) is taken at α' = α/m, the strictest level Holm applies in a family of m.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

REPLICATES = 2000


def seed_correction(k: int, confidence: float = 0.95) -> float:
    """The factor on the seed part of a two-level bootstrap replicate that makes it as wide as the t-interval of k
    seeds: √(k/(k − 1)) · t_{(1+c)/2, k−1} / z_{(1+c)/2}; 1 for a single seed (no seed part)."""
    if k < 2:
        return 1.0
    tail = (1 + confidence) / 2
    return float(np.sqrt(k / (k - 1)) * stats.t.ppf(tail, k - 1) / stats.norm.ppf(tail))


def weights(k: int, n: int, replicates: int = REPLICATES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The two-level bootstrap's draws: seed weights (R, k) and sample weights (R, n), each row summing to 1 (the
    multinomial counts of a resample with replacement); one sample draw per replicate, shared by every seed."""
    rng = np.random.default_rng(seed)
    seed_weights = rng.multinomial(k, np.full(k, 1 / k), size=replicates) / k
    sample_weights = rng.multinomial(n, np.full(n, 1 / n), size=replicates) / n
    return seed_weights, sample_weights


def combine_seeds(per_seed: np.ndarray, seed_weights: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """Replicates (R,) from per-seed statistics on each replicate's sample draw (R, k): the all-seeds mean plus the
    seed resample's departure from it, scaled by `seed_correction(k)`."""
    plain = per_seed.mean(axis=1)
    return plain + seed_correction(per_seed.shape[1], confidence) * ((seed_weights * per_seed).sum(axis=1) - plain)


def bootstrap_means(values: np.ndarray, replicates: int = REPLICATES, seed: int = 0,
                    confidence: float = 0.95) -> np.ndarray:
    """Bootstrap replicates of the grand mean of `values` (seeds × samples): seeds and samples both resampled with
    replacement, the sample draw shared across seeds, the seed part corrected for few seeds. NaN entries are not
    allowed."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    if not np.isfinite(values).all():
        raise ValueError("bootstrap_means: values must be finite (one row per seed, one column per sample)")
    seed_weights, sample_weights = weights(*values.shape, replicates, seed)
    return combine_seeds(sample_weights @ values.T, seed_weights, confidence)


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


def bounded(mean: float, low: float, high: float, bounds: tuple[float, float]) -> Interval:
    """An interval cut to the metric's range, always holding its mean."""
    low, high = max(bounds[0], min(low, mean)), min(bounds[1], max(high, mean))
    return Interval(float(mean), float(low), float(high))


def mean_interval(values: np.ndarray, confidence: float = 0.95, replicates: int = REPLICATES,
                  seed: int = 0, bounds: tuple[float, float] = (0.0, 1.0)) -> Interval:
    """Grand mean of `values` (seeds × samples) and its percentile interval over seeds and samples, within `bounds`."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    low, high = percentile_interval(bootstrap_means(values, replicates, seed, confidence), confidence)
    return bounded(float(values.mean()), low, high, bounds)


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
    p_exact: float = 1.0  # McNemar pooled over seeds (for reference: it counts a sample once per seed)
    p_mid: float = 1.0
    p_clustered: float = 1.0  # McNemar clustered by sample (sign-flip randomisation): the test used
    discordant_samples: int = 0  # samples whose summed discordance over seeds is not zero
    standard_error: float = 0.0  # of the difference, from the bootstrap
    p_floor: float = 0.0  # the smallest p the clustered McNemar's Monte Carlo can resolve (0: exact)

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
        """Whether both tests reject "same accuracy" at level alpha, uncorrected (a table of comparisons uses
        `family`)."""
        return self.p_clustered < alpha and self.p_value < alpha


def mcnemar(a_only: int, b_only: int) -> tuple[float, float]:
    """Two-sided exact McNemar p-value and its mid-p version on the discordant counts."""
    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return 1.0, 1.0
    tail = 2 * stats.binom.cdf(k, n, 0.5)
    return float(min(1.0, tail)), float(min(1.0, tail - stats.binom.pmf(k, n, 0.5)))


def clustered_mcnemar(a: np.ndarray, b: np.ndarray, draws: int = 20000, seed: int = 0,
                      clusters: np.ndarray | None = None) -> tuple[float, int]:
    """Two-sided p-value of McNemar's test clustered by sample, and the number of discordant samples: per sample
    (column, or `clusters` id) d = seeds where only A is right − seeds where only B is right; p = P(|Σ ±d| ≥ |Σ d|)
    over independent sign flips (exact up to 16 non-zero d, else `draws` Monte Carlo flips, counting the observed
    one: never below 1/(draws + 1))."""
    d = ((a > 0.5) & (b <= 0.5)).sum(axis=0) - ((a <= 0.5) & (b > 0.5)).sum(axis=0)
    if clusters is not None:
        d = np.bincount(_cluster_index(clusters, a.shape[1]), weights=d)
    d = d[d != 0].astype(float)
    if not len(d):
        return 1.0, 0
    observed = abs(d.sum()) - 1e-9
    if len(d) <= 16:
        signs = 1 - 2 * ((np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1)
        return float(np.mean(np.abs(signs @ d) >= observed)), len(d)
    flips = np.random.default_rng(seed).choice((-1.0, 1.0), size=(draws, len(d)))
    return float((1 + np.sum(np.abs(flips @ d) >= observed)) / (draws + 1)), len(d)


def _cluster_index(clusters: np.ndarray, columns: int) -> np.ndarray:
    """Each column's cluster as 0..G−1 (`clusters`: any id per column)."""
    clusters = np.asarray(clusters)
    if clusters.shape != (columns,):
        raise ValueError(f"clusters: one cluster id per column ({columns}); got shape {clusters.shape}")
    return np.unique(clusters, return_inverse=True)[1]


def cluster_means(values: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Seeds × columns -> seeds × clusters: the mean of each cluster's columns (e.g. one test sample's outcomes under
    several CLIPs laid side by side); `clusters`: one id per column."""
    index = _cluster_index(clusters, values.shape[1])
    counts = np.bincount(index)
    return np.stack([np.bincount(index, weights=row) / counts for row in values])


def seed_t_p(diff: np.ndarray) -> float:
    """Two-sided p of the one-sample t-test on the per-seed mean differences (seeds × samples -> k means, k − 1
    degrees of freedom): the seeds are the units of training variance; 1 with fewer than 2 seeds or no difference."""
    per_seed = np.atleast_2d(diff).mean(axis=1)
    k = len(per_seed)
    if k < 2 or not np.any(per_seed):
        return 1.0
    sd = per_seed.std(ddof=1)
    if sd == 0:  # every seed moved by exactly the same amount: t is unbounded
        return 0.0
    return float(2 * stats.t.sf(abs(per_seed.mean()) / (sd / np.sqrt(k)), k - 1))


def paired_test(a: np.ndarray, b: np.ndarray, confidence: float = 0.95, replicates: int = REPLICATES,
                seed: int = 0, draws: int | None = None, clusters: np.ndarray | None = None,
                reference: str = "bootstrap", flips: int = 20000) -> Paired:
    """Compare per-(seed, sample) outcomes `a` and `b` (seeds × samples each, 1 = correct) of two methods scored on
    the same seeds and samples: the two-level bootstrap of their difference (module docstring) and McNemar on the
    discordant pairs; `draws`: another name for `replicates`.

    `clusters` (one id per column): columns that are the same test sample (e.g. one sample scored under several
    CLIPs, laid side by side) are resampled together and their discordances summed before the sign flips, so copies
    of a sample never count as independent evidence. `reference`: the second p-value's — "bootstrap" (the bootstrap
    standard error, normal reference) or "seed_t" (a t-test on the per-seed differences, k − 1 degrees of freedom:
    the honest reference with few training seeds). `flips`: Monte Carlo draws of the clustered McNemar, whose p is
    never below 1/(flips + 1) (`Paired.p_floor`)."""
    replicates = draws or replicates
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape != b.shape:
        raise ValueError(f"paired_test: both methods must be scored on the same seeds and samples; shapes {a.shape} "
                         f"and {b.shape}")
    if reference not in ("bootstrap", "seed_t"):
        raise ValueError(f"paired_test: reference must be 'bootstrap' or 'seed_t'; got {reference!r}")
    diff = a - b
    observed = float(diff.mean())
    units = diff if clusters is None else cluster_means(diff, clusters)
    draws_ = bootstrap_means(units, replicates, seed, confidence)
    low, high = percentile_interval(draws_, confidence)
    low, high = max(-1.0, min(low, observed)), min(1.0, max(high, observed))
    se = float(draws_.std(ddof=1))
    if reference == "seed_t" and a.shape[0] >= 2:
        p_value = seed_t_p(diff)
    else:
        # two-sided p from the bootstrap standard error (normal approximation, as `mdd`): no floor at 1/replicates,
        # which Holm's correction over a large table would turn into "nothing can ever be significant"
        p_value = 1.0 if not np.any(diff) or se == 0 else float(2 * stats.norm.sf(abs(observed) / se))
    a_only, b_only = int(((a > 0.5) & (b <= 0.5)).sum()), int(((a <= 0.5) & (b > 0.5)).sum())
    exact, mid = mcnemar(a_only, b_only)
    clustered, samples = clustered_mcnemar(a, b, draws=flips, seed=seed, clusters=clusters)
    return Paired(observed, low, high, p_value, mdd(se, 1 - confidence), a.shape[0], units.shape[1],
                  a_only, b_only, exact, mid, clustered, samples, se, 1 / (flips + 1) if samples > 16 else 0.0)


def format_p(p: float, floor: float = 0.0) -> str:
    """A p-value as the resampling resolves it: "< floor" at the Monte Carlo floor, else two significant digits."""
    return f"< {floor:.1g}" if floor and p <= floor * (1 + 1e-9) else f"{p:.2g}"


def trend_test(outcomes: Sequence[np.ndarray], doses: Sequence[float], confidence: float = 0.95,
               replicates: int = REPLICATES, draws: int = 20000, seed: int = 0) -> dict[str, float]:
    """Dose–response on the same seeds and samples: `outcomes[j]` (seeds × samples, 1 = correct) at dose `doses[j]`.

    The slope is the least-squares slope of accuracy on dose (per unit dose), computed per (seed, sample) as the
    contrast Σ_j c_j y_j with c_j = (d_j − d̄)/Σ(d − d̄)², so its mean is the slope of the mean accuracies; its interval
    is the two-level bootstrap's (seeds × samples, `bootstrap_means`). The p-value is a permutation test clustered by
    sample: under "no dose effect" the dose labels of one sample's outcomes are exchangeable, so each draw permutes
    them per sample (the same permutation for every seed of that sample), `draws` Monte Carlo draws counting the
    observed one (p ≥ 1/(draws + 1), `p_floor`). `falling`: the mean accuracy falls from the first dose to the last
    and never rises from one dose to the next; `steps`: those mean differences (next − previous)."""
    import itertools

    y = np.stack([np.atleast_2d(np.asarray(o, dtype=float)) for o in outcomes], axis=-1)  # seeds × samples × doses
    d = np.asarray(doses, dtype=float)
    if y.shape[-1] != len(d) or len(d) < 3:
        raise ValueError(f"trend_test: one outcome matrix per dose and at least 3 doses; got {y.shape[-1]} and {len(d)}")
    c = (d - d.mean()) / ((d - d.mean()) ** 2).sum()
    contrast = y @ c  # seeds × samples
    slope = float(contrast.mean())
    low, high = percentile_interval(bootstrap_means(contrast, replicates, seed, confidence), confidence)
    totals = y.sum(axis=0)  # samples × doses, summed over seeds
    rng = np.random.default_rng(seed)
    if len(d) <= 7:  # every relabelling enumerated once; each draw picks one per sample
        perms = np.array(list(itertools.permutations(range(len(d)))))
        table = totals @ c[perms].T  # samples × permutations: each sample's contrast under each relabelling
        null = np.zeros(draws)
        for start in range(0, draws, 2000):  # in chunks: draws × samples indices
            picks = rng.integers(0, len(perms), size=(min(2000, draws - start), totals.shape[0]))
            null[start:start + len(picks)] = table[np.arange(totals.shape[0])[None, :], picks].sum(axis=1)
    else:
        null = np.array([(totals * c[rng.permuted(np.tile(np.arange(len(d)), (totals.shape[0], 1)), axis=1)]).sum()
                         for _ in range(draws)])
    observed = abs(float((totals @ c).sum())) - 1e-9
    p = float((1 + np.sum(np.abs(null) >= observed)) / (draws + 1))
    means = y.mean(axis=(0, 1))
    steps = np.diff(means)
    return {"slope": slope, "low": float(low), "high": float(high), "p": p, "p_floor": 1 / (draws + 1),
            "falling": bool(np.all(steps <= 0) and np.any(steps < 0)), "means": means.tolist(), "steps": steps.tolist()}


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


@dataclass(frozen=True)
class Decision:
    """One comparison of a family: both p-values Holm-adjusted over the family, the detectable difference at the
    family's strictest level, and whether the pair is separable (both adjusted p-values below α)."""

    result: Paired
    p_holm: float  # the clustered McNemar's
    p_holm_bootstrap: float
    mdd: float
    alpha: float = 0.05

    @property
    def separable(self) -> bool:
        return self.p_holm < self.alpha and self.p_holm_bootstrap < self.alpha

    @property
    def p(self) -> float:
        """The larger adjusted p-value: the one a separable verdict has to pass."""
        return max(self.p_holm, self.p_holm_bootstrap)


def family(results: Sequence[Paired], alpha: float = 0.05, power: float = 0.8) -> list[Decision]:
    """Holm over a family of paired comparisons, for the clustered McNemar and the bootstrap p-values each; the MDD
    of each comparison at α/m (m: the family's size), from its bootstrap standard error."""
    m = max(1, len(results))
    mcnemar_p = holm([r.p_clustered for r in results]) if results else []
    boot_p = holm([r.p_value for r in results]) if results else []
    return [Decision(r, pc, pb, mdd(r.standard_error, alpha / m, power), alpha)
            for r, pc, pb in zip(results, mcnemar_p, boot_p)]


def detectable_difference(n: int, seeds: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest accuracy difference McNemar's test detects with `power` at level `alpha` on n samples × seeds
    pairs whose share of discordant pairs is `discordance` (Connor 1987, normal approximation)."""
    pairs, za, zb = n * seeds, stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    return float((za + zb) * np.sqrt(discordance / pairs))


def verdict(result: Paired | Decision, adjusted_p: float | None = None, names: tuple[str, str] = ("A", "B"),
            alpha: float = 0.05, scale: float = 100.0, unit: str = "pt") -> str:
    """A plain verdict: which is higher when the corrected tests say so, else that no difference was detected and
    the smallest one this comparison could have detected. A `Decision` brings its own adjusted p-values and MDD."""
    if isinstance(result, Decision):
        separable, p, detectable, result = result.separable, result.p, result.mdd, result.result
    else:
        separable, p, detectable = adjusted_p < alpha, adjusted_p, result.mdd
    if separable:
        return f"{names[0] if result.difference > 0 else names[1]} higher (p_holm = {p:.2g})"
    return f"no difference detected (p_holm = {p:.2g}; detectable: ≥ {scale * detectable:.1f} {unit})"

"""The statistics of the CLIP defense study on planted data: a 3-point head difference on 2 000 samples is found, a
null one is not (20 repeats, α = 0.05), copies of one sample under several CLIPs are one unit, and a planted
dose–response registers while a flat one does not."""
import numpy as np
import pytest

from mmrb.core.paired import bootstrap_means, cluster_means, format_p, paired_test, percentile_interval, trend_test

SEEDS, SAMPLES = 5, 2000


def _heads(rng, delta, seeds=SEEDS, samples=SAMPLES, noise=0.35, seed_spread=0.01):
    """Two heads on the same seeds and samples: a shared difficulty per sample and a shared draw per (seed, sample),
    each head's own noise on top, a seed offset; head A's threshold `delta` higher (≈ delta accuracy points)."""
    difficulty = rng.uniform(0.3, 1.0, size=samples)
    shared = rng.uniform(size=(seeds, samples))
    offset = rng.normal(0, seed_spread, size=(seeds, 1))
    a = shared + noise * rng.normal(size=shared.shape) * 0.3 < difficulty + offset + delta
    b = shared + noise * rng.normal(size=shared.shape) * 0.3 < difficulty + offset
    return a.astype(float), b.astype(float)


def _rejects(result, alpha=0.05):
    return result.p_clustered < alpha and result.p_value < alpha


def test_a_planted_three_point_head_difference_is_found_and_a_null_one_is_not_in_20_repeats():
    found, false = 0, 0
    for repeat in range(20):
        rng = np.random.default_rng(repeat)
        a, b = _heads(rng, 0.03)
        assert 0.02 < (a - b).mean() < 0.04  # the planted difference is about 3 points
        found += _rejects(paired_test(a, b, seed=repeat, reference="seed_t", replicates=500, flips=4000))
        a0, b0 = _heads(rng, 0.0)
        false += _rejects(paired_test(a0, b0, seed=repeat, reference="seed_t", replicates=500, flips=4000))
    assert found >= 19, found
    assert false <= 2, false  # at α = 0.05 both tests reject a null in about 1 of 20 or fewer


def test_copies_of_a_sample_under_several_clips_are_one_unit():
    rng = np.random.default_rng(0)
    a, b = _heads(rng, 0.02, samples=600, seed_spread=0.0)  # the sample part alone: what pooling could shrink
    clips = 5  # the same samples under five CLIPs that decide them (almost) alike
    flip = lambda x, r: np.where(r.uniform(size=x.shape) < 0.02, 1 - x, x)  # noqa: E731
    pooled_a = np.hstack([flip(a, np.random.default_rng(10 + c)) for c in range(clips)])
    pooled_b = np.hstack([flip(b, np.random.default_rng(20 + c)) for c in range(clips)])
    clusters = np.tile(np.arange(a.shape[1]), clips)
    width = lambda r: r.high - r.low  # noqa: E731
    per_clip = np.mean([width(paired_test(pooled_a[:, c * 600:(c + 1) * 600], pooled_b[:, c * 600:(c + 1) * 600],
                                          replicates=800)) for c in range(clips)])
    clustered = paired_test(pooled_a, pooled_b, replicates=800, clusters=clusters)
    naive = paired_test(pooled_a, pooled_b, replicates=800)
    assert width(clustered) >= 0.8 * per_clip, (width(clustered), width(naive), per_clip)  # ≈ one sample
    assert width(naive) < 0.75 * width(clustered)  # treating them as 3 000 samples would claim √5 the precision
    assert clustered.discordant_samples <= a.shape[1] < naive.discordant_samples
    assert cluster_means(pooled_a, clusters).shape == a.shape


def test_the_seed_t_reference_is_a_t_test_on_the_per_seed_differences():
    from scipy import stats

    rng = np.random.default_rng(3)
    a, b = _heads(rng, 0.01, seeds=3, samples=500, seed_spread=0.03)
    expected = stats.ttest_1samp((a - b).mean(axis=1), 0.0).pvalue
    assert paired_test(a, b, reference="seed_t", replicates=200).p_value == pytest.approx(expected)
    assert paired_test(a[:1], b[:1], reference="seed_t", replicates=200).p_value != 1.0  # one seed: the bootstrap's
    with pytest.raises(ValueError, match="reference"):
        paired_test(a, b, reference="z")


def test_p_values_are_never_reported_below_what_the_flips_resolve():
    a, b = np.ones((3, 400)), np.zeros((3, 400))
    result = paired_test(a, b, flips=999, replicates=200)
    assert result.p_clustered == pytest.approx(1 / 1000) and result.p_floor == pytest.approx(1 / 1000)
    assert format_p(result.p_clustered, result.p_floor) == "< 0.001"
    assert format_p(0.0312, 1 / 1000) == "0.031"


def test_a_planted_dose_response_registers_and_a_flat_one_does_not():
    rng = np.random.default_rng(5)
    doses = [0.0, 0.2, 0.4, 0.6, 0.8]
    difficulty = rng.uniform(0.3, 1.0, size=SAMPLES)
    falling = [(rng.uniform(size=(SEEDS, SAMPLES)) < difficulty - 0.06 * d).astype(float) for d in doses]
    flat = [(rng.uniform(size=(SEEDS, SAMPLES)) < difficulty).astype(float) for _ in doses]
    down = trend_test(falling, doses, replicates=500, draws=4000)
    assert down["p"] < 0.01 and down["high"] < 0 and down["low"] < -0.06 * 0.5
    assert -0.09 < down["slope"] < -0.03  # 6 points per unit γ planted, per sample-level draws
    level = trend_test(flat, doses, replicates=500, draws=4000)
    assert level["p"] > 0.05 and level["low"] < 0 < level["high"]
    low, high = percentile_interval(bootstrap_means(np.vstack(falling).reshape(len(doses) * SEEDS, -1)[:2], 200))
    assert low <= high
    with pytest.raises(ValueError, match="at least 3 doses"):
        trend_test(falling[:2], doses[:2])

"""The paired comparison finds a planted difference and not a null one; its interval covers seed and sample error."""
import numpy as np
import pytest

from mmrb.core.paired import bootstrap_means, holm, mdd, mean_interval, paired_test, verdict


def _outcomes(rng, accuracy, seeds=5, samples=2000, shared=None):
    """Per-(seed, sample) correctness; `shared` (samples,) uniforms couple two methods on the same samples."""
    u = rng.random((seeds, samples)) if shared is None else np.broadcast_to(shared, (seeds, samples))
    return (u < accuracy).astype(float)


def test_a_planted_two_point_difference_is_found_and_a_null_one_is_not():
    rng = np.random.default_rng(0)
    hardness = rng.random(2000)  # the same hard and easy samples for both methods (what pairing exploits)
    a = _outcomes(rng, 0.80, shared=hardness)
    b = _outcomes(rng, 0.78, shared=hardness)  # 2 points lower on the same samples
    planted = paired_test(a, b)
    assert planted.difference == pytest.approx(0.02, abs=0.005)
    assert planted.p_value < 0.01 and planted.low > 0
    assert planted.mdd < 0.02  # the run could detect what was planted
    null = paired_test(_outcomes(rng, 0.8), _outcomes(rng, 0.8))
    assert null.p_value > 0.05 and null.low < 0 < null.high
    assert "no difference detected" in verdict(null, null.p_value) and "detectable: ≥" in verdict(null, null.p_value)
    assert verdict(planted, planted.p_value, ("ran", "lp")).startswith("ran higher")


def test_the_null_rejects_at_about_alpha_over_many_repetitions():
    rng = np.random.default_rng(1)
    rejections = [paired_test(_outcomes(rng, 0.7, 3, 300), _outcomes(rng, 0.7, 3, 300), replicates=500, seed=i).p_value
                  < 0.05 for i in range(60)]
    assert np.mean(rejections) <= 0.15


def test_the_interval_widens_with_seed_spread_that_a_sample_bootstrap_alone_would_miss():
    rng = np.random.default_rng(2)
    steady = _outcomes(rng, 0.8, seeds=5)
    offsets = np.array([-0.1, -0.05, 0.0, 0.05, 0.1])[:, None]
    spread = (rng.random((5, 2000)) < 0.8 + offsets).astype(float)  # same mean, seeds disagree
    narrow, wide = mean_interval(steady), mean_interval(spread)
    assert wide.high - wide.low > 2 * (narrow.high - narrow.low)
    assert narrow.low < steady.mean() < narrow.high
    assert bootstrap_means(steady, 100).shape == (100,)


def test_holm_adjusts_step_down_and_keeps_order():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def test_shapes_must_match_and_mdd_grows_with_the_error():
    with pytest.raises(ValueError, match="same seeds and samples"):
        paired_test(np.ones((3, 10)), np.ones((2, 10)))
    assert mdd(0.01) == pytest.approx(0.028, abs=0.001) and mdd(0.02) > mdd(0.01)


def _pair(differing: int, seeds: int = 3, samples: int = 120, accuracy: float = 0.6, seed: int = 0):
    """Two models whose decisions agree on every sample but `differing` ones, where A is right and B wrong under every
    seed (the same samples, as one test set scores every seed)."""
    rng = np.random.default_rng(seed)
    b = np.broadcast_to(rng.random(samples) < accuracy, (seeds, samples)).astype(float).copy()
    a = b.copy()
    wrong = np.flatnonzero(b[0] == 0)[:differing]
    a[:, wrong] = 1.0
    return a, b


def test_three_of_120_samples_under_three_seeds_are_not_separable_and_twenty_points_are():
    from mmrb.core.paired import family

    small, large = paired_test(*_pair(3)), paired_test(*_pair(24))
    assert small.a_only == 9 and small.discordant_samples == 3  # 9 pooled pairs: pooled McNemar would call it
    assert small.p_mid < 0.01 and small.p_clustered == pytest.approx(0.25)  # 2 of 8 sign patterns reach |Σ d| = 9
    decided = family([small, large])
    assert not decided[0].separable and decided[1].separable
    assert large.difference == pytest.approx(0.2) and decided[1].p < 0.001
    assert decided[0].mdd > small.mdd  # the detectable difference at α/2 is larger than at α
    assert "no difference detected" in verdict(decided[0]) and verdict(decided[1], names=("A", "B")).startswith("A higher")


def test_intervals_stay_in_range_and_the_seed_part_is_widened_for_few_seeds():
    from mmrb.core.paired import seed_correction

    assert seed_correction(3) == pytest.approx(np.sqrt(1.5) * 4.303 / 1.96, rel=1e-3) and seed_correction(1) == 1.0
    assert 1 < seed_correction(30) < seed_correction(5) < seed_correction(3)
    near_one = np.ones((3, 40))
    near_one[0, :8] = 0  # one seed far worse: its spread would push a t-interval above 100 %
    interval = mean_interval(near_one)
    assert 0 <= interval.low <= interval.mean <= interval.high <= 1 and interval.low < 0.85
    diff = paired_test(np.ones((3, 40)), near_one)
    assert -1 <= diff.low <= diff.difference <= diff.high <= 1
    rng = np.random.default_rng(3)  # with many seeds the correction is small: coverage of a known mean near 95 %
    hits = [mean_interval((rng.random((3, 60)) < 0.7 + rng.normal(0, 0.03, (3, 1))).astype(float), replicates=400,
                          seed=i) for i in range(80)]
    assert np.mean([h.low <= 0.7 <= h.high for h in hits]) >= 0.9

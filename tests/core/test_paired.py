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

"""The paired test (mmrb.core.paired) separates a planted difference and not a null one."""
from __future__ import annotations

import numpy as np

from mmrb.core.paired import detectable_difference, holm, mcnemar, paired_test


def _correct(rng, accuracy, shape=(3, 200)):
    return rng.random(shape) < accuracy


def test_a_planted_difference_is_separated():
    rng = np.random.default_rng(0)
    b = _correct(rng, 0.7)
    a = b | (rng.random(b.shape) < 0.25)  # A right wherever B is, and on a quarter of the rest
    result = paired_test(a, b)
    assert result.separable() and result.p_bootstrap < 0.05 and result.ci_low > 0 and result.b_only == 0


def test_a_null_difference_is_not_separated_at_the_nominal_rate():
    rng = np.random.default_rng(1)
    rejected = [paired_test(_correct(rng, 0.7), _correct(rng, 0.7), draws=200, seed=i).separable() for i in range(100)]
    assert sum(rejected) <= 10  # about 5 of 100 at α = 0.05


def test_same_predictions_are_never_separated():
    b = _correct(np.random.default_rng(2), 0.6)
    assert paired_test(b, b).p_mid == 1.0 and not paired_test(b, b).separable()


def test_mcnemar_matches_the_binomial_and_holm_is_monotone():
    exact, mid = mcnemar(10, 2)
    assert exact == np.float64(exact) and 0.03 < exact < 0.04 and mid < exact
    assert holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]


def test_the_detectable_difference_shrinks_with_samples():
    assert detectable_difference(120, 3, 0.2) > detectable_difference(1200, 3, 0.2) > 0

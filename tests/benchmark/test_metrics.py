"""Tests of the metrics: agreement with scikit-learn (ties included) and hand-checked robustness cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.evaluation.metrics import accuracy, attack_success_rate, f1_score, perturbation_linf, robustness_scores, roc_auc

labels = st.lists(st.integers(0, 1), min_size=1, max_size=40)
# few distinct values, so that ties between positives and negatives are common
tied_scores = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5000001, 0.9, 1.0])


@st.composite
def labels_and_preds(draw):
    y = draw(labels)
    return np.array(y), np.array(draw(st.lists(st.integers(0, 1), min_size=len(y), max_size=len(y))))


@st.composite
def labels_and_scores(draw):
    y = draw(labels)
    return np.array(y), np.array(draw(st.lists(tied_scores, min_size=len(y), max_size=len(y))))


# --- against scikit-learn ------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(labels_and_preds())
def test_accuracy_matches_sklearn(data):
    y, pred = data
    assert accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred))


@settings(max_examples=200, deadline=None)
@given(labels_and_preds())
def test_f1_of_the_abnormal_class_matches_sklearn(data):
    y, pred = data
    assert f1_score(y, pred) == pytest.approx(skm.f1_score(y, pred, pos_label=1, zero_division=0.0))


@settings(max_examples=200, deadline=None)
@given(labels_and_preds())
def test_f1_of_the_normal_class_matches_sklearn(data):
    y, pred = data
    assert f1_score(y, pred, positive=0) == pytest.approx(skm.f1_score(y, pred, pos_label=0, zero_division=0.0))


@settings(max_examples=300, deadline=None)
@given(labels_and_scores())
def test_roc_auc_matches_sklearn_with_ties(data):
    y, score = data
    if len(set(y)) < 2:
        assert math.isnan(roc_auc(y, score))
    else:
        assert roc_auc(y, score) == pytest.approx(skm.roc_auc_score(y, score))


@settings(max_examples=100, deadline=None)
@given(labels_and_scores(), st.floats(0.1, 10))
def test_roc_auc_depends_only_on_the_order_of_scores(data, scale):
    y, score = data
    if len(set(y)) == 2:
        assert roc_auc(y, score * scale - 3) == pytest.approx(roc_auc(y, score))
        assert roc_auc(y, 1 - score) == pytest.approx(1 - roc_auc(y, score))


# --- hand cases ----------------------------------------------------------------------------------------------


def test_accuracy_hand_case_and_empty():
    assert accuracy(np.array([1, 0, 1, 1]), np.array([1, 1, 1, 0])) == 0.5
    assert math.isnan(accuracy(np.array([]), np.array([])))


def test_f1_hand_cases():
    # tp = 1, fn = 1, fp = 1 -> 2*1 / (2 + 2)
    assert f1_score(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])) == pytest.approx(0.5)
    # the abnormal class is neither present nor predicted: 0, not nan
    assert f1_score(np.array([0, 0]), np.array([0, 0])) == 0.0
    # perfect, but predicting everything normal scores 0 even at high accuracy
    assert f1_score(np.array([1, 0, 0]), np.array([1, 0, 0])) == 1.0
    assert f1_score(np.array([1, 0, 0, 0]), np.array([0, 0, 0, 0])) == 0.0


def test_roc_auc_hand_cases():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)  # a tie counts half
    assert roc_auc(np.array([1, 0, 1]), np.array([0.9, 0.1, 0.8])) == 1.0
    assert math.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))
    assert math.isnan(roc_auc(np.array([0, 0]), np.array([0.2, 0.3])))


def test_attack_success_rate_counts_only_clean_correct_samples():
    y = np.array([1, 1, 0, 0, 1])
    clean = np.array([1, 1, 0, 1, 0])  # samples 0, 1, 2 correct; 3 and 4 wrong already
    adv = np.array([0, 1, 1, 0, 1])  # flips 0 and 2; "fixes" 3 and 4, which must not count
    assert attack_success_rate(y, clean, adv) == pytest.approx(2 / 3)


def test_attack_success_rate_extremes():
    y = np.array([0, 1, 0])
    assert attack_success_rate(y, y, y) == 0.0
    assert attack_success_rate(y, y, 1 - y) == 1.0
    assert math.isnan(attack_success_rate(y, 1 - y, y))  # nothing correct when clean: undefined
    assert math.isnan(attack_success_rate(np.array([]), np.array([]), np.array([])))


def test_perturbation_linf():
    x = np.zeros((2, 3, 2, 2), dtype=np.float32)
    x_adv = x.copy()
    x_adv[1, 2, 0, 1] = -0.25
    x_adv[0, 0, 1, 1] = 0.125
    assert perturbation_linf(x, x_adv) == 0.25
    assert perturbation_linf(x, x) == 0.0
    assert perturbation_linf(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0


def test_perturbation_linf_does_not_wrap_unsigned_pixels():
    x = np.array([[10, 200]], dtype=np.uint8)
    x_adv = np.array([[5, 203]], dtype=np.uint8)
    assert perturbation_linf(x, x_adv) == 5.0


# --- robustness_scores ---------------------------------------------------------------------------------------

KEYS = {"clean_accuracy", "robust_accuracy", "clean_f1", "robust_f1", "auc", "robust_auc", "attack_success_rate",
        "n_normal", "n_abnormal", "clean_accuracy_normal", "clean_accuracy_abnormal", "robust_accuracy_normal",
        "robust_accuracy_abnormal"}


def as_probs(p_abnormal) -> np.ndarray:
    p = np.asarray(p_abnormal, dtype=float)
    return np.stack([1 - p, p], axis=1)


def test_robustness_scores_hand_case():
    y = np.array([1, 0, 1, 0])
    clean = as_probs([0.9, 0.2, 0.7, 0.6])  # predicts 1, 0, 1, 1: 3/4 correct; positives outrank negatives
    adv = as_probs([0.3, 0.2, 0.8, 0.9])  # predicts 0, 0, 1, 1: 2/4 correct
    scores = robustness_scores(y, clean, adv)
    assert set(scores) == KEYS
    assert scores["clean_accuracy"] == 0.75 and scores["robust_accuracy"] == 0.5
    assert scores["clean_f1"] == pytest.approx(0.8) and scores["robust_f1"] == pytest.approx(0.5)
    assert scores["auc"] == 1.0 and scores["robust_auc"] == pytest.approx(0.5)
    assert scores["attack_success_rate"] == pytest.approx(1 / 3)  # of samples 0, 1, 2 only sample 0 flips
    # per class: normal samples 1, 3 (clean 1/2 right, attacked 1/2); abnormal 0, 2 (clean 2/2, attacked 1/2)
    assert (scores["n_normal"], scores["n_abnormal"]) == (2, 2)
    assert (scores["clean_accuracy_normal"], scores["clean_accuracy_abnormal"]) == (0.5, 1.0)
    assert (scores["robust_accuracy_normal"], scores["robust_accuracy_abnormal"]) == (0.5, 0.5)


@settings(max_examples=100, deadline=None)
@given(labels_and_scores())
def test_no_attack_means_robust_equals_clean(data):
    y, p = data
    prob = as_probs(p)
    scores = robustness_scores(y, prob, prob)
    assert set(scores) == KEYS
    for clean, robust in (("clean_accuracy", "robust_accuracy"), ("clean_f1", "robust_f1"), ("auc", "robust_auc")):
        assert scores[robust] == scores[clean] or (math.isnan(scores[robust]) and math.isnan(scores[clean]))
    assert scores["clean_accuracy"] == pytest.approx(skm.accuracy_score(y, prob.argmax(1)))
    asr = scores["attack_success_rate"]
    assert asr == 0.0 or (math.isnan(asr) and scores["clean_accuracy"] == 0.0)


def test_seed_interval_hand_case():
    """Accuracies 0.5, 0.6, 0.7 over three seeds on n = 100 test samples, worked by hand:
    s = 0.1, t(0.975, 2) = 4.302653 -> h_seed = 4.302653 · 0.1 / √3 = 0.248414;
    Wilson(0.6, 100), z = 1.959964: centre (0.6 + z²/200) / (1 + z²/100) = 0.596301,
    half z / (1 + z²/100) · √(0.0024 + z²/40000) = 0.094298 -> [0.502003, 0.690599];
    low = 0.6 − √(0.248414² + 0.097997²) = 0.332955, high = 0.6 + √(0.248414² + 0.090599²) = 0.864419."""
    from benchmark.evaluation.metrics import seed_interval, wilson_interval

    assert wilson_interval(0.6, 100) == pytest.approx((0.502003, 0.690599), abs=2e-6)
    got = seed_interval([0.5, 0.6, 0.7], 100)
    assert got["mean"] == pytest.approx(0.6) and got["std"] == pytest.approx(0.1)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((0.332955, 0.864419), abs=2e-6)


def test_seed_interval_one_seed_is_the_wilson_interval_and_zero_has_width():
    from benchmark.evaluation.metrics import seed_interval, wilson_interval

    one = seed_interval([0.5], 120)
    assert (one["ci_low"], one["ci_high"]) == pytest.approx(wilson_interval(0.5, 120))
    assert one["ci_high"] - one["mean"] == pytest.approx(0.0881, abs=1e-3)  # the ±9 pp of n = 120 at 50 %
    zero = seed_interval([0.0, 0.0, 0.0], 120)
    assert zero["ci_low"] == 0.0 and 0.02 < zero["ci_high"] < 0.04  # all broken is not "exactly 0 ± 0"
    spread = seed_interval([0.5, 0.0, 0.03], 120)
    assert spread["ci_high"] - spread["ci_low"] > 2 * (one["ci_high"] - one["mean"])  # seed spread widens it

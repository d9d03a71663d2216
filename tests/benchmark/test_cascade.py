"""The cascade gives the full run's figure at a fraction of the cost, and the escalating convergence check stops
on a converged attack and escalates an under-stepped one."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.attacks import Target, craft
from benchmark.attacks.cascade import Cascade
from benchmark.attacks.convergence import accepted_params, escalate
from benchmark.attacks.registry import info
from wrappers.estimators import ImageView
from wrappers.training import predict_proba

N = 40
PGD = "ProjectedGradientDescent"


@pytest.fixture(scope="module")
def target(trained, test_split):
    model = trained("early_fusion")
    images, texts, labels = test_split.images[:N], list(test_split.texts[:N]), test_split.labels[:N]
    return Target(model, images, texts, labels, ImageView(model, images, texts))


def _robust(target, crafted):
    return predict_proba(target.model, crafted.images, crafted.texts).argmax(1) == target.labels


RUNS = [("art", PGD, {"max_iter": 3, "num_random_init": 0}),
        ("art", "FastGradientMethod", {}),
        ("mmrb", "pgd", {"steps": 10, "restarts": 2}),  # random starts drawn per sample: batch-independent
        ("art", PGD, {"max_iter": 10, "num_random_init": 0})]


def test_the_cascade_equals_running_every_attack_on_every_sample(target):
    eps = 0.02
    full = np.ones(N, dtype=bool)
    for source, name, params in RUNS:
        full &= _robust(target, craft(source, name, params, target, eps, 0))
    cascade = Cascade(target, predict_proba(target.model, target.images, target.texts))
    for source, name, params in RUNS:
        cascade.run(name, lambda sub, s=source, n=name, p=params: craft(s, n, p, sub, eps, 0), eps)
    np.testing.assert_array_equal(cascade.robust, full & (cascade.probs.argmax(1) == target.labels))
    np.testing.assert_array_equal(cascade.robust, full)
    assert 0 < full.mean() < 1, "the attacks should break some samples and not others"
    assert np.abs(cascade.images - target.images).max() <= eps + 1e-5
    # later parts attacked only the survivors, and each part records its cost
    attacked = [p.attacked for p in cascade.parts]
    assert attacked[0] == int((predict_proba(target.model, target.images, target.texts).argmax(1) == target.labels).sum())
    assert attacked == sorted(attacked, reverse=True) and attacked[-1] < attacked[0]
    assert all(p.seconds >= 0 for p in cascade.parts) and cascade.parts[-1].robust == int(full.sum())


def _escalated(target, params, eps, **spec):
    crafted = craft("art", PGD, params, target, eps, 0)
    probs = predict_proba(target.model, crafted.images, crafted.texts)
    cascade = Cascade(target, probs, crafted.images)
    record = escalate(cascade, lambda p, sub, s: craft("art", PGD, p, sub, eps, s), accepted_params("art", PGD),
                      info("art", PGD), params, eps, 0, **spec)
    return (probs.argmax(1) == target.labels).mean(), cascade.robust_accuracy(), record


def test_escalation_stops_on_a_converged_attack(target):
    as_run, after, record = _escalated(target, {"max_iter": 10}, 0.001)
    assert after == as_run > 0.5  # nothing to find at ε = 0.001
    assert record["rounds"] == 2 and not record["capped"]  # stopped at the minimum number of rounds
    assert record["steps"] == 40 and record["restarts"] == 3


def test_escalation_lowers_an_under_stepped_pgd_and_flags_the_cap(target):
    weak = {"max_iter": 1, "eps_step": 0.002}
    as_run, after, record = _escalated(target, weak, 0.1)
    assert after < as_run - 0.1, (as_run, after)
    assert record["rounds"] >= 2 and record["attacked"] > 0 and record["seconds"] > 0
    # the same attack with a cap of one round hits the cap while still falling: flagged
    _, capped_after, capped = _escalated(target, weak, 0.1, max_rounds=1, min_rounds=1)
    assert capped["capped"] and capped["rounds"] == 1 and capped_after >= after

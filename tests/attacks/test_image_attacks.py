"""Image attacks from ART and torchattacks through one adapter each, on the same view and samples."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.attacks import Target, craft
from mmrb.core.errors import AttackError
from tests.wrappers.test_estimators import AlignmentProbe, probe_inputs
from wrappers.estimators import ImageView
from wrappers.training import predict_logits


def target_of(model, images, texts, labels) -> Target:
    return Target(model, images, list(texts), labels, ImageView(model, images, texts))


def robust_accuracy(model, x_adv, texts, labels) -> float:
    return float((predict_logits(model, x_adv, texts).argmax(1).numpy() == labels).mean())


TORCHATTACKS = {
    "PGD": {"steps": 5},
    "APGD": {"steps": 5},
    "Square": {"n_queries": 60},
    "FAB": {"steps": 5, "n_restarts": 1},
    "CW": {"steps": 10, "c": 1.0},
}


@pytest.mark.parametrize("name", TORCHATTACKS)
def test_torchattacks_queries_keep_their_texts(name):
    images, texts, labels = probe_inputs()
    probe = AlignmentProbe(len(texts))
    crafted = craft("torchattacks", name, TORCHATTACKS[name], target_of(probe, images, texts, labels), 0.03, seed=0)
    if name != "CW":  # CW is an L2 attack without a budget: it runs one sample at a time, any query is that sample's
        assert probe.mismatches == 0
        assert np.abs(crafted.images - images).max() <= 0.03 + 1e-6
    assert crafted.images.min() >= 0 and crafted.images.max() <= 1
    assert robust_accuracy(probe, crafted.images, texts, labels) < 1.0  # every attack breaks some probe samples


@pytest.mark.parametrize("name", list(TORCHATTACKS)[:4])
def test_torchattacks_lower_a_trained_fusion_model(trained, test_split, name):
    model = trained("late_fusion")
    x, texts, y = test_split.images[:24], test_split.texts[:24], test_split.labels[:24]
    crafted = craft("torchattacks", name, TORCHATTACKS[name], target_of(model, x, texts, y), 8 / 255, seed=0)
    assert np.abs(crafted.images - x).max() <= 8 / 255 + 1e-6
    assert robust_accuracy(model, crafted.images, texts, y) < robust_accuracy(model, x, texts, y)


@pytest.mark.parametrize("eps", [8 / 255, 0.2])
def test_art_and_torchattacks_pgd_agree_within_two_points(trained, test_split, eps):
    model = trained("early_fusion")
    x, texts, y = test_split.images, test_split.texts, test_split.labels
    target = target_of(model, x, texts, y)
    art = craft("art", "ProjectedGradientDescent", {"max_iter": 10, "num_random_init": 0}, target, eps, seed=0)
    ta = craft("torchattacks", "PGD", {"steps": 10, "random_start": False}, target, eps, seed=0)
    assert art.params["eps_step"] == pytest.approx(ta.params["alpha"])
    gap = robust_accuracy(model, art.images, texts, y) - robust_accuracy(model, ta.images, texts, y)
    assert abs(gap) <= 0.02
    assert robust_accuracy(model, art.images, texts, y) < robust_accuracy(model, x, texts, y)


def test_unknown_attacks_name_the_closest():
    images, texts, labels = probe_inputs()
    target = target_of(AlignmentProbe(len(texts)), images, texts, labels)
    with pytest.raises(AttackError, match="did you mean PGD"):
        craft("torchattacks", "PDG", {}, target, 0.03, seed=0)
    with pytest.raises(AttackError, match="FastGradientMethod"):
        craft("art", "FastGradientMethd", {}, target, 0.03, seed=0)
    with pytest.raises(AttackError, match="no parameter"):
        craft("torchattacks", "PGD", {"max_iter": 3}, target, 0.03, seed=0)
    with pytest.raises(AttackError, match="unknown attack source"):
        craft("foolbox", "PGD", {}, target, 0.03, seed=0)

"""Each loss term of RAN and NMTune on small hand-computable tensors."""
from __future__ import annotations

import math

import pytest
import torch

from defenses.heads.losses import adversarial_margin_loss, class_centroids, consistency_loss, covariance_loss, singular_value_loss


def test_covariance_loss_of_decorrelated_features_is_zero():
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # centred, uncorrelated columns
    assert covariance_loss(z).item() == pytest.approx(0.0, abs=1e-7)


def test_covariance_loss_of_correlated_features_by_hand():
    # two samples, two equal columns: C = [[2, 2], [2, 2]] (n - 1 = 1); off-diagonal squares 4 + 4, over D = 2
    z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    assert covariance_loss(z).item() == pytest.approx(4.0)


def test_consistency_loss_is_zero_for_identical_normalised_features_and_two_for_orthogonal_ones():
    f = torch.tensor([[3.0, 4.0], [1.0, -2.0]])
    assert consistency_loss(f, 2.5 * f).item() == pytest.approx(0.0, abs=1e-7)  # same direction, other length
    assert consistency_loss(torch.eye(2), torch.eye(2).flip(0)).item() == pytest.approx(2.0)  # ‖e1 − e2‖² = 2


def test_singular_value_term_rises_when_the_spectrum_concentrates():
    flat = torch.eye(10)  # ten equal singular values: s/Σs = 0.1 each, top-5 mean 0.1
    rank_one = torch.ones(10, 10)  # one non-zero singular value: s/Σs = (1, 0, ...), top-5 mean 0.2
    assert singular_value_loss(flat).item() == pytest.approx(0.1, abs=1e-6)
    assert singular_value_loss(rank_one).item() == pytest.approx(0.2, abs=1e-6)
    mixed = torch.eye(10) + 0.5 * torch.ones(10, 10)
    assert singular_value_loss(flat) < singular_value_loss(mixed) < singular_value_loss(rank_one)


def test_adversarial_loss_by_hand_for_a_feature_on_its_own_centroid():
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z, y = torch.tensor([[2.0, 0.0]]), torch.tensor([0])  # normalised: (1, 0), √2 from the other centroid
    expected = -(math.sqrt(2) + math.pi / 2)  # −(dist + arccos(c0 · c1))
    assert adversarial_margin_loss(z, y, 2, centroids).item() == pytest.approx(expected, abs=1e-5)


def test_adversarial_loss_grows_as_a_feature_approaches_a_wrong_centroid():
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    angles = torch.linspace(0, math.pi / 2, 6)  # class-0 feature rotating from its centroid to class 1's
    losses = [adversarial_margin_loss(torch.stack([a.cos(), a.sin()])[None], torch.tensor([0]), 2, centroids).item()
              for a in angles]
    assert all(b > a for a, b in zip(losses, losses[1:]))


def test_adversarial_loss_with_batch_centroids_grows_as_classes_mix_and_is_zero_for_one_class():
    y = torch.tensor([0, 0, 1, 1])
    apart = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    closer = apart.clone()
    closer[0] = torch.tensor([0.5, 1.0])  # one class-0 feature moves towards class 1
    assert adversarial_margin_loss(closer, y, 2) > adversarial_margin_loss(apart, y, 2)
    assert adversarial_margin_loss(apart, torch.zeros(4, dtype=torch.long), 2).item() == 0.0
    centroids, present = class_centroids(apart, y, 3)
    assert present.tolist() == [True, True, False] and torch.allclose(centroids[2], torch.zeros(2))


def test_adversarial_loss_gradients_are_finite_when_a_feature_sits_on_a_centroid():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)  # each feature is its class centroid
    adversarial_margin_loss(z, torch.tensor([0, 1]), 2).backward()
    assert torch.isfinite(z.grad).all()

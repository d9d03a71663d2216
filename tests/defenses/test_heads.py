"""The four fine-tuning methods: registry, training, and that each changes the features as it claims."""
from __future__ import annotations

import pytest
import torch

from defenses.heads import create_defense, fit_head, list_defenses
from defenses.heads.losses import adversarial_margin_loss, consistency_loss, covariance_loss, singular_value_loss
from mmrb.core.errors import ModelError

DIM = 16


@pytest.fixture(scope="module")
def features() -> tuple[torch.Tensor, torch.Tensor]:
    """Two overlapping classes in 16-d with strongly correlated dimensions (like frozen CLIP features)."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(240) % 2
    mixing = torch.randn(DIM, DIM, generator=g) + 2.0 * torch.ones(DIM, DIM)
    f = torch.randn(240, DIM, generator=g) @ mixing / DIM + 0.6 * (2 * y[:, None] - 1) * torch.linspace(1, 0, DIM)
    return f, y


def _trained(name: str, features, **params):
    torch.manual_seed(0)
    head = create_defense(name, DIM, **params)
    losses = fit_head(head, *features, seed=0, epochs=60)
    return head, losses


def test_registry_lists_the_four_methods_and_names_close_matches():
    assert list_defenses() == ["lp", "mlp", "nmtune", "ran"]
    with pytest.raises(ModelError, match="did you mean ran"):
        create_defense("rann", DIM)
    with pytest.raises(ModelError, match="it takes: hidden, alpha, beta"):
        create_defense("ran", DIM, gamma=1.0)


@pytest.mark.parametrize("name", ["lp", "mlp", "nmtune", "ran"])
def test_each_method_trains(name, features):
    head, losses = _trained(name, features)
    f, y = features
    with torch.no_grad():
        accuracy = (head(f).argmax(1) == y).float().mean().item()
    assert losses[-1] < losses[0]
    assert accuracy > 0.85


def test_linear_probe_leaves_the_features_unchanged(features):
    head, _ = _trained("lp", features)
    assert torch.equal(head.transform(features[0]), features[0])


def test_ran_loss_is_ce_plus_weighted_terms(features):
    f, y = features
    head = create_defense("ran", DIM, alpha=0.3, beta=0.7)
    total, parts = head.loss(f, y)
    assert total.item() == pytest.approx(parts["ce"] + 0.3 * (parts["mse"] + parts["cov"]) + 0.7 * parts["adv"], rel=1e-5)


def test_ran_decorrelates_and_keeps_features_closer_to_the_frozen_ones_than_mlp(features):
    f, y = features
    mlp, _ = _trained("mlp", features)
    ran, _ = _trained("ran", features, alpha=1.0, beta=0.0)
    with torch.no_grad():
        z_mlp, z_ran = mlp.transform(f), ran.transform(f)
        assert covariance_loss(z_ran) < 0.5 * covariance_loss(z_mlp)
        assert consistency_loss(f, z_ran) < consistency_loss(f, z_mlp)


def test_ran_adversarial_term_separates_the_classes_more_than_mlp(features):
    f, y = features
    mlp, _ = _trained("mlp", features)
    ran, _ = _trained("ran", features, alpha=0.0, beta=1.0)
    with torch.no_grad():
        assert adversarial_margin_loss(ran.transform(f), y, 2) < adversarial_margin_loss(mlp.transform(f), y, 2) - 0.05


def test_nmtune_structure_and_its_spectrum_term_concentrates_the_features(features):
    f, y = features
    head = create_defense("nmtune", DIM)
    assert [type(m).__name__ for m in head.mlp] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head.mlp[0].out_features == 4 * DIM and head.scale.shape == (DIM,)
    assert (head.lambda_mse, head.lambda_cov, head.lambda_svd) == (1.0, 0.04, 0.001)
    plain, _ = _trained("nmtune", features, lambda_svd=0.0)
    peaked, _ = _trained("nmtune", features, lambda_svd=1.0)
    with torch.no_grad():
        assert singular_value_loss(peaked.transform(f)) > singular_value_loss(plain.transform(f)) + 0.01


def test_head_recipe_rejects_unknown_fields(features):
    with pytest.raises(ModelError, match="unknown key.*learning_rate"):
        fit_head(create_defense("lp", DIM), *features, seed=0, learning_rate=1.0)

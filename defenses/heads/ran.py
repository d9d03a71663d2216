"""RAN, rectify adversarial noise (Han et al. 2025, §3.2): L = L_CE + α(L_MSE + L_COV) + β·L_ADV on a 2-layer MLP."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defenses.heads.head import DefenseHead
from defenses.heads.losses import adversarial_margin_loss, consistency_loss, covariance_loss
from defenses.heads.mlp import two_layer_mlp
from defenses.heads.registry import register_defense


@register_defense("ran")
class RAN(DefenseHead):
    """Z = MLP(F), logits = linear(Z); L_COV decorrelates Z, L_MSE keeps Ẑ near F̂, L_ADV separates the classes
    (see `adversarial_margin_loss` for how its printed formula is read). α = 0.01, β = 0.015 as the paper."""

    PARAMS = ("hidden", "alpha", "beta", "learned_centroids")

    def __init__(self, dim: int, n_classes: int = 2, hidden: int | None = None, alpha: float = 0.01,
                 beta: float = 0.015, learned_centroids: bool = False) -> None:
        super().__init__(dim, n_classes)
        self.mlp = two_layer_mlp(dim, hidden or dim)
        self.alpha, self.beta = alpha, beta
        # learned: one trainable centroid per class (unit-normalised in the loss) instead of the batch's class means
        self.centroids = nn.Parameter(torch.randn(n_classes, dim)) if learned_centroids else None

    def _centroids(self) -> torch.Tensor | None:
        return None if self.centroids is None else F.normalize(self.centroids, dim=1)

    def transform(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)

    def loss(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        z = self.transform(features)
        parts = {"ce": F.cross_entropy(self.classifier(z), labels), "mse": consistency_loss(features, z),
                 "cov": covariance_loss(z), "adv": adversarial_margin_loss(z, labels, self.n_classes, self._centroids())}
        total = parts["ce"] + self.alpha * (parts["mse"] + parts["cov"]) + self.beta * parts["adv"]
        return total, {k: v.item() for k, v in parts.items()}

"""NMTune (Chen et al., "Understanding and mitigating the label noise in pre-training on downstream tasks",
ICLR 2024), as its authors' public code defines it.

It reads the raw `encode_image` features f (not L2-normalised), so that at initialisation the residual is small
beside f and g starts near f (measured on the tiny CLIP: ‖s ⊙ MLP(f)‖/‖f‖ ≈ 0.3, cos(g, f) ≈ 0.95; on normalised
features the same MLP output is about 3 × ‖f‖ and cos(g, f) ≈ 0.3: a random projection, not a tuner). Trained
for 30 epochs; its layers keep PyTorch's default initialisation (as the authors' code).

g = f + s ⊙ MLP(f), MLP = Linear(D, 4D) → BatchNorm → ReLU → Linear(4D, D), s a learnable per-dimension
scale (initialised to 1), then a linear head; trained jointly with
L = CE + λ_mse · MSE(ĝ, f̂.detach()) + λ_cov · Σ_{i≠j} C(g)_ij² / D − λ_svd · mean(top-5 of s/Σs),
s the singular values of the tuned feature batch; λ_mse 1.0, λ_cov 0.04, λ_svd 0.001; AdamW lr 1e-3,
weight decay 1e-4, cosine schedule, batch 64.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defenses.heads.head import DefenseHead, HeadRecipe
from defenses.heads.losses import covariance_loss, singular_value_loss
from defenses.heads.registry import register_defense


@register_defense("nmtune")
class NMTune(DefenseHead):
    """Residual feature tuner + linear head with NMTune's consistency, covariance and dominant-spectrum terms."""

    PARAMS = ("lambda_mse", "lambda_cov", "lambda_svd", "top_k")
    recipe = HeadRecipe(lr=1e-3, weight_decay=1e-4, epochs=30, batch_size=64)
    features = "raw"

    def __init__(self, dim: int, n_classes: int = 2, lambda_mse: float = 1.0, lambda_cov: float = 0.04,
                 lambda_svd: float = 0.001, top_k: int = 5) -> None:
        super().__init__(dim, n_classes)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.BatchNorm1d(4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))
        self.scale = nn.Parameter(torch.ones(dim))
        self.lambda_mse, self.lambda_cov, self.lambda_svd, self.top_k = lambda_mse, lambda_cov, lambda_svd, top_k

    def transform(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.scale * self.mlp(features)

    def loss(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        g = self.transform(features)
        parts = {"ce": F.cross_entropy(self.classifier(g), labels),
                 "mse": F.mse_loss(F.normalize(g, dim=1), F.normalize(features, dim=1).detach()),
                 "cov": covariance_loss(g), "svd": singular_value_loss(g, self.top_k)}
        total = (parts["ce"] + self.lambda_mse * parts["mse"] + self.lambda_cov * parts["cov"]
                 - self.lambda_svd * parts["svd"])
        return total, {k: v.item() for k, v in parts.items()}

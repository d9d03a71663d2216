"""MLP tuning (Han et al. 2025 §4.3 ii): the same 2-layer MLP as RAN, cross-entropy only."""
from __future__ import annotations

from torch import nn

from defenses.heads.head import DefenseHead
from defenses.heads.registry import register_defense


def two_layer_mlp(dim: int, hidden: int) -> nn.Sequential:
    """The 2-layer MLP F -> Z (D -> hidden -> D) shared by MLP tuning and RAN, for a fair comparison (§3.2)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))


@register_defense("mlp")
class MLPTuning(DefenseHead):
    """Z = MLP(F), logits = linear(Z); cross-entropy only."""

    PARAMS = ("hidden",)

    def __init__(self, dim: int, n_classes: int = 2, hidden: int | None = None) -> None:
        super().__init__(dim, n_classes)
        self.mlp = two_layer_mlp(dim, hidden or dim)

    def transform(self, features):
        return self.mlp(features)

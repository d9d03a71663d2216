"""Linear probing (Radford et al. 2021): a linear classifier on the frozen features, cross-entropy only."""
from __future__ import annotations

from defenses.heads.head import DefenseHead, HeadRecipe
from defenses.heads.registry import register_defense


@register_defense("lp")
class LinearProbe(DefenseHead):
    """F -> linear -> logits; trained as NMTune's authors train their linear probe (AdamW, lr 0.01)."""

    recipe = HeadRecipe(lr=0.01)

"""Adapter for TextAttack: search recipes that need no downloads, run with each example's image bound."""
from __future__ import annotations

import numpy as np

from benchmark.attacks import Crafted, Target, register_source
from benchmark.errors import AttackError

RECIPES = ("PWWS", "DeepWordBug", "WordNetGreedy")


@register_source("textattack")
def craft_textattack(name: str, params: dict, target: Target, epsilon: float | None, seed: int) -> Crafted:
    """Run TextAttack recipe `name` on every sample; queries per sample are recorded."""
    if name not in RECIPES:
        raise AttackError(f"TextAttack recipe {name!r} is not available offline here; use one of {', '.join(RECIPES)}")
    from benchmark.attacks.text import textattack_recipe

    images = target.images if "image" in target.model.modalities else None
    texts, queries = textattack_recipe(name, target.model, images, list(target.texts), target.labels, params, seed)
    return Crafted(target.images, list(texts), 0, dict(params), np.asarray(queries))

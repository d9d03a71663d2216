"""Adapter for TextAttack: search recipes that need no downloads, run with each example's image bound."""
from __future__ import annotations

import difflib

import numpy as np

from benchmark.attacks import Crafted, Problem, Target, register_source
from mmrb.core.errors import AttackError

RECIPES = ("PWWS", "DeepWordBug", "WordNetGreedy")


def check(name: str, params: dict) -> list[Problem]:
    """Unknown recipe names and parameters, before any work (without importing TextAttack)."""
    from benchmark.attacks.text import COMMON_PARAMS, RECIPE_PARAMS

    if name not in RECIPES:
        close = difflib.get_close_matches(name, RECIPES, n=2)
        return [("name", f"TextAttack recipe {name!r} is not available offline here"
                         f"{'; did you mean ' + ', '.join(close) + '?' if close else ''}; use one of {', '.join(RECIPES)}")]
    allowed = COMMON_PARAMS + RECIPE_PARAMS[name]
    return [(f"params.{p}", f"TextAttack recipe {name} has no parameter {p!r}; it takes: {', '.join(allowed)}")
            for p in sorted(set(params) - set(allowed))]


@register_source("textattack")
def craft_textattack(name: str, params: dict, target: Target, epsilon: float | None, seed: int) -> Crafted:
    """Run TextAttack recipe `name` on every sample; queries per sample are recorded."""
    if name not in RECIPES:
        raise AttackError(f"TextAttack recipe {name!r} is not available offline here; use one of {', '.join(RECIPES)}")
    from benchmark.attacks.text import textattack_recipe

    images = target.images if "image" in target.model.modalities else None
    texts, queries = textattack_recipe(name, target.model, images, list(target.texts), target.labels, params, seed)
    return Crafted(target.images, list(texts), 0, dict(params), np.asarray(queries))

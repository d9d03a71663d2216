"""Adapter for TextAttack: search recipes that need no downloads, run with each example's image bound."""
from __future__ import annotations

import inspect

import numpy as np

from benchmark.attacks import Crafted, Problem, Target
from benchmark.attacks.registry import AttackInfo, Library, register_library
from mmrb.core.errors import AttackError, did_you_mean

RECIPES = ("PWWS", "DeepWordBug", "WordNetGreedy")


def check(name: str, params: dict) -> list[Problem]:
    """Unknown recipe names and parameters, before any work (without importing TextAttack)."""
    from benchmark.attacks.text import COMMON_PARAMS, RECIPE_PARAMS

    if name not in RECIPES:
        hint = did_you_mean(name, RECIPES)
        return [("name", f"TextAttack recipe {name!r} is not available offline here{'; ' + hint if hint else ''}; "
                         f"use one of {', '.join(RECIPES)}")]
    allowed = COMMON_PARAMS + RECIPE_PARAMS[name]
    return [(f"params.{p}", f"TextAttack recipe {name} has no parameter {p!r}; it takes: {', '.join(allowed)}")
            for p in sorted(set(params) - set(allowed))]


def craft_textattack(name: str, params: dict, target: Target, epsilon: float | None, seed: int) -> Crafted:
    """Run TextAttack recipe `name` on every sample; queries per sample are recorded."""
    if name not in RECIPES:
        raise AttackError(f"TextAttack recipe {name!r} is not available offline here; use one of {', '.join(RECIPES)}")
    from benchmark.attacks.text import textattack_recipe

    images = target.images if "image" in target.model.modalities else None
    texts, queries = textattack_recipe(name, target.model, images, list(target.texts), target.labels, params, seed)
    return Crafted(target.images, list(texts), 0, dict(params), np.asarray(queries))


def parameters(name: str) -> dict[str, inspect.Parameter]:
    from benchmark.attacks.text import COMMON_PARAMS, RECIPE_PARAMS

    return {p: inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY) for p in COMMON_PARAMS + RECIPE_PARAMS.get(name, ())}


def describe(name: str) -> AttackInfo:
    """A recipe queries the model's scores (black-box search); it perturbs the report only (the library's modality)."""
    return AttackInfo("textattack", name, black_box=True, bounded=False, params=None, module=__name__)


register_library(Library("textattack", craft_textattack, check, describe, parameters, lambda: list(RECIPES),
                         "textattack", modality="text"))

"""Fine-tuning methods on frozen features (LP, MLP, RAN, NMTune): one file each, one registry.

Adding a defense is one file with a `DefenseHead` subclass decorated by `@register_defense("name")` and one
import line below; `mmrb compare-defenses` and CLIP models (`defense` in their config) then take it by name.
"""
from defenses.heads import lp, mlp, nmtune, ran  # noqa: F401  (importing registers the defenses)
from defenses.heads.head import DefenseHead, HeadRecipe, fit_head
from defenses.heads.registry import create_defense, defense_class, list_defenses, register_defense

__all__ = ["DefenseHead", "HeadRecipe", "create_defense", "defense_class", "fit_head", "list_defenses",
           "register_defense"]

"""Fine-tuning methods on frozen features (LP, MLP, RAN, NMTune): one file each, one registry.

Adding a defense head is one file in this folder with a `DefenseHead` subclass decorated by
`@register_defense("name")`: every module here is imported below (the machinery modules too, harmlessly), so
`mmrb compare-defenses` and CLIP models (`defense` in their config) then take it by name. A CLIP model's key covers
the code of the head it uses (`code_objects` in wrappers/clip.py).
"""
import importlib
import pkgutil

from defenses.heads.head import DefenseHead, HeadRecipe, fit_head
from defenses.heads.registry import create_defense, defense_class, list_defenses, register_defense

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):  # importing registers the heads
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["DefenseHead", "HeadRecipe", "create_defense", "defense_class", "fit_head", "list_defenses",
           "register_defense"]

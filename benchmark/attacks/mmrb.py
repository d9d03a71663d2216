"""mmrb's own attacks: only what ART, torchattacks and TextAttack do not provide."""
from __future__ import annotations

from benchmark.attacks import Crafted, register_source
from benchmark.errors import AttackError

ATTACKS = ("none",)


@register_source("mmrb")
def craft_mmrb(name, params, view, x, y, epsilon, seed) -> Crafted:
    """`none`: the clean inputs, scored like any attack so the table has its clean row."""
    if name == "none":
        return Crafted(x_adv=x, steps=0)
    raise AttackError(f"unknown mmrb attack {name!r}; known: {', '.join(ATTACKS)}")

"""The defenses a suite model can carry (`models: [{name: early_fusion, defense: {name: jpeg, params:
{quality: 50}}}]`), readable without importing torch (suite validation stays free of it), and `build_model_defense`.

Two kinds:

- **input** defenses transform the model's input (ART's preprocessing defences on the image, a canonicaliser on the
  report). Each is **one file** in `defenses/input/` whose class carries `@input_defense("name", params=(...))`; the
  files keep torch out of their module level (imported inside methods), so listing the folder and importing them
  costs no torch. Adding one is that file and nothing else.
- **training** defenses fine-tune the trained model adversarially (PGD-AT, TRADES; `defenses/adversarial_training.py`),
  cached like any trained model. Their file needs torch at import, so their one line each is `TRAINING` below.

A model behind an input defense is attacked twice by every gradient attack on its image: naively (the defense a black
box to the gradient, as a deployed model would be attacked by someone who ignores it) and adaptively (BPDA through the
defense's non-differentiable steps, EOT over a randomised one: `defenses.adaptive`); the adaptive figure is the one
published and ranked, the gap is shown as masking (docs/defenses.md). The defense heads on frozen features (LP, MLP,
RAN, NMTune) sit inside a model, below `wrappers`, with their own registry: `defenses.heads`.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrb.core.errors import ModelError, unknown_name

INPUT_PACKAGE = "defenses.input"
_INPUT_DIR = Path(__file__).resolve().parent / "input"
_MACHINERY = frozenset({"base"})  # modules of defenses/input that declare no defense


@dataclass(frozen=True)
class ModelDefenseInfo:
    """Where a defense lives (`module:Class`), the parameters it takes, its kind (input, training), the input it
    changes, and whether it draws afresh on every call (then attacked with EOT)."""

    target: str
    params: tuple[str, ...]
    modality: str = "image"
    randomised: bool = False
    kind: str = "input"


#: The training defenses (their file imports torch, so they are declared here rather than by a decorator there).
TRAINING: dict[str, ModelDefenseInfo] = {
    "pgd_at": ModelDefenseInfo("defenses.adversarial_training:PgdAT", ("epsilon", "steps", "epochs", "lr", "part"),
                               kind="training"),
    "trades": ModelDefenseInfo("defenses.adversarial_training:Trades",
                               ("epsilon", "steps", "epochs", "lr", "beta", "part"), kind="training"),
}
_INPUT: dict[str, ModelDefenseInfo] = {}
_LOADED: list[bool] = []


def input_defense(name: str, *, params: tuple[str, ...] = ()) -> Callable[[type], type]:
    """Declare the input defense class the decorator wraps as `name`, taking `params` (its modality and whether it
    is randomised are the class's own `modality` / `randomised`)."""

    def decorate(cls: type) -> type:
        cls.name = name
        _INPUT[name] = ModelDefenseInfo(f"{cls.__module__}:{cls.__qualname__}", tuple(params),
                                        getattr(cls, "modality", "image"), bool(getattr(cls, "randomised", False)))
        return cls

    return decorate


def model_defenses() -> dict[str, ModelDefenseInfo]:
    """Every defense a suite model may carry, by name: the input defense files (imported once; no torch) and TRAINING."""
    if not _LOADED:
        for module in sorted(pkgutil.iter_modules([str(_INPUT_DIR)]), key=lambda m: m.name):
            if module.name not in _MACHINERY:
                importlib.import_module(f"{INPUT_PACKAGE}.{module.name}")
        _LOADED.append(True)
    return {**_INPUT, **TRAINING}


def model_defense_problems(name: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for an unknown defense name or parameter, found without importing torch."""
    known = model_defenses()
    if name not in known:
        return [("name", str(unknown_name("defense", name, known)))]
    accepted = known[name].params
    return [(f"params.{p}", f"defense {name} has no parameter {p!r}; it takes: {', '.join(accepted) or 'none'}")
            for p in sorted(set(params) - set(accepted))]


def build_model_defense(name: str, params: dict[str, Any], seed: int = 0):
    """The defense object (an InputDefense or AdversarialTraining) of `name` with `params`, its draws seeded by
    `seed`."""
    problems = model_defense_problems(name, params)
    if problems:
        raise ModelError("; ".join(message for _, message in problems))
    module, _, attr = model_defenses()[name].target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    try:
        return cls(seed=seed, **params)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"defense {name}: bad params {params} ({exc})") from None


def defense_module(name: str) -> str:
    """The module that implements defense `name` (its code goes into the defended model's key)."""
    return model_defenses()[name].target.partition(":")[0]

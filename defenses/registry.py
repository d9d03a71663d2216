"""The defenses a suite model can carry (`models: [{name: early_fusion, defense: {name: jpeg, params:
{quality: 50}}}]`): the one registry line of each, readable without importing torch (suite validation stays free
of it), and `build_model_defense` that imports its file. Two kinds: `input` defenses transform the model's input
(ART's preprocessing defences on the image, a canonicaliser on the report; `defenses/input/`); `training` defenses
fine-tune the trained model adversarially (PGD-AT, TRADES; `defenses/adversarial_training.py`), cached like any
trained model.

A model behind an input defense is attacked twice by every gradient attack on its image: naively (the defense a black box to the
gradient, as a deployed model would be attacked by someone who ignores it) and adaptively (BPDA through the defense's
non-differentiable steps, EOT over a randomised one); the adaptive figure is the one published and ranked, the gap
is shown as masking (docs/defenses.md).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from mmrb.core.errors import ModelError, unknown_name


@dataclass(frozen=True)
class ModelDefenseInfo:
    """Where a defense lives (`module:Class`), the parameters it takes, its kind (input, training), the input it
    changes, and whether it draws afresh on every call (then attacked with EOT)."""

    target: str
    params: tuple[str, ...]
    modality: str = "image"
    randomised: bool = False
    kind: str = "input"


MODEL_DEFENSES: dict[str, ModelDefenseInfo] = {
    "jpeg": ModelDefenseInfo("defenses.input.jpeg:Jpeg", ("quality",)),
    "spatial_smoothing": ModelDefenseInfo("defenses.input.smoothing:SpatialSmoothing", ("window_size",)),
    "feature_squeezing": ModelDefenseInfo("defenses.input.squeezing:FeatureSqueezing", ("bit_depth",)),
    "gaussian_augmentation": ModelDefenseInfo("defenses.input.gaussian:GaussianNoise", ("sigma",), randomised=True),
    "total_var_min": ModelDefenseInfo("defenses.input.tvm:TotalVariation", ("prob", "lamb", "max_iter"), randomised=True),
    "canonicaliser": ModelDefenseInfo("defenses.input.canonical:Canonicaliser", ("cutoff", "synonyms"), "text"),
    "pgd_at": ModelDefenseInfo("defenses.adversarial_training:PgdAT", ("epsilon", "steps", "epochs", "lr", "part"),
                               kind="training"),
    "trades": ModelDefenseInfo("defenses.adversarial_training:Trades", ("epsilon", "steps", "epochs", "lr", "beta", "part"),
                               kind="training"),
}


def model_defense_problems(name: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for an unknown defense name or parameter, found without importing anything."""
    if name not in MODEL_DEFENSES:
        return [("name", str(unknown_name("defense", name, MODEL_DEFENSES)))]
    accepted = MODEL_DEFENSES[name].params
    return [(f"params.{p}", f"defense {name} has no parameter {p!r}; it takes: {', '.join(accepted) or 'none'}")
            for p in sorted(set(params) - set(accepted))]


def build_model_defense(name: str, params: dict[str, Any], seed: int = 0):
    """The defense object (defenses.input.base.InputDefense) of `name` with `params`, its draws seeded by `seed`."""
    problems = model_defense_problems(name, params)
    if problems:
        raise ModelError("; ".join(message for _, message in problems))
    module, _, attr = MODEL_DEFENSES[name].target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    try:
        return cls(seed=seed, **params)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"defense {name}: bad params {params} ({exc})") from None


def defense_module(name: str) -> str:
    """The module that implements defense `name` (its code goes into the defended model's key)."""
    return MODEL_DEFENSES[name].target.partition(":")[0]

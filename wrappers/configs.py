"""Model presets and training recipes: the paper's (Mozhegova et al. 2025, Sec. 4.1) and tiny CPU ones."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, fields, replace
from typing import Any

from mmrb.core.errors import ModelError

PRESETS: dict[str, dict[str, Any]] = {
    # Trains on 2 CPU cores in about a minute; text_encoder "tiny_bert" is built from the training reports.
    "tiny": dict(arch="mmrb_tiny_seresnet", pretrained=False, checkpoint_path=None, shared_backbone=False,
                 text_encoder="tiny_bert", max_length=64),  # generated reports: <= 59 tokens; raise for real ones
    # SE-ResNet-154 (2048-d per view) and Bio_ClinicalBERT (768-d [CLS]), as in the paper.
    "paper": dict(arch="legacy_senet154", pretrained=True, checkpoint_path=None, shared_backbone=False,
                  text_encoder="emilyalsentzer/Bio_ClinicalBERT", max_length=256),
}
VISION_KEYS = ("arch", "pretrained", "checkpoint_path", "shared_backbone")
TEXT_KEYS = ("text_encoder", "max_length")


@dataclass(frozen=True)
class TrainRecipe:
    """How a model is trained: Adam, cross-entropy, optional ReduceLROnPlateau on the epoch's training loss."""

    lr: float = 1e-3
    epochs: int = 5
    batch_size: int = 32
    weight_decay: float = 0.0
    scheduler: str | None = None  # None or "plateau"
    init_from_unimodal: bool = False  # early fusion: start encoders from the trained single-modality models

    def with_overrides(self, overrides: dict[str, Any]) -> TrainRecipe:
        """A copy with `overrides` applied; unknown keys raise naming the allowed ones."""
        allowed = {f.name for f in fields(self)}
        bad = set(overrides) - allowed
        if bad:
            raise ModelError(f"unknown recipe field(s) {sorted(bad)}; allowed: {sorted(allowed)}")
        return replace(self, **overrides)


RECIPES: dict[tuple[str, str], TrainRecipe] = {
    ("vision", "paper"): TrainRecipe(lr=1e-4, epochs=13, batch_size=128, scheduler="plateau"),
    ("text", "paper"): TrainRecipe(lr=2e-5, epochs=5, batch_size=16),
    ("early_fusion", "paper"): TrainRecipe(lr=1e-4, epochs=5, batch_size=16),
    ("late_fusion", "paper"): TrainRecipe(lr=1e-5, epochs=5, batch_size=16),
    ("ensemble_fusion", "paper"): TrainRecipe(epochs=0),
    ("vision", "tiny"): TrainRecipe(lr=1e-3, epochs=10, batch_size=32, scheduler="plateau"),
    ("text", "tiny"): TrainRecipe(lr=5e-4, epochs=10, batch_size=32),
    # Joint training of all three encoders from their initial weights, as the paper (which starts from generic
    # pretrained weights, not from the task-trained single-modality models; init_from_unimodal=True does that).
    ("early_fusion", "tiny"): TrainRecipe(lr=5e-4, epochs=8, batch_size=32),
    ("late_fusion", "tiny"): TrainRecipe(lr=1e-2, epochs=60, batch_size=64),
    ("ensemble_fusion", "tiny"): TrainRecipe(epochs=0),
}


def resolve_config(family: str, preset: str, overrides: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Preset values for `keys`, overridden; returns the config incl. a resolved 'recipe' dict."""
    overrides = dict(overrides)
    recipe = RECIPES[family, preset].with_overrides(overrides.pop("recipe", None) or {})
    bad = set(overrides) - set(keys)
    if bad:
        raise ModelError(f"{family} model: unknown override(s) {sorted(bad)}; allowed: {sorted(keys) + ['recipe']}")
    config = {k: PRESETS[preset][k] for k in keys}
    config.update(overrides)
    config["recipe"] = {f.name: getattr(recipe, f.name) for f in fields(recipe)}
    return config


def override_problems(overrides: dict[str, Any], keys: tuple[str, ...] | None) -> list[tuple[str, str]]:
    """(field, message) for each override a model does not take (`keys`: its config keys; None: not known, only
    the recipe is checked) and each unknown recipe field, with the closest allowed names."""

    def unknown(given, allowed, what: str, prefix: str) -> list[tuple[str, str]]:
        out = []
        for key in sorted(set(given) - set(allowed)):
            close = difflib.get_close_matches(key, allowed, n=2)
            out.append((prefix + key, f"unknown {what}{'; did you mean ' + ' or '.join(close) + '?' if close else ''}; "
                                      f"allowed: {', '.join(sorted(allowed))}"))
        return out

    problems = [] if keys is None else unknown(overrides, (*keys, "recipe"), "override", "")
    recipe = overrides.get("recipe") or {}
    if not isinstance(recipe, dict):
        return problems + [("recipe", "a mapping of recipe fields, e.g. {epochs: 5}")]
    return problems + unknown(recipe, [f.name for f in fields(TrainRecipe)], "recipe field", "recipe.")

"""Model presets (the paper's, Mozhegova et al. 2025 Sec. 4.1, and tiny CPU ones) and training recipes (each family
declares its own per preset, in its module's `BUILTIN_MODELS`)."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from mmrb.core.errors import ModelError, did_you_mean

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


def recipe_of(family: str, preset: str) -> TrainRecipe:
    """The training recipe a built-in family declares for `preset` (its module's `BUILTIN_MODELS`; the paper's:
    Mozhegova et al. 2025, Sec. 4.1)."""
    from wrappers.registry import builtin_models

    found = [b.recipe for b in builtin_models().values() if (b.family, b.preset) == (family, preset) and b.recipe]
    if not found:
        raise ModelError(f"no built-in {family} model with preset {preset!r} declares a training recipe")
    return TrainRecipe(**found[0])


def resolve_config(family: str, preset: str, overrides: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Preset values for `keys`, overridden; returns the config incl. a resolved 'recipe' dict (the family's own for
    the preset, `recipe_of`, overridden)."""
    overrides = dict(overrides)
    recipe = recipe_of(family, preset).with_overrides(overrides.pop("recipe", None) or {})
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
            hint = did_you_mean(key, allowed)
            out.append((prefix + key, f"unknown {what}{'; ' + hint if hint else ''}; allowed: {', '.join(sorted(allowed))}"))
        return out

    problems = [] if keys is None else unknown(overrides, (*keys, "recipe"), "override", "")
    recipe = overrides.get("recipe") or {}
    if not isinstance(recipe, dict):
        return problems + [("recipe", "a mapping of recipe fields, e.g. {epochs: 5}")]
    return problems + unknown(recipe, [f.name for f in fields(TrainRecipe)], "recipe field", "recipe.")

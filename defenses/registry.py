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
import math
import numbers
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrb.core.errors import ModelError, unknown_name

INPUT_PACKAGE = "defenses.input"
_INPUT_DIR = Path(__file__).resolve().parent / "input"
_MACHINERY = frozenset({"base"})  # modules of defenses/input that declare no defense


@dataclass(frozen=True)
class Range:
    """The values a numeric defense parameter may take: `low` to `high` (None: unbounded), each end closed unless
    `open_low` / `open_high`, whole numbers only where `whole`. Printed as an interval: `[1, 95]`, `(0, 1]`."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    whole: bool = False

    def __str__(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        interval = f"{'(' if self.open_low or self.low is None else '['}{low}, {high}" \
                   f"{')' if self.open_high or self.high is None else ']'}"
        return interval + (" (whole numbers)" if self.whole else "")

    def problem(self, value: Any) -> str:
        """How `value` misses the range ("is outside", "is not a number in", ...; "" when it is in it)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            return "is not a number in"
        if self.whole and float(value) != int(value):
            return "is not a whole number in"
        below = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        above = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        return "is outside" if below or above else ""


#: What a parameter's declaration may say: None (any value), a Range, (low, high) (a closed Range) or a set of values.
ParamDeclaration = Range | tuple | frozenset | set | None


def _ranges(params: Sequence[str] | Mapping[str, ParamDeclaration]) -> dict[str, Range | frozenset]:
    """The declared ranges of `params` (names alone: no range), as Range or frozenset of allowed values."""
    if not isinstance(params, Mapping):
        return {}
    out: dict[str, Range | frozenset] = {}
    for name, declared in params.items():
        if isinstance(declared, tuple):
            declared = Range(*declared)
        if isinstance(declared, (set, frozenset)):
            declared = frozenset(declared)
        if declared is not None:
            out[name] = declared
    return out


@dataclass(frozen=True)
class ModelDefenseInfo:
    """Where a defense lives (`module:Class`), the parameters it takes and the range of each (checked before any
    work), its kind (input, training), the input it changes, whether it draws afresh on every call (then attacked with
    EOT), and how an adaptive attack differentiates it (`gradient`: exact, approximation, straight-through, identity,
    none; a training defense's gradient is the model's own)."""

    target: str
    params: tuple[str, ...]
    modality: str = "image"
    randomised: bool = False
    kind: str = "input"
    ranges: dict[str, Range | frozenset] = field(default_factory=dict, hash=False)
    gradient: str = "exact"


_TRAINING_RANGES = {"epsilon": Range(0, 1, open_low=True), "steps": Range(1, None, whole=True),
                    "epochs": Range(1, None, whole=True), "lr": Range(0, None, open_low=True), "part": {"image", "all"}}

#: The training defenses (their file imports torch, so they are declared here rather than by a decorator there).
TRAINING: dict[str, ModelDefenseInfo] = {
    "pgd_at": ModelDefenseInfo("defenses.adversarial_training:PgdAT", ("epsilon", "steps", "epochs", "lr", "part"),
                               kind="training", ranges=_ranges(_TRAINING_RANGES)),
    "trades": ModelDefenseInfo("defenses.adversarial_training:Trades",
                               ("epsilon", "steps", "epochs", "lr", "beta", "part"), kind="training",
                               ranges=_ranges({**_TRAINING_RANGES, "beta": Range(0, None)})),
}
_INPUT: dict[str, ModelDefenseInfo] = {}
_LOADED: list[bool] = []


def input_defense(name: str, *, params: Sequence[str] | Mapping[str, ParamDeclaration] = ()) -> Callable[[type], type]:
    """Declare the input defense class the decorator wraps as `name`, taking `params`: their names, or each name with
    its range (`{"quality": Range(1, 95, whole=True)}`, `(low, high)`, a set of values, or None for any value). Its
    modality, whether it is randomised and how an adaptive attack differentiates it are the class's own `modality`,
    `randomised` and `gradient`."""

    def decorate(cls: type) -> type:
        cls.name = name
        _INPUT[name] = ModelDefenseInfo(f"{cls.__module__}:{cls.__qualname__}", tuple(params),
                                        getattr(cls, "modality", "image"), bool(getattr(cls, "randomised", False)),
                                        ranges=_ranges(params), gradient=getattr(cls, "gradient", "identity"))
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
    """(field, message) for an unknown defense name or parameter, or a value outside its declared range, found
    without importing torch."""
    known = model_defenses()
    if name not in known:
        return [("name", str(unknown_name("defense", name, known)))]
    accepted, ranges = known[name].params, known[name].ranges
    problems = [(f"params.{p}", f"defense {name} has no parameter {p!r}; it takes: {', '.join(accepted) or 'none'}")
                for p in sorted(set(params) - set(accepted))]
    for p in sorted(set(params) & set(ranges)):
        declared, value = ranges[p], params[p]
        if isinstance(declared, frozenset):
            if value not in declared:
                problems.append((f"params.{p}", f"{value!r} is not one of {name}'s values for {p}: "
                                                f"{', '.join(map(repr, sorted(declared, key=str)))}"))
        elif why := declared.problem(value):
            problems.append((f"params.{p}", f"{value!r} {why} {name}'s range {declared}"))
    return problems


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

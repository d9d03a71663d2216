"""Attacks: what every attack works on (`Target`) and returns (`Crafted`), and the budget rules they share.

Which attacks exist and what each one is lives in `benchmark.attacks.registry` (one declaration per attack, one
adapter file per library); `craft` and `check_attack` here go through it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mmrb.core.errors import AttackError, did_you_mean


@dataclass(frozen=True)
class Target:
    """What an attack works on: the model, its test inputs and true labels, and the image view bound to them."""

    model: Any
    images: np.ndarray
    texts: Sequence[str]
    labels: np.ndarray
    view: Any = None  # wrappers.estimators.ImageView, or None for a model without image input
    # the training reports, for attacks that model the report distribution (BERT-Attack's masked LM); None: unknown
    corpus: Sequence[str] | None = None
    # the model's operating threshold on P(abnormal) (benchmark.evaluation.clinical), for attacks aimed at it; None:
    # the suite sets no operating point
    threshold: float | None = None

    def with_texts(self, texts: Sequence[str]) -> Target:
        """The same samples with other texts (a new view is bound to them)."""
        from wrappers.estimators import ImageView

        view = ImageView(self.model, self.images, texts, device=str(self.view.device)) if self.view is not None else None
        return replace(self, texts=list(texts), view=view)

    def subset(self, index: Sequence[int] | np.ndarray) -> Target:
        """The samples at `index` only, each with its own text (a new view is bound to them)."""
        from wrappers.estimators import ImageView

        index = np.asarray(index, dtype=int)
        images, texts = np.asarray(self.images)[index], [self.texts[i] for i in index]
        view = ImageView(self.model, images, texts, device=str(self.view.device)) if self.view is not None else None
        return replace(self, images=images, texts=texts, labels=np.asarray(self.labels)[index], view=view)


@dataclass(frozen=True)
class Crafted:
    """Adversarial inputs (images and texts; the untouched modality is passed through) and what was run."""

    images: np.ndarray
    texts: list[str]
    steps: int
    params: dict[str, Any] = field(default_factory=dict)
    queries: np.ndarray | None = None  # model queries per sample, where the library reports them


def craft(source: str, name: str, params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """Run attack `name` of `source` on `target`; ε is the image budget (None for text attacks)."""
    from benchmark.attacks import registry

    return registry.craft(source, name, params, target, epsilon, seed)


def budget_params(cls: type, params: dict[str, Any], epsilon: float | None, step: str, steps: str) -> dict[str, Any]:
    """Suite params with ε set and the step defaulting to 2.5·ε/steps (Madry et al.), where `cls` takes them."""
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    kwargs = dict(params)
    if epsilon is not None and "eps" in accepted:
        kwargs["eps"] = epsilon
    if step in accepted and steps in accepted and "eps" in kwargs:
        kwargs.setdefault(step, 2.5 * kwargs["eps"] / kwargs.get(steps, accepted[steps].default))
    return kwargs


def reject_unknown(cls: type, kwargs: dict[str, Any], library: str, internal: tuple[str, ...]) -> dict[str, Any]:
    """`kwargs`, or an AttackError naming the parameters `cls` does not take and those it does."""
    problems = param_problems(cls, kwargs, library, internal)
    if problems:
        raise AttackError("; ".join(message for _, message in problems))
    return kwargs


#: A problem found before any work: (field below the attack entry, e.g. "params.max_iters", message).
Problem = tuple[str, str]


def param_problems(cls: type, params: dict[str, Any], library: str, internal: tuple[str, ...]) -> list[Problem]:
    """One problem per parameter that `cls`'s constructor does not take, with the closest names it does."""
    import inspect

    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs", *internal)]
    problems = []
    for name in sorted(set(params) - set(accepted)):
        hint = did_you_mean(name, accepted)
        problems.append((f"params.{name}", f"{library} {cls.__name__} has no parameter {name!r}; {hint + ' ' if hint else ''}"
                                           f"it takes: {', '.join(accepted)}"))
    return problems


def check_attack(source: str, name: str, params: dict[str, Any]) -> list[Problem]:
    """Problems of an attack entry found without running it: unknown source, attack name or parameter."""
    from benchmark.attacks import registry

    return registry.check(source, name, params)


def pick_worst(probs: np.ndarray, labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per sample, the entry of `values` (runs × n × ...) from the run whose class probabilities `probs`
    (runs × n × classes) give the true class the lowest probability: a per-sample worst case over runs."""
    n = len(labels)
    return values[probs[:, np.arange(n), labels].argmin(0), np.arange(n)]


def enforce_budget(crafted: Crafted, clean: np.ndarray, epsilon: float | None) -> tuple[Crafted, float]:
    """L∞ threat model: an adversarial image that changed any pixel by more than ε (minimal-norm attacks such as
    HopSkipJump, FAB or CW may) does not count; its clean image is scored. Returns the fraction reverted."""
    if epsilon is None:
        return crafted, 0.0
    over = np.abs(crafted.images - clean).reshape(len(clean), -1).max(1) > epsilon + 1e-6
    if not over.any():
        return crafted, 0.0
    images = np.where(over[:, None, None, None], clean, crafted.images)
    return replace(crafted, images=images), float(over.mean())

"""Suite -> cells: the model × attack × ε grid, pure (no torch), so it is cheap to test and to ship."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmark.suite import AttackSpec, ModelSpec, Suite


@dataclass(frozen=True)
class Cell:
    """One scored combination; epsilon is None for attacks without a budget (the clean row)."""

    model: ModelSpec
    attack: AttackSpec
    epsilon: float | None


def applies(attack: AttackSpec, modalities: frozenset[str]) -> bool:
    """An attack applies to a model that reads every modality it perturbs."""
    needed = {"none": set(), "image": {"image"}, "text": {"text"}, "joint": {"image", "text"}}[attack.modality]
    return needed <= modalities


def expand(suite: Suite, modalities_of: Callable[[str], frozenset[str]]) -> list[Cell]:
    """All cells of the suite in order: models outer, attacks, then ε; skips attacks a model cannot take."""
    cells = []
    for model in suite.models:
        for attack in suite.attacks:
            if not applies(attack, modalities_of(model.name)):
                continue
            budgets = [None] if attack.modality == "none" else (attack.epsilons or suite.epsilons)
            cells.extend(Cell(model, attack, eps) for eps in budgets)
    return cells

"""Suite -> cells: the model × attack × ε grid, pure (no torch), so it is cheap to test and to ship."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmark.spec.suite import AttackSpec, ModelSpec, Suite
from mmrb.core.modality import NEEDS


@dataclass(frozen=True)
class Cell:
    """One scored combination; epsilon is None for attacks without an image budget.

    For transfer cells `source` is the model the attack was crafted on and `model` the one scored. `seed` is the
    training seed of the models (and the seed of the attack's own randomness)."""

    model: ModelSpec
    attack: AttackSpec
    epsilon: float | None
    source: ModelSpec | None = None
    seed: int = 0


def applies(attack: AttackSpec, modalities: frozenset[str]) -> bool:
    """An attack applies to a model that reads every modality it perturbs."""
    return NEEDS[attack.modality] <= modalities


def budgets(attack: AttackSpec, default: list[float]) -> list[float | None]:
    """The ε values an attack runs at: none for clean and text attacks."""
    from benchmark.attacks.registry import traits

    if attack.modality in ("none", "text") or not traits(attack.source, attack.name).bounded:
        return [None]
    return list(attack.epsilons or default)


def expand(suite: Suite, modalities_of: Callable[[str], frozenset[str]]) -> list[Cell]:
    """White-box cells in order: models outer, training seeds, attacks, then ε; skips attacks a model cannot take."""
    cells = []
    for model in suite.models:
        for seed in suite.training_seeds:
            for attack in suite.attacks:
                if applies(attack, modalities_of(model.name)):
                    cells.extend(Cell(model, attack, eps, seed=seed) for eps in budgets(attack, suite.epsilons))
    return cells


def dropped_pairs(suite: Suite, modalities_of: Callable[[str], frozenset[str]]) -> list[str]:
    """Why each (model, attack) pair of the suite makes no cell: the attack perturbs a modality the model lacks."""
    return [f"{attack.label} ({attack.modality}) on {model.label} (reads {', '.join(sorted(modalities_of(model.name)))})"
            for model in suite.models for attack in suite.attacks if not applies(attack, modalities_of(model.name))]


def expand_transfer(suite: Suite, modalities_of: Callable[[str], frozenset[str]]) -> list[Cell]:
    """Transfer cells ordered seed, source, attack, ε, target: each (seed, source, attack, ε) is crafted once for its
    targets (all trained with the same seed). The source must read every modality the attack perturbs; a target one of
    them (a joint pair scored on an image-only model is its image's transfer)."""
    spec = suite.transfer
    if spec is None:
        return []
    cells = []
    for seed in suite.training_seeds:
        for source in spec.sources:
            for attack in spec.attacks:
                if not applies(attack, modalities_of(source.name)):
                    continue
                for eps in budgets(attack, spec.epsilons or suite.epsilons):
                    cells.extend(Cell(target, attack, eps, source, seed) for target in spec.targets
                                 if NEEDS[attack.modality] & modalities_of(target.name))
    return cells

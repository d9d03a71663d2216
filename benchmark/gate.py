"""The robustness regression gate: a suite's `expect:` bounds checked against its aggregated cells (pure functions;
`benchmark/test_robustness.py` turns each cell into a pytest test).

A cell fails only when its whole 95 % interval lies beyond a bound (below `min`, above `max`), so seed noise and a
finite test set do not make the gate flaky; a mean below `min` whose interval still reaches it passes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from benchmark.spec.grid import Cell, expand, expand_transfer
from benchmark.spec.suite import Bound, Suite

#: ε values written in `expect` keys ('PGD@0.0314') match a cell's ε within this tolerance.
EPS_TOLERANCE = 5e-4


@dataclass(frozen=True)
class CellKey:
    """One aggregated cell of a suite: a (model, attack, ε, transfer source) over its training seeds."""

    model: str
    attack: str
    epsilon: float | None
    transfer_source: str = ""

    @property
    def test_id(self) -> str:
        """`model-attack-eps` (+ `-from-source` for transfer cells), the pytest id of the cell."""
        eps = "" if self.epsilon is None else f"-{self.epsilon:.4g}"
        source = f"-from-{self.transfer_source}" if self.transfer_source else ""
        return f"{self.model}-{self.attack}{eps}{source}"


def cell_keys(suite: Suite) -> list[CellKey]:
    """The suite's aggregated cells in grid order (seeds folded), without touching any model."""
    from wrappers.registry import model_entry

    def modalities_of(name: str) -> frozenset[str]:
        return model_entry(name).modalities

    seen: dict[CellKey, None] = {}
    for cell in expand(suite, modalities_of) + expand_transfer(suite, modalities_of):
        seen.setdefault(key_of(cell), None)
    return list(seen)


def key_of(cell: Cell) -> CellKey:
    return CellKey(cell.model.label, cell.attack.label, cell.epsilon, cell.source.label if cell.source else "")


def expectations(suite: Suite, key: CellKey) -> dict[str, tuple[str, Bound]]:
    """metric -> (where in `expect` it came from, bound) for one cell; the most specific key wins (model over '*',
    'label@ε' over 'label' over '*')."""
    found: dict[str, tuple[str, Bound]] = {}
    for model in ("*", key.model):
        per_attack = suite.expect.get(model, {})
        for attack_key in sorted(per_attack, key=_specificity):
            if _matches(attack_key, key):
                for metric, bound in per_attack[attack_key].items():
                    found[metric] = (f"expect.{model}.{attack_key}.{metric}", bound)
    return found


def _specificity(attack_key: str) -> int:
    return 0 if attack_key == "*" else 2 if "@" in attack_key else 1


def _matches(attack_key: str, key: CellKey) -> bool:
    if attack_key == "*":
        return True
    label, _, eps = attack_key.partition("@")
    if label != key.attack:
        return False
    return not eps or (key.epsilon is not None and abs(float(eps) - key.epsilon) < EPS_TOLERANCE)


def interval(row: dict[str, Any], metric: str) -> tuple[float, float, float] | None:
    """(mean, low, high) of an aggregated metric: its 95 % interval (accuracies), or mean ± the seed t half-width."""
    mean = row.get(metric)
    if mean is None or pd.isna(mean):
        return None
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if low is None or pd.isna(low):
        hw = row.get(f"{metric}_hw")
        hw = 0.0 if hw is None or pd.isna(hw) else float(hw)
        low, high = mean - hw, mean + hw
    return float(mean), float(low), float(high)


def judge(row: dict[str, Any], metric: str, bound: Bound, where: str) -> str | None:
    """None if the cell meets the bound; else one line with the measured mean, interval, seeds and the bound."""
    figures = interval(row, metric)
    if figures is None:
        return f"{where}: the cell has no {metric} figure"
    mean, low, high = figures
    measured = f"{metric} {100 * mean:.1f} % [{100 * low:.1f}, {100 * high:.1f}] (mean [95 % interval], " \
               f"{int(row.get('seeds', 1))} seed(s), n = {int(row.get('n', 0))})"
    if bound.min is not None and high < bound.min:
        return f"{measured} is below the expected min {100 * bound.min:.1f} % ({where}): the whole interval lies below it"
    if bound.max is not None and low > bound.max:
        return f"{measured} is above the expected max {100 * bound.max:.1f} % ({where}): the whole interval lies above it"
    return None

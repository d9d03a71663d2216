"""The cascade: a per-sample worst case over several attack runs that attacks only the samples still standing.

AutoAttack's design (Croce & Hein 2020): a sample is robust only if it survives every run, so once one run breaks
it, later runs need not spend budget on it. `Cascade` keeps, per sample, the input that gave its true class the
lowest probability so far; `Cascade.run(part, attack)` runs one more attack on the survivors only (a `Target` of
those samples, their own texts bound to them) and merges what it found. Everything that is a per-sample worst case
goes through it: the convergence check's escalating re-runs (benchmark.attacks.convergence.escalate), every restart, the
standard evaluation's parts, and the text floor's unbounded attack.

Robust accuracy, per-class recall and F1 equal those of running every attack on every sample whenever each
attack's outcome on a sample does not depend on which other samples share its batch (deterministic attacks; a
random start drawn per batch makes the draws, not the method, differ). A broken sample keeps the first input that
broke it, so probability-based scores of broken samples (AUC) may differ from a full run's.

Each part records its cost: samples attacked, seconds, model queries where the attack reports them, and the
robust samples left after it (`Cascade.parts`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from benchmark.attacks import Crafted, Target, enforce_budget


@dataclass(frozen=True)
class Part:
    """The cost and effect of one run of a cascade."""

    name: str
    attacked: int  # samples this run attacked (the survivors before it)
    broken: int  # of those, how many it broke
    robust: int  # robust samples left after it
    seconds: float
    queries: float | None = None  # model queries in all, where the attack reports them

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class Cascade:
    """Per-sample worst case over attack runs, each on the samples still robust (see the module docstring).

    `images`/`probs` start at the inputs to improve on (default: the clean inputs and their probabilities);
    `texts` are the inputs' texts, carried with the worst images (a text attack's survivors keep its texts)."""

    def __init__(self, target: Target, probs: np.ndarray, images: np.ndarray | None = None,
                 texts: list[str] | None = None) -> None:
        self.target = target
        self.labels = np.asarray(target.labels)
        self.images = np.array(target.images if images is None else images, copy=True)
        self.texts = list(target.texts if texts is None else texts)
        self.probs = np.array(probs, dtype=np.float64, copy=True)
        self.parts: list[Part] = []
        self.queries = np.zeros(len(self.labels))  # model queries per sample, from the parts that report them
        self._counted = False

    @property
    def robust(self) -> np.ndarray:
        """Mask of the samples every run so far left correctly classified."""
        return self.probs.argmax(1) == self.labels

    def survivors(self) -> np.ndarray:
        return np.flatnonzero(self.robust)

    def robust_accuracy(self) -> float:
        return float(self.robust.mean()) if len(self.labels) else float("nan")

    def run(self, name: str, attack: Callable[[Target], Crafted], epsilon: float | None = None) -> Part:
        """Run `attack` on a Target of the survivors; keep, per attacked sample, the lower true-class probability.
        `epsilon`: the L∞ budget its images must respect (an image beyond it counts as its clean image)."""
        index = self.survivors()
        start = time.perf_counter()
        if len(index) == 0:
            part = Part(name, 0, 0, 0, 0.0)
            self.parts.append(part)
            return part
        sub = self.target.subset(index)
        crafted = attack(sub)
        crafted, _ = enforce_budget(crafted, sub.images, epsilon)
        probs = _predict(sub, crafted)
        true_now = self.probs[index, self.labels[index]]
        better = probs[np.arange(len(index)), self.labels[index]] < true_now
        chosen = index[better]
        self.images[chosen] = crafted.images[better]
        self.probs[chosen] = probs[better]
        for j in np.flatnonzero(better):
            self.texts[index[j]] = crafted.texts[j]
        broken = int((probs.argmax(1) != self.labels[index]).sum())
        queries = None
        if crafted.queries is not None:
            self.charge(np.asarray(crafted.queries, dtype=float), index)
            queries = float(np.sum(crafted.queries))
        part = Part(name, len(index), broken, int(self.robust.sum()), round(time.perf_counter() - start, 3), queries)
        self.parts.append(part)
        return part

    def charge(self, queries: np.ndarray | float, index: np.ndarray | None = None) -> None:
        """Count model queries spent on the samples at `index` (all by default)."""
        self.queries[slice(None) if index is None else index] += queries
        self._counted = True

    def crafted(self, steps: int, params: dict[str, Any]) -> Crafted:
        """The worst inputs found, as a Crafted (the cost per part in params['cascade']; queries per sample where
        the parts reported them)."""
        return Crafted(self.images, list(self.texts), steps, {**params, "cascade": [p.as_dict() for p in self.parts]},
                       self.queries.copy() if self._counted else None)


def _predict(target: Target, crafted: Crafted) -> np.ndarray:
    from wrappers.training import predict_proba

    images = crafted.images if "image" in target.model.modalities else None
    return predict_proba(target.model, images, crafted.texts)

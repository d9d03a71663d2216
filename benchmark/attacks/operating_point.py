"""Attacks aimed at the clinical operating point (`source: mmrb, name: operating_point`).

A deployed model calls a study abnormal when P(abnormal) ≥ t, the threshold set on clean held-out studies at the
suite's specificity (benchmark.evaluation.clinical), not when P(abnormal) ≥ 0.5. An attack that only crosses the
argmax boundary and is then scored at t measures the wrong thing: with t above 0.5 an abnormal study pushed to
P = 0.6 is missed at the operating point although argmax still calls it abnormal, and an attack that stops at
argmax never tries. This one drives mmrb's PGD (benchmark.attacks.pgd: early stop, restarts from random starts,
BPDA/EOT) on the **threshold-aware margin**: for two classes,

    m_t(x, y) = ±((z_abnormal − z_normal) − log(t / (1 − t))),  + for an abnormal study, − for a normal one,

negative exactly when the decision at t is wrong (P(abnormal) ≥ t ⟺ z_abnormal − z_normal ≥ log(t / (1 − t))).

`direction`: `both` (default) attacks every study towards the wrong side of t; `false_reassurance` attacks only the
abnormal studies, towards "normal" (a missed finding: the clinically costly error), and returns the normal ones
clean — its cell's robust sensitivity and `false_reassurance` count are the figures to read. The budget defaults to
100 steps × 5 restarts (the convergence check's escalation does not apply: it scores at argmax); `steps`,
`restarts`, `eot`, `bpda`, `batch_size` as mmrb's pgd. The suite must set `operating_point` (the threshold comes from
the run), and the model must have two classes.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from benchmark.attacks import Crafted, Problem, Target
from benchmark.attacks import pgd as mmrb_pgd
from benchmark.attacks.registry import register_attack
from mmrb.core.errors import AttackError

DIRECTIONS = ("both", "false_reassurance")
DEFAULTS: dict[str, Any] = {"direction": "both", "steps": 100, "restarts": 5, "step_size": None, "random_start": True,
                            "eot": 1, "bpda": True, "batch_size": 128}


def check(params: dict[str, Any]) -> list[Problem]:
    """Problems of the parameters, before any work."""
    problems = [] if params.get("direction", "both") in DIRECTIONS else \
        [("params.direction", f"one of {', '.join(DIRECTIONS)}; got {params.get('direction')!r}")]
    return problems + mmrb_pgd.check({k: v for k, v in params.items() if k != "direction"})


def threshold_margin(threshold: float):
    """m_t(logits, labels) of the module docstring, for a threshold t in (0, 1)."""
    shift = math.log(threshold / (1 - threshold))

    def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] != 2:
            raise AttackError(f"mmrb operating_point needs a two-class model (normal, abnormal); its logits have "
                              f"{logits.shape[1]} classes")
        sign = 2.0 * labels.to(logits.dtype) - 1.0
        return sign * (logits[:, 1] - logits[:, 0] - shift)

    return margin


@register_attack("operating_point", gradient=False, params=tuple(DEFAULTS), defaults=DEFAULTS, steps="steps",
                 step_size="step_size", random_start=("random_start", True), check=lambda params: check(params),
                 threshold=True)
def craft(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """PGD on the threshold-aware margin at the model's operating threshold (module docstring)."""
    problems = check(params)
    if problems:
        raise AttackError("mmrb operating_point: " + "; ".join(f"{field}: {message}" for field, message in problems))
    t = target.threshold
    if t is None or not 0.0 < float(t) < 1.0:
        raise AttackError(f"mmrb operating_point attacks the model at its operating threshold, but the run has none "
                          f"(threshold {t!r}): set the suite's operating_point (e.g. 0.95) on generated data")
    p = {**DEFAULTS, **params}
    attacked = np.asarray(target.labels) == 1 if p["direction"] == "false_reassurance" else None
    pgd_params = {k: v for k, v in p.items() if k != "direction"}
    crafted = mmrb_pgd.craft({**pgd_params, "loss": "margin"}, target, epsilon, seed, margin=threshold_margin(float(t)),
                             attacked=attacked)
    return Crafted(crafted.images, crafted.texts, crafted.steps,
                   {**crafted.params, "direction": p["direction"], "threshold": float(t)}, crafted.queries)

"""The standard strong evaluation for binary tasks: the figure the leaderboard ranks by.

AutoAttack's standard set (APGD-CE, APGD-T with targeted DLR, FAB-T, Square) is not valid with two classes:
the DLR loss divides by the gap between the largest and the third-largest logit, and its targeted version
needs more than three classes. For a two-class model mmrb runs, per sample worst case (a sample is robust
only if it survives every one; Croce & Hein 2020's protocol):

- `apgd_ce`: APGD with cross-entropy (torchattacks `APGD`, loss ce), `restarts` random restarts;
- `apgd_margin`: APGD on a two-class margin loss. The model's logits (z_y, z_o) are padded with a third
  logit min(z) − 1 that can never win; torchattacks' DLR loss on them is then −(z_y − z_o)/(|z_y − z_o| + 1),
  a bounded, scale-invariant function of the margin whose gradient does not vanish the way softmax
  cross-entropy's does on confident samples (a classic source of false robustness);
- `fab`: FAB untargeted (torchattacks `FAB`, n_classes 2), a minimal-norm attack scored inside ε;
- `square`: Square (torchattacks `Square`, margin loss), a score-based black-box attack with `queries`
  queries, which gradient masking does not fool.

Each sub-attack's own robust accuracy is kept in the result's params (`parts`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark.attacks import Crafted, Problem, Target, enforce_budget, pick_worst

DEFAULTS: dict[str, Any] = {"steps": 50, "restarts": 2, "fab_steps": 20, "queries": 1000}
PARTS = ("apgd_ce", "apgd_margin", "fab", "square")


class PaddedMargin(nn.Module):
    """Two-class logits plus a third, min(z) − 1, so that DLR-style losses become a margin loss."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.module(images)
        return torch.cat([logits, logits.min(1, keepdim=True).values - 1], dim=1)


def check(params: dict) -> list[Problem]:
    """Unknown parameters and non-positive budgets of the standard evaluation."""
    problems = []
    for key in DEFAULTS:
        value = params.get(key, DEFAULTS[key])
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append((f"params.{key}", f"a positive integer; got {value!r}"))
    chosen = params.get("attacks", list(PARTS))
    if not isinstance(chosen, list) or not chosen or any(p not in PARTS for p in chosen):
        problems.append(("params.attacks", f"a non-empty list of sub-attacks from {', '.join(PARTS)}; got {chosen!r}"))
    return problems


def _part_params(part: str, settings: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if part in ("apgd_ce", "apgd_margin"):
        return "APGD", {"steps": settings["steps"], "n_restarts": settings["restarts"],
                        "loss": "ce" if part == "apgd_ce" else "dlr"}
    if part == "fab":
        return "FAB", {"steps": settings["fab_steps"], "n_restarts": settings["restarts"], "n_classes": 2}
    return "Square", {"n_queries": settings["queries"], "n_restarts": 1}


def craft_standard(params: dict[str, Any], target: Target, epsilon: float, seed: int) -> Crafted:
    """Run every sub-attack at ε and keep, per sample, the input giving its true class the lowest probability."""
    from benchmark.attacks.torchattacks_adapter import craft_torchattacks
    from wrappers.training import predict_proba

    settings = {**DEFAULTS, **{k: v for k, v in params.items() if k in DEFAULTS}}
    parts = list(params.get("attacks", PARTS))
    labels = target.labels
    images, probs, figures = [], [], {}
    for part in parts:
        name, part_params = _part_params(part, settings)
        crafted = craft_torchattacks(name, part_params, target, epsilon, seed,
                                     wrap=PaddedMargin if part == "apgd_margin" else None)
        crafted, _ = enforce_budget(crafted, target.images, epsilon)
        prob = predict_proba(target.model, crafted.images, target.texts)
        figures[part] = float(np.mean(prob.argmax(1) == labels))
        images.append(crafted.images)
        probs.append(prob)
    chosen = pick_worst(np.stack(probs), labels, np.stack(images))
    steps = settings["steps"] * settings["restarts"]
    return Crafted(chosen, list(target.texts), steps, {**settings, "attacks": parts, "parts": figures})

"""The standard strong evaluation for binary tasks: the figure the leaderboard ranks by.

AutoAttack's standard set (APGD-CE, APGD-T with targeted DLR, FAB-T, Square) is not valid with two classes:
the DLR loss divides by the gap between the largest and the third-largest logit, and its targeted version
needs more than three classes. For a two-class model mmrb runs, as a cascade (benchmark.attacks.cascade: each part attacks
only the samples every earlier part left standing, so a sample is robust only if it survives every one; Croce &
Hein 2020's protocol):

- `apgd_ce`: APGD with cross-entropy (torchattacks `APGD`, loss ce), `steps` steps, `restarts` restarts;
- `apgd_margin`: APGD on a two-class margin loss. The model's logits (z_y, z_o) are padded with a third
  logit min(z) − 1 that can never win; torchattacks' DLR loss on them is then −(z_y − z_o)/(|z_y − z_o| + 1),
  a bounded, scale-invariant function of the margin whose gradient does not vanish the way softmax
  cross-entropy's does on confident samples (a classic source of false robustness);
- `fab`: FAB untargeted (torchattacks `FAB`, n_classes 2, `fab_steps` steps), a minimal-norm attack scored inside ε;
- `square`: Square (torchattacks `Square`, margin loss), a score-based black-box attack with `queries`
  queries, which gradient masking does not fool.

Defaults are AutoAttack's budget: 100 steps for APGD and FAB, 5000 Square queries, and `restarts` 5 for the two
APGD losses (AutoAttack's "plus" count; its standard version runs nine target classes instead, which two classes
do not have). The gradient parts attack adaptively (defenses.adaptive): BPDA (straight-through) for any
rounding step the model takes on its input (probed once; a model without one is attacked as it is), and EOT over
`eot` forward passes for a randomised model (`eot: auto`: `defenses.adaptive.EOT_DRAWS` draws when two forward passes on the same inputs
differ, else 1).

A randomised model (`eot: auto` finds it: two forward passes on the same inputs differ) is evaluated as
AutoAttack's version for randomised defenses (`version='rand'`: APGD-CE and APGD-DLR with EOT over 20 draws, no FAB
or Square, whose single-draw searches a randomised model's noise misleads), scored by the majority of
`mmrb.core.draws.SCORING_DRAWS` draws: by default the parts are `apgd_ce` and `apgd_margin`, each run first with one
draw per step (`apgd_ce·1`: the twin's cost; it breaks what one draw's gradient already breaks) and then with EOT
(`EOT_DRAWS` draws per step, evaluated as one batch) on the samples still standing. Parts a suite lists explicitly
are all run.

Each part's cost and the robust samples left after it are kept in the result's params (`cascade`), and the robust
accuracy after each part in `parts`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmark.attacks import Crafted, Problem, Target
from benchmark.attacks.registry import register_attack

DEFAULTS: dict[str, Any] = {"steps": 100, "restarts": 5, "fab_steps": 100, "queries": 5000}
PARTS = ("apgd_ce", "apgd_margin", "fab", "square")
#: The parts run on a randomised model unless the suite lists its own (AutoAttack's version='rand').
RANDOMISED_PARTS = ("apgd_ce", "apgd_margin")


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
    eot = params.get("eot", "auto")
    if eot != "auto" and (isinstance(eot, bool) or not isinstance(eot, int) or eot < 1):
        problems.append(("params.eot", f"'auto' or a positive number of draws; got {eot!r}"))
    return problems


def _part_params(part: str, settings: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if part in ("apgd_ce", "apgd_margin"):
        return "APGD", {"steps": settings["steps"], "n_restarts": settings["restarts"],
                        "loss": "ce" if part == "apgd_ce" else "dlr"}
    if part == "fab":
        return "FAB", {"steps": settings["fab_steps"], "n_restarts": 1, "n_classes": 2}
    return "Square", {"n_queries": settings["queries"], "n_restarts": 1}


@register_attack("standard", params=("steps", "restarts", "fab_steps", "queries", "attacks", "eot"),
                 check=lambda params: check(params))
def craft_standard(params: dict[str, Any], target: Target, epsilon: float, seed: int) -> Crafted:
    """Run the parts as a cascade at ε: each on the samples still robust; per sample the input giving its true class
    the lowest probability is kept."""
    from benchmark.attacks.cascade import Cascade
    from benchmark.attacks.torchattacks_adapter import craft_torchattacks
    from defenses.adaptive import EOT_AUTO, EOT_DRAWS, Adapted, mark_randomised, takes_rounding_steps
    from wrappers.training import predict_proba

    settings = {**DEFAULTS, **{k: v for k, v in params.items() if k in DEFAULTS}}
    eot = params.get("eot", "auto")
    draws = (EOT_DRAWS if mark_randomised(target.model, target.images, target.texts) else 1) if eot == EOT_AUTO \
        else int(eot)
    parts = list(params.get("attacks", PARTS if draws == 1 else RANDOMISED_PARTS))
    cascade = Cascade(target, predict_proba(target.model, target.images, target.texts))
    probe = torch.as_tensor(target.images[:4], dtype=torch.float32, device=target.view.device)
    bpda = takes_rounding_steps(target.view.model, probe)
    figures, adapted = {}, []

    def wrap(part: str, n: int):
        def build(module: nn.Module) -> nn.Module:
            module = Adapted(module, n, bpda)
            adapted.append(module)
            return PaddedMargin(module) if part == "apgd_margin" else module
        return None if part == "square" else build

    for part in parts:
        name, part_params = _part_params(part, settings)
        # a randomised model: one draw per step first (cheap), then EOT on the samples still standing
        for label, n in ((f"{part}·1", 1), (part, draws)) if draws > 1 and part != "square" else ((part, draws),):
            wrapper = wrap(part, n)
            cascade.run(label, lambda sub, nm=name, pp=part_params, w=wrapper: craft_torchattacks(
                nm, pp, sub, epsilon, seed, wrap=w), epsilon)
        figures[part] = cascade.robust_accuracy()
    seen = sorted({name for module in adapted for name in module.seen})
    steps = settings["steps"] * settings["restarts"]
    return cascade.crafted(steps, {**settings, "attacks": parts, "parts": figures, "eot": draws, "bpda_steps": seen})

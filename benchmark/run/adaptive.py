"""Attacking a defended model adaptively, automatically (Athalye, Carlini & Wagner 2018; Tramèr et al. 2020).

A model behind an input defense (defenses.defended.DefendedModel) is first attacked as the suite declares (the
naive figure: an attack that takes the gradient of the defended model gets none through the defense's NumPy step).
`adaptive_pass` then attacks the samples still standing with the same attack through
`defenses.adaptive.Adapted`: BPDA (the defense's forward, the gradient of the stand-in its file declares: the exact
median filter, differentiable JPEG, the identity for rounding and noise; the cell's `stand_in` names it) and, for a
randomised defense, EOT (the logits averaged over `defenses.adaptive.EOT_DRAWS` draws), escalated by the convergence check like any
gradient attack. Each sample keeps the worse of the two outcomes, scored by the defended model itself: that
adaptive figure is the cell's robust accuracy (published and ranked); the naive one is kept beside it, and their
gap is the masking (docs/defenses.md).
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from benchmark.attacks import Crafted, Target, craft, pick_worst
from benchmark.attacks.cascade import Cascade
from benchmark.attacks.convergence import escalate_attack
from benchmark.evaluation.metrics import accuracy
from benchmark.spec.suite import AttackSpec, ConvergenceSpec

#: The adaptive attack through a defense runs at least this many steps × restarts on the samples still standing
#: (Tramèr et al. 2020: an adaptive evaluation spends the budget the defense asks for, not the suite's first guess).
ADAPTIVE_STEPS, ADAPTIVE_RESTARTS = 200, 5


def defended(model: Any) -> bool:
    """Whether `model` sits behind an input defense (defenses.defended.DefendedModel)."""
    return getattr(model, "defense", None) is not None


def adaptive_pass(attack: AttackSpec, epsilon: float | None, seed: int, convergence: ConvergenceSpec | None,
                  target: Target, crafted: Crafted, adv_prob: np.ndarray, device: str = "cpu",
                  draws: int | None = None) -> tuple[Crafted, np.ndarray, dict[str, Any]]:
    """`attack` again, through BPDA (and EOT: `draws`, default `EOT_DRAWS` for a randomised defense, else 1) on
    the samples the naive run (`crafted`, `adv_prob`) left standing, escalated by `convergence`; returns the
    per-sample worse inputs of the two runs, their probabilities under the defended model, and the record
    (naive_robust_accuracy, the defense's stand-in, eot draws, BPDA passages, rounds, seconds)."""
    from defenses.adaptive import EOT_DRAWS, Adapted
    from wrappers.estimators import ImageView
    from wrappers.training import predict_proba

    start, model = time.perf_counter(), target.model
    labels = np.asarray(target.labels)
    draws = draws or (EOT_DRAWS if model.randomised else 1)
    adapted = Adapted(model, draws, bpda=True)
    view = ImageView(adapted, target.images, target.texts, device=device)
    adapted_target = Target(adapted, target.images, target.texts, target.labels, view, target.corpus)
    cascade = Cascade(adapted_target, adv_prob, crafted.images, crafted.texts)
    cascade.run(f"adaptive {attack.label}", lambda sub: craft(attack.source, attack.name, attack.params, sub,
                                                               epsilon, seed), epsilon)
    record: dict[str, Any] = {}
    if convergence:
        record = escalate_attack(cascade, attack.source, attack.name, attack.params, epsilon, seed,
                                 f"adaptive {attack.label}", **convergence.model_dump())
    full = full_strength(cascade, attack, epsilon, seed)
    twin = twin_transfer(cascade, attack, epsilon, seed, model.model, device)
    probs = predict_proba(model, cascade.images, cascade.texts)  # scored by the defended model itself
    both = np.stack([adv_prob, probs])
    images = pick_worst(both, labels, np.stack([crafted.images, cascade.images]))
    summary = {"naive_robust_accuracy": accuracy(labels, adv_prob.argmax(1)),
               "stand_in": getattr(model.defense, "stand_in_label", lambda: "identity")(), "eot_draws": draws,
               "bpda_passages": int(sum(adapted.seen.values())), "adaptive_rounds": record.get("rounds", 0),
               "adaptive_steps": max(record.get("steps") or 0, full["steps"]), "adaptive_restarts":
                   record.get("restarts", 0) + full["restarts"], "twin_broken": twin,
               "adaptive_seconds": round(time.perf_counter() - start, 3)}
    return replace(crafted, images=images), pick_worst(both, labels, both), summary


def full_strength(cascade: Cascade, attack: AttackSpec, epsilon: float | None, seed: int) -> dict[str, int]:
    """The adaptive attack at full strength on the samples still standing: `ADAPTIVE_RESTARTS` runs from random
    starts at `ADAPTIVE_STEPS` steps at least (whatever the suite's convergence check stopped at), for a gradient
    attack with a step count; the steps and runs it took."""
    from benchmark.attacks.convergence import SEED_STRIDE, accepted_params, round_params, steps_of
    from benchmark.attacks.registry import info

    spelling, accepted = info(attack.source, attack.name), accepted_params(attack.source, attack.name)
    configured = steps_of(spelling, accepted, attack.params)
    if not spelling.gradient or configured is None:
        return {"steps": 0, "restarts": 0}
    strong = round_params(spelling, accepted, {**attack.params, spelling.steps: max(configured, ADAPTIVE_STEPS)}, 0)
    runs = 0
    for run in range(ADAPTIVE_RESTARTS):
        if not len(cascade.survivors()):
            break
        runs += 1
        cascade.run(f"adaptive {attack.label}-{strong[spelling.steps]}#{run}", lambda sub, s=seed + SEED_STRIDE * (
            100 + run): craft(attack.source, attack.name, strong, sub, epsilon, s), epsilon)
    return {"steps": int(strong[spelling.steps]), "restarts": runs}


def twin_transfer(cascade: Cascade, attack: AttackSpec, epsilon: float | None, seed: int, twin: Any,
                  device: str) -> int:
    """The attack crafted on the undefended twin (the same weights without the defense) and scored through the
    defense, on the samples still standing: a transfer part of the worst case that no stand-in can mask. Returns the
    samples it broke."""
    from wrappers.estimators import ImageView

    if not len(cascade.survivors()):
        return 0

    def on_twin(sub: Target) -> Crafted:
        view = ImageView(twin, sub.images, sub.texts, device=device)
        return craft(attack.source, attack.name, attack.params,
                     Target(twin, sub.images, sub.texts, sub.labels, view, sub.corpus), epsilon, seed)

    return int(cascade.run(f"twin transfer {attack.label}", on_twin, epsilon).broken)

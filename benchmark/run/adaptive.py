"""Attacking a defended or randomised model adaptively, automatically (Athalye, Carlini & Wagner 2018; Tramèr et
al. 2020, "On Adaptive Attacks to Adversarial Example Defenses").

A model behind an input defense (defenses.defended.DefendedModel), a model fine-tuned by a training defense, and a
randomised model (any model found to draw afresh at every forward, a submitted one included) are first attacked as
the suite declares (the naive figure: an attack that takes the gradient of the defended model gets none through the
defense's NumPy step, and follows one draw of a randomised one). `adaptive_pass` then attacks the samples still
standing: the same attack through `defenses.adaptive.Adapted` — BPDA (the defense's forward, the gradient of the
stand-in its file declares: the exact median filter, differentiable JPEG, the identity for rounding and noise; the
cell's `stand_in` names it) and, for a randomised model, EOT (the logits averaged over `defenses.adaptive.EOT_DRAWS`
draws) — escalated by the convergence check where its last round would exceed the full strength; then at full
strength (ADAPTIVE_STEPS × ADAPTIVE_RESTARTS, each run at least as long as any round of the check); then the
attack crafted on the undefended twin (same weights without the input defense, or the same-seed base model of a
training defense) and scored through the defense. Each sample keeps the worst outcome,
scored by the model itself (a randomised one by the majority of its draws): that adaptive figure is the cell's
robust accuracy (published and ranked); the naive one is kept beside it, and their gap is the masking
(docs/defenses.md).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch

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


def needs_adaptive(model: Any, twin: Any = None) -> bool:
    """Whether a gradient attack on `model` is followed by the adaptive pass: a model behind an input defense, a
    model fine-tuned by a training defense (it has an undefended `twin`), or a randomised model (one found to draw
    afresh at every forward: EOT and majority scoring)."""
    return defended(model) or twin is not None or bool(getattr(model, "randomised", False))


def adaptive_pass(attack: AttackSpec, epsilon: float | None, seed: int, convergence: ConvergenceSpec | None,
                  target: Target, crafted: Crafted, adv_prob: np.ndarray, device: str = "cpu",
                  draws: int | None = None, twin: Callable[[], Any] | None = None
                  ) -> tuple[Crafted, np.ndarray, dict[str, Any]]:
    """The worst case, per sample, of the naive run (`crafted`, `adv_prob`: the attack as declared) and, on the
    samples it left standing: `attack` again through BPDA (the defense's stand-in; a model rounding its input: the
    rounding passed straight through) and EOT (`draws`, default `EOT_DRAWS` for a randomised model, else 1),
    escalated by `convergence` where it goes beyond the full strength — for an input-defended or randomised model;
    the attack at full strength (`full_strength`); and the attack crafted on the undefended `twin` (a zero-argument
    loader; none for a submitted model) scored through the defense. Returns the per-sample worse inputs, their
    probabilities under the model itself (a randomised one by the majority of its draws) and the record
    (naive_robust_accuracy, the stand-in, EOT draws, BPDA passages, rounds, steps, restarts, the samples the twin's
    transfer broke, seconds)."""
    from defenses.adaptive import EOT_DRAWS, Adapted, takes_rounding_steps
    from wrappers.estimators import ImageView
    from wrappers.training import predict_proba

    start, model = time.perf_counter(), target.model
    labels = np.asarray(target.labels)
    draws = draws or (EOT_DRAWS if getattr(model, "randomised", False) else 1)
    behind = defended(model)
    probe = torch.as_tensor(target.images[:4], dtype=torch.float32, device=target.view.device)
    bpda = behind or takes_rounding_steps(target.view.model, probe)
    adapted = Adapted(model, draws, bpda=bpda)
    view = ImageView(adapted, target.images, target.texts, device=device)
    adapted_target = Target(adapted, target.images, target.texts, target.labels, view, target.corpus)
    cascade = Cascade(adapted_target, adv_prob, crafted.images, crafted.texts)
    record: dict[str, Any] = {}
    if bpda or draws > 1:  # otherwise the attack as declared, already escalated, is what it would repeat
        cascade.run(f"adaptive {attack.label}", lambda sub: craft(attack.source, attack.name, attack.params, sub,
                                                                   epsilon, seed), epsilon)
        if convergence and escalates_beyond_full_strength(attack, convergence):
            record = escalate_attack(cascade, attack.source, attack.name, attack.params, epsilon, seed,
                                     f"adaptive {attack.label}", **convergence.model_dump())
    full = full_strength(cascade, attack, epsilon, seed)
    twin_broken = None if twin is None else twin_transfer(cascade, attack, epsilon, seed, twin, device)
    probs = predict_proba(model, cascade.images, cascade.texts)  # scored by the model itself
    both = np.stack([adv_prob, probs])
    images = pick_worst(both, labels, np.stack([crafted.images, cascade.images]))
    stand_in = getattr(model.defense, "stand_in_label", lambda: "identity")() if behind else \
        ("straight-through" if bpda else "")
    summary = {"naive_robust_accuracy": accuracy(labels, adv_prob.argmax(1)), "stand_in": stand_in,
               "eot_draws": draws, "bpda_passages": int(sum(adapted.seen.values())),
               "adaptive_rounds": record.get("rounds", 0),
               "adaptive_steps": max(record.get("steps") or 0, full["steps"]), "adaptive_restarts":
                   record.get("restarts", 0) + full["restarts"], "twin_broken": twin_broken,
               "adaptive_seconds": round(time.perf_counter() - start, 3)}
    return replace(crafted, images=images), pick_worst(both, labels, both), summary


def escalates_beyond_full_strength(attack: AttackSpec, convergence: ConvergenceSpec) -> bool:
    """Whether the convergence check's last round would run more steps than the full-strength pass: only then is it
    run before it (otherwise ADAPTIVE_RESTARTS runs of ADAPTIVE_STEPS steps include every round's budget)."""
    from benchmark.attacks.convergence import accepted_params, steps_of
    from benchmark.attacks.registry import info

    steps = steps_of(info(attack.source, attack.name), accepted_params(attack.source, attack.name), attack.params)
    return steps is None or steps * convergence.step_factor ** convergence.max_rounds > ADAPTIVE_STEPS


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


def twin_transfer(cascade: Cascade, attack: AttackSpec, epsilon: float | None, seed: int, load: Callable[[], Any],
                  device: str) -> int:
    """The attack crafted on the undefended twin (`load()`: the same weights without the input defense, or the
    same-seed base model of a training defense) and scored through the defense, on the samples still standing: a
    transfer part of the worst case that no stand-in can mask. Returns the samples it broke."""
    from wrappers.estimators import ImageView

    if not len(cascade.survivors()):
        return 0
    twin = load()

    def on_twin(sub: Target) -> Crafted:
        view = ImageView(twin, sub.images, sub.texts, device=device)
        return craft(attack.source, attack.name, attack.params,
                     Target(twin, sub.images, sub.texts, sub.labels, view, sub.corpus), epsilon, seed)

    return int(cascade.run(f"twin transfer {attack.label}", on_twin, epsilon).broken)

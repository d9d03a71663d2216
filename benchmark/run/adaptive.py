"""Attacking a defended model adaptively, automatically (Athalye, Carlini & Wagner 2018; Tramèr et al. 2020).

A model behind an input defense (defenses.defended.DefendedModel) is first attacked as the suite declares (the
naive figure: an attack that takes the gradient of the defended model gets none through the defense's NumPy step).
`adaptive_pass` then attacks the samples still standing with the same attack through
`defenses.adaptive.Adapted`: BPDA (the identity as the gradient of the defense's transform) and, for a
randomised defense, EOT (the logits averaged over `EOT_DRAWS` draws), escalated by the convergence check like any
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

EOT_DRAWS = 8  # forward passes averaged per step against a randomised defense


def defended(model: Any) -> bool:
    """Whether `model` sits behind an input defense (defenses.defended.DefendedModel)."""
    return getattr(model, "defense", None) is not None


def adaptive_pass(attack: AttackSpec, epsilon: float | None, seed: int, convergence: ConvergenceSpec | None,
                  target: Target, crafted: Crafted, adv_prob: np.ndarray, device: str = "cpu",
                  draws: int | None = None) -> tuple[Crafted, np.ndarray, dict[str, Any]]:
    """`attack` again, through BPDA (and EOT: `draws`, default `EOT_DRAWS` for a randomised defense, else 1) on
    the samples the naive run (`crafted`, `adv_prob`) left standing, escalated by `convergence`; returns the
    per-sample worse inputs of the two runs, their probabilities under the defended model, and the record
    (naive_robust_accuracy, eot draws, BPDA passages, rounds, seconds)."""
    from defenses.adaptive import Adapted
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
    probs = predict_proba(model, cascade.images, cascade.texts)  # scored by the defended model itself
    both = np.stack([adv_prob, probs])
    images = pick_worst(both, labels, np.stack([crafted.images, cascade.images]))
    summary = {"naive_robust_accuracy": accuracy(labels, adv_prob.argmax(1)), "eot_draws": draws,
               "bpda_passages": int(sum(adapted.seen.values())), "adaptive_rounds": record.get("rounds", 0),
               "adaptive_seconds": round(time.perf_counter() - start, 3)}
    return replace(crafted, images=images), pick_worst(both, labels, both), summary

"""Scoring one defended classifier: clean on the whole ID and OOD test sets (from frozen features), and under each
attack of the suite with mmrb's converged evaluation (the cascade and the escalating convergence check) at each ε of
its curve; every row keeps its per-sample outcomes (packed bits) for the paired tests."""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from benchmark.studies.defenses.corpora import Split
from benchmark.studies.defenses.spec import AttackSpec, DefenseSuite


def pack(correct: np.ndarray) -> str:
    """Per-sample booleans as hex of packed bits (the row's `outcomes`; `unpack` with the row's n reverses it)."""
    return np.packbits(np.asarray(correct, dtype=bool)).tobytes().hex()


def unpack(bits: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(bits), dtype=np.uint8))[:n].astype(bool)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from benchmark.evaluation.metrics import roc_auc

    return roc_auc(labels, scores)


def spectrum_share(features: torch.Tensor, k: int) -> float:
    """Share of the top-k singular values in the sum of all, of the L2-normalised features centred on their mean
    (NMTune's diagnostic: noisy pre-training concentrates the spectrum on a few directions; centring keeps the mean
    direction, which every CLIP feature shares, from taking the first value)."""
    z = torch.nn.functional.normalize(features.double(), dim=1)
    s = torch.linalg.svdvals(z - z.mean(0, keepdim=True))
    return float(s[:k].sum() / s.sum())


def clean_rows(head: Any, features: dict[str, torch.Tensor], tests: dict[str, Split]) -> list[dict[str, Any]]:
    """Accuracy, AUC and per-sample outcomes of a fitted head on each whole test set (no attack)."""
    rows = []
    with torch.no_grad():
        for domain, split in tests.items():
            prob = torch.softmax(head(features[domain]), 1).numpy()
            correct = prob.argmax(1) == split.labels
            rows.append({"domain": domain, "attack": "clean", "epsilon": 0.0, "n": len(correct),
                         "accuracy": float(correct.mean()), "auc": _auc(split.labels, prob[:, 1]), "outcomes": pack(correct)})
    return rows


def attack_rows(model: Any, attack: AttackSpec, tests: dict[str, Split], suite: DefenseSuite, seed: int) -> list[dict[str, Any]]:
    """One attack at each ε of its curve on the first `attack_limit` samples of each of its domains: run once, then
    escalated on the survivors until the figure stops falling (gradient attacks; benchmark.attacks.convergence)."""
    from benchmark.attacks import Target, craft
    from benchmark.attacks.cascade import Cascade
    from benchmark.attacks.convergence import escalate_attack
    from benchmark.attacks.registry import traits
    from wrappers.estimators import ImageView
    from wrappers.training import predict_proba

    rows = []
    gradient = traits(attack.source, attack.name).gradient
    for domain in attack.domains:
        split = tests[domain]
        n = min(len(split.labels), suite.attack_limit or len(split.labels))
        images, texts, labels = split.images[:n], split.texts[:n], split.labels[:n]
        clean = predict_proba(model, images, None)
        for epsilon in attack.epsilons:
            start = time.perf_counter()
            target = Target(model, images, texts, labels, ImageView(model, images, texts))
            cascade = Cascade(target, clean)
            extra: dict[str, Any] = {}

            def once(sub, e=epsilon, extra=extra):
                crafted = craft(attack.source, attack.name, dict(attack.params), sub, e, seed)
                extra.update({k: v for k, v in crafted.params.items() if k.startswith(("clip_score", "target_similarity"))})
                return crafted

            cascade.run(attack.label, once, epsilon)
            record: dict[str, Any] = {}
            if attack.converge and gradient:
                record = escalate_attack(cascade, attack.source, attack.name, dict(attack.params), epsilon, seed,
                                         attack.label, **suite.convergence_check.model_dump())
            correct = cascade.robust
            rows.append({"domain": domain, "attack": attack.label, "epsilon": epsilon, "n": n,
                         "accuracy": float(correct.mean()), "clean_accuracy": float((clean.argmax(1) == labels).mean()),
                         "auc": _auc(labels, cascade.probs[:, 1]),
                         "outcomes": pack(correct), "check_rounds": record.get("rounds", 0),
                         "check_capped": bool(record.get("capped", False)),
                         "attack_seconds": round(time.perf_counter() - start, 2), **extra})
    return rows

"""Robustness metrics as pure functions on label / prediction / score arrays (label 1 = abnormal)."""
from __future__ import annotations

import numpy as np

from mmrb.core.stats import seed_interval, wilson_interval  # noqa: F401  (re-exported)


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Fraction of predictions equal to the labels."""
    return float(np.mean(np.asarray(y) == np.asarray(pred))) if len(y) else float("nan")


def f1_score(y: np.ndarray, pred: np.ndarray, positive: int = 1) -> float:
    """F1 of the `positive` (abnormal) class, as the paper's Table 1 reports; 0 when it is never predicted nor present."""
    y, pred = np.asarray(y) == positive, np.asarray(pred) == positive
    tp = np.sum(y & pred)
    denom = np.sum(y) + np.sum(pred)
    return float(2 * tp / denom) if denom else 0.0


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of `score` for the positive class (Mann-Whitney U, ties count half)."""
    y, score = np.asarray(y).astype(bool), np.asarray(score, dtype=float)
    pos, neg = score[y], score[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = _average_ranks(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(len(values))
    start = 0
    for end in np.append(np.flatnonzero(np.diff(sorted_vals)) + 1, len(values)):
        ranks[order[start:end]] = (start + 1 + end) / 2
        start = end
    return ranks


def attack_success_rate(y: np.ndarray, clean_pred: np.ndarray, adv_pred: np.ndarray) -> float:
    """Among samples classified correctly when clean, the fraction the attack makes wrong (untargeted)."""
    correct = np.asarray(clean_pred) == np.asarray(y)
    if not correct.any():
        return float("nan")
    return float(np.mean(np.asarray(adv_pred)[correct] != np.asarray(y)[correct]))


def perturbation_linf(x: np.ndarray, x_adv: np.ndarray) -> float:
    """Largest absolute pixel change over all samples (checks that an attack kept its budget)."""
    return float(np.abs(np.asarray(x_adv, dtype=np.float64) - x).max()) if len(x) else 0.0


#: Class names by label, for per-class columns (`robust_accuracy_normal`, ...).
CLASS_NAMES = ("normal", "abnormal")


def class_accuracy(y: np.ndarray, pred: np.ndarray, label: int) -> float:
    """Accuracy on the samples of one class (its recall); NaN if the class is absent."""
    mask = np.asarray(y) == label
    return float(np.mean(np.asarray(pred)[mask] == label)) if mask.any() else float("nan")


def per_class_scores(y: np.ndarray, clean_pred: np.ndarray, adv_pred: np.ndarray) -> dict[str, float]:
    """Clean and robust accuracy per class, and each class's sample count: an image attack that flips every
    normal study and no abnormal one shows up here, not in the overall figure."""
    out: dict[str, float] = {}
    for label, name in enumerate(CLASS_NAMES):
        out[f"n_{name}"] = int(np.sum(np.asarray(y) == label))
        out[f"clean_accuracy_{name}"] = class_accuracy(y, clean_pred, label)
        out[f"robust_accuracy_{name}"] = class_accuracy(y, adv_pred, label)
    return out


def robustness_scores(y: np.ndarray, clean_prob: np.ndarray, adv_prob: np.ndarray) -> dict[str, float]:
    """All per-cell scores from class probabilities (n, 2) on clean and attacked inputs."""
    clean_pred, adv_pred = clean_prob.argmax(1), adv_prob.argmax(1)
    return {**per_class_scores(y, clean_pred, adv_pred),
        "clean_accuracy": accuracy(y, clean_pred),
        "robust_accuracy": accuracy(y, adv_pred),
        "clean_f1": f1_score(y, clean_pred),
        "robust_f1": f1_score(y, adv_pred),
        "auc": roc_auc(y, clean_prob[:, 1]),
        "robust_auc": roc_auc(y, adv_prob[:, 1]),
        "attack_success_rate": attack_success_rate(y, clean_pred, adv_pred),
    }



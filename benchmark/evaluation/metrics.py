"""Robustness metrics as pure functions on label / prediction / score arrays (label 1 = abnormal)."""
from __future__ import annotations

import numpy as np
from sklearn import metrics

from mmrb.core.stats import seed_interval, wilson_interval  # noqa: F401  (re-exported)


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Fraction of predictions equal to the labels (scikit-learn's accuracy_score; NaN for no samples)."""
    return float(metrics.accuracy_score(y, pred)) if len(y) else float("nan")


def f1_score(y: np.ndarray, pred: np.ndarray, positive: int = 1) -> float:
    """F1 of the `positive` (abnormal) class, as the paper's Table 1 reports (scikit-learn's f1_score); 0 when it is
    never predicted nor present."""
    y, pred = np.asarray(y) == positive, np.asarray(pred) == positive
    return float(metrics.f1_score(y, pred, zero_division=0.0)) if len(y) else 0.0


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of `score` for the positive class (scikit-learn's roc_auc_score; ties count half);
    NaN when only one class is present."""
    y = np.asarray(y).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    return float(metrics.roc_auc_score(y, np.asarray(score, dtype=float)))


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
    """Accuracy on the samples of one class (its recall, scikit-learn's recall_score); NaN if the class is absent."""
    y = np.asarray(y) == label
    return float(metrics.recall_score(y, np.asarray(pred) == label, zero_division=np.nan)) if y.any() else float("nan")


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



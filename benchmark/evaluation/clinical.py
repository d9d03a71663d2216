"""Clinical operating points: a model is deployed at a threshold, not at argmax. The threshold on P(abnormal) is fixed
on clean held-out data at a stated specificity (the suite's `operating_point`, e.g. 0.95), then every cell reports
the sensitivity and specificity at that threshold under attack and how many decisions flipped: abnormal→normal on
abnormal studies (false reassurance: a missed finding) and normal→abnormal on normal studies (a false alarm).

The held-out samples are clean, never trained on and never scored: for generated data they are `CALIBRATION_N`
further studies of the generator, numbered from `CALIBRATION_FIRST_UID` (their own random streams; the training
and test split, the trained models and every cache key stay as they were). Real data has no such set by default:
its operating-point columns are left empty (docs/clinical.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_N = 200
CALIBRATION_FIRST_UID = 1_000_001


def calibration_split(spec: Any, cache_dir: Path, image_size: int) -> Any:
    """The clean held-out calibration samples of a suite's dataset (SplitArrays), or None for real data."""
    from benchmark.data import SplitArrays, synthetic_folder
    from benchmark.data.indiana import load_indiana

    if spec.name != "indiana_synth":
        return None
    folder = synthetic_folder(Path(cache_dir), CALIBRATION_N, spec.seed, first_uid=CALIBRATION_FIRST_UID)
    return SplitArrays.from_samples(tuple(load_indiana(folder).samples), image_size)


def threshold_at_specificity(labels: np.ndarray, p_abnormal: np.ndarray, specificity: float) -> float:
    """The lowest threshold t (abnormal when p ≥ t) whose specificity on these samples is at least `specificity`."""
    normal = np.sort(np.asarray(p_abnormal, dtype=np.float64)[np.asarray(labels) == 0])[::-1]
    if not len(normal):
        raise ValueError("no normal samples to set a specificity on")
    allowed = int(np.floor((1 - specificity) * len(normal) + 1e-9))  # normals that may lie at or above t
    if allowed >= len(normal):
        return 0.0
    return float(np.nextafter(normal[allowed], np.inf))


def operating_scores(labels: np.ndarray, clean_p: np.ndarray, adv_p: np.ndarray, threshold: float) -> dict[str, Any]:
    """Sensitivity and specificity at `threshold`, clean and under attack, and the decisions the attack flipped."""
    labels = np.asarray(labels)
    clean, adv = np.asarray(clean_p) >= threshold, np.asarray(adv_p) >= threshold
    abnormal, normal = labels == 1, labels == 0
    rate = lambda hits, of: float(hits[of].mean()) if of.any() else float("nan")  # noqa: E731
    return dict(threshold=float(threshold), clean_sensitivity=rate(clean, abnormal), clean_specificity=rate(~clean, normal),
                robust_sensitivity=rate(adv, abnormal), robust_specificity=rate(~adv, normal),
                false_reassurance=int((abnormal & clean & ~adv).sum()), false_alarm=int((normal & ~clean & adv).sum()))

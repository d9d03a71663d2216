"""Intervals that cannot leave their metric's range, from the per-sample evidence (samples.csv) where a cell has it.

A cell's figure is the mean over its k training seeds of a score computed on the same n test samples. Every score
mmrb publishes per cell is a ratio of sums over the samples — accuracy (right / all), a class's recall (right in the
class / the class), F1 of the abnormal class (2 TP / (2 TP + FP + FN)), the attack success rate (broken / right
when clean), sensitivity and specificity at the operating threshold — or the ROC AUC (a Mann–Whitney sum over
abnormal × normal pairs). Each is recomputed on every replicate of the two-level bootstrap of `mmrb.core.paired`
(the same sample draw for every seed, the seeds resampled, their part widened for few seeds by
`seed_correction`) and its percentile interval is cut to [0, 1]. A cell without per-sample evidence (a transfer cell,
a cell whose attack-cache entry is gone) keeps the seed-level interval of `benchmark.evaluation.aggregate`, cut to
[0, 1] too; `interval` names which one a row carries.

A cell whose evidence does not reproduce its published accuracy (a figure combined from several attacks' runs, a
randomised model scored by the majority of draws) keeps the seed-level interval: an interval is only drawn around
the figure it was computed for.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from mmrb.core.paired import REPLICATES, combine_seeds, percentile_interval, weights

#: The published scores recomputed per replicate: name -> (numerator, denominator) per sample, from the arrays of
#: one seed (label, clean / adversarial prediction, clean / adversarial P(abnormal), threshold).
Parts = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]
RATIOS: dict[str, Parts] = {
    "clean_accuracy": lambda s: (s["clean_right"], np.ones_like(s["label"])),
    "robust_accuracy": lambda s: (s["adv_right"], np.ones_like(s["label"])),
    "clean_accuracy_normal": lambda s: (s["clean_right"] & (s["label"] == 0), s["label"] == 0),
    "clean_accuracy_abnormal": lambda s: (s["clean_right"] & (s["label"] == 1), s["label"] == 1),
    "robust_accuracy_normal": lambda s: (s["adv_right"] & (s["label"] == 0), s["label"] == 0),
    "robust_accuracy_abnormal": lambda s: (s["adv_right"] & (s["label"] == 1), s["label"] == 1),
    "clean_f1": lambda s: _f1(s["label"], s["clean_prediction"]),
    "robust_f1": lambda s: _f1(s["label"], s["adversarial_prediction"]),
    "attack_success_rate": lambda s: (s["clean_right"] & ~s["adv_right"], s["clean_right"]),
    "clean_sensitivity": lambda s: (s["clean_flag"] & (s["label"] == 1), s["label"] == 1),
    "robust_sensitivity": lambda s: (s["adv_flag"] & (s["label"] == 1), s["label"] == 1),
    "clean_specificity": lambda s: (~s["clean_flag"] & (s["label"] == 0), s["label"] == 0),
    "robust_specificity": lambda s: (~s["adv_flag"] & (s["label"] == 0), s["label"] == 0),
}
AUCS = {"auc": "clean_p_abnormal", "robust_auc": "adversarial_p_abnormal"}
BOOTSTRAP, SEEDS_ONLY = "bootstrap", "seeds"
#: Largest gap between a cell's published accuracy and the one its evidence gives, for the evidence to be used.
AGREEMENT = 1e-6


def _f1(label: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tp = (prediction == 1) & (label == 1)
    return 2 * tp, 2 * tp + ((prediction == 1) & (label == 0)) + ((prediction == 0) & (label == 1))


def _seed_arrays(rows: pd.DataFrame, threshold: float | None) -> dict[str, np.ndarray]:
    rows = rows.sort_values("sample_id")
    out = {c: rows[c].to_numpy() for c in ("label", "clean_prediction", "adversarial_prediction", "clean_p_abnormal",
                                           "adversarial_p_abnormal")}
    out["clean_right"] = out["clean_prediction"] == out["label"]
    out["adv_right"] = out["adversarial_prediction"] == out["label"]
    t = np.inf if threshold is None or not np.isfinite(threshold) else threshold
    out["clean_flag"], out["adv_flag"] = out["clean_p_abnormal"] >= t, out["adversarial_p_abnormal"] >= t
    return out


def _ratio_replicates(per_seed: list[dict[str, np.ndarray]], parts: Parts, sample_weights: np.ndarray) -> np.ndarray:
    """(R, k): the score of every seed on every replicate's sample draw (NaN where its denominator is empty)."""
    columns = []
    for arrays in per_seed:
        numerator, denominator = (np.asarray(v, dtype=float) for v in parts(arrays))
        with np.errstate(invalid="ignore", divide="ignore"):
            columns.append((sample_weights @ numerator) / (sample_weights @ denominator))
    return np.stack(columns, axis=1)


def _auc_replicates(per_seed: list[dict[str, np.ndarray]], column: str, sample_weights: np.ndarray) -> np.ndarray:
    """(R, k): the weighted Mann–Whitney AUC (ties count half) of every seed on every replicate's sample draw."""
    columns = []
    for arrays in per_seed:
        score, label = arrays[column].astype(float), arrays["label"] == 1
        wins = (score[label][:, None] > score[~label][None, :]) + 0.5 * (score[label][:, None] == score[~label][None, :])
        pos, neg = sample_weights[:, label], sample_weights[:, ~label]
        with np.errstate(invalid="ignore", divide="ignore"):
            columns.append(np.einsum("rp,pq,rq->r", pos, wins, neg) / (pos.sum(1) * neg.sum(1)))
    return np.stack(columns, axis=1)


def cell_intervals(samples: pd.DataFrame, thresholds: dict[int, float], published: dict[str, float],
                   replicates: int = REPLICATES, confidence: float = 0.95) -> dict[str, float] | None:
    """`<metric>_ci_low` / `_ci_high` of one cell from its evidence (rows of samples.csv, every seed on the same
    samples), for the metrics `published` holds a figure of; None where the evidence is unusable (see the module)."""
    seeds = sorted(samples["seed"].unique())
    ids = [set(samples.loc[samples["seed"] == s, "sample_id"]) for s in seeds]
    if not seeds or any(i != ids[0] for i in ids):
        return None
    per_seed = [_seed_arrays(samples[samples["seed"] == s], thresholds.get(int(s))) for s in seeds]
    evidence_accuracy = float(np.mean([a["adv_right"].mean() for a in per_seed]))
    if abs(evidence_accuracy - published.get("robust_accuracy", evidence_accuracy)) > AGREEMENT:
        return None
    seed_weights, sample_weights = weights(len(seeds), len(ids[0]), replicates, seed=0)
    out: dict[str, float] = {}
    draws = {**{m: (lambda m=m: _ratio_replicates(per_seed, RATIOS[m], sample_weights)) for m in RATIOS},
             **{m: (lambda m=m: _auc_replicates(per_seed, AUCS[m], sample_weights)) for m in AUCS}}
    for metric, replicate in draws.items():
        mean = published.get(metric)
        if mean is None or not np.isfinite(mean):
            continue
        per = replicate()
        keep = np.isfinite(per).all(axis=1)  # a draw without an abnormal study has no sensitivity
        if keep.mean() < 0.5:
            continue
        low, high = percentile_interval(combine_seeds(per[keep], seed_weights[keep], confidence), confidence)
        out[f"{metric}_ci_low"], out[f"{metric}_ci_high"] = max(0.0, min(low, mean)), min(1.0, max(high, mean))
    return out


def refine(frame: pd.DataFrame, rows: pd.DataFrame, samples: pd.DataFrame | None) -> pd.DataFrame:
    """The aggregated cells with the bootstrap interval of every metric where the cell's evidence allows it
    (`interval`: "bootstrap", else "seeds"); `rows`: the per-seed result rows (their thresholds)."""
    frame = frame.copy()
    frame["interval"] = SEEDS_ONLY
    if samples is None or samples.empty or frame.empty:
        return frame
    evidence = {key: group for key, group in samples.groupby(["model", "attack"], sort=False)}
    for i, cell in frame.iterrows():
        if str(cell.get("transfer_source") or ""):
            continue
        group = evidence.get((cell["model"], cell["attack"]))
        if group is None:
            continue
        eps = cell.get("epsilon")
        group = group[group["epsilon"].isna()] if pd.isna(eps) else group[np.isclose(group["epsilon"].astype(float), eps)]
        if group.empty:
            continue
        thresholds = _thresholds(rows, cell)
        found = cell_intervals(group, thresholds, {m: cell.get(m) for m in (*RATIOS, *AUCS)})
        if found:
            for column, value in found.items():
                frame.at[i, column] = value
            frame.at[i, "interval"] = BOOTSTRAP
    return frame


def _thresholds(rows: pd.DataFrame, cell: pd.Series) -> dict[int, float]:
    if "threshold" not in rows or "seed" not in rows:
        return {}
    same = (rows["model"] == cell["model"]) & (rows["attack"] == cell["attack"])
    if "transfer_source" in rows:
        same &= rows["transfer_source"].fillna("") == ""
    eps = cell.get("epsilon")
    same &= rows["epsilon"].isna() if pd.isna(eps) else np.isclose(pd.to_numeric(rows["epsilon"]).fillna(-1), eps)
    picked = rows[same & rows["threshold"].notna()]
    return {int(s): float(t) for s, t in zip(picked["seed"], picked["threshold"])}

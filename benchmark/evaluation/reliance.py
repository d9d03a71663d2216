"""The modality-reliance index: what a joint attack reveals that neither single-modality attack does.

Per multimodal model, training seed and image budget ε of a joint cell, with drops measured from the clean row:

    reliance = drop(joint at ε) − max(drop(strongest image attack at ε), drop(strongest text attack))

Positive: attacking both modalities together costs the model more than the worse of the two alone (it leans on
both); near zero: one modality carries the decision. The figure is the mean over seeds ± the seed t-interval
half-width (`mmrb.core.stats.mean_interval`). Transfer cells and probes are left out: same model, same budget only.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from mmrb.core.stats import mean_interval

COLUMNS = ["model", "epsilon", "reliance", "reliance_hw", "joint_drop", "single_drop", "seeds"]


def _frame(rows: Iterable[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty or not {"model", "modality", "robust_accuracy"} <= set(frame):
        return pd.DataFrame()
    if "transfer_source" in frame:
        frame = frame[frame["transfer_source"].fillna("") == ""]
    if "seed" not in frame:
        frame = frame.assign(seed=0)
    return frame


def seed_reliance(group: pd.DataFrame) -> list[dict[str, float]]:
    """One model and seed's rows -> the index at each ε of its joint cells ([] when a part is missing)."""
    clean = group[group["modality"] == "none"]["robust_accuracy"]
    text = group[group["modality"] == "text"]["robust_accuracy"]
    if clean.empty or text.empty:
        return []
    base, text_drop = float(clean.mean()), float(clean.mean() - text.min())
    out = []
    for eps, joint in group[group["modality"] == "joint"].groupby("epsilon"):
        image = group[(group["modality"] == "image") & np.isclose(group["epsilon"].astype(float), float(eps))]
        if image.empty:
            continue
        joint_drop = base - float(joint["robust_accuracy"].min())
        single = max(base - float(image["robust_accuracy"].min()), text_drop)
        out.append({"epsilon": float(eps), "reliance": joint_drop - single, "joint_drop": joint_drop,
                    "single_drop": single})
    return out


def reliance_table(rows: Iterable[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Per-seed result rows -> one row per (model, ε): the reliance index with its seed interval, where the cells
    exist (clean, an image attack at ε, a text attack and a joint attack at ε, on the same model)."""
    frame = _frame(rows)
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    per_seed = [{"model": model, "seed": seed, **entry}
                for (model, seed), group in frame.groupby(["model", "seed"], sort=False)
                for entry in seed_reliance(group)]
    if not per_seed:
        return pd.DataFrame(columns=COLUMNS)
    seeds = pd.DataFrame(per_seed)
    out = []
    for (model, eps), group in seeds.groupby(["model", "epsilon"], sort=False):
        mean, hw = mean_interval(group["reliance"])
        out.append({"model": model, "epsilon": eps, "reliance": mean, "reliance_hw": hw,
                    "joint_drop": float(group["joint_drop"].mean()), "single_drop": float(group["single_drop"].mean()),
                    "seeds": len(group)})
    return pd.DataFrame(out, columns=COLUMNS)


def at_epsilon(found: list[dict[str, Any]], epsilon: float) -> dict[str, Any] | None:
    """Of per-ε reliance entries (dicts with `epsilon`), the one at `epsilon` where there is one, else the one at the
    largest ε; None for none (the choice the leaderboard makes: the rank ε first)."""
    if not found:
        return None
    at = [f for f in found if np.isclose(float(f["epsilon"]), epsilon)]
    return at[-1] if at else max(found, key=lambda f: float(f["epsilon"]))

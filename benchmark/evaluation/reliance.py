"""The modality-reliance index: what a joint attack reveals that neither single-modality attack does.

Per multimodal model and image budget ε of a joint cell, from the run's per-sample evidence (samples.csv,
`benchmark.evaluation.evidence`), per training seed and test sample:

    only joint = the joint attack at ε breaks the sample (clean right, attacked wrong), and no image attack at ε
                 and no text attack does

    reliance = the share of (seed, sample) pairs that only the joint attack breaks

It lies in [0, 1], as its interval does: the two-level bootstrap over seeds and samples (`mmrb.core.paired`). High:
attacking both modalities at once breaks decisions neither attack alone can (the model leans on both); zero: one
modality carries every decision the attacks can move. Its reading depends on the attacks being of equal strength —
the leaderboard's joint attack is the rank attack's image part run against the adversarial report — so beside it
stands `missed`: the share of pairs a single attack breaks and the joint attack does not (a joint attack weaker than its
parts shows there).

Text attacks are the suite's attacks on the report; the report corruptions (`corruption` on the text: typos,
dictation, abbreviations) are not attacks and do not count. Image attacks are every white-box image cell at ε
(the per-sample worst case `worst_case` is its parts already). Transfer cells are not in samples.csv: same model,
same budget only. A saturated index is said in words (`said`), never as "0.0 ± 0.0".
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from mmrb.core.paired import mean_interval

COLUMNS = ["model", "epsilon", "reliance", "low", "high", "only_joint", "missed", "pairs", "seeds", "joint_attacks",
           "said"]
#: Report corruptions: natural noise on the report, not text attacks (they do not count as the text side).
NOT_TEXT_ATTACKS = frozenset({"corruption"})
#: Cells that combine others (their parts are in the evidence already).
COMBINED = frozenset({"worst_case"})


def attack_names(rows: Iterable[dict[str, Any]] | pd.DataFrame) -> dict[tuple[str, str], str]:
    """(model, attack label) -> the attack's name in its library, from the run's result rows."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty or "attack_name" not in frame:
        return {}
    return {(str(m), str(a)): str(n) for m, a, n in frame[["model", "attack", "attack_name"]].itertuples(index=False)}


def _matrix(rows: pd.DataFrame, seeds: list[int], ids: list[str], column: str = "broken") -> np.ndarray:
    """(seeds, samples) booleans: `column` holds for some cell among `rows` at that seed (by default: it broke the
    sample)."""
    if rows.empty:
        return np.zeros((len(seeds), len(ids)), dtype=bool)
    table = rows.assign(b=rows[column].astype(int)).pivot_table(index="seed", columns="sample_id", values="b",
                                                                 aggfunc="max")
    return table.reindex(index=seeds, columns=ids).fillna(0).to_numpy() > 0


def said(only: int, pairs: int, missed: int, singles_break_all: bool) -> str:
    """The index in words where a figure with an interval would mislead: none broken by the joint attack alone."""
    if only:
        return ""
    if singles_break_all:
        return (f"saturated: the single-modality attacks already break every one of the {pairs} (seed, sample) pairs "
                "the model gets right; nothing is left for the joint attack to reveal")
    return f"none of {pairs} (seed, sample) pairs is broken by the joint attack alone" + (
        f"; it misses {missed} that a single-modality attack breaks" if missed else "")


def model_reliance(samples: pd.DataFrame, names: dict[tuple[str, str], str], model: str) -> list[dict[str, Any]]:
    """One model's evidence rows -> the index at each ε of its joint cells ([] without a joint, an image at the same
    ε and a text attack, on the same seeds)."""
    own = samples[samples["model"] == model].copy()
    own["name"] = [names.get((model, a), a) for a in own["attack"]]
    own = own[~own["name"].isin(COMBINED)]
    eps = pd.to_numeric(own["epsilon"], errors="coerce")
    text = own[(own["modality"] == "text") & ~own["name"].isin(NOT_TEXT_ATTACKS)]
    joints = own[own["modality"] == "joint"]
    if text.empty or joints.empty:
        return []
    out = []
    for epsilon in sorted(eps[own["modality"] == "joint"].dropna().unique()):
        at = np.isclose(eps, epsilon)
        joint, image = own[(own["modality"] == "joint") & at], own[(own["modality"] == "image") & at]
        if image.empty:
            continue
        seeds = sorted(set(joint["seed"]) & set(image["seed"]) & set(text["seed"]))
        if not seeds:
            continue
        ids = sorted(own["sample_id"].unique())
        right = _matrix(own[own["seed"].isin(seeds)].assign(right=lambda f: f["clean_prediction"] == f["label"]),
                        seeds, ids, "right")
        j, i, t = (_matrix(part[part["seed"].isin(seeds)], seeds, ids) for part in (joint, image, text))
        single = i | t
        only, missed = j & ~single, single & ~j
        interval = mean_interval(only.astype(float))
        pairs = only.size
        out.append({"model": model, "epsilon": float(epsilon), "reliance": interval.mean, "low": interval.low,
                    "high": interval.high, "only_joint": int(only.sum()), "missed": int(missed.sum()), "pairs": pairs,
                    "seeds": len(seeds), "joint_attacks": ", ".join(sorted(joint["attack"].unique())),
                    "said": said(int(only.sum()), pairs, int(missed.sum()),
                                 bool((single | ~right).all()))})
    return out


def reliance_table(samples: pd.DataFrame | None, rows: Iterable[dict[str, Any]] | pd.DataFrame = ()) -> pd.DataFrame:
    """The run's per-sample evidence (samples.csv) and result rows (for the attacks' names) -> one row per
    (multimodal model, ε of a joint cell): the index, its bootstrap interval, counts and the words for a saturated
    case. Empty without evidence or without the cells."""
    if samples is None or samples.empty or not {"model", "modality", "broken", "sample_id", "seed"} <= set(samples):
        return pd.DataFrame(columns=COLUMNS)
    names = attack_names(rows)
    found = [entry for model in samples["model"].unique() for entry in model_reliance(samples, names, str(model))]
    return pd.DataFrame(found, columns=COLUMNS)


def at_epsilon(found: list[dict[str, Any]], epsilon: float) -> dict[str, Any] | None:
    """Of per-ε reliance entries (dicts with `epsilon`), the one at `epsilon` where there is one, else the one at the
    largest ε; None for none (the choice the leaderboard makes: the rank ε first)."""
    if not found:
        return None
    at = [f for f in found if np.isclose(float(f["epsilon"]), epsilon)]
    return at[-1] if at else max(found, key=lambda f: float(f["epsilon"]))


def shown(row: dict[str, Any] | pd.Series) -> str:
    """The index as the tables print it: percent with its interval, or the words of a saturated case."""
    if row.get("said"):
        return f"0 ({row['said']})"
    return f"{100 * row['reliance']:.1f} [{100 * row['low']:.1f}, {100 * row['high']:.1f}]"


def seed_reliance(group: pd.DataFrame) -> list[dict[str, float]]:
    """The index as protocols ≤ 5 defined it, for board entries made then without a recorded one: from one model's
    cell means, drop(joint at ε) − max(drop(strongest image attack at ε), drop(strongest text attack))."""
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
        single = max(base - float(image["robust_accuracy"].min()), text_drop)
        out.append({"epsilon": float(eps), "reliance": base - float(joint["robust_accuracy"].min()) - single})
    return out


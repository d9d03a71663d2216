"""Trivial baselines on every table: what a reader compares a model against. A constant classifier (the test
split's majority class, and "always abnormal") scores the same under any attack; for a multimodal model the suite's
own text-only and image-only models are references too. A multimodal model whose accuracy under an image attack falls
below its suite's text-only model (which no image attack reaches) is worse than ignoring the image: the flag
`below_text_only` says so; any model whose figure under an attack lies below the constant classifier is worse than
no model at all: `below_constant`."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mmrb.core.modality import INPUTS

BELOW_TEXT_ONLY, BELOW_CONSTANT = "below_text_only", "below_constant"


def model_modalities(model: str, frame: pd.DataFrame) -> tuple[str, ...]:
    """The input modalities of a suite's model: from the model registry, else read off which attacks reached it."""
    from wrappers.registry import model_entry

    try:  # in INPUTS' order: a frozenset's own order follows the hash seed, and tables must not
        return tuple(m for m in INPUTS if m in model_entry(model).modalities)
    except Exception:  # a label that is not a registered name: its cells tell
        seen = set(frame.loc[frame["model"] == model, "modality"])
        return tuple(m for m in INPUTS if m in seen or "joint" in seen)


def constant_rows(labels: np.ndarray) -> pd.DataFrame:
    """Accuracy, sensitivity and specificity of the constant classifiers (identical clean and under any attack)."""
    labels = np.asarray(labels)
    share = float(labels.mean()) if len(labels) else float("nan")
    majority = int(share >= 0.5)
    return pd.DataFrame([
        dict(baseline=f"constant: majority ({'abnormal' if majority else 'normal'})", accuracy=max(share, 1 - share),
             sensitivity=float(majority), specificity=float(1 - majority)),
        dict(baseline="constant: always abnormal", accuracy=share, sensitivity=1.0, specificity=0.0),
    ]).set_index("baseline")


def baseline_table(frame: pd.DataFrame, labels: np.ndarray | None = None) -> pd.DataFrame:
    """Clean accuracy and lowest robust accuracy of every model beside the constant rows and the suite's single-
    modality models (%): the rows a reader compares a multimodal model against."""
    white = frame[frame["transfer_source"].fillna("") == ""]
    if white.empty:
        return pd.DataFrame()
    out = {}
    for model, group in white.groupby("model", sort=False):
        attacked = group[group["modality"] != "none"]
        kind = "+".join(model_modalities(model, white))
        out[f"{model} ({kind})"] = {"clean": group["clean_accuracy"].mean(),
                                    "lowest under attack or corruption": attacked["robust_accuracy"].min() if len(attacked) else np.nan}
    table = pd.DataFrame(out).T
    if labels is not None:
        constant = constant_rows(labels)["accuracy"]
        table = pd.concat([table, pd.DataFrame({"clean": constant, "lowest under attack or corruption": constant})])
    return (100 * table).round(1)


def below_text_only(frame: pd.DataFrame) -> pd.DataFrame:
    """Flags: a multimodal model's robust accuracy under an image attack (not a soundness probe) below the clean
    accuracy of the suite's text-only model (whole interval below its mean)."""
    white = frame[frame["transfer_source"].fillna("") == ""]
    models = {m: model_modalities(m, white) for m in white["model"].unique()}
    text_only = [m for m, k in models.items() if k == ("text",)]
    flags = []
    for reference in text_only:
        floor = white.loc[(white["model"] == reference) & (white["modality"] == "none"), "clean_accuracy"].mean()
        for model, kind in models.items():
            if set(kind) != {"image", "text"}:
                continue
            low = white[(white["model"] == model) & (white["modality"] == "image")]
            low = low[np.array([not _probe(r) for r in low.itertuples()], dtype=bool)]  # probes have their own flags
            high = low.get("robust_accuracy_ci_high", low["robust_accuracy"])
            below = low[high < floor]
            if len(below):
                flags.append(_flag(BELOW_TEXT_ONLY, model, below, f"under these image attacks below the text-only "
                                   f"model {reference} ({100 * floor:.1f} %): worse than ignoring the image"))
    return pd.DataFrame(flags, columns=["flag", "model", "cells", "detail"])


def _flag(flag: str, model: str, below: pd.DataFrame, detail: str) -> dict[str, str]:
    """One flag row naming the cells (attack@ε) it was raised on."""
    cells = ", ".join(f"{a}@{e:.4g}" if pd.notna(e) else a for a, e in zip(below["attack"], below["epsilon"]))
    return dict(flag=flag, model=model, cells=cells, detail=detail)


def below_constant(frame: pd.DataFrame, labels: np.ndarray | None) -> pd.DataFrame:
    """Flags: a model's robust accuracy under an attack (image, text or joint; not a soundness probe or a corruption)
    whose whole interval lies below the accuracy of the constant classifier that always answers the test split's
    majority class (no attack changes it): a reader would do better ignoring the model."""
    columns = ["flag", "model", "cells", "detail"]
    if labels is None or not len(labels) or frame.empty:
        return pd.DataFrame(columns=columns)
    share = float(np.mean(labels))
    majority, name = max(share, 1 - share), "abnormal" if share >= 0.5 else "normal"
    white = frame[(frame["transfer_source"].fillna("") == "") & frame["modality"].isin(("image", "text", "joint"))]
    white = white[np.array([not _probe(r) and getattr(r, "attack_name", "") != "corruption" for r in white.itertuples()],
                           dtype=bool)]  # a mask even when empty (a list [] would select no columns)
    flags = []
    for model, group in white.groupby("model", sort=False):
        high = group.get("robust_accuracy_ci_high", group["robust_accuracy"]).fillna(group["robust_accuracy"])
        below = group[high < majority]
        if len(below):
            flags.append(_flag(BELOW_CONSTANT, model, below, f"under these attacks below the constant classifier "
                               f"(always {name}: {100 * majority:.1f} %): a reader would do better ignoring the model"))
    return pd.DataFrame(flags, columns=columns)


def _probe(row: object) -> bool:
    from benchmark.attacks.registry import traits

    return traits(str(getattr(row, "attack_source", "mmrb")), str(getattr(row, "attack_name", ""))).probe is not None


def operating_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model and attack at the operating threshold: robust sensitivity / specificity (%) and the decisions the
    attack flipped, mean per seed: abnormal→normal (false reassurance) and normal→abnormal (false alarm)."""
    if "robust_sensitivity" not in frame or frame["robust_sensitivity"].isna().all():
        return pd.DataFrame()
    rows = frame[(frame["transfer_source"].fillna("") == "") & frame["robust_sensitivity"].notna()]
    out = pd.DataFrame({
        "cell": rows["model"] + " · " + rows["attack"] + rows["epsilon"].map(lambda e: "" if pd.isna(e) else f"@{e:.4g}"),
        "threshold": rows["threshold"].round(3),
        "sensitivity": (100 * rows["robust_sensitivity"]).round(1),
        "specificity": (100 * rows["robust_specificity"]).round(1),
        "abnormal→normal": rows["false_reassurance"].round(1), "normal→abnormal": rows["false_alarm"].round(1)})
    return out.set_index("cell")

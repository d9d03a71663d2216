"""Per-sample evidence of a run: samples.csv beside results.csv, one row per test sample and white-box cell (model,
seed, attack, ε) with the true label, the clean and adversarial predictions and P(abnormal), whether the cell broke
the sample (clean right, attacked wrong) and `broken_by`: every attack that broke it for that model and seed.

It is read back from the attack cache (`benchmark.artifacts`), so it costs no model call and can be rewritten for any
finished run folder; the samples browser of the board and the paired tests read it.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.artifacts import ArtifactCache
from benchmark.grid import Cell

SAMPLES_NAME = "samples.csv"
COLUMNS = ("sample_id", "model", "seed", "attack", "modality", "epsilon", "label", "clean_prediction",
           "adversarial_prediction", "clean_p_abnormal", "adversarial_p_abnormal", "broken", "broken_by")


def sample_rows(cell: Cell, sample_ids: Sequence[str], labels: np.ndarray, clean_prob: np.ndarray,
                adv_prob: np.ndarray) -> pd.DataFrame:
    """The evidence rows of one cell."""
    clean, adv = clean_prob.argmax(1), adv_prob.argmax(1)
    return pd.DataFrame(dict(sample_id=list(sample_ids), model=cell.model.label, seed=cell.seed, attack=cell.attack.label,
                             modality=cell.attack.modality, epsilon=cell.epsilon, label=labels, clean_prediction=clean,
                             adversarial_prediction=adv, clean_p_abnormal=clean_prob[:, 1].round(4),
                             adversarial_p_abnormal=adv_prob[:, 1].round(4), broken=(clean == labels) & (adv != labels)))


def evidence(cells: Sequence[Cell], keys: Sequence[str], sample_ids: Sequence[str], labels: np.ndarray,
             cache: ArtifactCache) -> pd.DataFrame:
    """Evidence of every white-box cell whose artifact is in the cache, with `broken_by` per (model, seed, sample)."""
    parts = []
    for cell, key in zip(cells, keys):
        artifact = cache.load(key) if cell.source is None else None
        if artifact is not None:
            parts.append(sample_rows(cell, sample_ids, labels, artifact.clean_prob, artifact.adv_prob))
    if not parts:
        return pd.DataFrame(columns=list(COLUMNS))
    frame = pd.concat(parts, ignore_index=True)
    broke = frame[frame["broken"]].assign(what=lambda f: f["attack"] + f["epsilon"].map(
        lambda e: "" if pd.isna(e) else f"@{e:.4g}"))
    by = broke.groupby(["model", "seed", "sample_id"])["what"].agg(lambda s: ";".join(dict.fromkeys(s)))
    frame = frame.join(by.rename("broken_by"), on=["model", "seed", "sample_id"])
    frame["broken_by"] = frame["broken_by"].fillna("")
    return frame[list(COLUMNS)]


def write_evidence(cells: Sequence[Cell], keys: Sequence[str], sample_ids: Sequence[str], labels: np.ndarray,
                   cache: ArtifactCache, folder: Path) -> Path:
    """samples.csv of a run folder."""
    path = Path(folder) / SAMPLES_NAME
    evidence(cells, keys, sample_ids, labels, cache).to_csv(path, index=False)
    return path


def correct_matrix(frame: pd.DataFrame, model: str, attack: str, epsilon: float | None = None) -> np.ndarray:
    """(seeds, samples) booleans: the model's adversarial decision was right (rows by seed, columns by sample id)."""
    rows = frame[(frame["model"] == model) & (frame["attack"] == attack)]
    if epsilon is not None:
        rows = rows[np.isclose(rows["epsilon"].astype(float), epsilon)]
    table = rows.assign(right=rows["adversarial_prediction"] == rows["label"]).pivot_table(
        index="seed", columns="sample_id", values="right", aggfunc="first")
    return table.sort_index().sort_index(axis=1).to_numpy(dtype=bool)

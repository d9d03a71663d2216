"""Per-sample evidence of a run: samples.csv beside results.csv, one row per test sample and white-box cell (model,
seed, attack, ε) with the true label, the clean and adversarial predictions and P(abnormal), whether the cell broke
the sample (clean right, attacked wrong) and `broken_by`: every attack that broke it for that model and seed.

It is read back from the attack cache (`benchmark.store.artifacts`), so it costs no model call and can be rewritten for any
finished run folder; the samples browser of the board and the paired tests read it.
"""
from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from benchmark.data import SplitArrays
from benchmark.spec.grid import Cell
from benchmark.store.artifacts import ArtifactCache
from mmrb.core.io import atomic_write

log = logging.getLogger(__name__)
SAMPLES_NAME, BROKEN_NAME, TRANSFER_NAME = "samples.csv", "broken.json", "samples_transfer.csv"
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


def transfer_evidence(cells: Sequence[Cell], keys: Sequence[str], sample_ids: Sequence[str], labels: np.ndarray,
                      cache: ArtifactCache) -> pd.DataFrame:
    """Evidence of every transfer cell whose artifact is in the cache (samples.csv's columns but `broken_by`, and
    `transfer_source`): the paired transfer gains read it."""
    parts = []
    for cell, key in zip(cells, keys):
        artifact = cache.load(key) if cell.source is not None else None
        if artifact is not None:
            parts.append(sample_rows(cell, sample_ids, labels, artifact.clean_prob, artifact.adv_prob)
                         .assign(transfer_source=cell.source.label))
    columns = [*COLUMNS[:-1], "transfer_source"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def evidence(cells: Sequence[Cell], keys: Sequence[str], sample_ids: Sequence[str], labels: np.ndarray,
             cache: ArtifactCache) -> pd.DataFrame:
    """Evidence of every white-box cell whose artifact is in the cache, with `broken_by` per (model, seed, sample)."""
    parts, missing = [], []
    for cell, key in zip(cells, keys):
        artifact = cache.load(key) if cell.source is None else None
        if artifact is not None:
            parts.append(sample_rows(cell, sample_ids, labels, artifact.clean_prob, artifact.adv_prob))
        elif cell.source is None:
            missing.append(f"{cell.model.label} seed {cell.seed} {cell.attack.label} eps={cell.epsilon}")
    if missing:  # said, not hidden: the paired tests and per-sample tables leave these cells out
        log.warning("samples.csv: no attack-cache entry for %d of %d white-box cells (cleared cache, or a failed cell); "
                    "their per-sample evidence is missing: %s%s", len(missing), len(parts) + len(missing),
                    "; ".join(missing[:5]), " …" if len(missing) > 5 else "")
    if not parts:
        return pd.DataFrame(columns=list(COLUMNS))
    frame = pd.concat(parts, ignore_index=True)
    broke = frame[frame["broken"]].assign(what=lambda f: f["attack"] + f["epsilon"].map(
        lambda e: "" if pd.isna(e) else f"@{e:.4g}"))
    by = broke.groupby(["model", "seed", "sample_id"])["what"].agg(lambda s: ";".join(dict.fromkeys(s)))
    frame = frame.join(by.rename("broken_by"), on=["model", "seed", "sample_id"])
    frame["broken_by"] = frame["broken_by"].fillna("")
    return frame[list(COLUMNS)]


def write_evidence(cells: Sequence[Cell], keys: Sequence[str], test: SplitArrays, cache: ArtifactCache,
                   folder: Path, per_kind: int = 2, rank: tuple[str, float | None] | None = None) -> Path:
    """samples.csv of a run folder (samples_transfer.csv for the transfer cells, where the suite has some), and
    broken.json: per model a few broken samples of the rank cell (`rank`), a text and a joint attack, with their images
    and reports (the samples browser; `pick_broken`)."""
    path = Path(folder) / SAMPLES_NAME
    frame = evidence(cells, keys, test.uids, test.labels, cache)
    frame.to_csv(path, index=False)
    if any(cell.source is not None for cell in cells):
        transfer_evidence(cells, keys, test.uids, test.labels, cache).to_csv(Path(folder) / TRANSFER_NAME, index=False)
    examples = broken_examples(frame, cells, keys, test, cache, per_kind, rank)
    atomic_write(Path(folder) / BROKEN_NAME, json.dumps(examples, indent=1))
    return path


def png_uri(view: np.ndarray) -> str:
    """A 2-D array in [0,1] as a PNG data URI (the page fetches nothing)."""
    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(view, 0, 1) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


#: What the browser shows per model, in this order: (kind, modality of the attacks it is picked from, what stands in
#: where the suite has no such attack: a report corruption for a text attack).
KINDS = (("rank cell", "image", ""), ("text attack", "text", "report corruption"), ("joint attack", "joint", ""))


def pick_broken(frame: pd.DataFrame, rank: tuple[str, float | None] | None = None, corruptions: set[str] = frozenset(),
                per_kind: int = 2, probes: set[str] = frozenset()) -> pd.DataFrame:
    """Per model up to `per_kind` broken samples (first seed) of each of: the rank cell (`rank`: its attack label and
    ε; else the image attack that broke the most, called "strongest image attack"), the text attack that broke the
    most (else the report corruption that did, so that a report diff is shown), the joint attack that broke the most.
    Corruptions (`corruptions`: their labels) never stand for an attack, nor do soundness probes (`probes`: the text
    floor, random noise); column `kind` says which each sample shows."""
    broken = frame[frame["broken"] & (frame["modality"] != "none") & ~frame["attack"].isin(probes)]
    picked = []
    for _model, rows in broken.groupby("model", sort=False):
        for kind, modality, fallback in KINDS:
            of = rows[(rows["modality"] == modality) & ~rows["attack"].isin(corruptions)]
            if kind == "rank cell" and rank is not None:
                same = of["attack"] == rank[0]
                of = of[same & (of["epsilon"].isna() if rank[1] is None else np.isclose(of["epsilon"].astype(float), rank[1]))]
            elif kind == "rank cell":
                kind = "strongest image attack"
            if of.empty and fallback:
                of, kind = rows[(rows["modality"] == modality) & rows["attack"].isin(corruptions)], fallback
            if of.empty:
                continue
            strongest = of.groupby(["attack", "epsilon"], dropna=False).size().idxmax()
            cell = of[(of["attack"] == strongest[0]) & ((of["epsilon"] == strongest[1]) | of["epsilon"].isna())]
            cell = cell[cell["seed"] == cell["seed"].min()]
            picked.append(cell.drop_duplicates("sample_id").head(per_kind).assign(kind=kind))
    return pd.concat(picked) if picked else broken.head(0).assign(kind="")


def broken_examples(frame: pd.DataFrame, cells: Sequence[Cell], keys: Sequence[str], test: SplitArrays,
                    cache: ArtifactCache, per_kind: int = 2, rank: tuple[str, float | None] | None = None
                    ) -> list[dict[str, Any]]:
    """Per model broken samples of the rank cell, a text attack and a joint attack (`pick_broken`), with the clean and
    attacked frontal view, their difference (amplified to the full range) and the report before and after."""
    index = {uid: i for i, uid in enumerate(test.uids)}
    key_of = {(c.model.label, c.seed, c.attack.label, c.epsilon): k for c, k in zip(cells, keys) if c.source is None}
    from benchmark.attacks.registry import traits

    corruptions = {c.attack.label for c in cells if c.attack.source == "mmrb" and c.attack.name == "corruption"}
    probes = {c.attack.label for c in cells if traits(c.attack.source, c.attack.name).probe is not None}
    out = []
    for r in pick_broken(frame, rank, corruptions, per_kind, probes).itertuples():
        model, epsilon = r.model, None if pd.isna(r.epsilon) else r.epsilon
        artifact = cache.load(key_of[model, r.seed, r.attack, epsilon])
        i = index[r.sample_id]
        clean = test.images[i, 0]
        adv = artifact.images[i, 0] if artifact.images is not None else clean
        diff = np.abs(adv - clean)
        out.append(dict(model=model, kind=r.kind, sample_id=str(r.sample_id), seed=int(r.seed),
                        attack=r.attack + ("" if epsilon is None else f"@{epsilon:.4g}"), label=int(r.label),
                        clean_prediction=int(r.clean_prediction), adversarial_prediction=int(r.adversarial_prediction),
                        report=test.texts[i], adversarial_report=artifact.texts[i] if artifact.texts else test.texts[i],
                        images=dict(clean=png_uri(clean)) if artifact.images is None else  # report attacks
                        dict(clean=png_uri(clean), adversarial=png_uri(adv),
                             difference=png_uri(diff / max(float(diff.max()), 1e-8)))))
    return out


def rank_correct(frame: pd.DataFrame, model: str, attack: str, epsilon: float | None) -> dict[str, str]:
    """seed -> '1'/'0' per sample (sorted by sample id): the model's decision under the attack was right."""
    matrix = correct_matrix(frame, model, attack, epsilon)
    seeds = sorted(frame.loc[(frame["model"] == model) & (frame["attack"] == attack), "seed"].unique())
    return {str(int(s)): "".join("1" if v else "0" for v in row) for s, row in zip(seeds, matrix)}


def correct_matrix(frame: pd.DataFrame, model: str, attack: str, epsilon: float | None = None) -> np.ndarray:
    """(seeds, samples) booleans: the model's adversarial decision was right (rows by seed, columns by sample id)."""
    rows = frame[(frame["model"] == model) & (frame["attack"] == attack)]
    if epsilon is not None:
        rows = rows[np.isclose(rows["epsilon"].astype(float), epsilon)]
    table = rows.assign(right=rows["adversarial_prediction"] == rows["label"]).pivot_table(
        index="seed", columns="sample_id", values="right", aggfunc="first")
    return table.sort_index().sort_index(axis=1).to_numpy(dtype=bool)


def read_samples(folder: Path, name: str = SAMPLES_NAME) -> pd.DataFrame | None:
    """A run folder's samples.csv (`name`: or samples_transfer.csv) as written (sample ids as text, ε blank for the
    cells without one); None where the run wrote none."""
    path = Path(folder) / name
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype={"sample_id": str, "model": str, "attack": str, "transfer_source": str},
                       keep_default_na=False, na_values={"epsilon": [""]})


def entry_evidence(folder: Path, model: str, attack: str, epsilon: float | None) -> dict[str, Any] | None:
    """The `evidence` block of a leaderboard entry from its run folder: the rank cell's per-sample decisions and the
    model's broken samples (None where the run wrote no samples.csv)."""
    frame = read_samples(folder)
    if frame is None:
        return None
    ids = sorted(frame["sample_id"].unique())
    broken_path = Path(folder) / BROKEN_NAME
    broken = json.loads(broken_path.read_text()) if broken_path.is_file() else []
    from wrappers.cache import digest

    return dict(samples=digest(ids), rank_correct=rank_correct(frame, model, attack, epsilon),
                broken=[{k: v for k, v in b.items() if k != "model"} for b in broken if b["model"] == model])

"""The corruption track's tables: per model the corruption error of each kind (1 − accuracy, mean over the severities
the suite runs and the training seeds), and the mCE: each kind's summed error over severities divided by that of a
baseline model, averaged over kinds (Hendrycks & Dietterich 2019, ImageNet-C; MedMNIST-C uses the same convention);
the relative mCE divides the error *added* by the corruption (corrupted − clean error) instead. Image kinds are
normalised by the suite's `corruption_baseline` (an image-only model), report kinds by the suite's text-only model:
a baseline that cannot see a modality cannot normalise its corruptions. 100 % is the baseline's robustness; lower is
better. The corruption rank is then compared with the attack rank."""
from __future__ import annotations

import json

import pandas as pd


def corruption_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The aggregated rows of mmrb corruption cells, with their kind and severity."""
    if frame.empty or "attack_name" not in frame:
        return pd.DataFrame()
    rows = frame[(frame["attack_name"] == "corruption") & (frame["transfer_source"].fillna("") == "")].copy()
    if rows.empty:
        return rows
    params = rows["params"].map(json.loads) if "params" in rows else None
    if params is None:  # aggregated frames drop params: the label is kind-severity
        split = rows["attack"].str.rsplit("-", n=1)
        rows["kind"], rows["severity"] = split.str[0], split.str[1].astype(int)
    else:
        rows["kind"], rows["severity"] = params.map(lambda p: p["kind"]), params.map(lambda p: int(p["severity"]))
    rows["error"] = 1 - rows["robust_accuracy"]
    return rows


def text_baseline(frame: pd.DataFrame) -> str | None:
    """The suite's text-only model: the baseline of the report corruptions (None without one)."""
    from benchmark.evaluation.baselines import model_modalities

    white = frame[frame["transfer_source"].fillna("") == ""]
    return next((m for m in dict.fromkeys(white["model"]) if model_modalities(m, white) == ("text",)), None)


def corruption_table(frame: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Corruption error (%) per kind (rows) and model (columns), then the mean CE and, per modality with its baseline
    (image kinds: `baseline`; report kinds: the text-only model), the mCE and the relative mCE (%)."""
    rows = corruption_rows(frame)
    if rows.empty:
        return pd.DataFrame()
    errors = rows.pivot_table(index=["modality", "kind"], columns="model", values="error", aggfunc="mean", sort=False)
    table = (100 * errors).round(1)
    table.index = [f"{kind} [{modality}]" for modality, kind in table.index]
    table.loc["mean CE"] = (100 * errors.mean()).round(1)
    clean = clean_errors(frame)
    for modality, name, reference in (("image", "image", baseline), ("text", "report", text_baseline(frame))):
        part = rows[rows["modality"] == modality]
        if reference is None or part.empty:
            continue
        table.loc[f"{name} mCE vs {reference}"] = (100 * mce(part, reference)).round(1)
        table.loc[f"{name} relative mCE vs {reference}"] = (100 * mce(part, reference, clean)).round(1)
    return table


def clean_errors(frame: pd.DataFrame) -> pd.Series:
    """Clean error (1 − clean accuracy) per model, from its white-box rows."""
    white = frame[frame["transfer_source"].fillna("") == ""]
    return 1 - white.groupby("model")["clean_accuracy"].mean()


def mce(rows: pd.DataFrame, baseline: str, clean: pd.Series | None = None) -> pd.Series:
    """mCE per model: mean over kinds of Σ_severity error / Σ_severity error of `baseline` (kinds the baseline saw);
    with `clean` (clean error per model), the relative mCE: Σ (error − clean error) / the baseline's."""
    rows = rows if clean is None else rows.assign(error=rows["error"] - rows["model"].map(clean))
    summed = rows.pivot_table(index="kind", columns="model", values="error", aggfunc="sum")
    if baseline not in summed:
        return pd.Series(dtype=float)
    seen = summed[baseline] > 0
    return summed[seen].div(summed.loc[seen, baseline], axis=0).mean()


def rank_comparison(frame: pd.DataFrame, baseline: str | None, attack: str, epsilon: float | None) -> pd.DataFrame:
    """Each model's rank under the image corruptions, under the report corruptions (mean CE, lower first) and under
    `attack` at ε (robust accuracy, higher first; a model the attack cannot reach keeps its clean accuracy): where the
    orders differ, a model robust to one is not robust to the other."""
    rows = corruption_rows(frame)
    white = frame[frame["transfer_source"].fillna("") == ""]
    attacked = white[white["attack"] == attack]
    if epsilon is not None and len(attacked):
        attacked = attacked[(attacked["epsilon"].astype(float) - epsilon).abs() < 1e-6]
    if rows.empty or attacked.empty:
        return pd.DataFrame()
    clean = white[white["modality"] == "none"].set_index("model")["clean_accuracy"]
    robust = attacked.set_index("model")["robust_accuracy"].reindex(clean.index).fillna(clean)
    out = pd.DataFrame({"image corruption CE (%)": 100 * rows[rows["modality"] == "image"].groupby("model")["error"].mean(),
                        "report corruption CE (%)": 100 * rows[rows["modality"] == "text"].groupby("model")["error"].mean(),
                        f"{attack} robust accuracy (%)": 100 * robust}).reindex(clean.index).round(1)
    out["rank (image corruptions)"] = out.iloc[:, 0].rank(method="min").astype("Int64")
    out["rank (report corruptions)"] = out.iloc[:, 1].rank(method="min").astype("Int64")
    out[f"rank ({attack})"] = (-out.iloc[:, 2]).rank(method="min").astype("Int64")
    if baseline is not None:
        images = rows[rows["modality"] == "image"]
        out[f"image mCE vs {baseline} (%)"] = (100 * mce(images, baseline)).reindex(out.index).round(1)
    return out.sort_values(f"rank ({attack})")


def corruption_figure(frame: pd.DataFrame, model: str, baseline: str | None) -> dict | None:
    """The `corruption` block of a leaderboard entry: per kind the error summed over severities, and the mean CE."""
    rows = corruption_rows(frame)
    rows = rows[rows["model"] == model] if len(rows) else rows
    if rows.empty:
        return None
    summed = rows.groupby("kind")["error"].sum()
    kinds = rows.groupby("kind")["modality"].first()
    clean = clean_errors(frame).get(model)
    return dict(baseline=baseline, errors={k: float(v) for k, v in summed.items()}, mean_ce=float(rows["error"].mean()),
                modalities={k: str(v) for k, v in kinds.items()}, severities=int(rows.groupby("kind").size().max()),
                clean_error=None if clean is None else float(clean))

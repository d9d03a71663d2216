"""Per-seed results -> one row per (model, attack, ε, transfer source): mean, spread and a 95 % interval inside
the metric's range ([0, 1]), `<m>_ci_low` / `<m>_ci_high`, printed as `mean [low, high]`.

Where the run's per-sample evidence (samples.csv) is given, every interval of a white-box cell is the two-level
bootstrap over seeds × samples (`benchmark.evaluation.intervals`). Without it (transfer cells, or no evidence):
accuracies (proportions of the n test samples) get `mmrb.core.stats.seed_interval` (the seed t-interval and the
test set's Wilson interval combined); F1, AUC and the attack success rate, which are not proportions of n, the seed
t-interval. Both are cut to [0, 1]; the column `interval` names which a row carries.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from benchmark.store.record import over_seeds, proportions
from mmrb.core.stats import seed_interval, t_halfwidth

#: What each result column becomes over a cell's training seeds, as benchmark.store.record.ResultRecord declares it.
#: The columns that make a cell.
GROUP = over_seeds("group")
#: Accuracies and the column holding the number of samples they are proportions of.
PROPORTIONS = proportions()
SPREAD_ONLY = over_seeds("spread")
MEANS = over_seeds("mean")
#: Largest over the seeds: the budget the convergence check needed.
MAXIMA = over_seeds("max")


def aggregate(rows: Iterable[dict[str, Any]], samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per cell over its training seeds (rows with an error are left out). Columns: the GROUP keys,
    `seeds`, `n`, for each accuracy or score `<m>`, `<m>_std`, `<m>_ci_low`, `<m>_ci_high` (module docstring;
    `samples`: the run's samples.csv), `interval`; means of the bookkeeping columns."""
    from benchmark.evaluation.intervals import refine

    frame = pd.DataFrame([r for r in rows if not r.get("error")])
    if frame.empty:
        return pd.DataFrame(columns=[*GROUP, "seeds", "n"])
    frame["transfer_source"] = frame["transfer_source"].fillna("")
    out = []
    for key, group in frame.groupby(list(GROUP), sort=False, dropna=False):
        n = int(group["n"].iloc[0])
        row: dict[str, Any] = dict(zip(GROUP, key), seeds=len(group), n=n, attack_name=_attack_name(group),
                                   seed_list=",".join(str(int(s)) for s in sorted(group["seed"])) if "seed" in group else "")
        for metric, count in PROPORTIONS.items():
            values = _values(group, metric)
            if len(values):
                interval = seed_interval(values, int(group[count].iloc[0]) if count in group else n)
                row.update({metric: interval["mean"], f"{metric}_std": interval["std"],
                            f"{metric}_ci_low": interval["ci_low"], f"{metric}_ci_high": interval["ci_high"]})
        for metric in SPREAD_ONLY:
            values = _values(group, metric)
            if len(values):
                mean, hw = float(values.mean()), t_halfwidth(values)
                row.update({metric: mean, f"{metric}_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                            f"{metric}_ci_low": max(0.0, mean - hw), f"{metric}_ci_high": min(1.0, mean + hw)})
        for metric in MEANS:
            values = _values(group, metric)
            if len(values):
                row[metric] = float(values.mean())
        for metric in MAXIMA:
            values = _values(group, metric)
            if len(values):
                row[metric] = float(values.max())
        row.update(_worst_seed_recalls(group))
        out.append(publish_converged(row))
    return refine(pd.DataFrame(out), frame, samples)


def aggregate_run(record: Any) -> pd.DataFrame:
    """`aggregate` of a finished run (a `RunRecord`), with the per-sample evidence its folder holds."""
    from pathlib import Path

    from benchmark.evaluation.evidence import read_samples

    return aggregate(record.rows, read_samples(Path(record.results_path).parent))


def _worst_seed_recalls(group: pd.DataFrame) -> dict[str, float]:
    """The worst training seed's smaller class recall and balanced accuracy on clean data (the soundness check of
    one-class and chance-level models reads them: a seed mean can hide one degenerate training)."""
    columns = ["clean_accuracy_normal", "clean_accuracy_abnormal"]
    if not set(columns) <= set(group.columns):
        return {}
    recalls = group[columns].apply(pd.to_numeric, errors="coerce").dropna()
    if recalls.empty:
        return {}
    return {"worst_seed_min_recall": float(recalls.min(axis=1).min()),
            "worst_seed_balanced_accuracy": float(recalls.mean(axis=1).min())}


def _values(group: pd.DataFrame, metric: str) -> np.ndarray:
    """The finite values of one metric over a cell's seeds (none if the column is absent)."""
    return pd.to_numeric(group[metric], errors="coerce").dropna().to_numpy() if metric in group else np.array([])


def _attack_name(group: pd.DataFrame) -> str:
    """The attack's own name (its label may differ), from the per-seed rows' `attack_name` column."""
    return str(group["attack_name"].iloc[0]) if "attack_name" in group else str(group["attack"].iloc[0])


def publish_converged(row: dict[str, Any]) -> dict[str, Any]:
    """The convergence check's verdict on an aggregated cell. The published robust accuracy is already the
    escalated, converged figure (benchmark.attacks.convergence: the check's runs are part of the cell); the attack's figure as
    configured is kept as `as_run_robust_accuracy`. The cell is `not_converged` only where the check hit its cap in
    some seed while the figure was still falling (`check_capped` > 0)."""
    if "check_rounds" not in row or pd.isna(row.get("check_rounds")):
        return row
    row["not_converged"] = bool(row.get("check_capped", 0) > 0)
    return row


def with_interval(row: pd.Series | dict, metric: str, scale: float = 100.0, digits: int = 1) -> str:
    """`mean [low, high]` in percent, '–' when the metric is missing."""
    from mmrb.core.stats import format_interval

    get = row.get
    value = get(metric)
    if value is None or pd.isna(value):
        return "–"
    low, high = get(f"{metric}_ci_low"), get(f"{metric}_ci_high")
    return format_interval(float(value), None if low is None or pd.isna(low) else float(low),
                           None if high is None or pd.isna(high) else float(high), digits, scale)

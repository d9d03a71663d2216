"""The defense table of a run whose models carry defenses (`defense:` on a suite model; docs/defenses.md): per
undefended model, each of its defended variants in every white-box condition — the adaptive robust accuracy (the one
ranked) with the naive one beside it, and the paired difference to the undefended model over training seeds (each
seed's defended and undefended models share the trained weights or the starting point), Holm-corrected over the
table."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mmrb.core.paired import holm
from mmrb.core.stats import mean_interval


def defense_table(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per (defended model, attack, ε): adaptive and naive robust accuracy (%) as mean ± t over seeds, the
    masking, and defended − undefended (pt) with its paired t-interval over seeds and Holm-adjusted p."""
    frame = pd.DataFrame([r for r in rows if not r.get("error")])
    if frame.empty or "defense" not in frame or not frame["defense"].fillna("").astype(bool).any():
        return pd.DataFrame()
    frame = frame[frame["transfer_source"].fillna("") == ""]
    frame = frame.assign(base=frame.apply(lambda r: _base(r["model"], r.get("defense") or ""), axis=1))
    out = []
    for (_model, attack, epsilon), group in frame.groupby(["model", "attack", "epsilon"], sort=False, dropna=False):
        defense = group["defense"].fillna("").iloc[0]
        if not defense:
            continue
        plain = frame[(frame["model"] == group["base"].iloc[0]) & (frame["attack"] == attack)
                      & ((frame["epsilon"] == epsilon) | (frame["epsilon"].isna() & pd.isna(epsilon)))]
        paired = group.set_index("seed")["robust_accuracy"] - plain.set_index("seed")["robust_accuracy"]
        paired = paired.dropna()
        mean, half = mean_interval(paired)
        p = _t_p(paired.to_numpy())
        naive = group["naive_robust_accuracy"] if "naive_robust_accuracy" in group else pd.Series(dtype=float)
        out.append({"model": group["base"].iloc[0], "defense": defense, "attack": attack,
                    "ε": "–" if pd.isna(epsilon) else f"{epsilon:.4g}",
                    "robust (adaptive)": _pct(group["robust_accuracy"]), "naive": _pct(naive.dropna()),
                    "vs undefended (pt)": "–" if np.isnan(mean) else f"{100 * mean:+.1f} ± {100 * half:.1f}",
                    "p": p})
    table = pd.DataFrame(out)
    if table.empty:
        return table
    table["p (Holm)"] = [f"{q:.2g}" for q in holm(table["p"].fillna(1.0).tolist())]
    table["p"] = table["p"].map(lambda v: "–" if pd.isna(v) else f"{v:.2g}")
    return table


def _base(label: str, defense: str) -> str:
    suffix = f"+{defense}"
    return label[: -len(suffix)] if defense and label.endswith(suffix) else label


def _pct(values: pd.Series) -> str:
    if not len(values):
        return "–"
    mean, half = mean_interval(values.to_numpy(dtype=float))
    return f"{100 * mean:.1f} ± {100 * half:.1f}"


def _t_p(differences: np.ndarray) -> float:
    """Two-sided p of a one-sample t-test of the per-seed differences against 0 (NaN for fewer than two seeds)."""
    if len(differences) < 2:
        return float("nan")
    if np.allclose(differences, differences[0]):
        return 0.0 if differences[0] != 0 else 1.0
    return float(stats.ttest_1samp(differences, 0.0).pvalue)

"""The defense table of a run whose models carry defenses (`defense:` on a suite model; docs/defenses.md): per
undefended model, each of its defended variants in every white-box condition — the adaptive robust accuracy (the one
ranked) with the naive one beside it, and the paired difference to the undefended model on the same (seed, sample)
pairs (each seed's defended and undefended models share the trained weights or the starting point): the two-level
bootstrap of mmrb.core.paired where the run's samples.csv holds both cells, else over training seeds alone (the
t-interval, marked †); every interval inside its range; separability by `mmrb.core.paired.family` (both tests
Holm-corrected over the table)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mmrb.core.paired import Paired, family, holm, paired_test
from mmrb.core.stats import mean_interval


def defense_table(rows: Iterable[dict[str, Any]], samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (defended model, attack, ε): adaptive and naive robust accuracy (%) as mean [interval], the
    masking, and defended − undefended (pt) with its paired interval and Holm-adjusted p (module docstring)."""
    from benchmark.evaluation.evidence import correct_matrix

    frame = pd.DataFrame([r for r in rows if not r.get("error")])
    if frame.empty or "defense" not in frame or not frame["defense"].fillna("").astype(bool).any():
        return pd.DataFrame()
    frame = frame[frame["transfer_source"].fillna("") == ""]
    frame = frame.assign(base=frame.apply(lambda r: _base(r["model"], r.get("defense") or ""), axis=1))
    out = []
    for (model, attack, epsilon), group in frame.groupby(["model", "attack", "epsilon"], sort=False, dropna=False):
        defense = group["defense"].fillna("").iloc[0]
        if not defense:
            continue
        plain = frame[(frame["model"] == group["base"].iloc[0]) & (frame["attack"] == attack)
                      & ((frame["epsilon"] == epsilon) | (frame["epsilon"].isna() & pd.isna(epsilon)))]
        eps = None if pd.isna(epsilon) else float(epsilon)
        a = correct_matrix(samples, model, attack, eps) if samples is not None else np.empty(0)
        b = correct_matrix(samples, group["base"].iloc[0], attack, eps) if samples is not None else np.empty(0)
        if a.size and a.shape == b.shape:
            test: Paired | float = paired_test(a.astype(float), b.astype(float))
            shown = f"{100 * test.difference:+.1f} [{100 * test.low:+.1f}, {100 * test.high:+.1f}]"
        else:
            paired = (group.set_index("seed")["robust_accuracy"] - plain.set_index("seed")["robust_accuracy"]).dropna()
            mean, half = mean_interval(paired)
            test = _t_p(paired.to_numpy())
            shown = "–" if np.isnan(mean) else \
                f"{100 * mean:+.1f} [{100 * max(-1, mean - half):+.1f}, {100 * min(1, mean + half):+.1f}] †"
        naive = group["naive_robust_accuracy"] if "naive_robust_accuracy" in group else pd.Series(dtype=float)
        out.append({"model": group["base"].iloc[0], "defense": defense, "attack": attack,
                    "ε": "–" if pd.isna(epsilon) else f"{epsilon:.4g}",
                    "robust (adaptive)": _pct(group["robust_accuracy"]), "naive": _pct(naive.dropna()),
                    "vs undefended (pt)": shown, "test": test})
    table = pd.DataFrame(out)
    if table.empty:
        return table
    tested = [i for i, t in enumerate(table["test"]) if isinstance(t, Paired)]
    decided = dict(zip(tested, family([table["test"][i] for i in tested])))
    seeds_only = holm([t if not isinstance(t, Paired) and pd.notna(t) else 1.0 for t in table["test"]])
    table["p (Holm)"] = [f"{decided[i].p:.2g}" if i in decided else
                         ("–" if pd.isna(t) else f"{seeds_only[i]:.2g} †") for i, t in enumerate(table["test"])]
    table["detectable (pt)"] = [f"{100 * decided[i].mdd:.1f}" if i in decided else "–" for i in range(len(table))]
    return table.drop(columns="test")


def _base(label: str, defense: str) -> str:
    suffix = f"+{defense}"
    return label[: -len(suffix)] if defense and label.endswith(suffix) else label


def _pct(values: pd.Series) -> str:
    """Mean over seeds [t-interval cut to 0–100] (%)."""
    if not len(values):
        return "–"
    mean, half = mean_interval(values.to_numpy(dtype=float))
    return f"{100 * mean:.1f} [{100 * max(0.0, mean - half):.1f}, {100 * min(1.0, mean + half):.1f}]"


def _t_p(differences: np.ndarray) -> float:
    """Two-sided p of a one-sample t-test of the per-seed differences against 0 (NaN for fewer than two seeds)."""
    if len(differences) < 2:
        return float("nan")
    if np.allclose(differences, differences[0]):
        return 0.0 if differences[0] != 0 else 1.0
    return float(stats.ttest_1samp(differences, 0.0).pvalue)

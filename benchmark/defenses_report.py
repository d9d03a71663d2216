"""The defense comparison's reports: tables (Tables 6/10 shape, directions with paired seed differences, zero-shot,
CLIP scores) and plots, from its results frame."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmrb.core.stats import mean_interval


def interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95 % Student-t interval over seeds (0 for one seed)."""
    return mean_interval(values)


def _cell(values: Sequence[float]) -> str:
    mean, half = interval(values)
    return "–" if np.isnan(mean) else f"{100 * mean:.1f} ± {100 * half:.1f}"


def defense_tables(frame: pd.DataFrame, attacks: Sequence[str]) -> str:
    """One Markdown table per noise type: rows γ × method, columns ID/OOD accuracy and AUC, clean and attacked."""
    frame = frame[frame["method"] != "zero_shot"]
    parts = []
    for kind, by_kind in frame.groupby("noise", sort=False):
        table = {}
        for (ratio, method), group in by_kind.groupby(["ratio", "method"], sort=False):
            cells = {}
            for domain in ("ID", "OOD"):
                for attack in ("clean", *attacks):
                    sel = group[(group["domain"] == domain) & (group["attack"] == attack)]
                    for metric, name in (("accuracy", "ACC"), ("auc", "AUC")):
                        cells[f"{domain} {name} {attack}"] = _cell(sel[metric])
            table[(f"{100 * ratio:g}", method)] = cells
        parts.append(f"### {kind} noise\n\n" + pd.DataFrame.from_dict(table, orient="index")
                     .rename_axis(["γ %", "method"]).reset_index().to_markdown(index=False))
    return "\n\n".join(parts)


def _paired(frame: pd.DataFrame, pick_a: dict[str, Any], pick_b: dict[str, Any], column: str) -> str:
    """Mean ± 95 % t-interval over seeds of the per-seed difference a − b (averaged over the rows each picks)."""
    def per_seed(pick: dict[str, Any]) -> pd.Series:
        sel = frame
        for key, value in pick.items():
            sel = sel[sel[key] == value]
        return sel.groupby("seed")[column].mean()

    diff = (per_seed(pick_a) - per_seed(pick_b)).dropna()
    mean, half = interval(diff.to_numpy())
    return "–" if np.isnan(mean) else f"{100 * mean:+.1f} ± {100 * half:.1f}"


def direction_table(frame: pd.DataFrame, methods: Sequence[str], attacks: Sequence[str] = ()) -> str:
    """The paper's two claims as paired differences over seeds: each γ minus γ = 0 for linear probing (moderate
    noise helps ID, hurts OOD; also under each attack: "robustness") and, on clean inputs, each method minus the
    next, averaged over γ (RAN ≥ NMTune ≥ MLP ≥ LP)."""
    frame = frame[frame["method"] != "zero_shot"]
    columns = [(domain, metric, f"Δ {domain} {name}") for domain in ("ID", "OOD")
               for metric, name in (("accuracy", "ACC"), ("auc", "AUC"))]
    parts = []
    for kind, by_kind in frame.groupby("noise", sort=False):
        base = "lp" if "lp" in methods else methods[0]
        rows = {f"γ {100 * r:g} % − 0 ({base}{', ' + attack if attack != 'clean' else ''})":
                {label: _paired(by_kind, {"ratio": r, "method": base, "domain": d, "attack": attack},
                                {"ratio": 0.0, "method": base, "domain": d, "attack": attack}, m) for d, m, label in columns}
                for attack in ("clean", *attacks) for r in sorted(by_kind["ratio"].unique()) if r > 0}
        by_kind = by_kind[by_kind["attack"] == "clean"]
        order = [m for m in ("ran", "nmtune", "mlp", "lp") if m in methods] or list(methods)
        pairs = list(zip(order, order[1:])) + [(a, b) for a, b in (("ran", "mlp"), ("ran", "lp")) if {a, b} <= set(order)]
        for a, b in dict.fromkeys(pairs):
            rows[f"{a} − {b} (all γ)"] = {label: _paired(by_kind, {"method": a, "domain": d}, {"method": b, "domain": d}, m)
                                          for d, m, label in columns}
        parts.append(f"### {kind} noise\n\n" + pd.DataFrame.from_dict(rows, orient="index").rename_axis("difference")
                     .reset_index().to_markdown(index=False))
    return "\n\n".join(parts)


def zero_shot_table(frame: pd.DataFrame) -> str:
    """The paper's Table 4 shape: rows noise type × γ, columns ID/OOD AUC and accuracy of the zero-shot classifier."""
    frame = frame[frame["method"] == "zero_shot"]
    table = {}
    for (kind, ratio), group in frame.groupby(["noise", "ratio"], sort=False):
        table[(kind, f"{100 * ratio:g}")] = {f"{domain} {name}": _cell(group[group["domain"] == domain][metric])
                                             for domain in ("ID", "OOD") for metric, name in (("auc", "AUC"), ("accuracy", "ACC"))}
    return pd.DataFrame.from_dict(table, orient="index").rename_axis(["noise", "γ %"]).reset_index().to_markdown(index=False)


def clip_score_table(frame: pd.DataFrame) -> str:
    """The paper's Table 1 shape for the feature attack on the downstream tests: CLIP score of x_clean and x_adv
    against the target caption, and the target-image feature similarity, per noise type and γ."""
    cols = ["clip_score_clean", "clip_score_adv", "target_similarity_clean", "target_similarity_adv"]
    if not set(cols) <= set(frame.columns):
        return "(no feature attack in this suite)"
    sel = frame.dropna(subset=["clip_score_clean"]).drop_duplicates(["seed", "noise", "ratio", "domain", "attack"])
    out = sel.groupby(["noise", "ratio", "domain"], sort=False)[cols].mean().reset_index()
    return out.round(3).to_markdown(index=False)


def plot_accuracy(frame: pd.DataFrame, out: Path) -> list[Path]:
    """Clean accuracy vs γ per method, ID and OOD side by side, one figure per noise type (error bars: 95 % t)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    frame = frame[(frame["attack"] == "clean") & (frame["method"] != "zero_shot")]
    for kind, by_kind in frame.groupby("noise", sort=False):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
        for ax, domain in zip(axes, ("ID", "OOD")):
            for method, group in by_kind[by_kind["domain"] == domain].groupby("method", sort=False):
                stats = [interval(g["accuracy"]) for _, g in group.groupby("ratio")]
                ratios = sorted(group["ratio"].unique())
                ax.errorbar([100 * r for r in ratios], [100 * m for m, _ in stats], yerr=[100 * h for _, h in stats],
                            marker="o", capsize=3, label=method)
            ax.set(title=f"{domain} ({kind} noise)", xlabel="noise ratio γ (%)")
        axes[0].set_ylabel("accuracy (%)")
        axes[1].legend()
        fig.tight_layout()
        path = out / f"accuracy_vs_noise_{kind}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths

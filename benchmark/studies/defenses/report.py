"""The comparison's reports, from its rows (re-renderable from results.csv): accuracy tables with intervals over seeds
and test samples, the paired verdicts (methods, noise directions, the positive control, random vs adversarial noise)
with Holm's correction and each comparison's detectable difference, the feature spectrum, zero-shot scores, the
search's choices, and plots.

Accuracy intervals and paired tests come from the per-sample outcomes of every row (`mmrb.core.paired`: a bootstrap
over seeds × samples); AUC has a Student-t interval over seeds (it is not a per-sample mean).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.studies.defenses.scoring import unpack
from mmrb.core import paired
from mmrb.core.stats import format_interval, mean_interval

ORDER = ("ran", "nmtune", "mlp", "lp")  # the paper's claimed order, best first


def conditions(frame: pd.DataFrame) -> list[tuple[str, str, float]]:
    """(domain, attack, ε) of the rows: clean on each domain first, then each attack at each ε."""
    keys = frame[["domain", "attack", "epsilon"]].drop_duplicates().itertuples(index=False)
    return sorted(keys, key=lambda k: (k[1] != "clean", k[1], k[2], k[0]))


def _label(domain: str, attack: str, epsilon: float) -> str:
    return f"{domain} clean" if attack == "clean" else f"{domain} {attack}@{epsilon:.4g}"


def outcomes(frame: pd.DataFrame, seeds: Sequence[int], **pick: Any) -> np.ndarray | None:
    """Per-(seed, sample) outcomes of the rows `pick` selects: seeds × samples (several selected rows per seed, e.g.
    several γ, are laid side by side); None when a seed lacks them."""
    sel = _select(frame, **pick)
    per_seed = []
    for seed in seeds:
        rows = sel[sel["seed"] == seed].sort_values(["noise", "ratio"])
        if rows.empty:
            return None
        per_seed.append(np.concatenate([unpack(r.outcomes, int(r.n)) for r in rows.itertuples()]))
    return np.vstack(per_seed).astype(float)


def _cell(values: np.ndarray | None) -> str:
    if values is None:
        return "–"
    interval = paired.mean_interval(values, replicates=1000)
    return format_interval(interval.mean, interval.low, interval.high)


def accuracy_tables(frame: pd.DataFrame, seeds: Sequence[int], methods: Sequence[str]) -> str:
    """Per noise type: rows γ × method (γ 0 = the CLIP continued on the clean corpus), columns accuracy (with the
    interval over seeds × samples) in each condition, and AUC clean (t-interval over seeds)."""
    parts = []
    for kind in [k for k in frame["noise"].unique() if k != "none"] or ["none"]:
        table = {}
        for ratio in [0.0, *sorted(frame.loc[frame["noise"] == kind, "ratio"].unique())]:
            noise = "none" if ratio == 0 else kind
            for method in methods:
                pick = dict(noise=noise, ratio=ratio, method=method)
                cells = {_label(*c): _cell(outcomes(frame, seeds, domain=c[0], attack=c[1], epsilon=c[2], **pick))
                         for c in conditions(frame)}
                for domain in sorted(frame["domain"].unique()):
                    cells[f"{domain} AUC"] = _t_cell(_select(frame, domain=domain, attack="clean", **pick)["auc"])
                table[(f"{100 * ratio:g}", method)] = cells
        parts.append(f"### {kind} noise\n\n" + pd.DataFrame.from_dict(table, orient="index")
                     .rename_axis(["γ %", "method"]).reset_index().to_markdown(index=False))
    return "\n\n".join(parts)


def _select(frame: pd.DataFrame, **pick: Any) -> pd.DataFrame:
    for column, value in pick.items():
        frame = frame[frame[column] == value]
    return frame


def comparisons(frame: pd.DataFrame, methods: Sequence[str], controls: Sequence[str]) -> list[dict[str, Any]]:
    """The family of paired comparisons a comparison's verdicts are about (A − B on the same seeds and samples)."""
    kinds = [k for k in frame["noise"].unique() if k != "none"]
    base = "lp" if "lp" in methods else methods[0]
    found: list[dict[str, Any]] = []
    order = [m for m in ORDER if m in methods] + [m for m in methods if m not in ORDER]
    pairs = list(dict.fromkeys(list(zip(order, order[1:])) + [(m, base) for m in order if m != base]))
    for domain, attack, epsilon in conditions(frame):
        condition = dict(domain=domain, attack=attack, epsilon=epsilon)
        for a, b in pairs:  # methods, pooled over every CLIP of the grid
            found.append({"family": "methods", "comparison": f"{a} − {b}", "condition": _label(domain, attack, epsilon),
                          "a": dict(method=a, **condition), "b": dict(method=b, **condition)})
        if attack != "clean":
            continue
        for kind in kinds:  # noise directions: each γ against the clean corpus, with the base method
            for ratio in sorted(frame.loc[frame["noise"] == kind, "ratio"].unique()):
                family = "control" if kind in controls else "noise"
                found.append({"family": family, "comparison": f"{kind} γ {100 * ratio:g} % − γ 0 ({base})",
                              "condition": _label(domain, attack, epsilon),
                              "a": dict(noise=kind, ratio=ratio, method=base, **condition),
                              "b": dict(noise="none", ratio=0.0, method=base, **condition)})
        if {"image", "random"} <= set(kinds):  # Table 3: adversarial vs random image noise at the same γ and ε
            for ratio in sorted(set(frame.loc[frame["noise"] == "image", "ratio"]) & set(frame.loc[frame["noise"] == "random", "ratio"])):
                found.append({"family": "noise", "comparison": f"image − random noise γ {100 * ratio:g} % ({base})",
                              "condition": _label(domain, attack, epsilon),
                              "a": dict(noise="image", ratio=ratio, method=base, **condition),
                              "b": dict(noise="random", ratio=ratio, method=base, **condition)})
    return found


def verdict_table(frame: pd.DataFrame, seeds: Sequence[int], methods: Sequence[str], controls: Sequence[str] = (),
                  alpha: float = 0.05) -> tuple[str, pd.DataFrame]:
    """Every comparison's difference [95 % interval], p, Holm-adjusted p over the whole family, the minimal
    detectable difference and the verdict; as Markdown and as a frame."""
    rows = []
    for i, c in enumerate(comparisons(frame, methods, controls)):
        a, b = outcomes(frame, seeds, **c["a"]), outcomes(frame, seeds, **c["b"])
        if a is None or b is None or a.shape != b.shape:
            continue
        a_name, _, rest = c["comparison"].partition(" − ")
        rows.append({"family": c["family"], "comparison": c["comparison"], "condition": c["condition"],
                     "result": paired.paired_test(a, b, seed=i), "names": (a_name, rest.split(" (", 1)[0])})
    if not rows:
        return "(no comparison: a single method and no noise)", pd.DataFrame()
    table = paired_table(rows, alpha)
    return table.to_markdown(index=False), table


def paired_table(found: list[dict[str, Any]], alpha: float = 0.05, same_decision: bool = False) -> pd.DataFrame:
    """Paired comparisons -> their verdict table. Each of `found` holds its leading columns, `result` (a
    `mmrb.core.paired` result) and `names` (A, B); the table adds A − B [95 % interval] in points, the clustered
    McNemar and bootstrap p-values each Holm-adjusted over every row (`mmrb.core.paired.family`: separable only when
    both reject; `p` the larger unadjusted one, `p (Holm)` the larger adjusted one), the MDD at the family's strictest
    level and the verdict (`same_decision`: say so where A and B
    decided every sample alike)."""
    decisions = paired.family([f["result"] for f in found], alpha)
    return pd.DataFrame([{
        **{k: v for k, v in f.items() if k not in ("result", "names")},
        "A − B (pt)": f"{100 * f['result'].difference:+.2f} [{100 * f['result'].low:+.2f}, {100 * f['result'].high:+.2f}]",
        "p": f"{max(f['result'].p_clustered, f['result'].p_value):.2g}",
        "p McNemar (clustered; Holm)": f"{d.p_holm:.2g}", "p bootstrap (Holm)": f"{d.p_holm_bootstrap:.2g}",
        "p (Holm)": f"{d.p:.2g}", "MDD (pt)": f"{100 * d.mdd:.2f}",
        "verdict": _verdict(d, *f["names"], same_decision=same_decision)}
        for f, d in zip(found, decisions)])


def _verdict(decision: paired.Decision, a: str, b: str, same_decision: bool = False) -> str:
    result = decision.result
    if same_decision and result.a_only == result.b_only == 0:
        return "the same decision on every sample"
    if not decision.separable:
        return f"not detectable (≥ {100 * decision.mdd:.1f} pt would be)"
    return f"{a if result.difference > 0 else b} higher"


def control_statement(table: pd.DataFrame, alpha: float = 0.05) -> str:
    """Whether the positive control registered: its largest γ must lower clean ID accuracy beyond the corrected test."""
    control = table[(table["family"] == "control") & (table["condition"] == "ID clean")] if len(table) else table
    if control.empty:
        return "No positive control in this suite: nothing says the pipeline could register a pre-training effect."
    last = control.iloc[-1]
    registered = float(last["p (Holm)"]) < alpha and last["A − B (pt)"].startswith("-")
    return (f"Positive control ({last['comparison']}, ID clean): {last['A − B (pt)']} pt, p_holm {last['p (Holm)']} — "
            + ("registered: the comparison can see a pre-training effect of this size."
               if registered else "NOT registered: this run cannot see pre-training effects; read no verdict below as "
               "evidence about noise."))


def spectrum_table(frame: pd.DataFrame, k: int) -> str:
    """Share of the top-k singular values of the ID test features per noise type and γ (mean ± t over seeds)."""
    per_clip = frame.drop_duplicates(["seed", "noise", "ratio"])
    out = {}
    for (kind, ratio), group in per_clip.groupby(["noise", "ratio"], sort=True):
        out[(kind, f"{100 * ratio:g}")] = {f"top-{k} share (%)": _t_cell(group["spectrum"])}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis(["noise", "γ %"]).reset_index().to_markdown(index=False)


def zero_shot_table(frame: pd.DataFrame) -> str:
    """Zero-shot accuracy of each CLIP on each test set (mean ± t over seeds), per noise type and γ."""
    import json

    per_clip = frame.drop_duplicates(["seed", "noise", "ratio"])
    out = {}
    for (kind, ratio), group in per_clip.groupby(["noise", "ratio"], sort=True):
        scores = pd.DataFrame([json.loads(z) for z in group["zero_shot"]])
        out[(kind, f"{100 * ratio:g}")] = {f"{d} ACC": _t_cell(scores[d]) for d in scores.columns}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis(["noise", "γ %"]).reset_index().to_markdown(index=False)


def _t_cell(values: Sequence[float]) -> str:
    mean, half = mean_interval(values)
    return format_interval(mean, halfwidth=half)


def search_table(frame: pd.DataFrame) -> str:
    """What the search chose per method: how often each learning rate won, and the mean validation accuracy."""
    units = frame.drop_duplicates(["seed", "noise", "ratio", "method"])
    out = {}
    for method, group in units.groupby("method", sort=False):
        chosen = group["lr"].value_counts().sort_index()
        out[method] = {"lr chosen (count)": ", ".join(f"{lr:g} ({n})" for lr, n in chosen.items()),
                       "epochs": ", ".join(map(str, sorted(group["epochs"].unique()))),
                       "validation ACC (%)": f"{100 * group['validation_accuracy'].mean():.1f}",
                       "fit seconds (sum)": f"{group['fit_seconds'].sum():.0f}"}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("method").reset_index().to_markdown(index=False)


def plot_accuracy(frame: pd.DataFrame, out: Path) -> list[Path]:
    """Clean accuracy vs γ per method, ID and OOD side by side, one figure per noise type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    clean = frame[frame["attack"] == "clean"]
    for kind in [k for k in clean["noise"].unique() if k != "none"]:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
        for ax, domain in zip(axes, ("ID", "OOD")):
            for method, group in clean[clean["domain"] == domain].groupby("method", sort=False):
                group = group[(group["noise"] == kind) | (group["noise"] == "none")]
                stats = group.groupby("ratio")["accuracy"].apply(mean_interval)
                ax.errorbar([100 * r for r in stats.index], [100 * m for m, _ in stats], yerr=[100 * h for _, h in stats],
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

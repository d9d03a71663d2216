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


def outcomes(frame: pd.DataFrame, seeds: Sequence[int], clips: Sequence[tuple[str, float]] | None = None,
             **pick: Any) -> np.ndarray | None:
    """Per-(seed, sample) outcomes of the rows `pick` selects: seeds × samples (several selected rows per seed, e.g.
    several CLIPs given as `clips` [(noise, γ), ...], are laid side by side in that order); None when a seed lacks
    one of them."""
    sel = _select(frame, **pick)
    if clips is not None:
        wanted = {(k, float(r)) for k, r in clips}
        sel = sel[[(k, float(r)) in wanted for k, r in zip(sel["noise"], sel["ratio"])]]
    per_seed = []
    for seed in seeds:
        rows = sel[sel["seed"] == seed].sort_values(["noise", "ratio"])
        if rows.empty or (clips is not None and len(rows) != len(clips)):
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
    interval over seeds × samples) in each condition, and AUC clean (t-interval over seeds). ‡ after a figure: the
    escalation of at least one seed's attack hit its cap while the figure still fell (an upper bound)."""
    parts = []
    for kind in [k for k in frame["noise"].unique() if k != "none"] or ["none"]:
        table = {}
        for ratio in [0.0, *sorted(frame.loc[frame["noise"] == kind, "ratio"].unique())]:
            noise = "none" if ratio == 0 else kind
            for method in methods:
                pick = dict(noise=noise, ratio=ratio, method=method)
                cells = {_label(*c): _cell(outcomes(frame, seeds, domain=c[0], attack=c[1], epsilon=c[2], **pick))
                         + (" ‡" if capped(frame, domain=c[0], attack=c[1], epsilon=c[2], **pick) else "")
                         for c in conditions(frame)}
                for domain in sorted(frame["domain"].unique()):
                    cells[f"{domain} AUC"] = _t_cell(_select(frame, domain=domain, attack="clean", **pick)["auc"])
                table[(f"{100 * ratio:g}", method)] = cells
        parts.append(f"### {kind} noise\n\n" + pd.DataFrame.from_dict(table, orient="index")
                     .rename_axis(["γ %", "method"]).reset_index().to_markdown(index=False))
    return "\n\n".join(parts)


def capped(frame: pd.DataFrame, **pick: Any) -> bool:
    """Whether any selected row's escalation hit its cap while its figure still fell."""
    rows = _select(frame, **pick)
    return "check_capped" in rows and bool(rows["check_capped"].fillna(False).astype(bool).any())


def _select(frame: pd.DataFrame, **pick: Any) -> pd.DataFrame:
    for column, value in pick.items():
        frame = frame[frame[column] == value]
    return frame


PRIMARY = "methods on the clean-corpus CLIP (γ 0)"
POOLED = "methods, noisy CLIPs pooled (bootstrap and McNemar clustered by sample)"
REFERENCE = "seed_t"  # the second p-value: a t-test on the per-seed differences (k − 1 df), mmrb.core.paired


def clips(frame: pd.DataFrame, controls: Sequence[str]) -> dict[str, list[tuple[str, float]]]:
    """The CLIPs of the grid by role: the clean-corpus one (γ 0), the noisy ones, the control ones."""
    grid = sorted({(k, float(r)) for k, r in zip(frame["noise"], frame["ratio"])})
    return {"primary": [c for c in grid if c[0] == "none"], "noisy": [c for c in grid if c[0] not in ("none", *controls)],
            "control": [c for c in grid if c[0] in controls]}


def method_pairs(methods: Sequence[str]) -> tuple[list[tuple[str, str]], str]:
    """The method pairs compared (neighbours in the paper's claimed order, each against linear probing, RAN
    against MLP tuning: the paper's own comparison) and the base method (LP, else the first)."""
    base = "lp" if "lp" in methods else methods[0]
    order = [m for m in ORDER if m in methods] + [m for m in methods if m not in ORDER]
    pairs = list(zip(order, order[1:])) + [(m, base) for m in order if m != base]
    if {"ran", "mlp"} <= set(methods):
        pairs.append(("ran", "mlp"))
    return list(dict.fromkeys(pairs)), base


def comparisons(frame: pd.DataFrame, methods: Sequence[str], controls: Sequence[str]) -> list[dict[str, Any]]:
    """The paired comparisons of a study, each in its family (Holm applies within a family):

    - `PRIMARY`: method pairs on the CLIP continued on the clean corpus, in every condition;
    - `POOLED`: method pairs over the noisy (non-control) CLIPs laid side by side, resampled and sign-flipped by
      test sample (a sample under five CLIPs is one unit, not five); control CLIPs never enter a method family;
    - `noise`: each non-control γ against γ 0 and the largest γ against the smallest (the base method, clean), and
      adversarial against random image noise at the same γ (Table 3);
    - `control`: each dose of the positive control against γ 0 (the base method, clean)."""
    roles = clips(frame, controls)
    pairs, base = method_pairs(methods)
    kinds = sorted({k for k, _ in roles["noisy"] + roles["control"]})
    found: list[dict[str, Any]] = []
    for domain, attack, epsilon in conditions(frame):
        condition = dict(domain=domain, attack=attack, epsilon=epsilon)
        label = _label(domain, attack, epsilon)
        for a, b in pairs:
            found.append({"family": PRIMARY, "comparison": f"{a} − {b}", "condition": label,
                          "a": dict(method=a, noise="none", ratio=0.0, **condition),
                          "b": dict(method=b, noise="none", ratio=0.0, **condition)})
            if roles["noisy"]:
                found.append({"family": POOLED, "comparison": f"{a} − {b}", "condition": label, "clips": roles["noisy"],
                              "a": dict(method=a, **condition), "b": dict(method=b, **condition)})
        if attack != "clean":
            continue
        for kind in kinds:
            ratios = sorted(r for k, r in roles["noisy"] + roles["control"] if k == kind)
            family = "control" if kind in controls else "noise"
            for ratio in ratios:
                found.append({"family": family, "comparison": f"{kind} γ {100 * ratio:g} % − γ 0 ({base})",
                              "condition": label, "a": dict(noise=kind, ratio=ratio, method=base, **condition),
                              "b": dict(noise="none", ratio=0.0, method=base, **condition)})
            if family == "noise" and len(ratios) > 1:
                found.append({"family": family, "comparison": f"{kind} γ {100 * ratios[-1]:g} % − γ {100 * ratios[0]:g} % ({base})",
                              "condition": label, "a": dict(noise=kind, ratio=ratios[-1], method=base, **condition),
                              "b": dict(noise=kind, ratio=ratios[0], method=base, **condition)})
        shared = sorted({r for k, r in roles["noisy"] if k == "image"} & {r for k, r in roles["noisy"] if k == "random"})
        for ratio in shared:  # Table 3: adversarial vs random image noise at the same γ and ε
            found.append({"family": "noise", "comparison": f"image − random noise γ {100 * ratio:g} % ({base})",
                          "condition": label, "a": dict(noise="image", ratio=ratio, method=base, **condition),
                          "b": dict(noise="random", ratio=ratio, method=base, **condition)})
    return found


FAMILIES = (PRIMARY, POOLED, "noise", "control")


def verdict_table(frame: pd.DataFrame, seeds: Sequence[int], methods: Sequence[str], controls: Sequence[str] = (),
                  alpha: float = 0.05) -> tuple[str, pd.DataFrame]:
    """Every comparison's difference [95 % interval], p-values, Holm-adjusted within its family, the minimal
    detectable difference at the family's Holm level and the verdict; as Markdown (one section per family) and as a
    frame (a `family` column)."""
    by_family: dict[str, list[dict[str, Any]]] = {}
    for i, c in enumerate(comparisons(frame, methods, controls)):
        group = c.get("clips")
        a = outcomes(frame, seeds, clips=group, **c["a"])
        b = outcomes(frame, seeds, clips=group, **c["b"])
        if a is None or b is None or a.shape != b.shape:
            continue
        clusters = np.tile(np.arange(a.shape[1] // len(group)), len(group)) if group else None
        a_name, _, rest = c["comparison"].partition(" − ")
        by_family.setdefault(c["family"], []).append(
            {"family": c["family"], "comparison": c["comparison"], "condition": c["condition"],
             "result": paired.paired_test(a, b, seed=i, clusters=clusters, reference=REFERENCE),
             "names": (a_name, rest.split(" (", 1)[0])})
    if not by_family:
        return "(no comparison: a single method and no noise)", pd.DataFrame()
    tables = {f: paired_table(by_family[f], alpha, second="seed t") for f in FAMILIES if f in by_family}
    text = "\n\n".join(f"### {family} ({len(t)} comparisons, Holm within)\n\n" + t.drop(columns="family").to_markdown(index=False)
                        for family, t in tables.items())
    return text, pd.concat(tables.values(), ignore_index=True)


def dose_response(frame: pd.DataFrame, seeds: Sequence[int], methods: Sequence[str], controls: Sequence[str]
                  ) -> list[dict[str, Any]]:
    """The positive control's trend test per control kind and clean domain (the base method): accuracy at γ 0 and
    each dose (`mmrb.core.paired.trend_test`)."""
    _, base = method_pairs(methods)
    found = []
    for kind in controls:
        ratios = sorted(frame.loc[frame["noise"] == kind, "ratio"].unique())
        for domain in sorted(frame["domain"].unique()):
            pick = dict(domain=domain, attack="clean", epsilon=0.0, method=base)
            series = [outcomes(frame, seeds, noise="none", ratio=0.0, **pick)] + \
                [outcomes(frame, seeds, noise=kind, ratio=r, **pick) for r in ratios]
            if len(series) < 3 or any(x is None for x in series):
                continue
            found.append({"kind": kind, "domain": domain, "method": base, "doses": [0.0, *ratios],
                          **paired.trend_test(series, [0.0, *ratios])})
    return found


def paired_table(found: list[dict[str, Any]], alpha: float = 0.05, same_decision: bool = False,
                 second: str = "bootstrap") -> pd.DataFrame:
    """Paired comparisons -> their verdict table. Each of `found` holds its leading columns, `result` (a
    `mmrb.core.paired` result) and `names` (A, B); the table adds A − B [95 % interval] in points, the clustered
    McNemar and bootstrap p-values each Holm-adjusted over every row (`mmrb.core.paired.family`: separable only when
    both reject; `p` the larger unadjusted one, `p (Holm)` the larger adjusted one), the MDD at the family's strictest
    level and the verdict (`same_decision`: say so where A and B decided every sample alike; `second`: the name of
    the second test, "bootstrap" or "seed t")."""
    decisions = paired.family([f["result"] for f in found], alpha)
    return pd.DataFrame([{
        **{k: v for k, v in f.items() if k not in ("result", "names")},
        "A − B (pt)": f"{100 * f['result'].difference:+.2f} [{100 * f['result'].low:+.2f}, {100 * f['result'].high:+.2f}]",
        "p": paired.format_p(max(f['result'].p_clustered, f['result'].p_value), f['result'].p_floor),
        "p McNemar (clustered; Holm)": f"{d.p_holm:.2g}", f"p {second} (Holm)": f"{d.p_holm_bootstrap:.2g}",
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


def control_statement(table: pd.DataFrame, trends: Sequence[dict[str, Any]] = (), alpha: float = 0.05) -> str:
    """Whether the positive control registered, first: its dose–response (the trend test's slope, permutation p and
    whether the mean accuracy falls at every step) and the first dose separable from γ 0 after Holm, per domain."""
    if not trends:
        return "No positive control with two or more doses in this suite: nothing says the pipeline could register " \
               "a pre-training effect, or how large."
    lines = []
    for t in trends:
        control = table[(table["family"] == "control") & (table["condition"] == f"{t['domain']} clean")
                        & table["comparison"].str.startswith(t["kind"])] if len(table) else table
        first = next((r["comparison"].split(" − ")[0] for _, r in control.iterrows()
                      if not r["verdict"].startswith("not") and r["A − B (pt)"].startswith("-")), None)
        registered = t["p"] < alpha and t["slope"] < 0
        means = " → ".join(f"{100 * m:.1f}" for m in t["means"])
        lines.append(
            f"- **{t['kind']}, {t['domain']} clean ({t['method']})**: accuracy {means} % at γ "
            f"{', '.join(f'{100 * d:g}' for d in t['doses'])} %; slope {10 * t['slope']:+.2f} pt per 10 % γ "
            f"[{10 * t['low']:+.2f}, {10 * t['high']:+.2f}], permutation p {paired.format_p(t['p'], t['p_floor'])}; "
            + ("**registered**" if registered else "**NOT registered**")
            + (", falling at every step" if t["falling"] else ", not monotone (steps "
               + ", ".join(f"{100 * x:+.1f}" for x in t["steps"]) + " pt)")
            + (f"; first dose separable from γ 0 after Holm: {first}" if first else "; no dose separable from γ 0 after Holm"))
    registered = any(t["p"] < alpha and t["slope"] < 0 for t in trends if t["domain"] == "ID")
    return ("Positive control (dose–response): " + ("the pipeline registers a pre-training effect."
            if registered else "NOT registered in domain: read no verdict below as evidence about noise.")
            + "\n\n" + "\n".join(lines))


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


def convergence_table(frame: pd.DataFrame) -> str:
    """Per attack, ε, domain and method: how many units' escalation hit its cap while the figure still fell (the
    figure is then an upper bound), the rounds it ran (mean, max) and the attack's seconds."""
    attacked = frame[frame["attack"] != "clean"]
    if attacked.empty or "check_capped" not in attacked:
        return "(no attack in this run)"
    out = {}
    for (attack, epsilon, domain, method), group in attacked.groupby(["attack", "epsilon", "domain", "method"], sort=True):
        capped = group["check_capped"].astype(bool)
        out[(f"{attack}@{epsilon:.4g}", domain, method)] = {
            "units": len(group), "capped (still falling)": f"{int(capped.sum())}" + (" ‡" if capped.any() else ""),
            "rounds mean / max": f"{group['check_rounds'].mean():.1f} / {int(group['check_rounds'].max())}",
            "attacked samples": int(group["n"].max()), "seconds (sum)": f"{group['attack_seconds'].sum():.0f}"}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis(["attack", "domain", "method"]).reset_index() \
        .to_markdown(index=False)

"""The claims table: each claim of Han et al. (2025) — and of Chen et al. (2024, NMTune), on which RAN builds — beside
this study's verdict, generated from the run's verdict table: reproduced (every test of the claim separable in the
claimed direction after Holm), partly reproduced, contradicted (a test separable in the opposite direction), or not
detectable at the stated minimal detectable difference. Then the study's own findings on robustness under attack,
about which the paper makes no claim (its "robustness" is ID/OOD accuracy after noisy pre-training: it reports no
attacked accuracy of a fine-tuned head).

Per-seed quantities (zero-shot accuracy, the feature spectrum) are tested on their k seeds: a paired t-test (k − 1
degrees of freedom), Holm within their family, the MDD at the family's strictest level from the t quantiles.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.studies.defenses import report
from mmrb.core import paired


@dataclass(frozen=True)
class Claim:
    """A claim: where it is made, what it says, the tests that decide it (family, comparison, condition) and the sign
    of A − B the claim predicts; `note`: how this study's setting differs from the paper's for this claim."""

    source: str
    text: str
    tests: tuple[tuple[str, str, str], ...]
    sign: int
    note: str = ""


def seed_level(values: dict[str, dict[Any, float]], pairs: Sequence[tuple[str, str, str]], family: str,
               alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """Paired t-tests over seeds of a per-seed quantity: `values[name][seed]`; `pairs`: (comparison, A, B). Holm
    within the family; the MDD from the t quantiles at α/m."""
    rows = []
    for comparison, a, b in pairs:
        seeds = sorted(set(values.get(a, {})) & set(values.get(b, {})))
        d = np.array([values[a][s] - values[b][s] for s in seeds])
        if len(d) < 2:
            continue
        se = d.std(ddof=1) / np.sqrt(len(d))
        p = 1.0 if not np.any(d) else (0.0 if se == 0 else float(2 * stats.t.sf(abs(d.mean()) / se, len(d) - 1)))
        rows.append({"family": family, "comparison": comparison, "difference": float(d.mean()), "se": float(se),
                     "k": len(d), "p": p})
    if not rows:
        return pd.DataFrame()
    m = len(rows)
    for row, adjusted in zip(rows, paired.holm([r["p"] for r in rows])):
        k = row["k"]
        half = stats.t.ppf(0.975, k - 1) * row["se"]
        mdd = (stats.t.ppf(1 - alpha / m / 2, k - 1) + stats.t.ppf(power, k - 1)) * row["se"]
        separable = adjusted < alpha
        name_a, _, name_b = row["comparison"].partition(" − ")
        row.update({"A − B (pt)": f"{100 * row['difference']:+.2f} [{100 * (row['difference'] - half):+.2f}, "
                                  f"{100 * (row['difference'] + half):+.2f}]",
                    "p": f"{row['p']:.2g}", "p (Holm)": f"{adjusted:.2g}", "MDD (pt)": f"{100 * mdd:.2f}",
                    "verdict": (f"{name_a if row['difference'] > 0 else name_b.split(' (')[0]} higher" if separable
                                else f"not detectable (≥ {100 * mdd:.1f} pt would be)"), "condition": "per seed"})
    return pd.DataFrame(rows)[["family", "comparison", "condition", "A − B (pt)", "p", "p (Holm)", "MDD (pt)", "verdict"]]


def per_seed_tables(frame: pd.DataFrame, controls: Sequence[str]) -> pd.DataFrame:
    """Zero-shot accuracy (ID, OOD) and the feature spectrum of each noisy CLIP against γ 0, over seeds."""
    roles = report.clips(frame, controls)
    per_clip = frame.drop_duplicates(["seed", "noise", "ratio"])
    name = lambda kind, ratio: "γ 0" if kind == "none" else f"{kind} γ {100 * ratio:g} %"  # noqa: E731
    zero: dict[str, dict[str, dict[Any, float]]] = {"ID": {}, "OOD": {}}
    spectrum: dict[str, dict[Any, float]] = {}
    for row in per_clip.itertuples():
        scores = json.loads(row.zero_shot)
        for domain in zero:
            if domain in scores:
                zero[domain].setdefault(name(row.noise, row.ratio), {})[row.seed] = scores[domain]
        spectrum.setdefault(name(row.noise, row.ratio), {})[row.seed] = row.spectrum
    pairs = [(f"{name(k, r)} − γ 0", name(k, r), "γ 0") for k, r in roles["noisy"]]
    both = {f"{clip} [{d}]": values for d in zero for clip, values in zero[d].items()}  # one family, both domains
    parts = [seed_level(both, [(f"{c} (zero-shot {d})", f"{a} [{d}]", f"{b} [{d}]") for d in zero for c, a, b in pairs],
                        "zero-shot"),
             seed_level(spectrum, [(f"{c} (top-k share)", a, b) for c, a, b in pairs], "spectrum")]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _smallest_largest(roles: dict[str, list[tuple[str, float]]], kind: str) -> tuple[float, float] | None:
    ratios = sorted(r for k, r in roles["noisy"] if k == kind)
    return (ratios[0], ratios[-1]) if ratios else None


def claims(frame: pd.DataFrame, methods: Sequence[str], controls: Sequence[str]) -> list[Claim]:
    """The claims this study's grid can test (a claim needs its comparisons in the grid)."""
    roles = report.clips(frame, controls)
    _, base = report.method_pairs(methods)
    kinds = [k for k in ("image", "caption") if _smallest_largest(roles, k)]
    found: list[Claim] = []
    small = [(k, *_smallest_largest(roles, k)) for k in kinds]
    found.append(Claim("Han et al. §5.2, Fig. 6", "Moderate noise (5–10 %) in pre-training improves in-domain accuracy "
                       "(linear probing).", tuple(("noise", f"{k} γ {100 * lo:g} % − γ 0 ({base})", "ID clean")
                                             for k, lo, _ in small), +1))
    found.append(Claim("Han et al. §5.2, Fig. 6", "Beyond that level, more noise degrades in-domain accuracy.",
                       tuple(("noise", f"{k} γ {100 * hi:g} % − γ {100 * lo:g} % ({base})", "ID clean")
                             for k, lo, hi in small if hi > lo), -1))
    found.append(Claim("Han et al. §5.2, Fig. 6", "Out-of-domain accuracy falls as the noise level increases.",
                       tuple(("noise", f"{k} γ {100 * r:g} % − γ 0 ({base})", "OOD clean")
                             for k in kinds for kk, r in roles["noisy"] if kk == k), -1))
    if {"image", "random"} <= {k for k, _ in roles["noisy"]}:
        shared = sorted({r for k, r in roles["noisy"] if k == "image"} & {r for k, r in roles["noisy"] if k == "random"})
        found.append(Claim("Han et al. §5.3, Table 3", "Random noise deteriorates downstream accuracy faster than the "
                           "crafted adversarial noise as the noise level grows.",
                           tuple(("noise", f"image − random noise γ {100 * r:g} % ({base})", f"{d} clean")
                                 for r in shared for d in ("ID", "OOD")), +1,
                           "the paper's random noise is Gaussian noise on captions; here uniform noise on images of the "
                           "same ε as the crafted image noise"))
    found.append(Claim("Han et al. §5.4, Table 4", "Slight noise improves zero-shot accuracy.",
                       tuple(("zero-shot", f"{k} γ {100 * lo:g} % − γ 0 (zero-shot {d})", "per seed")
                             for k, lo, _ in small for d in ("ID", "OOD")), +1))
    found.append(Claim("Han et al. §5.4, Table 4", "Excessive noise hurts zero-shot accuracy.",
                       tuple(("zero-shot", f"{k} γ {100 * hi:g} % − γ 0 (zero-shot {d})", "per seed")
                             for k, lo, hi in small if hi > lo for d in ("ID", "OOD")), -1))
    if {"ran", "mlp"} <= set(methods) and roles["noisy"]:
        found.append(Claim("Han et al. §5.5, Fig. 7", "RAN improves over MLP tuning in and out of domain on CLIPs "
                           "pre-trained with noise.", ((report.POOLED, "ran − mlp", "ID clean"),
                                                       (report.POOLED, "ran − mlp", "OOD clean")), +1))
    found.append(Claim("Chen et al. 2024 (NMTune), §3; RAN's L_COV builds on it", "Noise in pre-training diminishes "
                       "the top dominant singular values of the features (share of the top-k in the spectrum).",
                       tuple(("spectrum", f"{k} γ {100 * r:g} % − γ 0 (top-k share)", "per seed")
                             for k, r in roles["noisy"]), -1,
                       "measured as the top-5 share of the centred, normalised ID features"))
    if {"nmtune", base} <= set(methods) and roles["noisy"]:
        found.append(Claim("Chen et al. 2024 (NMTune)", "NMTune improves on linear probing out of domain on noisy "
                           "pre-trained features.", ((report.POOLED, f"nmtune − {base}", "OOD clean"),), +1))
    return [c for c in found if c.tests]


def judge(claim: Claim, table: pd.DataFrame) -> tuple[str, str]:
    """A claim's verdict from its tests' rows, and the evidence (each test: A − B [interval] pt, verdict)."""
    outcomes, evidence, mdds = [], [], []
    for family, comparison, condition in claim.tests:
        rows = table[(table["family"] == family) & (table["comparison"] == comparison) & (table["condition"] == condition)]
        if rows.empty:
            outcomes.append("missing")
            evidence.append(f"{comparison}, {condition}: not in this run")
            continue
        row = rows.iloc[0]
        difference = float(row["A − B (pt)"].split(" ")[0])
        if row["verdict"].startswith("not detectable") or row["verdict"].startswith("the same"):
            outcomes.append("not detectable")
            mdds.append(float(row["MDD (pt)"]))
            evidence.append(f"{comparison}, {condition}: {row['A − B (pt)']} pt, not detectable (MDD {row['MDD (pt)']})")
        else:
            outcomes.append("reproduced" if np.sign(difference) == claim.sign else "contradicted")
            evidence.append(f"{comparison}, {condition}: {row['A − B (pt)']} pt, p_holm {row['p (Holm)']}")
    if "contradicted" in outcomes:
        verdict = "**contradicted**" + (" (in part)" if "reproduced" in outcomes else "")
    elif outcomes and all(o == "reproduced" for o in outcomes):
        verdict = "**reproduced**"
    elif "reproduced" in outcomes:
        verdict = f"**partly reproduced** ({outcomes.count('reproduced')} of {len(outcomes)} tests)"
    elif all(o == "missing" for o in outcomes):
        verdict = "not tested in this run"
    else:
        verdict = f"**not detectable** at MDD {min(mdds):.1f}–{max(mdds):.1f} pt"
    return verdict, "; ".join(evidence)


def beyond_the_paper(table: pd.DataFrame, frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The study's own robustness findings (no claim in the paper): per attacked condition of the primary family,
    the separable method pairs, or that none is detectable; ‡ where an attack's escalation hit its cap on the γ 0
    CLIP while its figure still fell (its figures are upper bounds)."""
    found = []
    primary = table[table["family"] == report.PRIMARY]
    labels = {report._label(*c): c for c in report.conditions(frame)}
    for condition in primary["condition"].unique():
        if condition.endswith("clean"):
            continue
        rows = primary[primary["condition"] == condition]
        separable = rows[~rows["verdict"].str.startswith("not")]
        domain, attack, epsilon = labels[condition]
        flag = (" ‡ (an escalation hit its cap while the figure still fell: upper bounds)"
                if report.capped(frame, domain=domain, attack=attack, epsilon=epsilon, noise="none") else "")
        if separable.empty:
            mdds = rows["MDD (pt)"].astype(float)
            found.append((condition, f"no method pair detectable (MDD {mdds.min():.1f}–{mdds.max():.1f} pt){flag}"))
        else:
            found.append((condition, "; ".join(f"{r['verdict']}: {r['comparison']} {r['A − B (pt)']} pt"
                                               for _, r in separable.iterrows()) + flag))
    return found


def claims_markdown(frame: pd.DataFrame, table: pd.DataFrame, methods: Sequence[str], controls: Sequence[str],
                    control_line: str) -> str:
    """claims.md: the control first, each claim with its verdict and evidence, then the study's own findings."""
    per_seed = per_seed_tables(frame, controls)
    full = pd.concat([table, per_seed], ignore_index=True) if len(per_seed) else table
    lines = ["| source | claim | this study | evidence (A − B [95 % interval]) |", "|---|---|---|---|"]
    for claim in claims(frame, methods, controls):
        verdict, evidence = judge(claim, full)
        note = f" *Setting: {claim.note}.*" if claim.note else ""
        lines.append(f"| {claim.source} | {claim.text}{note} | {verdict} | {evidence} |")
    own = ["| condition (clean-corpus CLIP, γ 0) | finding |", "|---|---|"] + \
        [f"| {c} | {f} |" for c, f in beyond_the_paper(table, frame)]
    seed_part = ("\n\n### Per-seed tests (zero-shot accuracy, feature spectrum)\n\n"
                 + per_seed.to_markdown(index=False)) if len(per_seed) else ""
    return (control_line + "\n\n### Claims of the papers\n\n" + "\n".join(lines)
            + "\n\n### Robustness under attack: this study's own findings (the paper makes no such claim)\n\n"
            + "\n".join(own) + seed_part + "\n")

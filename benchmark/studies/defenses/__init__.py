"""`mmrb compare-defenses`: Han et al. (2025) as an experiment that could show its effect — or its opposite.

Per seed, a general CLIP (the DataComp stand-in) is pre-trained on a corpus disjoint from the noisy one (CT-like pairs,
plus chest pairs of another generator seed unless `base.chest` is false), then continued on the downstream-domain corpus
(the ROCOv2 stand-in) with a share γ of its pairs made noisy (image: feature PGD towards CT images; caption:
rule rewrites; random: uniform noise of the same ε, the paper's baseline; mismatch: swapped reports, the positive
control). Each defense (LP, MLP, NMTune, RAN, or your own `DefenseHead`) is fit on frozen features of a separate
downstream training split with the same learning-rate search on a validation split, then scored on large ID and OOD
test sets, clean and under mmrb's converged attacks along an ε curve. Rows keep per-sample outcomes, so methods are
compared by paired tests on the same seeds and samples (`mmrb.core.paired`), per CLIP and pooled by sample, with
Holm's correction within each family of the analysis plan (docs/clip-defenses.md), each verdict beside the smallest
difference the run could detect; `claims.py` judges each claim of the papers from them.

Outputs in the run folder: results.csv (one row per seed × noise × γ × method × domain × attack × ε), tables.md,
verdicts.md (with the positive control's dose–response first), claims.md (each claim of the papers beside
this study's verdict), spectrum.md, zeroshot.md, search.md, clip_scores.md,
accuracy_vs_noise_*.png, provenance.json; run.sqlite is the run store (resume). docs/clip-defenses.md.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.studies.defenses import claims, report
from benchmark.studies.defenses.spec import DefenseSuite, load_defense_suite
from benchmark.studies.defenses.study import run_study

__all__ = ["DefenseSuite", "compare_defenses", "load_defense_suite", "write_reports"]


def compare_defenses(suite: DefenseSuite, out: str | Path, cache_dir: str | Path, progress: bool = True,
                     fresh: bool = False, base: Path | None = None, backend: Any = None) -> pd.DataFrame:
    """Run (or resume) the comparison into `out` and write its results and reports; the rows as a frame.
    `backend`: where the units run, "local" (None, the default) or "ray" / a `RayBackend` (study.run_study)."""
    out = Path(out)
    frame, meta = run_study(suite, out, Path(cache_dir), fresh, progress, base, backend)
    from mmrb.core.io import atomic_write

    columns = {k: v for k, v in meta.items() if k not in ("seeds",)}
    atomic_write(out / "results.csv", lambda tmp: frame.assign(**columns).to_csv(tmp, index=False))
    write_reports(frame, suite, meta, out)
    return frame


def write_reports(frame: pd.DataFrame, suite: DefenseSuite, meta: dict, out: Path) -> None:
    """Every report of a comparison from its rows."""
    seeds, methods = list(suite.seeds), suite.labels
    controls = [n.type for n in suite.noise if n.control]
    header = (f"suite `{suite.name}` ({meta['suite_hash']}) · data `{meta['data_fingerprint']}` · seeds {seeds} · "
              f"protocol {meta['protocol_version']} · commit `{meta['git_commit']}` · {meta['date']} · "
              f"{meta['seconds']:.0f} s ({meta.get('computed', 0)} units computed, {meta.get('loaded', 0)} resumed)\n"
              f"{meta['packages']}\n\n")
    n = {d: int(frame.loc[(frame["domain"] == d) & (frame["attack"] == "clean"), "n"].max()) for d in frame["domain"].unique()}
    attacked = {a.label: a.domains for a in suite.attacks}
    (out / "tables.md").write_text(
        header + f"Accuracy in %: mean [95 % interval over {len(seeds)} seeds × test samples (bootstrap, the seed part "
        f"widened for few seeds)]; test samples {n}; attacks {attacked} on the first {suite.attack_limit} samples of "
        "each domain, on every CLIP but the controls', escalated on the survivors until the figure stops falling "
        "(the cascade and the convergence check); AUC: mean [95 % seed t-interval, in 0–100].\n\n"
        + report.accuracy_tables(frame, seeds, methods)
        + "\n\n### Convergence of the attacks\n\n" + report.convergence_table(frame) + "\n")
    verdicts, table = report.verdict_table(frame, seeds, methods, controls)
    trends = report.dose_response(frame, seeds, methods, controls)
    control_line = report.control_statement(table, trends)
    (out / "verdicts.md").write_text(
        header + control_line + "\n\nThe analysis plan (fixed in docs/clip-defenses.md before the run): A − B in "
        "points on the same seeds and samples, with its 95 % two-level bootstrap interval (seeds × samples; pooled "
        "CLIPs resampled by sample id); two tests, both two-sided — McNemar clustered by sample (sign flips, p never "
        "below 1/20001) and a t-test on the per-seed differences (k − 1 degrees of freedom) — each Holm-adjusted "
        "within its family, separable only when both reject at α = 0.05; MDD: the smallest true difference detected "
        "with 80 % power at the family's strictest Holm level (α/m).\n\n" + verdicts + "\n")
    (out / "claims.md").write_text(header + claims.claims_markdown(frame, table, methods, controls, control_line))
    (out / "spectrum.md").write_text(header + "Share of the top-k singular values of the ID test features (L2-normalised, centred), "
                                     "mean [95 % seed t-interval, in 0–100]:\n\n" + report.spectrum_table(frame, suite.spectrum_k) + "\n")
    (out / "zeroshot.md").write_text(header + "Zero-shot accuracy of each CLIP, mean [95 % seed t-interval, in 0–100]:\n\n"
                                     + report.zero_shot_table(frame) + "\n")
    (out / "search.md").write_text(header + "The learning-rate search (the same grid for every defense: "
                                   f"lr {suite.search.lr}, epochs {suite.search.epochs}):\n\n" + report.search_table(frame) + "\n")
    scores = [c for c in ("clip_score_clean", "clip_score_adv", "target_similarity_clean", "target_similarity_adv")
              if c in frame.columns]
    if scores:
        sel = frame.dropna(subset=[scores[0]])
        (out / "clip_scores.md").write_text(header + sel.groupby(["noise", "ratio", "method", "epsilon"])[scores].mean()
                                            .round(3).reset_index().to_markdown(index=False) + "\n")
    report.plot_accuracy(frame, out)
    (out / "provenance.json").write_text(json.dumps(meta, indent=2))

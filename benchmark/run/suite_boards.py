"""The suite boards: the versioned per-suite leaderboard `mmrb run` keeps (by default in leaderboard/suites/): every
run's cells with full provenance merged into leaderboard.csv, a Markdown view (LEADERBOARD.md) beside it. Not the
ranked board of submitted entries (benchmark.board.build).

A row of leaderboard.csv is one cell aggregated over its training seeds (mean, spread, 95 % interval; benchmark.evaluation.aggregate).
Publishing is safe under concurrency: a lock on the folder around read-merge-write, and every file replaced
atomically, so no entry is lost and no reader sees half a file."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.evaluation.aggregate import aggregate, with_interval
from mmrb.core.io import atomic_write, folder_lock
from mmrb.core.provenance import PACKAGES, git_commit, package_versions  # noqa: F401  (re-exported)
from mmrb.core.provenance import provenance as make_provenance

PROVENANCE = ("protocol_version", "suite", "suite_hash", "data_fingerprint", "seed", "git_commit", "packages",
              "mmrb_version", "date")
SCORES = ("model", "attack", "attack_source", "modality", "epsilon", "steps", "transfer_source", "n", "seeds", "seed_list",
          "clean_accuracy", "clean_accuracy_ci_low", "clean_accuracy_ci_high",
          "robust_accuracy", "robust_accuracy_std", "robust_accuracy_ci_low", "robust_accuracy_ci_high",
          "robust_accuracy_normal", "robust_accuracy_abnormal", "n_normal", "n_abnormal",
          "as_run_robust_accuracy", "not_converged", "check_rounds", "check_steps", "check_restarts", "flags",
          "clean_f1", "robust_f1", "robust_f1_std", "robust_f1_ci_low", "robust_f1_ci_high", "auc", "auc_ci_low",
          "auc_ci_high", "robust_auc", "attack_success_rate", "attack_success_rate_ci_low", "attack_success_rate_ci_high",
          "decisions_changed", "interval")
#: A row replaces an earlier one with the same key: re-running a suite updates, never duplicates.
KEY = ("protocol_version", "suite", "suite_hash", "data_fingerprint", "model", "attack", "attack_source",
       "epsilon", "transfer_source")
CSV_NAME, MD_NAME = "leaderboard.csv", "LEADERBOARD.md"


def provenance(suite_name: str, suite_hash: str, data_fingerprint: str, seed: int) -> dict[str, Any]:
    """What every entry of one run records about how it was produced."""
    return make_provenance(suite=suite_name, suite_hash=suite_hash, data_fingerprint=data_fingerprint, seed=seed)


def publish(rows: Iterable[dict[str, Any]], meta: dict[str, Any], directory: str | Path,
            samples: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """Merge a run's cells, aggregated over seeds (`samples`: the run's samples.csv, for the bootstrap intervals),
    into directory/leaderboard.csv and rewrite LEADERBOARD.md."""
    from benchmark.evaluation.soundness import cell_label, flags_by_cell
    from benchmark.evaluation.tables import soundness_table

    directory = Path(directory)
    cells = aggregate(rows, samples)
    marks = flags_by_cell(soundness_table(cells))
    if len(cells):
        cells["flags"] = [";".join(marks.get((r.model, cell_label(r.attack, r.epsilon, r.transfer_source)), []))
                          for r in cells.itertuples()]
    new = pd.DataFrame([{**meta, **{k: r.get(k) for k in SCORES}} for r in cells.to_dict("records")],
                       columns=list(PROVENANCE + SCORES))
    text_columns = {c: str for c in PROVENANCE + ("model", "attack", "attack_source", "modality", "transfer_source", "seed_list",
                                                  "flags", "not_converged")}
    new = new.astype(text_columns)
    csv_path, md_path = directory / CSV_NAME, directory / MD_NAME
    with folder_lock(directory, "the leaderboard", wait=True):
        old = pd.read_csv(csv_path, dtype=text_columns, keep_default_na=False, na_values={"epsilon": [""]}) \
            if csv_path.exists() else None
        if old is not None and list(old.columns) != list(new.columns):  # written by an older mmrb: keep its rows
            old = old.reindex(columns=new.columns)
        table = pd.concat([old, new]) if old is not None and len(old) else new
        table = table.drop_duplicates(subset=list(KEY), keep="last")
        atomic_write(csv_path, table.to_csv(index=False))
        atomic_write(md_path, render_markdown(table))
    return csv_path, md_path


def _column(row: pd.Series) -> str:
    if row["modality"] == "none":
        return "clean"
    eps = "" if pd.isna(row["epsilon"]) else f" ε={float(row['epsilon']):.4g}"
    source = f" from {row['transfer_source']}" if row["transfer_source"] else ""
    return f"{row['attack']}{eps}{source}"


def render_markdown(table: pd.DataFrame) -> str:
    """One section per (protocol, suite, suite hash, data): robust accuracy and robust F1 (%), model × attack."""
    lines = ["# mmrb leaderboard", "",
             "Robust accuracy and F1 of the abnormal class, in %, under each attack (clean = no attack): mean over the "
             "training seeds [95 % interval, inside 0–100]: the two-level bootstrap over training seeds × test samples (its "
             "seed part widened for few seeds) where the run kept per-sample evidence, else the seed t-interval (F1) or "
             "the seed t-interval combined with the test set's Wilson interval (accuracy), cut to 0–100 "
             "(leaderboard.csv, column `interval`). The section header says how many seeds and samples back each figure. "
             "Generated by `mmrb run`; the entries with full provenance are in leaderboard.csv.", ""]
    groups = table.groupby(["protocol_version", "suite", "suite_hash", "data_fingerprint"], sort=False)
    for (protocol, suite, suite_hash, data), group in groups:
        last = group.iloc[-1]
        lines += [f"## {suite} (protocol {protocol})", "",
                  f"suite `{suite_hash}` · data `{data}` · split seed {last['seed']} · training seeds {last['seed_list']} · "
                  f"{str(last['seed_list']).count(',') + 1} seeds × n = {last['n']} test samples · commit `{last['git_commit']}` · "
                  f"{last['date']}  ", f"{last['packages']}", ""]
        group = group.assign(column=group.apply(_column, axis=1))
        for metric, title in (("robust_accuracy", "Accuracy (‡ not converged: the escalating check hit its cap; "
                                                  "⊘ robust because the image no longer decides (image_ignored); "
                                                  "* soundness flags, see leaderboard.csv)"),
                              ("robust_accuracy_normal", "Accuracy on normal studies"),
                              ("robust_accuracy_abnormal", "Accuracy on abnormal studies"),
                              ("robust_f1", "F1 (abnormal)")):
            cells = group.assign(text=[with_interval(_numeric(r), metric) + _marks(r) * (metric == "robust_accuracy")
                                       for _, r in group.iterrows()])
            pivot = cells.pivot_table(index="model", columns="column", values="text", aggfunc="last", sort=False)
            lines += [f"**{title}**", "", _markdown_table(pivot), ""]
    return "\n".join(lines)


def _marks(row: pd.Series) -> str:
    from benchmark.evaluation.flags import BLIND_FLAG

    blind = BLIND_FLAG in str(row.get("flags") or "").split(";")
    return (" ‡" if str(row.get("not_converged")) == "True" else "") + (" ⊘" if blind else "") + (" *" if row.get("flags") else "")


def _numeric(row: pd.Series) -> dict[str, Any]:
    return {k: pd.to_numeric(v, errors="coerce") if k in SCORES else v for k, v in row.items()}


def _markdown_table(pivot: pd.DataFrame) -> str:
    from benchmark.evaluation.tables import markdown

    return markdown(pivot.map(lambda v: v if isinstance(v, str) else "–"), "model")

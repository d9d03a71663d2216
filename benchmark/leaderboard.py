"""The versioned leaderboard: entries with full provenance in leaderboard.csv, a Markdown view beside it.

An entry is one cell aggregated over its training seeds (mean, spread, 95 % interval; benchmark.aggregate).
Publishing is safe under concurrency: a lock on the folder around read-merge-write, and every file replaced
atomically, so no entry is lost and no reader sees half a file."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import PROTOCOL_VERSION, __version__
from benchmark.aggregate import aggregate, with_interval
from benchmark.results import folder_lock

PACKAGES = ("torch", "torchvision", "adversarial-robustness-toolbox", "timm", "transformers")
PROVENANCE = ("protocol_version", "suite", "suite_hash", "data_fingerprint", "seed", "git_commit", "packages",
              "mmrb_version", "date")
SCORES = ("model", "attack", "attack_source", "modality", "epsilon", "steps", "transfer_source", "n", "seeds", "seed_list",
          "clean_accuracy", "clean_accuracy_ci_low", "clean_accuracy_ci_high",
          "robust_accuracy", "robust_accuracy_std", "robust_accuracy_ci_low", "robust_accuracy_ci_high",
          "robust_accuracy_normal", "robust_accuracy_abnormal", "n_normal", "n_abnormal",
          "as_run_robust_accuracy", "not_converged", "check_rounds", "check_steps", "check_restarts", "flags",
          "clean_f1", "robust_f1", "robust_f1_std", "robust_f1_hw", "auc", "robust_auc", "attack_success_rate")
#: An entry replaces an earlier one with the same key: re-running a suite updates, never duplicates.
KEY = ("protocol_version", "suite", "suite_hash", "data_fingerprint", "model", "attack", "attack_source",
       "epsilon", "transfer_source")
CSV_NAME, MD_NAME = "leaderboard.csv", "LEADERBOARD.md"


HERE = Path(__file__).resolve().parent


def git_commit(where: Path = HERE) -> str:
    """HEAD of the checkout mmrb runs from, '-dirty' if tracked files (outside leaderboard/) changed;
    'unknown' outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        # the leaderboard's own files do not make a checkout dirty: publishing rewrites them
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)leaderboard")
        return head + ("-dirty" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions() -> str:
    """Versions of the packages that decide the numbers, as 'name=version;...'."""
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "absent"

    return ";".join(f"{name}={version(name)}" for name in PACKAGES)


def provenance(suite_name: str, suite_hash: str, data_fingerprint: str, seed: int) -> dict[str, Any]:
    """What every entry of one run records about how it was produced."""
    return dict(protocol_version=PROTOCOL_VERSION, suite=suite_name, suite_hash=suite_hash,
                data_fingerprint=data_fingerprint, seed=seed, git_commit=git_commit(), packages=package_versions(),
                mmrb_version=__version__, date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))


def publish(rows: Iterable[dict[str, Any]], meta: dict[str, Any], directory: str | Path) -> tuple[Path, Path]:
    """Merge a run's cells, aggregated over seeds, into directory/leaderboard.csv and rewrite LEADERBOARD.md."""
    from benchmark.soundness import cell_label, flags_by_cell
    from benchmark.tables import soundness_table

    directory = Path(directory)
    cells = aggregate(rows)
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
        _replace(csv_path, table.to_csv(index=False))
        _replace(md_path, render_markdown(table))
    return csv_path, md_path


def _replace(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


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
             "training seeds ± half-width of the 95 % interval (accuracy: seeds and test set; F1: seeds). "
             "Generated by `mmrb run`; the entries with full provenance are in leaderboard.csv.", ""]
    groups = table.groupby(["protocol_version", "suite", "suite_hash", "data_fingerprint"], sort=False)
    for (protocol, suite, suite_hash, data), group in groups:
        last = group.iloc[-1]
        lines += [f"## {suite} (protocol {protocol})", "",
                  f"suite `{suite_hash}` · data `{data}` · split seed {last['seed']} · training seeds {last['seed_list']} · "
                  f"n = {last['n']} · commit `{last['git_commit']}` · "
                  f"{last['date']}  ", f"{last['packages']}", ""]
        group = group.assign(column=group.apply(_column, axis=1))
        for metric, title in (("robust_accuracy", "Accuracy (‡ not converged: the escalating check hit its cap; "
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
    return (" ‡" if str(row.get("not_converged")) == "True" else "") + (" *" if row.get("flags") else "")


def _numeric(row: pd.Series) -> dict[str, Any]:
    return {k: pd.to_numeric(v, errors="coerce") if k in SCORES else v for k, v in row.items()}


def _markdown_table(pivot: pd.DataFrame) -> str:
    header = ["model", *map(str, pivot.columns)]
    rows = [[str(index), *("–" if not isinstance(v, str) else v for v in values)] for index, values in pivot.iterrows()]
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, ["---"] * len(header), *rows])

"""Result tables shaped like the paper's: attacks × models (Table 1) and transfer matrices (Tables 2–3).

Every figure is the mean over training seeds ± the half-width of its 95 % interval (benchmark.aggregate)."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.aggregate import aggregate, with_interval


def _frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    return aggregate(rows)


def _attack_name(row: pd.Series) -> str:
    eps = row["epsilon"]
    return row["attack"] if pd.isna(eps) or eps == "" else f"{row['attack']}, ε={float(eps):.4g}"




def markdown(frame: pd.DataFrame, index_name: str) -> str:
    """A pandas frame of strings as a Markdown table."""
    header = [index_name, *map(str, frame.columns)]
    lines = [header, ["---"] * len(header)] + [[str(i), *map(str, r)] for i, r in zip(frame.index, frame.values)]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def attack_table(rows: Iterable[dict[str, Any]], metric: str = "robust_f1") -> pd.DataFrame:
    """Table 1: one row per attack (clean, image, text, joint), one column per model; the attacked branch's
    score in brackets where the model has branches (the paper's LateFusion figures)."""
    frame = _frame(rows)
    frame = frame[frame["transfer_source"].fillna("") == ""] if len(frame) else frame
    if frame.empty:
        return pd.DataFrame()
    frame = frame.assign(row=frame.apply(_attack_name, axis=1))
    branch = "branch_" + metric
    cell = frame.apply(lambda r: with_interval(r, metric) + (f" ({with_interval(r, branch)})" if branch in r and pd.notna(r[branch])
                                                             else ""), axis=1)
    table = frame.assign(cell=cell).pivot_table(index=["modality", "row"], columns="model", values="cell",
                                                 aggfunc="last", sort=False).fillna("–")
    table.index = [f"{row} [{modality}]" for modality, row in table.index]
    return table


def transfer_matrices(rows: Iterable[dict[str, Any]], metric: str = "robust_f1") -> dict[str, pd.DataFrame]:
    """Tables 2–3: for each transfer attack and ε, rows = black-box target, columns = generator (source)."""
    frame = _frame(rows)
    if frame.empty or (frame["transfer_source"].fillna("") == "").all():
        return {}
    frame = frame[frame["transfer_source"].fillna("") != ""]
    out = {}
    for name, group in frame.groupby(frame.apply(_attack_name, axis=1), sort=False):
        group = group.assign(cell=group.apply(lambda r: with_interval(r, metric), axis=1))
        out[name] = group.pivot_table(index="model", columns="transfer_source", values="cell", aggfunc="last",
                                      sort=False).fillna("–")
    return out


def write_tables(rows: list[dict[str, Any]], out_dir: str | Path) -> str:
    """Write table1.md, transfer.md and transfer_*.csv to out_dir; return the Markdown shown to the user."""
    out_dir = Path(out_dir)
    rows = list(rows)
    aggregate(rows).to_csv(out_dir / "aggregate.csv", index=False)
    parts = []
    table = attack_table(rows)
    if not table.empty:
        parts += ["## Robust F1 of the abnormal class (%) per attack — attacked branch alone in brackets; "
                  "mean over training seeds ± 95 % interval half-width", "",
                  markdown(table, "attack [modality]"), ""]
        (out_dir / "table1.md").write_text("\n".join(parts))
    matrices = transfer_matrices(rows)
    transfer_parts = []
    for i, (name, matrix) in enumerate(matrices.items()):
        matrix.to_csv(out_dir / f"transfer_{i}.csv")
        transfer_parts += [f"## Transfer: {name} — robust F1 (%), mean ± 95 % half-width; rows black-box target, "
                           "columns generator", "",
                           markdown(matrix, "black-box \\ generator"), ""]
    if transfer_parts:
        (out_dir / "transfer.md").write_text("\n".join(transfer_parts))
    return "\n".join(parts + transfer_parts)

"""The results store: one CSV row per cell, appended and flushed as each cell finishes."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

#: Columns of results.csv, in order (README: "Results").
COLUMNS = (
    "suite", "model", "attack", "attack_source", "modality", "epsilon", "steps", "transfer_source", "n",
    "clean_accuracy", "robust_accuracy", "clean_f1", "robust_f1", "auc", "robust_auc", "attack_success_rate",
    "branch_robust_accuracy", "branch_robust_f1", "queries", "compare_with", "agreement_gap",
    "max_perturbation", "over_budget", "seconds", "params", "error",
)


class ResultsWriter:
    """Appends rows to DIR/results.csv; rows already written survive a crash in a later cell."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        self._writer.writeheader()
        self.rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"results row has columns not in COLUMNS: {sorted(unknown)}")
        self._writer.writerow(row)
        self._file.flush()
        self.rows.append(row)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

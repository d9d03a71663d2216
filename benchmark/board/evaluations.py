"""Outside evaluations of published entries, as the board reads them: each entry's evaluation files
(`v<version>/evaluations/<entry>/*.json`, written by `mmrb evaluate-entry`: benchmark.submission.evaluations) attached
to it, and the rank figure lowered to the lowest one that beat it. Reading needs no run machinery and no torch."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mmrb.core.errors import MmrbError

EVALUATIONS_DIR = "evaluations"


class EvaluationError(MmrbError):
    """An evaluation file or its replay cannot be used; the message names the file, the field and the fix."""



def apply_evaluations(directory: Path, version: str, entries: list[dict[str, Any]]) -> None:
    """Attach the evaluations of each entry (`entry["evaluations"]`); where one found a lower robust accuracy than the
    entry's rank figure, the rank block takes the lowest evaluation's figure and names it (`lowered_by`)."""
    folder = Path(directory) / f"v{version}" / EVALUATIONS_DIR
    for entry in entries:
        found = []
        for path in sorted((folder / str(entry["name"])).glob("*.json")) if folder.exists() else []:
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise EvaluationError(f"{path}: not a readable evaluation ({exc}); restore it from git") from None
        entry["evaluations"] = found
        rank = entry.get("rank")
        if not rank or not found:
            continue
        lowest = min(found, key=lambda e: e["robust_accuracy"])
        own = rank.get("robust_accuracy")
        if own is None or (isinstance(own, float) and math.isnan(own)) or lowest["robust_accuracy"] < own:
            entry["rank"] = {**rank, "robust_accuracy": lowest["robust_accuracy"], "ci_low": lowest["ci_low"],
                             "ci_high": lowest["ci_high"], "submitted_robust_accuracy": own,
                             "lowered_by": f"{lowest['name']} ({', '.join(lowest['authors'])}, "
                                           f"{lowest['provenance']['date'][:10]})"}

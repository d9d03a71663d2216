"""The operating-point block of a leaderboard entry: the threshold and how it was set, clean and robust sensitivity and
specificity at it with their intervals, and the targeted false-reassurance attack's figure (abnormal → normal at the
threshold; benchmark.attacks.operating_point)."""
from __future__ import annotations

from typing import Any

from benchmark.evaluation.clinical import CALIBRATION_N

FIGURES = ("sensitivity", "specificity")


def _with_interval(cell: dict[str, Any], metric: str) -> dict[str, Any]:
    return {metric: cell.get(metric), f"{metric}_ci_low": cell.get(f"{metric}_ci_low"),
            f"{metric}_ci_high": cell.get(f"{metric}_ci_high")}


def operating_block(suite: Any, documents: list[dict[str, Any]], rank: dict[str, Any] | None) -> dict[str, Any] | None:
    """{"operating_point": ...} for an entry whose protocol sets an operating point and whose rank cell has it."""
    if rank is None or suite.operating_point is None or rank.get("robust_sensitivity") is None:
        return None
    block: dict[str, Any] = {"specificity": suite.operating_point, "threshold": rank.get("threshold"),
                             "calibration_n": CALIBRATION_N, "false_reassurance": rank.get("false_reassurance"),
                             "false_alarm": rank.get("false_alarm")}
    for metric in FIGURES:
        block.update(_with_interval(rank, f"clean_{metric}"))
        block.update(_with_interval(rank, f"robust_{metric}"))
    labels = [a.label for a in suite.attacks if a.source == "mmrb" and a.name == "operating_point"
              and (a.params or {}).get("direction") == "false_reassurance"]
    targeted = next((c for c in documents if c["attack"] in labels and not c["transfer_source"]
                     and c["epsilon"] is not None and abs(c["epsilon"] - rank["epsilon"]) < 1e-9), None)
    if targeted is not None and targeted.get("robust_sensitivity") is not None:
        block["reassurance"] = {"attack": targeted["attack"], "missed": targeted.get("false_reassurance"),
                                **_with_interval(targeted, "robust_sensitivity")}
    return {"operating_point": block}

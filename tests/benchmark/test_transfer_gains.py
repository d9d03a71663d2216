"""Transfer gains: every attack against the first one listed, and every later joint attack against the first joint
attack (SGA − sequential: the text attack held equal), paired by training seed."""
import pytest

from benchmark.evaluation.tables import transfer_gains


def _row(attack, modality, seed, robust):
    return {"model": "late_fusion", "transfer_source": "early_fusion", "seed": seed, "epsilon": 0.03,
            "attack": attack, "modality": modality, "robust_accuracy": robust, "error": ""}


def test_joint_attacks_are_also_compared_with_the_first_joint_attack():
    rows = [_row("PGD", "image", s, 0.8) for s in range(3)] + \
        [_row("sequential", "joint", s, 0.6) for s in range(3)] + \
        [_row("SGA", "joint", s, 0.5 - 0.01 * s) for s in range(3)]
    gains = transfer_gains(rows)
    assert set(gains) == {"sequential − PGD, ε=0.03", "SGA − PGD, ε=0.03", "SGA − sequential, ε=0.03"}
    cell = gains["SGA − sequential, ε=0.03"].loc["late_fusion", "early_fusion"]
    assert cell.startswith("-11.0 [") and cell.endswith("] †")  # no per-sample evidence: over seeds, marked
    low, high = (float(v) for v in cell[len("-11.0 ["):-3].split(", "))
    assert (low, high) == pytest.approx((-13.5, -8.5), abs=0.1)  # t half-width of (-10, -11, -12) points
    image_only = [r for r in rows if r["attack"] != "SGA"]
    assert set(transfer_gains(image_only)) == {"sequential − PGD, ε=0.03"}

"""The modality-reliance index on planted cases: joint drop minus the larger single drop, with its seed interval."""
import math

import pytest

from benchmark.evaluation.reliance import reliance_table


def _rows(model, seed, clean, image, text, joint, eps=0.03):
    return [{"model": model, "seed": seed, "modality": "none", "epsilon": math.nan, "robust_accuracy": clean},
            {"model": model, "seed": seed, "modality": "image", "epsilon": eps, "robust_accuracy": image},
            {"model": model, "seed": seed, "modality": "text", "epsilon": math.nan, "robust_accuracy": text},
            {"model": model, "seed": seed, "modality": "joint", "epsilon": eps, "robust_accuracy": joint}]


def test_planted_reliance_is_joint_drop_minus_larger_single_drop():
    # clean .9; image drop .2, text drop .3, joint drop .7 -> .4 on every seed.
    rows = [r for seed in (0, 1, 2) for r in _rows("early_fusion", seed, 0.9, 0.7, 0.6, 0.2)]
    table = reliance_table(rows)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["reliance"] == pytest.approx(0.4)
    assert row["reliance_hw"] == pytest.approx(0.0)
    assert row["seeds"] == 3


def test_interval_reflects_seed_spread_and_one_modality_gives_zero():
    rows = (_rows("late_fusion", 0, 0.9, 0.1, 0.9, 0.1) + _rows("late_fusion", 1, 0.9, 0.2, 0.9, 0.1)
            + _rows("late_fusion", 2, 0.9, 0.1, 0.9, 0.0))
    row = reliance_table(rows).iloc[0]
    assert row["reliance"] == pytest.approx((0.0 + 0.1 + 0.1) / 3)
    assert row["reliance_hw"] > 0.0


def test_missing_cells_give_no_row_and_transfer_rows_are_ignored():
    rows = _rows("vision_only", 0, 0.9, 0.5, 0.9, 0.5)[:2]  # no text, no joint cell
    assert reliance_table(rows).empty
    transfer = [dict(r, transfer_source="other") for r in _rows("m", 0, 0.9, 0.7, 0.6, 0.2)]
    assert reliance_table(transfer).empty


def test_reliance_markdown_lists_the_planted_figure():
    from benchmark.evaluation.tables import reliance_markdown

    rows = [r for seed in (0, 1, 2) for r in _rows("early_fusion", seed, 0.9, 0.7, 0.6, 0.2)]
    assert "+40.0 ± 0.0" in reliance_markdown(rows)
    assert reliance_markdown(rows[:2]) == ""

"""Robust because blind (issue 36, item 3): the text floor records how many decisions replacing the image changes, and
the flag `image_ignored` is raised where a model's robust figure lies within its interval of the floor while the image
changes at most 1 decision in 100 — on constructed frames (just inside and just outside each limit), in the defense
comparison's verdicts, on the leaderboard, and on a real run: a fusion model whose image branch is switched off is
flagged, early fusion is not."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmark.evaluation.flags import BLIND_FLAG, BLIND_SAYS, BLIND_SHARE, FLAGS, UNRANKING_FLAGS
from tests.benchmark.test_soundness import cell, flags_of
from tests.plugins.tiny_plugin import SOURCE

FLOOR = "image_replacement"


def blind_rows(changed: float = 0.0, floor: float = 0.88, pgd: float = 0.88, **floor_extra: Any) -> list[dict[str, Any]]:
    """A model whose figures sit at its clean accuracy: PGD at two ε (±5 pt), the floor with `changed` decisions."""
    return [cell("none", None, 0.9, source="mmrb", modality="none"), cell("PGD", 0.03, pgd), cell("PGD", 0.2, pgd - 0.01),
            cell("FGSM", 0.03, pgd + 0.01),
            cell(FLOOR, None, floor, source="mmrb", decisions_changed=changed, clean_accuracy=0.9, **floor_extra)]


def blind_flags(rows: list[dict[str, Any]]) -> pd.DataFrame:
    flags = flags_of(rows)
    return flags[flags["flag"] == BLIND_FLAG]


def test_the_flag_is_declared_and_does_not_unrank():
    assert BLIND_FLAG in FLAGS and BLIND_FLAG not in UNRANKING_FLAGS and BLIND_SHARE == 0.01


@pytest.mark.parametrize("changed", [0.0, 0.01], ids=["no decision changed", "1 in 100 changed (the limit)"])
def test_raised_where_the_figure_is_the_floor_and_the_image_decides_nothing(changed):
    raised = blind_flags(blind_rows(changed))
    assert len(raised) == 1, raised.to_string()
    row = raised.iloc[0]
    assert row["model"] == "m" and row["cells"] == f"PGD ε=0.03, FGSM ε=0.03, PGD ε=0.2, {FLOOR}"
    assert row["detail"].startswith(BLIND_SAYS + ":")
    assert "text floor 88.0 % (clean 90.0 %)" in row["detail"] and f"changes {100 * changed:.1f} %" in row["detail"]
    assert "PGD ε=0.03 88.0 % [83.0, 93.0]" in row["detail"]


# (case, rows): just outside each limit, so no image_ignored flag
NOT_BLIND = [
    ("the image changes 1.1 % of the decisions", blind_rows(0.011)),
    ("the floor just above the strongest attack's interval (an image attack goes below what replacement reaches)",
     blind_rows(floor=0.93 + 0.001, pgd=0.88)),
    ("the floor just below the strongest attack's interval", blind_rows(floor=0.82 - 0.001, pgd=0.88)),
    ("no decisions_changed recorded (a run before the column)", blind_rows(np.nan)),
    ("only transfer cells on the image", [r | {"transfer_source": "other"} if r["attack"] in ("PGD", "FGSM") else r
                                          for r in blind_rows()]),
]


@pytest.mark.parametrize("case, rows", NOT_BLIND, ids=[case for case, _ in NOT_BLIND])
def test_not_raised_just_outside_each_limit(case, rows):
    assert blind_flags(rows).empty, flags_of(rows).to_string()


def test_only_the_epsilons_whose_strongest_attack_holds_the_floor_are_named():
    rows = blind_rows(0.0)
    rows[2] = cell("PGD", 0.2, 0.5)  # at ε = 0.2 the attack goes far below the floor: the image decides there
    raised = blind_flags(rows)
    assert list(raised["cells"]) == [f"PGD ε=0.03, FGSM ε=0.03, {FLOOR}"]


# --- the defense comparison's verdicts -------------------------------------------------------------------------

def comparison_frames(changed: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A run folder's frames: model m (PGD breaks every sample) and m+pgd_at (PGD breaks none, the floor equals the
    clean figure, replacing the image changes `changed` of the decisions), 2 seeds × 40 samples."""
    from benchmark.store.record import ResultRecord

    n, results, samples = 40, [], []
    labels = np.arange(n) % 2
    for seed in (0, 1):
        for model, defense, pgd, floor_changed in (("m", "", 0.0, 0.3), ("m+pgd_at", "pgd_at", 0.9, changed)):
            for attack, name, source, modality, eps, robust in (
                    ("none", "none", "mmrb", "none", None, 0.9), ("PGD", "ProjectedGradientDescent", "art", "image", 0.03, pgd),
                    ("floor", FLOOR, "mmrb", "image", None, 0.9)):
                extra = {"decisions_changed": floor_changed} if attack == "floor" else {}
                results.append(ResultRecord(suite="s", model=model, defense=defense, attack=attack, attack_name=name,
                                            attack_source=source, modality=modality, epsilon=eps, seed=seed, n=n,
                                            clean_accuracy=0.9, robust_accuracy=robust, params="{}", **extra).as_row())
                right = np.arange(n) < round(robust * n)
                samples += [dict(sample_id=f"s{i:02d}", model=model, seed=seed, attack=attack, epsilon=eps, label=labels[i],
                                 adversarial_prediction=labels[i] if right[i] else 1 - labels[i]) for i in range(n)]
    costs = pd.DataFrame([dict(model=m, seed=s, defense=d, train_seconds=1.0, defense_seconds=2.0 if d else 0.0)
                          for m, d in (("m", ""), ("m+pgd_at", "pgd_at")) for s in (0, 1)])
    return pd.DataFrame(results), pd.DataFrame(samples), costs


@pytest.mark.parametrize("changed, blind", [(0.0, True), (0.02, False)], ids=["blind", "2 % of decisions changed"])
def test_a_gain_that_comes_from_ignoring_the_image_is_reported_as_robust_because_blind(changed, blind):
    from benchmark.studies.defenses.fusion import accuracy_tables, verdict_table

    results, samples, costs = comparison_frames(changed)
    _, table = verdict_table(results, samples)
    assert set(table["condition"]) == {"clean", "PGD@0.03"}  # the floor is not a condition of its own
    pgd = table.loc[table["condition"] == "PGD@0.03", "verdict"].item()
    assert pgd == (f"robust because blind: pgd_at higher, but {BLIND_SAYS} ({BLIND_FLAG})" if blind else "pgd_at higher")
    tables = accuracy_tables(results, samples, costs)
    row = next(line for line in tables.splitlines() if line.startswith("| pgd_at"))
    header = next(line for line in tables.splitlines() if line.startswith("| defense"))
    shown = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert shown["text floor"].startswith("90.0") and shown["drop clean → floor (pt)"].startswith("0.0")
    assert shown["image decides (% of decisions)"].startswith(f"{100 * changed:.1f}")
    assert shown["robust because blind"] == ("PGD@0.03" if blind else "–")


# --- the leaderboard ---------------------------------------------------------------------------------------------

def test_the_board_shows_the_flag_beside_the_rank_figure_and_keeps_the_model_ranked(tmp_path):
    from benchmark.board import build_board, rank_entries
    from tests.benchmark.test_board import EPS, make_entry, readme_sections, write_entries

    entries = []
    for name, flagged in (("blind_fusion", True), ("early_fusion", False)):
        entry = make_entry(name, "3", 0.85, 0.05, floor=0.86) | {"entry_version": 2}
        for c in entry["cells"]:
            if c["attack"] == "floor":
                c.update(probe="floor", decisions_changed=0.0 if flagged else 0.2)
        label = f"standard ε={EPS:.4g}"
        entry["flags"] = [{"flag": BLIND_FLAG, "cells": f"{label}, floor", "detail": f"{BLIND_SAYS}: …"}] if flagged else []
        entries.append((name, entry))
    directory = write_entries(tmp_path, {"3": entries})
    build_board(directory)
    ranked = rank_entries([e for _, e in entries])
    assert all(r.position is not None for r in ranked)  # image_ignored does not unrank
    rows = {r[1].removesuffix(" ≈"): r for r in readme_sections((directory / "README.md").read_text())["3"]}
    assert rows["blind_fusion"][6].endswith(BLIND_SAYS) and BLIND_SAYS not in rows["early_fusion"][6]
    assert rows["blind_fusion"][7].endswith("image changes 0.0 % of decisions")
    assert rows["early_fusion"][7].endswith("image changes 20.0 % of decisions")
    assert BLIND_FLAG in rows["blind_fusion"][-2]
    html = (directory / "index.html").read_text()
    assert html.count(BLIND_SAYS) >= 2  # the ranking row and the legend
    ranking = pd.read_csv(directory / "ranking.csv").set_index("model")
    assert ranking.loc["blind_fusion", "image_ignored"] and not ranking.loc["early_fusion", "image_ignored"]
    assert ranking.loc["early_fusion", "image_decides"] == pytest.approx(0.2)


# --- a real run -------------------------------------------------------------------------------------------------

BLIND_SOURCE = SOURCE.replace("f_image = self.vision(images * 4 - 2)", "f_image = self.vision(images * 4 - 2) * IMAGE_WEIGHT")
SUITE = {"name": "blind", "dataset": {"name": "indiana_synth", "n": 200, "seed": 1, "image_size": 32},
         "plugins": ["blind_plugin.py"],
         "models": ["tiny_blind", {"name": "early_fusion", "params": {"recipe": {"epochs": 12}}}],
         "attacks": [{"name": "none"},
                     {"source": "art", "name": "ProjectedGradientDescent", "label": "PGD", "params": {"max_iter": 5}},
                     {"source": "mmrb", "name": FLOOR, "label": "floor"}],
         "epsilons": [0.0313725], "seeds": [0], "limit": 40, "convergence_check": False}


@pytest.fixture(scope="module")
def blind_run(tmp_path_factory):
    import torch

    from benchmark.run.runner import run_suite
    from benchmark.spec.suite import load_suite

    assert "f_image = self.vision(images * 4 - 2) * IMAGE_WEIGHT" in BLIND_SOURCE
    root = tmp_path_factory.mktemp("blind")
    # the tiny gated fusion of the plug-in tests, its image features scaled by 1e-6: it trains on the reports alone
    (root / "blind_plugin.py").write_text("NAME = 'tiny_blind'\nEPOCHS = 6\nIMAGE_WEIGHT = 1e-6\n" + BLIND_SOURCE)
    (root / "blind.yaml").write_text(yaml.safe_dump(SUITE))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        record = run_suite(load_suite(root / "blind.yaml"), root / "out", root / "cache", progress=False)
    finally:
        torch.set_num_threads(threads)
    return root, record


def test_a_model_that_ignores_its_image_is_flagged_and_early_fusion_is_not(blind_run):
    root, record = blind_run
    rows = pd.DataFrame(record.rows)
    assert (rows["error"] == "").all(), rows["error"].tolist()
    figures = rows.set_index(["model", "attack"])
    early = next(m for m in rows["model"].unique() if m.startswith("early_fusion"))
    changed = figures["decisions_changed"].dropna()
    print("decisions changed by the image:", changed.to_dict(), "robust:", figures["robust_accuracy"].to_dict())
    assert set(changed.index.get_level_values("attack")) == {"floor"}  # only the floor's row records it
    assert changed[("tiny_blind", "floor")] == 0.0 and changed[(early, "floor")] > BLIND_SHARE
    assert figures.loc[("tiny_blind", "none"), "clean_accuracy"] > 0.7  # it learned, from the reports alone
    flags = pd.read_csv(root / "out" / "flags.csv")
    blind = flags[flags["flag"] == BLIND_FLAG]
    assert list(blind["model"]) == ["tiny_blind"], flags.to_string()
    assert blind["cells"].item() == "PGD ε=0.03137, floor" and blind["detail"].item().startswith(BLIND_SAYS)
    assert not flags["flag"].isin(["masked_gradients", "masking_unresolved"]).any()  # its gradient is real, only tiny
    accuracy = (root / "out" / "accuracy.md").read_text()
    pgd_row = next(line for line in accuracy.splitlines() if line.startswith("| PGD, ε=0.03137"))
    header = next(line for line in accuracy.splitlines() if line.startswith("| attack [modality]"))
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in pgd_row.split("|")]))
    assert cells["tiny_blind"].endswith("⊘") and not cells[early].endswith("⊘")
    assert "image decides" in accuracy and "0.0 % of decisions" in accuracy


def test_the_suite_board_marks_the_blind_cell(blind_run, tmp_path):
    from benchmark.run.suite_boards import CSV_NAME, MD_NAME, provenance, publish

    _, record = blind_run
    publish(record.rows, provenance("blind", "0" * 16, "data", 0), tmp_path)
    table = pd.read_csv(tmp_path / CSV_NAME, dtype=str, keep_default_na=False).set_index(["model", "attack"])
    assert BLIND_FLAG in table.loc[("tiny_blind", "PGD"), "flags"].split(";")
    assert float(table.loc[("tiny_blind", "floor"), "decisions_changed"]) == 0.0
    markdown = (tmp_path / MD_NAME).read_text()
    assert "⊘ robust because the image no longer decides" in markdown
    line = next(r for r in markdown.splitlines() if r.startswith("| tiny_blind"))
    assert "⊘" in line

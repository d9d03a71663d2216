"""End to end: a tiny suite through the CLI, from generated data to results.csv and the leaderboard."""
from __future__ import annotations

import pandas as pd
import pytest

from benchmark.store.results import COLUMNS
from mmrb.cli import main

REQUIRED = ["suite", "model", "attack", "attack_source", "modality", "epsilon", "steps", "transfer_source", "n",
            "clean_accuracy", "robust_accuracy", "clean_f1", "robust_f1", "auc", "attack_success_rate", "seconds"]

SUITE = """
name: tiny
dataset: {name: indiana_synth, n: 120, seed: 1, image_size: 32}
models: [vision_only, text_only, early_fusion, late_fusion, ensemble_fusion]
attacks:
  - {name: none}
  - {source: art, name: FastGradientMethod}
  - {source: art, name: ProjectedGradientDescent, params: {max_iter: 3}}
epsilons: [0.0313725, 0.2]
limit: 20
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    (root / "tiny.yaml").write_text(SUITE)
    main(["run", str(root / "tiny.yaml"), "--out", str(root / "out"), "--cache", str(root / "cache"),
          "--leaderboard", str(root / "lb"), "--quiet"])
    return root


def test_results_have_every_column_and_cell(run):
    results = pd.read_csv(run / "out" / "results.csv")
    assert list(results.columns) == list(COLUMNS) and set(REQUIRED) <= set(results.columns)
    assert len(results) == 1 + 4 * (1 + 2 * 2)  # text_only: clean only; image models: clean + 2 attacks × 2 ε
    assert results["error"].isna().all()
    assert (results["n"] == 20).all()
    attacked = results[results["modality"] == "image"]
    assert (attacked["max_perturbation"] <= attacked["epsilon"] + 1e-6).all()
    assert (attacked["robust_accuracy"] <= attacked["clean_accuracy"] + 1e-9).all()
    assert set(attacked.loc[attacked["attack"] == "ProjectedGradientDescent", "steps"]) == {3}
    clean = results[results["modality"] == "none"]
    assert (clean["robust_accuracy"] == clean["clean_accuracy"]).all()


def test_leaderboard_records_provenance(run):
    board = pd.read_csv(run / "lb" / "leaderboard.csv")
    assert len(board) == 21
    for column in ("protocol_version", "suite_hash", "data_fingerprint", "packages", "seed", "git_commit"):
        assert board[column].notna().all(), column
    assert "## tiny" in (run / "lb" / "LEADERBOARD.md").read_text()


def test_bad_suite_exits_with_the_field_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SUITE.replace("modality", "x").replace("name: FastGradientMethod}", "name: FGSM, modality: imag}"))
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(bad), "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c"), "--no-leaderboard"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "attacks.1 (FGSM).modality" in err and "'image'" in err

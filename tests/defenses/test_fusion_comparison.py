"""`mmrb compare-defenses` on a run suite whose models carry defenses: the suite runs like `mmrb run`, and the
comparison has the head study's shape (accuracy with intervals, naive beside adaptive, per class, training cost in
seconds, paired tests between defenses with Holm's correction), all from real attacks on small real models."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from mmrb.cli import main

SQUEEZE, AT = "feature_squeezing[bit_depth=2]", "pgd_at"
SUITE = """
name: fusion_compare
dataset: {name: indiana_synth, n: 160, seed: 0, image_size: 32}
limit: 32
models:
  - vision_only
  - {name: vision_only, defense: {name: feature_squeezing, params: {bit_depth: 2}}}
  - {name: vision_only, defense: {name: pgd_at, params: {epsilon: 0.0313725, steps: 2, epochs: 1, lr: 0.001}}}
attacks:
  - {name: none}
  - {source: art, name: ProjectedGradientDescent, label: PGD, params: {max_iter: 5, num_random_init: 0}}
epsilons: [0.0313725, 0.1]
seeds: [0, 1]
convergence_check: false
"""


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion-compare")
    suite = root / "suite.yaml"
    suite.write_text(SUITE)
    main(["compare-defenses", str(suite), "--out", str(root / "out"), "--cache", str(root / "cache"), "-q"])
    return root / "out", root / "cache"


def _section(text: str, heading: str) -> pd.DataFrame:
    """The Markdown table under `heading` as a frame of strings."""
    block = text.split(heading, 1)[1].split("\n#", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return pd.DataFrame(cells[2:], columns=cells[0]).set_index("defense")


def _mean(cell: str) -> float:
    return float(re.match(r"-?[\d.]+", cell).group())


def test_the_comparison_reports_every_defense_with_intervals_classes_and_cost(compared):
    out, cache = compared
    results = pd.read_csv(out / "results.csv")
    assert results["error"].isna().all(), results["error"].tolist()
    tables = (out / "tables.md").read_text()
    accuracy = _section(tables, "## vision_only")
    defended = [d for d in accuracy.index if d != "none"]
    assert accuracy.index[0] == "none" and len(defended) == 2 and SQUEEZE in defended
    assert any(d.startswith(AT) for d in defended)
    assert {"clean", "PGD@0.03137", "PGD@0.1", "model training (s)", "defense training (s)"} <= set(accuracy.columns)
    # the interval's centre is the mean over seeds of the run's own figures (the same per-sample outcomes)
    clean = results[results["attack"] == "none"].groupby("model")["clean_accuracy"].mean()
    for defense in accuracy.index:
        label = "vision_only" if defense == "none" else f"vision_only+{defense}"
        assert _mean(accuracy.loc[defense, "clean"]) == pytest.approx(100 * clean[label], abs=0.051)
    # training cost: recorded when each model was trained (manifests), the input defense trains nothing
    assert float(accuracy.loc["none", "model training (s)"]) > 0
    assert accuracy.loc[SQUEEZE, "defense training (s)"] == "0"
    at = next(d for d in defended if d.startswith(AT))
    assert float(accuracy.loc[at, "defense training (s)"]) > 0
    manifests = [json.loads(p.read_text()) for p in cache.glob("models/vision_only-pgd_at-*/manifest.json")]
    assert len(manifests) == 2 and all(m["train_seconds"] > 0 for m in manifests)
    # per class: the recall of each class in every condition
    per_class = _section(tables, "### vision_only: per class")
    assert {"clean normal", "clean abnormal", "PGD@0.1 normal", "PGD@0.1 abnormal"} <= set(per_class.columns)
    # naive beside adaptive: squeezing to 2 bits stops the gradient, so the naive figure is above the adaptive one
    masking = _section(tables, "### vision_only: naive beside adaptive")
    naive, adaptive = _mean(masking.loc[SQUEEZE, "PGD@0.1 naive"]), _mean(masking.loc[SQUEEZE, "PGD@0.1 adaptive"])
    assert naive >= adaptive and masking.loc["none", "PGD@0.1 naive"] == "= adaptive"
    assert (out / "robust_vs_epsilon_vision_only.png").stat().st_size > 0


def test_the_verdicts_pair_every_two_defenses_in_every_condition_with_holm(compared):
    out, _ = compared
    text = (out / "verdicts.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    table = pd.DataFrame(cells[2:], columns=cells[0])
    assert len(table) == 3 * 3  # 3 pairs of (none, squeezing, PGD-AT) × (clean, PGD at two ε)
    assert set(table["condition"]) == {"clean", "PGD@0.03137", "PGD@0.1"}
    p, holm = table["p"].astype(float).to_numpy(), table["p (Holm)"].astype(float).to_numpy()
    assert (holm >= p - 1e-12).all() and (holm <= 1).all()
    assert np.isin(table["verdict"].str.split(" ").str[0], ["not", "the", "none", SQUEEZE, *table["comparison"].str.split(
        " − ").str[0]]).all()


def test_a_suite_without_a_defended_model_is_refused_before_any_work(tmp_path, capsys):
    suite = tmp_path / "plain.yaml"
    suite.write_text(SUITE.split("models:")[0] + "models: [vision_only]\nattacks: [{name: none}]\n")
    with pytest.raises(SystemExit) as stopped:
        main(["compare-defenses", str(suite), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])
    assert stopped.value.code == 2
    assert re.search(r"(?s)plain.yaml.*models.*no model carries a defense.*mmrb run", capsys.readouterr().err)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()

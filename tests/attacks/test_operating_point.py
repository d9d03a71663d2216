"""The operating-point attacks (benchmark.attacks.operating_point) on small real models: aimed at the threshold, they
miss at least as many abnormal studies at the operating point as the argmax attack of the same budget; the
false-reassurance attack leaves every normal study as it was; the intervals of the clinical columns stay in range."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.attacks.operating_point import threshold_margin
from tests.conftest import run_suite_text

SUITE = """
name: tiny_operating_point
dataset: {name: indiana_synth, n: 120, seed: 1, image_size: 32}
models: [vision_only, early_fusion, late_fusion]
attacks:
  - {name: none}
  - {source: mmrb, name: pgd, label: PGD, params: {steps: 20, restarts: 1}}
  - {source: mmrb, name: operating_point, label: at_threshold, params: {steps: 20, restarts: 1}}
  - {source: mmrb, name: operating_point, label: false_reassurance, params: {direction: false_reassurance, steps: 20, restarts: 1}}
epsilons: [0.0157]
seeds: [0, 1]
operating_point: 0.9
convergence_check: false
limit: 40
"""


def test_the_margin_is_negative_exactly_when_the_decision_at_the_threshold_is_wrong():
    logits = torch.tensor([[0.0, 1.0], [0.0, 3.0], [2.0, 0.0]])
    labels = torch.tensor([1, 1, 0])
    t = 0.9  # abnormal when P ≥ 0.9, i.e. a logit gap ≥ log 9 ≈ 2.197
    margin = threshold_margin(t)(logits, labels)
    p = torch.softmax(logits, 1)[:, 1]
    assert ((margin < 0) == ((p >= t) != labels.bool())).all()
    assert margin[0] < 0 < margin[1]  # P = 0.73: argmax calls it abnormal, the operating point misses it


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    root = run_suite_text(tmp_path_factory.mktemp("operating"), SUITE, leaderboard=False)
    return pd.read_csv(root / "out" / "results.csv"), pd.read_csv(root / "out" / "aggregate.csv")


def test_aiming_at_the_threshold_misses_at_least_as_many_findings_as_the_argmax_attack(rows):
    results, _ = rows
    assert (results["error"].fillna("") == "").all(), results["error"].unique()
    cells = results.set_index(["model", "seed", "attack"])
    for model, seed in {(m, s) for m, s, _ in cells.index}:
        argmax, aimed = cells.loc[(model, seed, "PGD")], cells.loc[(model, seed, "at_threshold")]
        targeted = cells.loc[(model, seed, "false_reassurance")]
        assert aimed["robust_sensitivity"] <= argmax["robust_sensitivity"] + 1e-9, (model, seed)
        assert targeted["robust_sensitivity"] <= argmax["robust_sensitivity"] + 1e-9, (model, seed)
        assert targeted["robust_specificity"] == targeted["clean_specificity"]  # normal studies untouched
        assert targeted["false_alarm"] == 0 and targeted["false_reassurance"] >= argmax["false_reassurance"]
    lowered = results[results["attack"] == "false_reassurance"]
    assert (lowered["robust_sensitivity"] < lowered["clean_sensitivity"]).any()  # it can fail: it finds something


def test_every_clinical_interval_lies_in_range_and_holds_its_figure(rows):
    _, cells = rows
    for metric in ("robust_sensitivity", "robust_specificity", "clean_sensitivity", "robust_accuracy", "robust_f1",
                   "auc", "attack_success_rate"):
        have = cells[cells[metric].notna() & cells[f"{metric}_ci_low"].notna()]
        assert len(have), metric
        assert ((0 <= have[f"{metric}_ci_low"]) & (have[f"{metric}_ci_low"] <= have[metric] + 1e-12)
                & (have[metric] <= have[f"{metric}_ci_high"] + 1e-12) & (have[f"{metric}_ci_high"] <= 1)).all(), metric
    assert (cells.loc[cells["attack"] != "none", "interval"] == "bootstrap").all()
    assert np.isfinite(cells["threshold"]).all()


def test_the_threshold_keys_an_attack_aimed_at_it_and_one_that_crafts_it_no_other():
    from benchmark.run.keys import uses_threshold

    assert uses_threshold("mmrb", "operating_point") and not uses_threshold("mmrb", "pgd")
    aimed = {"image": {"source": "mmrb", "name": "operating_point", "params": {"steps": 5}},
             "text": {"source": "mmrb", "name": "hotflip"}}
    assert uses_threshold("mmrb", "joint", aimed)
    assert not uses_threshold("mmrb", "joint", {**aimed, "image": {"source": "mmrb", "name": "pgd"}})
    assert not uses_threshold("mmrb", "pgd", {"note": "operating_point"})  # a word in the params is not a trait

"""SGA (set-level guidance) on tiny trained fusion models: within its joint budget with each sample's own report,
stronger than nothing on its source, and — through a suite's transfer section — crafted once on the source and scored
on targets that never saw it, with the transfer gain over PGD in transfer.md."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import benchmark.run.engine
from benchmark.attacks import Target, registry
from benchmark.attacks import hotflip as hf
from benchmark.attacks.co_attack import rescaled
from benchmark.attacks.sga import report_set
from benchmark.run.runner import run_suite
from benchmark.spec.suite import load_suite
from wrappers.training import predict_logits

EPS, FRACTION = 0.1, 0.1

pytestmark = pytest.mark.usefixtures("nltk_data", "one_torch_thread")


def test_sga_within_its_joint_budget_each_with_its_own_report(trained, test_split):
    model = trained("early_fusion")
    idx = np.arange(10)
    target = Target(model, test_split.images[idx], [test_split.texts[i] for i in idx], test_split.labels[idx])
    crafted = registry.craft("mmrb", "sga", {"word_fraction": FRACTION, "steps": 5, "scales": [0.5, 1.5]}, target,
                             EPS, seed=0)
    assert np.abs(crafted.images - target.images).max() <= EPS + 1e-6
    assert crafted.images.min() >= 0 and crafted.images.max() <= 1
    for original, adv in zip(target.texts, crafted.texts):  # report i stays report i, at most its budget changed
        assert len(adv.split()) == len(original.split())
        assert hf.changed_words(original, adv) <= hf.word_budget(original, FRACTION)
    assert crafted.params["scales"] == [1.0, 0.5, 1.5] and crafted.steps == 10
    clean = (predict_logits(model, target.images, target.texts).argmax(1).numpy() == target.labels).mean()
    robust = (predict_logits(model, crafted.images, crafted.texts).argmax(1).numpy() == target.labels).mean()
    assert robust < clean, (robust, clean)


def test_the_sets_scales_and_paraphrases():
    x = torch.rand(2, 2, 16, 16)
    assert torch.equal(rescaled(x, 1.0), x)
    small = rescaled(x, 0.5)
    assert small.shape == x.shape and not torch.equal(small, x)
    texts = ["the heart is enlarged and the lungs are clear .", "small left pleural effusion ."]
    sets = report_set(texts, 2, 0.5, seed=0)
    assert len(sets) == 3 and sets[0] == texts and all(len(s) == len(texts) for s in sets)
    assert sets == report_set(texts, 2, 0.5, seed=0)  # deterministic per seed


def test_registered_with_its_parameters_checked():
    info = registry.info("mmrb", "sga")
    assert info.modality == "joint" and info.gradient and info.steps == "steps"
    assert any("scales" in field for field, _ in registry.check("mmrb", "sga", {"scales": [0.1]}))
    assert any("paraphrases" in field for field, _ in registry.check("mmrb", "sga", {"paraphrases": -1}))
    assert not registry.check("mmrb", "sga", {"scales": [0.5, 2], "paraphrases": 0})


SUITE = """
name: sga_transfer
dataset: {name: indiana_synth, n: 120, seed: 1, image_size: 32}
limit: 16
seed: 0
transfer:
  sources: [early_fusion]
  targets: [early_fusion, late_fusion, vision_only]
  attacks:
    - {source: mmrb, name: pgd, label: PGD, params: {steps: 5}}
    - {source: mmrb, name: sga, label: SGA, modality: joint, params: {steps: 3, scales: [0.5], paraphrases: 1}}
  epsilons: [0.1]
"""


def test_sga_pairs_are_crafted_on_the_source_and_scored_on_every_target(tmp_path, monkeypatch):
    calls = []
    real_craft = benchmark.run.engine.craft

    def counting_craft(source, name, params, target, epsilon, seed):
        calls.append((name, target.model.config["name"]))
        return real_craft(source, name, params, target, epsilon, seed)

    monkeypatch.setattr(benchmark.run.engine, "craft", counting_craft)
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    record = run_suite(load_suite(path), tmp_path / "out", tmp_path / "cache", progress=False)
    rows = pd.DataFrame(record.rows)
    assert rows["error"].fillna("").eq("").all(), rows["error"].tolist()
    assert sorted(calls) == [("pgd", "early_fusion"), ("sga", "early_fusion")]  # crafted once, on the source only
    sga = rows[rows["attack"] == "SGA"].set_index("model")
    assert set(sga.index) == {"early_fusion", "late_fusion", "vision_only"}  # vision_only: the image part alone
    assert (sga["transfer_source"] == "early_fusion").all()
    assert sga.loc["early_fusion", "robust_accuracy"] < sga.loc["early_fusion", "clean_accuracy"]
    transfer = (tmp_path / "out" / "transfer.md").read_text()
    assert "Transfer gain: SGA − PGD, ε=0.1" in transfer

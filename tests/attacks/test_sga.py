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
    assert crafted.params["scales"] == [1.0, 0.5, 1.5] and crafted.steps == 5
    assert crafted.params["order"] == "text-image-text" and crafted.params["loss"] == "margin+fused_distance"
    clean = (predict_logits(model, target.images, target.texts).argmax(1).numpy() == target.labels).mean()
    robust = (predict_logits(model, crafted.images, crafted.texts).argmax(1).numpy() == target.labels).mean()
    assert robust < clean, (robust, clean)


def test_the_official_order_text_image_text_with_the_scale_set_in_the_last_text_step(trained, test_split, monkeypatch):
    """Lu et al.'s order: the report attacked against the clean image, the image against the adversarial report set,
    the original report again against the adversarial image seen at every scale."""
    import benchmark.attacks.sga as sga_module

    model = trained("early_fusion")
    idx = np.arange(6)
    target = Target(model, test_split.images[idx], [test_split.texts[i] for i in idx], test_split.labels[idx])
    seen, real = [], sga_module.text_step

    def recording(p, tgt, seed):
        seen.append((np.asarray(tgt.images).copy(), list(tgt.texts), tgt.model))
        return real(p, tgt, seed)

    monkeypatch.setattr(sga_module, "text_step", recording)
    crafted = registry.craft("mmrb", "sga", {"word_fraction": FRACTION, "steps": 3, "scales": [0.5]}, target, EPS, 0)
    (first_images, first_texts, first_model), (last_images, last_texts, last_model) = seen
    assert np.array_equal(first_images, target.images) and first_model is model  # text first, on the clean image
    assert np.array_equal(last_images, crafted.images) and not np.array_equal(last_images, target.images)
    assert first_texts == last_texts == list(target.texts)  # the last text step starts from the original report
    assert isinstance(last_model, sga_module.ScaleSet) and last_model.scales == (1.0, 0.5)
    x, tokens = torch.as_tensor(target.images[:2]), model.tokenize(list(target.texts[:2]))
    with torch.no_grad():  # the scale set's logits: the mean over the scales
        expected = (model(x, tokens) + model(rescaled(x, 0.5), tokens)) / 2
        assert torch.allclose(last_model(x, tokens), expected, atol=1e-5)


class _DualEncoder(torch.nn.Module):
    """A tiny CLIP-style dual encoder with a linear head on both embeddings (random weights, fixed seed)."""

    modalities = frozenset({"image", "text"})

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.image_tower = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 16 * 16, 8))
        self.encoder = torch.nn.Module()
        self.encoder.words = torch.nn.EmbeddingBag(50, 8)
        self.encoder.encode_text = lambda ids: self.encoder.words(ids)
        self.head = torch.nn.Linear(16, 2)

    def encode_image(self, images):
        return self.image_tower(images)

    def tokenize(self, texts):
        # sum of code points, not hash(): str hashes change per process unless PYTHONHASHSEED is set
        return {"input_ids": torch.tensor([[sum(map(ord, w)) % 50 for w in (t.split() + ["."] * 4)[:4]] for t in texts])}

    def forward(self, images, tokens):
        return self.head(torch.cat([self.encode_image(images), self.encoder.encode_text(tokens["input_ids"])], 1))


def test_on_a_dual_encoder_the_image_stage_lowers_the_image_text_alignment():
    from benchmark.attacks.co_attack import dual_encoder, guided_pgd

    model = _DualEncoder()
    assert dual_encoder(model) and not dual_encoder(torch.nn.Linear(2, 2))
    images = torch.rand(4, 2, 16, 16, generator=torch.Generator().manual_seed(1)).numpy()
    texts = ["no acute disease seen", "small left effusion noted", "the heart is normal", "mild basal opacity here"]
    tokens = model.tokenize(texts)
    adv = guided_pgd(model, images, np.array([0, 1, 0, 1]), 0.1, 10, 0.025, 0, guides=[tokens], anchor=tokens,
                     scored=tokens, scales=(1.0, 0.5), cross_modal=True)

    def alignment(x):
        with torch.no_grad():
            return torch.nn.functional.cosine_similarity(model.encode_image(torch.as_tensor(x)),
                                                         model.encoder.encode_text(tokens["input_ids"]), dim=1)
    assert np.abs(adv - images).max() <= 0.1 + 1e-6
    drop = alignment(images) - alignment(adv)  # the returned iterate is the classifier's pick, not the loss's best
    assert (drop > 0).sum() >= 3 and drop.mean() > 0.25, drop


def test_pgd_without_early_stop_runs_every_step_on_every_sample(trained, test_split):
    model = trained("early_fusion")
    idx = np.arange(12)
    target = Target(model, test_split.images[idx], [test_split.texts[i] for i in idx], test_split.labels[idx])
    stopping = registry.craft("mmrb", "pgd", {"steps": 8}, target, EPS, seed=0)
    every = registry.craft("mmrb", "pgd", {"steps": 8, "early_stop": False}, target, EPS, seed=0)
    assert (every.queries == 9).all() and (stopping.queries <= 9).all() and stopping.queries.sum() < every.queries.sum()

    def margins(images):
        logits = predict_logits(model, images, target.texts)
        y = torch.as_tensor(target.labels)
        return (logits.gather(1, y[:, None])[:, 0] - logits.gather(1, (1 - y)[:, None])[:, 0]).numpy()
    assert (margins(every.images) <= margins(stopping.images) + 1e-4).all()  # it goes on lowering the margin
    assert any("early_stop" in f for f, _ in registry.check("mmrb", "pgd", {"early_stop": "no"}))


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

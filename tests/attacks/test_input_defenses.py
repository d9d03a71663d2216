"""Input defenses on a model (a suite's `defense:`): each looks robust to a naive gradient attack and loses it under
mmrb's automatic adaptive pass (BPDA, EOT); the suite refuses a misspelt one before any work."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.attacks import Target, craft
from benchmark.run.adaptive import adaptive_pass
from benchmark.spec.suite import AttackSpec, ConvergenceSpec
from defenses.defended import DefendedModel
from defenses.registry import build_model_defense
from tests.attacks.test_probes import LinearImageModel
from wrappers.estimators import ImageView
from wrappers.training import predict_proba

SIDE, EPS = 16, 0.1
PGD = AttackSpec(source="art", name="ProjectedGradientDescent", label="PGD", params={"max_iter": 10})


def _setup(name: str, **params):
    rng = np.random.default_rng(0)
    images = rng.uniform(0.2, 0.8, size=(40, 2, SIDE, SIDE)).astype(np.float32)
    texts = ["x"] * 40
    model = DefendedModel(LinearImageModel(SIDE), build_model_defense(name, params, seed=0)).eval()
    labels = predict_proba(model, images, texts).argmax(1)  # every sample correct when clean
    return model, Target(model, images, texts, labels, ImageView(model, images, texts)), labels


def _naive(target: Target):
    crafted = craft(PGD.source, PGD.name, PGD.params, target, EPS, 0)
    prob = predict_proba(target.model, crafted.images, target.texts)
    return crafted, prob


@pytest.mark.parametrize("name, params", [("jpeg", {"quality": 30}), ("feature_squeezing", {"bit_depth": 3})])
def test_a_deterministic_defense_looks_robust_naively_and_loses_it_under_bpda(name, params):
    model, target, labels = _setup(name, **params)
    crafted, prob = _naive(target)
    naive = float((prob.argmax(1) == labels).mean())
    assert naive >= 0.9  # no gradient through the defense: the attack barely moves anything
    worst, adv_prob, record = adaptive_pass(PGD, EPS, 0, ConvergenceSpec(min_rounds=1, max_rounds=2), target, crafted, prob)
    adaptive = float((adv_prob.argmax(1) == labels).mean())
    assert record["naive_robust_accuracy"] == pytest.approx(naive) and record["bpda_passages"] > 0
    assert adaptive <= naive - 0.5, (naive, adaptive)  # most of it was masking
    assert np.abs(worst.images - target.images).max() <= EPS + 1e-6
    scored = predict_proba(model, worst.images, target.texts)  # the figure is the defended model's own
    assert float((scored.argmax(1) == labels).mean()) == pytest.approx(adaptive)


def test_eot_against_gaussian_noise_is_at_or_below_a_single_draw():
    model, target, labels = _setup("gaussian_augmentation", sigma=0.1)
    assert model.randomised
    crafted, prob = _naive(target)
    figures = {}
    for draws in (1, 8):
        _, adv_prob, record = adaptive_pass(PGD, EPS, 0, None, target, crafted, prob, draws=draws)
        assert record["eot_draws"] == draws
        figures[draws] = float((adv_prob.argmax(1) == labels).mean())
    assert figures[8] <= figures[1] + 2 / len(labels), figures


def test_the_canonicaliser_maps_synonyms_and_misspellings_before_tokenisation():
    defense = build_model_defense("canonicaliser", {"synonyms": {"bulky": "enlarged"}})
    assert defense.texts(["Heart is Bulky, unremarkable lungs", "cardiomegally"]) == \
        ["heart is enlarged, normal lungs", "cardiomegaly"]


def test_a_misspelt_defense_or_parameter_is_refused_before_any_work(tmp_path):
    from benchmark.spec.suite import load_suite
    from mmrb.core.errors import SuiteError

    base = ("name: d\ndataset: {name: indiana_synth, n: 40, seed: 0}\nattacks: [{name: none}]\nseeds: [0]\n"
            "models:\n  - vision_only\n")
    suite = tmp_path / "d.yaml"
    suite.write_text(base + "  - {name: vision_only, defense: {name: jpeg, params: {qualty: 50}}}\n")
    with pytest.raises(SuiteError, match=r"(?s)d.yaml.*models.1 \(vision_only\).defense.*params.qualty: defense jpeg has no parameter "
                                         r"'qualty'; it takes: quality"):
        load_suite(suite)
    suite.write_text(base + "  - {name: vision_only, defense: jepg}\n")
    with pytest.raises(SuiteError, match=r"(?s)models.1 \(vision_only\).defense.*unknown defense 'jepg'.*jpeg"):
        load_suite(suite)
    suite.write_text(base + "  - {name: vision_only, defense: {name: jpeg, params: {quality: 30}}}\n")
    loaded = load_suite(suite)
    assert [m.label for m in loaded.models] == ["vision_only", "vision_only+jpeg[quality=30]"]
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("defense, field, message", [
    ("{name: jpeg, params: {quality: 150}}", "quality", r"150 is outside jpeg's range \[1, 95\] \(whole numbers\)"),
    ("{name: gaussian_augmentation, params: {sigma: -1}}", "sigma", r"-1 is outside gaussian_augmentation's range \[0, inf\)"),
    ("{name: pgd_at, params: {epsilon: -0.1}}", "epsilon", r"-0.1 is outside pgd_at's range \(0, 1\]"),
    ("{name: spatial_smoothing, params: {window_size: 2.5}}", "window_size", r"2.5 is not a whole number in"),
    ("{name: feature_squeezing, params: {bit_depth: four}}", "bit_depth", r"'four' is not a number in"),
    ("{name: trades, params: {part: head}}", "part", r"'head' is not one of trades's values for part: 'all', 'image'"),
])
def test_a_value_outside_its_defenses_range_is_refused_before_any_work(tmp_path, defense, field, message):
    """Each defense declares its parameters' ranges in its own file (TRAINING for the training defenses); the suite
    check refuses a value outside, naming the field and the range, before any work."""
    from benchmark.spec.suite import load_suite
    from mmrb.core.errors import SuiteError

    suite = tmp_path / "r.yaml"
    suite.write_text("name: r\ndataset: {name: indiana_synth, n: 40, seed: 0}\nattacks: [{name: none}]\nseeds: [0]\n"
                     f"models:\n  - vision_only\n  - {{name: vision_only, defense: {defense}}}\n")
    with pytest.raises(SuiteError, match=rf"(?s)r.yaml.*models.1 \(vision_only\).defense.*params.{field}: {message}"):
        load_suite(suite)
    assert not (tmp_path / "cache").exists()


def test_the_defended_model_keeps_the_contract_and_its_own_key():
    from benchmark.run.keys import Keys
    from benchmark.spec.suite import suite_from_data

    data = {"name": "k", "dataset": {"name": "indiana_synth", "n": 40, "seed": 0}, "attacks": [{"name": "none"}],
            "seeds": [0], "models": ["vision_only", {"name": "vision_only", "defense": "jpeg"},
                                     {"name": "vision_only", "defense": {"name": "jpeg", "params": {"quality": 20}}}]}
    suite = suite_from_data(data)
    keys = Keys(suite, "fingerprint", ["a", "b"])
    assert len({keys.model(m, 0) for m in suite.models}) == 3  # the defense and its parameters are in the key
    model = DefendedModel(LinearImageModel(SIDE), build_model_defense("jpeg", {}))
    assert model.modalities == {"image"} and model.config["defense"] == "jpeg[quality=50]"  # the effective setting
    x = torch.rand(2, 2, SIDE, SIDE, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x, None).sum(), x)
    assert (grad == 0).all()  # naive: the gradient stops at the defense


@pytest.mark.e2e
@pytest.mark.slow
def test_pgd_at_raises_the_converged_robust_accuracy_of_a_small_fusion_model(tmp_path):
    """Early fusion on 300 generated studies (32 px), three seeds: PGD-AT of the image branch (3 epochs at 8/255)
    against mmrb's PGD at 8/255 with the convergence check: the paired difference of the per-(seed, sample) outcomes
    (defended minus undefended; mmrb.core.paired's two-level bootstrap over seeds and samples) must have its 95 %
    interval above 0. (A t-interval over 3 seed means does not: gains of +22, +43 and +73 points, measured on AVX2,
    leave it at 46 ± 64.) The fine-tuned model is cached under its own key."""
    import pandas as pd

    from benchmark.run.runner import run_suite
    from benchmark.spec.suite import suite_from_data
    from mmrb.core.paired import paired_test

    at = {"name": "pgd_at", "params": {"epsilon": 0.0313725, "steps": 5, "epochs": 3, "lr": 0.001}}
    suite = suite_from_data({
        "name": "at", "dataset": {"name": "indiana_synth", "n": 300, "seed": 0, "image_size": 32},
        "models": ["early_fusion", {"name": "early_fusion", "defense": at}],
        "attacks": [{"name": "none"}, {"source": "mmrb", "name": "pgd", "label": "PGD", "params": {"steps": 10}}],
        "epsilons": [0.0313725], "seeds": [0, 1, 2],
        "convergence_check": {"step_factor": 2, "restarts": 1, "min_rounds": 1, "max_rounds": 2}})
    run_suite(suite, tmp_path / "out", tmp_path / "cache", progress=False)
    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    assert frame["error"].isna().all()
    pgd = frame[frame["attack"] == "PGD"].pivot(index="seed", columns="model", values="robust_accuracy")
    defended = [c for c in pgd.columns if c.startswith("early_fusion+pgd_at[")]
    assert len(defended) == 1
    # the fine-tuned model's PGD cells took the adaptive pass: 200 steps x 5 restarts on the survivors and the
    # transfer from the same-seed base model
    rows = frame[(frame["attack"] == "PGD") & (frame["model"] == defended[0])]
    assert (rows["adaptive_steps"] >= 200).all() and rows["twin_transfer_broken"].notna().all()
    samples = pd.read_csv(tmp_path / "out" / "samples.csv")
    samples = samples[samples["attack"] == "PGD"].assign(correct=lambda f: f["adversarial_prediction"] == f["label"])
    outcomes = {name: samples[samples["model"] == name].pivot(index="seed", columns="sample_id", values="correct")
                for name in ("early_fusion", defended[0])}
    for name, table in outcomes.items():  # the per-sample evidence is the published figure's
        assert np.allclose(table.mean(1).to_numpy(), pgd[name].to_numpy()), name
    gain = paired_test(outcomes[defended[0]].to_numpy(), outcomes["early_fusion"].to_numpy())
    # the gain is large on every seed and per sample decisive (McNemar clustered by sample); with 3 seeds that
    # disagree (+60, +28, +53 points) the bootstrap's seed part, widened for 3 seeds, reaches below 0 (−14 measured)
    assert gain.difference > 0.25 and gain.p_clustered < 0.001, (pgd, gain)
    assert len(list((tmp_path / "cache" / "models").glob("early_fusion-pgd_at-*"))) == 3  # one per seed, cached


def test_a_model_card_carries_a_defense_and_a_misspelt_one_is_refused(tmp_path):
    from benchmark.submission.card import SubmissionError, load_card

    card = ("name: mine\nauthors: [A]\nentry_point: early_fusion\ntrained_by: mmrb\ntokenizer: tiny_bert\n"
            "data: generated\nthreat_model: none\n")
    path = tmp_path / "card.yaml"
    path.write_text(card + "defense: {name: jpeg, params: {quality: 40}}\n")
    assert load_card(path).defense.label == "jpeg[quality=40]"
    path.write_text(card + "defense: {name: jpeg, params: {qualty: 40}}\n")
    with pytest.raises(SubmissionError, match=r"(?s)card.yaml.*defense.*qualty"):
        load_card(path)


def test_the_defense_table_pairs_each_defended_model_with_its_undefended_one_by_seed():
    from benchmark.evaluation.defense_table import defense_table

    rows = []
    for seed, (plain, adaptive, naive) in enumerate([(0.30, 0.32, 0.90), (0.40, 0.41, 0.95), (0.35, 0.38, 0.92)]):
        common = dict(attack="PGD", epsilon=0.03, seed=seed, transfer_source="", error="")
        rows.append(dict(model="early_fusion", defense="", robust_accuracy=plain, **common))
        rows.append(dict(model="early_fusion+jpeg", defense="jpeg", robust_accuracy=adaptive,
                         naive_robust_accuracy=naive, **common))
    table = defense_table(rows)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["model"], row["defense"]) == ("early_fusion", "jpeg")
    assert row["robust (adaptive)"].startswith("37.0") and row["naive"].startswith("92.3")
    assert row["vs undefended (pt)"].startswith("+2.0")  # paired by seed: +2, +1, +3
    assert defense_table([r for r in rows if not r["defense"]]).empty


INVERT = '''"""A toy input defense: the image inverted (1 - x)."""
from __future__ import annotations

from defenses.input.base import InputDefense
from defenses.registry import input_defense


@input_defense("invert", params=("strength",))
class Invert(InputDefense):
    """1 - x, blended with x by `strength`."""

    def __init__(self, seed: int = 0, strength: float = 1.0) -> None:
        super().__init__(seed, strength=strength)
        self.strength = float(strength)

    def images(self, x):
        return x + self.strength * (1 - 2 * x)
'''


def test_a_new_input_defense_is_one_file_and_listing_them_costs_no_torch(tmp_path):
    """One file dropped in defenses/input/ (of a copy of the packages) is listed, validated on a suite model and
    built, with no other edit; listing every input defense imports neither torch nor ART."""
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for package in ("defenses", "mmrb", "benchmark"):
        shutil.copytree(root / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "defenses" / "input" / "invert.py").write_text(INVERT)
    code = ("import json, sys\n"
            "import defenses.registry as r\n"
            "from benchmark.spec.defense import InputDefenseSpec\n"
            "names = sorted(r.model_defenses())\n"
            "light = not any(m in sys.modules for m in ('torch', 'art'))\n"
            "InputDefenseSpec(name='invert', params={'strength': 0.5})\n"
            "try:\n    InputDefenseSpec(name='invert', params={'strenght': 0.5}); refused = ''\n"
            "except ValueError as exc:\n    refused = str(exc)\n"
            "import torch\n"
            "out = r.build_model_defense('invert', {'strength': 1.0}).images(torch.zeros(1, 1, 2, 2))\n"
            "print(json.dumps({'names': names, 'light': light, 'refused': refused, 'file': r.__file__,"
            " 'out': out.flatten().tolist()}))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["file"].startswith(str(tmp_path))  # the copy, not the installed tree, was imported
    assert "invert" in result["names"] and {"jpeg", "spatial_smoothing", "pgd_at"} <= set(result["names"])
    assert result["light"], "listing the input defenses imported torch or ART"
    assert "params.strenght" in result["refused"] and "strength" in result["refused"]
    assert result["out"] == [1.0, 1.0, 1.0, 1.0]


class _Opaque:
    """A planted defense whose forward is the identity but whose gradient is always zero, even under BPDA (it does
    not go through `defenses.input.base.through`): no stand-in sees through it, only a transfer can."""

    name, kind, modality, randomised, params = "opaque", "input", "image", False, {}

    def images(self, x):
        return x.detach() + 0 * x

    def texts(self, reports):
        return list(reports)

    def describe(self):
        return self.name


def test_the_adaptive_pass_runs_at_full_strength_and_adds_the_undefended_twins_transfer():
    """Through an opaque defense PGD finds no gradient, naively or through BPDA, however long it runs (200 steps × 5
    restarts at least, on the survivors); the same PGD crafted on the undefended twin and scored through the defense
    breaks the samples, and the cell keeps the worst of the parts."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0.2, 0.8, size=(40, 2, SIDE, SIDE)).astype(np.float32)
    texts = ["x"] * 40
    model = DefendedModel(LinearImageModel(SIDE), _Opaque()).eval()
    labels = predict_proba(model, images, texts).argmax(1)
    target = Target(model, images, texts, labels, ImageView(model, images, texts))
    crafted, prob = _naive(target)
    assert float((prob.argmax(1) == labels).mean()) == 1.0  # the gradient is zero: nothing moves
    worst, adv_prob, record = adaptive_pass(PGD, EPS, 0, ConvergenceSpec(min_rounds=1, max_rounds=1), target, crafted,
                                            prob, twin=lambda: model.model)
    assert record["adaptive_steps"] >= 200 and record["adaptive_restarts"] >= 5
    assert record["twin_broken"] >= 30
    assert float((adv_prob.argmax(1) == labels).mean()) <= 0.25
    assert np.abs(worst.images - images).max() <= EPS + 1e-6


class _MaskedByTraining(LinearImageModel):
    """What a training defense could leave: the base model's weights behind a forward whose input gradient is zero
    (no input defense, no rounding step: BPDA has nothing to pass through)."""

    def forward(self, images, text):
        return super().forward(images.detach() + 0 * images, text)


def test_a_training_defense_is_attacked_at_full_strength_and_by_transfer_from_its_same_seed_base_model():
    """A model fine-tuned by a training defense has no stand-in to go through: the adaptive pass runs the attack at
    full strength on the survivors and transfers the attack crafted on the same-seed base model (`twin`, loaded only
    when needed), which breaks what a masked gradient hid."""
    rng = np.random.default_rng(1)
    images = rng.uniform(0.2, 0.8, size=(40, 2, SIDE, SIDE)).astype(np.float32)
    texts = ["x"] * 40
    model, base = _MaskedByTraining(SIDE).eval(), LinearImageModel(SIDE).eval()
    labels = predict_proba(model, images, texts).argmax(1)
    target = Target(model, images, texts, labels, ImageView(model, images, texts))
    crafted, prob = _naive(target)
    loads = []
    _, adv_prob, record = adaptive_pass(PGD, EPS, 0, None, target, crafted, prob,
                                        twin=lambda: loads.append(1) or base)
    assert loads == [1] and record["stand_in"] == "" and record["eot_draws"] == 1
    assert record["adaptive_steps"] >= 200 and record["twin_broken"] >= 30
    assert float((adv_prob.argmax(1) == labels).mean()) <= 0.25


class _Noisy(LinearImageModel):
    """A randomised model: fresh Gaussian noise on its input at every forward pass."""

    def forward(self, images, text):
        return super().forward(images + 0.3 * torch.randn_like(images), text)


def test_a_randomised_model_gets_the_adaptive_pass_with_eot_and_is_scored_by_the_majority():
    """PGD as declared follows one draw's gradient; the adaptive pass attacks the survivors with EOT over 20 draws
    at full strength (200 steps x 5 restarts at least) and the cell is scored by the majority of 21 draws; a
    submitted model has no undefended twin to transfer from."""
    from benchmark.run.adaptive import needs_adaptive
    from defenses.adaptive import mark_randomised

    rng = np.random.default_rng(2)
    images = rng.uniform(0.2, 0.8, size=(40, 2, SIDE, SIDE)).astype(np.float32)
    texts = ["x"] * 40
    model = _Noisy(SIDE).eval()
    assert mark_randomised(model, images, texts) and needs_adaptive(model)
    labels = predict_proba(model, images, texts).argmax(1)
    target = Target(model, images, texts, labels, ImageView(model, images, texts))
    crafted, prob = _naive(target)
    _, adv_prob, record = adaptive_pass(PGD, EPS, 0, None, target, crafted, prob)
    assert record["eot_draws"] == 20 and record["adaptive_steps"] >= 200 and record["twin_broken"] is None
    assert set(np.unique(adv_prob * 21).round(6)) <= set(range(22))  # vote shares: the majority of 21 draws
    assert (adv_prob.argmax(1) == labels).mean() <= (prob.argmax(1) == labels).mean()


def test_a_gaussian_noise_cell_is_scored_by_the_majority_of_its_draws():
    """A model behind Gaussian noise is randomised by declaration: every probability mmrb scores is the share of 21
    draws voting each class, not one draw's softmax."""
    rng = np.random.default_rng(3)
    images = rng.uniform(0.2, 0.8, size=(30, 2, SIDE, SIDE)).astype(np.float32)
    model = DefendedModel(LinearImageModel(SIDE), build_model_defense("gaussian_augmentation", {"sigma": 0.2}, 0))
    assert model.randomised
    votes = predict_proba(model, images, ["x"] * 30)
    assert np.allclose(votes.sum(1), 1) and set(np.unique(votes * 21).round(6)) <= set(range(22))
    assert not set(np.unique(predict_proba(model.model, images, ["x"] * 30) * 21).round(6)) <= set(range(22))

"""The modality-reliance index: the share of (seed, sample) pairs only the joint attack breaks, with its two-level
bootstrap interval, from per-sample evidence (samples.csv) — planted evidence for the arithmetic, and a real image-only
model under real attacks for the zero."""
import numpy as np
import pandas as pd
import pytest
import torch

import mmrb
from benchmark.evaluation.evidence import read_samples
from benchmark.evaluation.reliance import reliance_table
from benchmark.evaluation.tables import reliance_markdown

EPS = 0.03


def _evidence(model, broken: dict[tuple[str, str], np.ndarray], right: np.ndarray, eps=EPS) -> pd.DataFrame:
    """Planted samples.csv rows: `broken[(attack, modality)]` a (seeds, samples) bool array, `right` the clean
    decisions that were right."""
    seeds, n = right.shape
    rows = []
    for (attack, modality), matrix in broken.items():
        for s in range(seeds):
            for i in range(n):
                rows.append({"sample_id": f"s{i:03d}", "model": model, "seed": s, "attack": attack, "modality": modality,
                             "epsilon": np.nan if modality in ("none", "text") else eps, "label": 1,
                             "clean_prediction": int(right[s, i]), "broken": bool(matrix[s, i] and right[s, i])})
    return pd.DataFrame(rows)


def _names(pairs):
    return [{"model": "m", "attack": a, "attack_name": n} for a, n in pairs]


def test_a_planted_and_gate_model_is_clearly_positive_and_its_interval_stays_in_0_100():
    # the decision falls only when both modalities are attacked: neither single attack breaks anything, the joint 40 %
    rng = np.random.default_rng(0)
    right = np.ones((3, 50), dtype=bool)
    joint = rng.random((3, 50)) < 0.4
    none = np.zeros((3, 50), dtype=bool)
    frame = _evidence("m", {("clean", "none"): none, ("PGD", "image"): none, ("swap", "text"): none,
                            ("PGD+swap", "joint"): joint}, right)
    row = reliance_table(frame, _names([("PGD", "pgd"), ("swap", "synonym_swap"), ("PGD+swap", "joint")])).iloc[0]
    assert row["reliance"] == pytest.approx(joint.mean())
    assert 0.1 < row["low"] < row["reliance"] < row["high"] < 0.65 and row["said"] == ""  # 3 seeds: the seed part widened
    assert row["only_joint"] == joint.sum() and row["pairs"] == 150 and row["seeds"] == 3 and row["missed"] == 0


def test_samples_a_single_attack_breaks_do_not_count_and_corruptions_are_not_text_attacks():
    right = np.ones((2, 20), dtype=bool)
    image = np.zeros((2, 20), dtype=bool)
    image[:, :5] = True
    text = np.zeros((2, 20), dtype=bool)
    text[:, 5:10] = True
    dictation = np.zeros((2, 20), dtype=bool)
    dictation[:, 10:15] = True  # a report corruption breaks these: not a text attack, they stay the joint's alone
    joint = np.zeros((2, 20), dtype=bool)
    joint[:, :15] = True
    frame = _evidence("m", {("PGD", "image"): image, ("swap", "text"): text, ("dictation-3", "text"): dictation,
                            ("PGD+swap", "joint"): joint}, right)
    names = _names([("PGD", "pgd"), ("swap", "synonym_swap"), ("dictation-3", "corruption"), ("PGD+swap", "joint")])
    row = reliance_table(frame, names).iloc[0]
    assert row["only_joint"] == 10 and row["reliance"] == pytest.approx(10 / 40)
    counted = reliance_table(frame, _names([("dictation-3", "synonym_swap")])).iloc[0]  # were it an attack
    assert counted["only_joint"] == 0


def test_saturated_cases_are_said_in_words_and_missing_cells_give_no_row():
    right = np.ones((3, 10), dtype=bool)
    right[:, 0] = False
    every = np.ones((3, 10), dtype=bool)
    frame = _evidence("m", {("PGD", "image"): every, ("swap", "text"): np.zeros((3, 10), bool),
                            ("PGD+swap", "joint"): every}, right)
    row = reliance_table(frame).iloc[0]
    assert row["reliance"] == 0 and row["said"].startswith("saturated")
    text = reliance_markdown(frame)
    assert "saturated" in text and "± 0.0" not in text and "0 of 30" in text
    half = np.zeros((3, 10), dtype=bool)
    half[:, :5] = True
    weak = _evidence("m", {("PGD", "image"): half, ("swap", "text"): np.zeros((3, 10), bool),
                           ("PGD+swap", "joint"): np.zeros((3, 10), bool)}, np.ones((3, 10), dtype=bool))
    row = reliance_table(weak).iloc[0]  # a joint attack weaker than its image part: said, and counted as missed
    assert row["said"].startswith("none of 30") and "misses 15" in row["said"] and row["missed"] == 15
    assert reliance_table(frame[frame["modality"] != "text"]).empty
    assert reliance_table(None).empty


class _ImageOnlyFusion(torch.nn.Module):
    """A multimodal model that reads the report and ignores it: the trained vision_only model behind early fusion's
    tokenizer."""

    family, modalities = "image_only_fusion", frozenset({"image", "text"})

    def __init__(self, vision, fusion) -> None:
        super().__init__()
        self.vision, self.tokenize = vision, fusion.tokenize
        self.config = {"name": "image_only_fusion"}

    def forward(self, images, text):
        return self.vision(images, None)


def test_a_model_that_uses_only_its_image_has_index_zero(trained, indiana_root, tmp_path):
    """The report is read and ignored: the joint attack's image part is the image attack itself, so nothing is
    broken by the joint attack alone (real PGD and synonym swap on tiny trained models)."""
    pgd = {"source": "art", "name": "ProjectedGradientDescent", "params": {"max_iter": 5}}
    swap = {"source": "mmrb", "name": "synonym_swap", "params": {"fraction": 0.2}}
    suite = {"name": "reliance_zero", "dataset": {"name": "indiana", "path": str(indiana_root), "image_size": 32},
             "models": ["m"], "seeds": [0], "limit": 40, "epsilons": [2 / 255],
             "attacks": [{"name": "none"}, {**pgd, "label": "PGD"}, {**swap, "modality": "text", "label": "swap"},
                         {"source": "mmrb", "name": "joint", "label": "PGD+swap", "modality": "joint",
                          "params": {"image": pgd, "text": swap}}]}
    model = _ImageOnlyFusion(trained("vision_only"), trained("early_fusion"))
    run = mmrb.evaluate(suite, {"m": model}, only_given=True, out=tmp_path / "out", cache=tmp_path / "cache")
    folder = run.record.results_path.parent
    samples = read_samples(folder)
    assert set(samples["modality"]) == {"none", "image", "text", "joint"}
    row = reliance_table(samples, run.frame).iloc[0]
    assert row["only_joint"] == 0 and row["reliance"] == 0 and row["said"]
    assert samples[(samples["attack"] == "PGD")]["broken"].any()  # the attacks did break samples
    assert "Modality reliance" in (folder / "accuracy.md").read_text()


def test_joint_attacks_are_compared_on_the_same_seeds_and_samples():
    from benchmark.evaluation.joint_pairs import joint_comparison

    right = np.ones((3, 40), dtype=bool)
    weak = np.zeros((3, 40), dtype=bool)
    weak[:, :4] = True
    strong = np.zeros((3, 40), dtype=bool)
    strong[:, :24] = True
    frame = _evidence("m", {("sequential", "joint"): weak, ("Co-Attack", "joint"): strong,
                            ("Sep-Attack", "joint"): weak}, right)
    frame["label"], frame["adversarial_prediction"] = 1, np.where(frame["broken"], 0, 1)
    table = joint_comparison(frame).set_index("attack")
    assert list(table.index) == ["Co-Attack", "Sep-Attack"] and (table["reference"] == "sequential").all()
    co = table.loc["Co-Attack"]
    assert co["difference"] == pytest.approx(-0.5) and co["high"] < 0 and co["verdict"].startswith("Co-Attack stronger")
    assert table.loc["Sep-Attack", "difference"] == 0 and table.loc["Sep-Attack", "verdict"].startswith("no difference")

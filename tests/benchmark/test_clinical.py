"""Clinical operating points, baselines, per-sample evidence and the corruption tables, from a tiny real run: the
threshold is set on clean held-out samples only (never the training or test samples) at the stated specificity."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.data import load_dataset
from benchmark.evaluation.clinical import CALIBRATION_FIRST_UID, calibration_split, operating_scores, threshold_at_specificity
from benchmark.spec.suite import load_suite
from mmrb.cli import main
from wrappers.training import LabelledSet, obtain_trained, predict_proba

SUITE = """
name: tiny_clinical
dataset: {name: indiana_synth, n: 120, seed: 1, image_size: 32}
models: [vision_only, text_only, early_fusion]
attacks:
  - {name: none}
  - {source: art, name: FastGradientMethod, label: FGSM}
  - {source: mmrb, name: corruption, label: contrast-5, params: {kind: contrast, severity: 5}}
  - {source: mmrb, name: corruption, label: blur-1, params: {kind: blur, severity: 1}}
  - {source: mmrb, name: corruption, modality: text, label: typos-5, params: {kind: typos, severity: 5}}
epsilons: [0.2]
operating_point: 0.9
corruption_baseline: vision_only
convergence_check: false
limit: 20
"""


def test_threshold_meets_the_specificity_on_its_own_samples():
    rng = np.random.default_rng(0)
    labels = rng.integers(2, size=400)
    p = np.clip(0.3 * labels + rng.random(400) * 0.7, 0, 1)
    for specificity in (0.8, 0.95):
        t = threshold_at_specificity(labels, p, specificity)
        achieved = (p[labels == 0] < t).mean()
        assert specificity <= achieved < specificity + 2 / (labels == 0).sum()
    scores = operating_scores(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.1, 0.2]), np.array([0.1, 0.8, 0.9, 0.2]), 0.5)
    assert scores["false_reassurance"] == 1 and scores["false_alarm"] == 1 and scores["robust_sensitivity"] == 0.5


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("clinical")
    (root / "tiny.yaml").write_text(SUITE)
    main(["run", str(root / "tiny.yaml"), "--out", str(root / "out"), "--cache", str(root / "cache"), "--leaderboard",
          str(root / "lb"), "--quiet"])
    return root


def test_the_threshold_comes_from_held_out_samples_only(run):
    suite = load_suite(run / "tiny.yaml")
    dataset = load_dataset(suite.dataset, run / "cache")
    held_out = calibration_split(suite.dataset, run / "cache", suite.dataset.image_size)
    assert not set(held_out.uids) & {s.uid for s in dataset.samples}  # never trained on, never scored
    assert min(int(u) for u in held_out.uids) >= CALIBRATION_FIRST_UID
    results = pd.read_csv(run / "out" / "results.csv")
    row = results[(results["model"] == "vision_only") & (results["attack"] == "none") & (results["seed"] == 0)].iloc[0]
    train, _ = dataset.split(suite.seed, suite.dataset.test_fraction)
    from benchmark.data import SplitArrays

    arrays = SplitArrays.from_samples(train, 32)
    fingerprint = f"{dataset.fingerprint()}-32px-split{suite.seed}-{suite.dataset.test_fraction}"
    model = obtain_trained("vision_only", {}, LabelledSet(arrays.images, arrays.texts, arrays.labels, fingerprint),
                           run / "cache", seed=0)
    p = predict_proba(model, held_out.images, held_out.texts)[:, 1]
    assert row["threshold"] == pytest.approx(threshold_at_specificity(held_out.labels, p, 0.9))
    assert results["robust_sensitivity"].notna().all() and (results["false_reassurance"] >= 0).all()


def test_evidence_and_tables_are_written(run):
    samples = pd.read_csv(run / "out" / "samples.csv", keep_default_na=False)
    assert {"sample_id", "model", "seed", "attack", "clean_prediction", "adversarial_prediction", "broken_by"} <= set(samples)
    assert len(samples[(samples["model"] == "early_fusion") & (samples["attack"] == "FGSM")]) == 20
    broken = samples[samples["broken"].astype(str) == "True"]
    assert all(a in b for a, b in zip(broken["attack"], broken["broken_by"]))
    clinical = (run / "out" / "clinical.md").read_text()
    for part in ("mCE vs vision_only", "contrast [image]", "typos [text]", "Operating point", "constant: always abnormal",
                 "Rank under image and report corruptions"):
        assert part in clinical


def test_the_run_folder_has_a_samples_browser(run):
    import json

    broken = json.loads((run / "out" / "broken.json").read_text())
    page = (run / "out" / "samples.html").read_text()
    assert broken and page.count('<figure class="sample"') == len(broken)
    images = sum(3 if b["images"].keys() == {"clean", "adversarial", "difference"} else 1 for b in broken)
    assert page.count("data:image/png;base64,") == images  # clean, attacked, difference (only clean: report attacks)


def test_an_unknown_corruption_baseline_is_refused_before_any_work(tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.replace("corruption_baseline: vision_only", "corruption_baseline: resnet_xl"))
    with pytest.raises(SystemExit) as stopped:
        main(["run", str(path), "--out", str(tmp_path / "out")])
    said = capsys.readouterr().err
    assert stopped.value.code != 0 and "corruption_baseline" in said and "resnet_xl" in said and "vision_only" in said
    assert str(path) in said and not (tmp_path / "out").exists()  # names the file; nothing was run or written

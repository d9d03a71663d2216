"""The corruption track: every kind is deterministic per seed, changes the image or report by its stated amount,
grows with severity, and runs through the registry on a trained model."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from benchmark.attacks import Target, craft
from benchmark.attacks.corruption import (
    ABBREVIATIONS,
    DICTATION,
    IMAGE_KINDS,
    REPORT_KINDS,
    SEVERITIES,
    image_corruption,
    report_corruptions,
)
from benchmark.attacks.registry import check
from benchmark.data.report_terms import is_protected
from benchmark.evaluation.metrics import class_accuracy
from wrappers.training import obtain_trained, predict_proba

GREY = np.full((40, 2, 32, 32), 0.5, dtype=np.float32)
RAMP = np.broadcast_to(np.linspace(0.2, 0.8, 32, dtype=np.float32), (6, 2, 32, 32)).copy()
REPORT = ("no acute disease. heart size and pulmonary vascularity appear within normal limits. there is no effusion "
          "or pneumothorax. the lungs are clear. left lower lobe atelectasis without focal consolidation.")


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_image_corruption_is_seeded_and_grows_with_severity(kind):
    first, again = image_corruption(RAMP, kind, 3, seed=0), image_corruption(RAMP, kind, 3, seed=0)
    assert np.array_equal(first, again) and first.dtype == RAMP.dtype
    assert first.min() >= 0 and first.max() <= 1
    change = [np.abs(image_corruption(RAMP, kind, s, seed=0) - RAMP).mean() for s in range(1, 6)]
    assert change[0] > 0 and change[-1] > change[0]
    if kind in ("gaussian_noise", "speckle_noise", "bias_field"):  # random: another seed, another corruption
        assert not np.array_equal(first, image_corruption(RAMP, kind, 3, seed=1))


@pytest.mark.parametrize("severity", range(1, 6))
def test_each_image_corruption_changes_the_image_by_its_stated_amount(severity):
    a = {kind: SEVERITIES[kind][severity - 1] for kind in IMAGE_KINDS}
    noise = image_corruption(GREY, "gaussian_noise", severity, 0) - GREY
    assert noise.std() == pytest.approx(a["gaussian_noise"], rel=0.05)
    speckle = image_corruption(GREY, "speckle_noise", severity, 0) - GREY
    assert speckle.std() == pytest.approx(0.5 * a["speckle_noise"], rel=0.05)
    assert np.allclose(image_corruption(RAMP, "blur", severity, 0),
                       gaussian_filter(RAMP, sigma=(0, 0, a["blur"], a["blur"])), atol=1e-6)
    contrast = image_corruption(RAMP, "contrast", severity, 0)
    assert contrast.std(axis=(2, 3)) == pytest.approx(a["contrast"] * RAMP.std(axis=(2, 3)), rel=1e-4)
    assert image_corruption(GREY, "brightness", severity, 0) - GREY == pytest.approx(a["brightness"], abs=1e-6)
    assert np.allclose(image_corruption(RAMP, "gamma", severity, 0), RAMP ** a["gamma"], atol=1e-6)
    block = int(a["pixelate"])
    pixelated = image_corruption(RAMP, "pixelate", severity, 0)[0, 0]
    assert np.all(pixelated[:, :block] == pixelated[:, :1])  # constant within a block
    field = image_corruption(GREY, "bias_field", severity, 0) / GREY
    assert np.abs(field - 1).max() == pytest.approx(a["bias_field"], rel=1e-3)
    jpeg = np.abs(image_corruption(RAMP, "jpeg", severity, 0) - RAMP).mean()
    assert jpeg > 0
    # the radiographic kinds and the other direction of the two-sided ones
    photons = a["quantum_noise"]  # Poisson: variance = mean / photons at intensity 0.5
    quantum = image_corruption(GREY, "quantum_noise", severity, 0) - GREY
    assert quantum.var() == pytest.approx(0.5 / photons, rel=0.1) and abs(quantum.mean()) < 0.01
    assert image_corruption(GREY, "brightness_down", severity, 0) - GREY == pytest.approx(-a["brightness_down"], abs=1e-6)
    up = image_corruption(RAMP, "contrast_up", severity, 0)
    assert (up.std(axis=(2, 3)) >= RAMP.std(axis=(2, 3)) * min(a["contrast_up"], 1.2)).all()  # clipped at 0 and 1
    assert np.allclose(image_corruption(RAMP, "gamma_down", severity, 0), RAMP ** (1 / a["gamma_down"]), atol=1e-6)
    dot = np.zeros((1, 1, 31, 31), dtype=np.float32)
    dot[0, 0, 15, 15] = 1.0
    streak = image_corruption(dot, "motion_blur", severity, 0)[0, 0]
    assert streak.sum() == pytest.approx(1.0, rel=1e-4) and (streak > 0).sum() >= a["motion_blur"] // 2 + 1
    bar = np.zeros((1, 1, 33, 33), dtype=np.float32)
    bar[0, 0, 16, 4:29] = 1.0  # a horizontal line rotated by ±a degrees: its end moves by 12 px · tan(a)
    turned = image_corruption(bar, "rotation", severity, 0)[0, 0]
    rows = np.flatnonzero(turned[:, 28] > 0.2)
    assert len(rows) and abs(rows.mean() - 16) == pytest.approx(12 * np.tan(np.radians(a["rotation"])), abs=1.0)


def test_two_sided_kinds_go_both_ways():
    from benchmark.attacks.corruption import TWO_SIDED

    for kind, other in TWO_SIDED.items():
        one, two = image_corruption(RAMP, kind, 3, 0) - RAMP, image_corruption(RAMP, other, 3, 0) - RAMP
        if kind == "contrast":  # narrower and wider around the mean: the deviation shrinks, then grows
            assert np.abs(RAMP + one - RAMP.mean()).mean() < np.abs(RAMP - RAMP.mean()).mean() < \
                np.abs(RAMP + two - RAMP.mean()).mean()
        else:  # darker and brighter
            assert np.sign(one.mean()) == -np.sign(two.mean()) != 0


@pytest.mark.parametrize("kind", REPORT_KINDS)
def test_report_corruption_is_seeded_and_grows_with_severity(kind):
    texts = [REPORT] * 8
    assert report_corruptions(texts, kind, 3, 0) == report_corruptions(texts, kind, 3, 0)
    assert report_corruptions(texts, kind, 3, 0) != texts
    assert report_corruptions(texts, kind, 3, 0) != report_corruptions(texts, kind, 3, 1)  # another seed, another draw
    changed = [sum(len(set(t.split()) ^ set(REPORT.split())) for t in report_corruptions(texts, kind, s, 0))
               for s in (1, 5)]
    assert changed[1] > changed[0]


@pytest.mark.parametrize("severity", range(1, 6))
def test_each_report_corruption_changes_the_report_by_its_stated_amount(severity):
    words = REPORT.split()
    typos = report_corruptions([REPORT], "typos", severity, 0)[0].split()
    editable = [w for w in words if len(w) >= 4 and len(set(w)) > 1 and not is_protected(w)]  # never a protected word
    assert sum(a != b for a, b in zip(words, typos)) == min(round(SEVERITIES["typos"][severity - 1] * len(words)),
                                                            len(editable))
    assert [w for w in typos if is_protected(w)] == [w for w in words if is_protected(w)]
    sentences = REPORT.count(". ") + 1
    dropped = report_corruptions([REPORT], "dropped_sections", severity, 0)[0]
    kept = dropped.count(". ") + 1
    assert sentences - kept == min(round(SEVERITIES["dropped_sections"][severity - 1] * sentences), sentences - 1)
    abbreviated = report_corruptions([REPORT], "abbreviations", 5, 0)[0]
    assert not any(f" {term} " in f" {abbreviated} " for term in ABBREVIATIONS)  # severity 5: every term
    dictated = report_corruptions([REPORT], "dictation", 5, 0)[0]
    # every confusion of a word that is not protected; "no" -> "know", "effusion" -> "a fusion" are not made
    assert "a cute" in dictated and "vocal" in dictated and "know" not in dictated.split() and set(DICTATION)
    assert [w for w in dictated.split() if is_protected(w)] == [w for w in REPORT.split() if is_protected(w)]


def test_the_registry_refuses_unknown_kinds_and_severities():
    assert check("mmrb", "corruption", {"kind": "fog", "severity": 3})[0][0] == "params.kind"
    assert check("mmrb", "corruption", {"kind": "blur", "severity": 6})[0][0] == "params.severity"
    assert check("mmrb", "corruption", {"kind": "blur", "severity": 2}) == []


def test_corruptions_lower_a_trained_model_more_at_higher_severity(train_set, cache_dir, test_split):
    """Contrast at severity 1 and 5 on the image model of three training seeds, in balanced accuracy (a model that
    a heavy corruption pushes to one class keeps the class balance as its accuracy: 66 % here, above what a mild
    one leaves). Per seed severity 5 costs at least 10 points; the seed mean falls from severity 1 to 5. Measured
    (seeds 0-2, AVX2 / torch's default kernels): severity 5 costs 15-20 points; severity 1 - 5: +13 / +9 points on
    the seed mean, from -1 to +21 per seed (one seed's severity 1 already leaves chance)."""
    def balanced(model, images) -> float:
        predicted = predict_proba(model, images, test_split.texts).argmax(1)
        return float(np.mean([class_accuracy(test_split.labels, predicted, k) for k in (0, 1)]))

    falls = []
    for seed in (0, 1, 2):
        model = obtain_trained("vision_only", {}, train_set, cache_dir, seed=seed)
        target = Target(model, test_split.images, test_split.texts, test_split.labels)
        crafted = {severity: craft("mmrb", "corruption", {"kind": "contrast", "severity": severity}, target, None, 0)
                   for severity in (1, 5)}
        distance = {k: float(np.abs(c.images - test_split.images).mean()) for k, c in crafted.items()}
        assert 0 < distance[1] < distance[5]
        clean, mild, severe = (balanced(model, images) for images in (test_split.images, crafted[1].images,
                                                                          crafted[5].images))
        assert severe < clean - 0.1, (seed, clean, severe)
        falls.append(mild - severe)
    assert np.mean(falls) > 0, falls

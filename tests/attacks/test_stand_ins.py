"""The best gradient each input defense allows (defenses/input/<name>.py: `gradient`, `stand_in`): the exact median
filter has ART's forward and a real gradient, differentiable JPEG follows ART's JPEG closely, the adaptive pass
differentiates the stand-in (BPDA: the real forward, the stand-in's backward) and every defended cell names it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.attacks import Target, craft
from benchmark.run.adaptive import adaptive_pass
from benchmark.spec.suite import AttackSpec, ConvergenceSpec
from defenses.adaptive import Adapted
from defenses.defended import DefendedModel
from defenses.input.base import GRADIENTS
from defenses.registry import build_model_defense, model_defenses
from tests.attacks.test_probes import LinearImageModel
from wrappers.estimators import ImageView
from wrappers.training import predict_proba

SIDE = 16
PGD = AttackSpec(source="art", name="ProjectedGradientDescent", label="PGD", params={"max_iter": 10})


def test_every_input_defense_declares_its_gradient_in_its_own_file():
    declared = {name: info.gradient for name, info in model_defenses().items() if info.kind == "input"}
    assert {name: declared[name] for name in ("spatial_smoothing", "jpeg", "feature_squeezing", "gaussian_augmentation",
                                              "total_var_min", "canonicaliser")} == {
        "spatial_smoothing": "exact", "jpeg": "approximation", "feature_squeezing": "straight-through",
        "gaussian_augmentation": "exact", "total_var_min": "approximation", "canonicaliser": "none"}
    assert set(declared.values()) <= set(GRADIENTS)
    labels = {name: build_model_defense(name, {}).stand_in_label() for name in ("spatial_smoothing", "jpeg",
                                                                                 "feature_squeezing", "canonicaliser")}
    assert labels == {"spatial_smoothing": "median filter (exact)", "jpeg": "kornia differentiable JPEG (approximation)",
                      "feature_squeezing": "identity (straight-through)", "canonicaliser": "none"}


@pytest.mark.parametrize("window", [3, 5, 2, 4])
def test_the_median_stand_in_is_art_spatial_smoothing_exactly_and_has_a_gradient(window):
    """Random images with many ties (six grey levels) and shapes whose borders the window overhangs (a 2×3 view
    under a 5×5 window): the torch median equals ART's SpatialSmoothing bit for bit, and its gradient is non-zero."""
    defense = build_model_defense("spatial_smoothing", {"window_size": window})
    rng = np.random.default_rng(window)
    for shape in [(4, 2, 16, 16), (3, 1, 5, 7), (2, 2, 2, 3)]:
        for images in (rng.integers(0, 6, size=shape) / 5, rng.uniform(0, 1, size=shape)):
            x = torch.tensor(images, dtype=torch.float32)
            assert torch.equal(defense.stand_in(x), defense.images(x)), (window, shape)
    x = torch.tensor(rng.uniform(0, 1, size=(2, 2, SIDE, SIDE)), dtype=torch.float32, requires_grad=True)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad((defense.stand_in(x) * weights).sum(), x)
    assert grad.abs().sum() > 0 and (grad != 0).float().mean() > 0.3  # each output's gradient goes to its median


def test_the_jpeg_stand_in_follows_art_jpeg_closely_and_has_its_own_gradient():
    """Measured (mean |stand-in − ART| in 1/255, against |identity − ART|): uniform noise on 16-px views (the worst
    case for JPEG) q30 3.6 vs 22.2, q50 2.8 vs 15.0, q75 2.7 vs 7.8; 8×8 blocks with noise on 32-px views
    0.8 / 0.6 / 1.0 vs 5.8 / 5.4 / 4.8. Tolerance: mean ≤ 4/255 and at most half the identity's error."""
    rng = np.random.default_rng(0)
    noise = rng.uniform(0.2, 0.8, size=(8, 2, 16, 16))
    blocks = np.clip(np.kron(rng.uniform(0, 1, size=(8, 2, 4, 4)), np.ones((8, 8))) + rng.normal(0, 0.03, (8, 2, 32, 32)),
                     0, 1)
    for quality in (30, 50, 75):
        defense = build_model_defense("jpeg", {"quality": quality})
        for images in (noise, blocks):
            x = torch.tensor(images, dtype=torch.float32)
            real = defense.images(x)
            error, identity = (defense.stand_in(x) - real).abs().mean(), (x - real).abs().mean()
            assert error <= 4 / 255 and error <= identity / 2, (quality, 255 * error, 255 * identity)
    x = torch.tensor(noise[:2], dtype=torch.float32, requires_grad=True)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad((defense.stand_in(x) * weights).sum(), x)
    assert grad.abs().sum() > 0 and not torch.allclose(grad, weights, atol=1e-3)  # not the identity's gradient


def _xray_views(size: int, n: int = 4) -> torch.Tensor:
    from benchmark.data.synth import _study

    views = [[np.asarray(view, dtype=np.float32) for view in _study(0, uid, size)[1:3]] for uid in range(n)]
    views = np.asarray(views, dtype=np.float32)
    return torch.tensor(views / 255 if views.max() > 1 else views)


def test_total_variation_minimises_over_both_axes_of_each_view():
    """ART's TotalVarMin takes (n, H, W, channels): each view goes in as one grey channel. With every pixel kept
    (prob 1: no random mask) the objective is symmetric in rows and columns, so transposing the view transposes the
    result (a view passed channels-first would be solved column by column, in one dimension)."""
    defense = build_model_defense("total_var_min", {"prob": 1.0, "lamb": 0.5})
    x = _xray_views(32, 2)
    forward, transposed = defense.images(x), defense.images(x.transpose(-2, -1)).transpose(-2, -1)
    assert torch.allclose(forward, transposed, atol=1e-4) and (forward - x).abs().mean() > 1 / 255


@pytest.mark.parametrize("size", [32, 64])
def test_the_tvm_stand_in_follows_art_closely_and_has_its_own_gradient(size):
    """The unrolled torch solver of the same objective against ART's L-BFGS-B (default prob 0.3, λ 0.5, 10
    iterations) on generated chest X-ray views: measured mean |stand-in − ART| 4.7 / 3.6 (in 1/255, 32 / 64 px)
    against the identity's 22.6 / 13.1; tolerance: at most half the identity's error."""
    defense = build_model_defense("total_var_min", {}, 0)
    x = _xray_views(size)
    real = defense.images(x)
    error, identity = (defense.stand_in(x) - real).abs().mean(), (x - real).abs().mean()
    assert error <= identity / 2, (255 * error, 255 * identity)
    x = x[:2].clone().requires_grad_(True)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad((defense.stand_in(x) * weights).sum(), x)
    assert grad.abs().sum() > 0 and not torch.allclose(grad, weights, atol=1e-3)  # not the identity's gradient


@pytest.mark.parametrize("name, params", [("spatial_smoothing", {"window_size": 3}), ("jpeg", {"quality": 50})])
def test_bpda_keeps_the_real_forward_and_takes_the_stand_ins_gradient(name, params):
    """Under the adaptive wrapper the defended model's output is the real defense's, and its input gradient is the
    stand-in's (BPDA's own rounding pass-through leaves the stand-in's rounding steps alone)."""
    defense = build_model_defense(name, params)
    linear = LinearImageModel(SIDE)
    model = DefendedModel(linear, defense).eval()
    x = torch.tensor(np.random.default_rng(1).uniform(0.2, 0.8, size=(3, 2, SIDE, SIDE)), dtype=torch.float32)
    adapted = Adapted(model, 1, bpda=True)
    xa = x.clone().requires_grad_(True)
    out = adapted(xa, None)
    assert torch.equal(out.detach(), model(x, None))  # the value is the real defense's
    (grad,) = torch.autograd.grad(out[:, 1].sum(), xa)
    xs = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(linear(defense.stand_in(xs), None)[:, 1].sum(), xs)
    assert torch.allclose(grad, expected, atol=1e-6) and adapted.seen[name] == 1


def _smoothed_target(window: int = 3):
    """A linear model on 2×2-block-averaged views behind 3×3 median smoothing, every sample correct when clean."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0.2, 0.8, size=(40, 2, SIDE, SIDE)).astype(np.float32)
    texts = ["x"] * 40
    blocks = LinearImageModel(SIDE, transform=lambda v: F.interpolate(F.avg_pool2d(v, 2), scale_factor=2))
    defense = build_model_defense("spatial_smoothing", {"window_size": window}, seed=0)
    model = DefendedModel(blocks, defense).eval()
    labels = predict_proba(model, images, texts).argmax(1)
    return defense, Target(model, images, texts, labels, ImageView(model, images, texts)), labels


def test_pgd_through_the_exact_median_breaks_what_identity_bpda_leaves_standing():
    """ART PGD-10 at ε 0.1, escalated once, on 40 samples of a smoothing-defended linear model (measured: naive
    100.0 %, identity-BPDA 55.0 %, through the exact median 0.0 %)."""
    defense, target, labels = _smoothed_target()
    crafted = craft(PGD.source, PGD.name, PGD.params, target, 0.1, 0)
    prob = predict_proba(target.model, crafted.images, target.texts)
    naive = float((prob.argmax(1) == labels).mean())
    figures = {}
    for which in ("identity", "median"):
        if which == "identity":
            defense.stand_in = lambda x: x  # today's BPDA
        else:
            del defense.stand_in
        _, adv_prob, record = adaptive_pass(PGD, 0.1, 0, ConvergenceSpec(min_rounds=1, max_rounds=2), target, crafted,
                                            prob)
        figures[which] = float((adv_prob.argmax(1) == labels).mean())
    assert record["stand_in"] == "median filter (exact)"
    assert figures["median"] <= figures["identity"] + 1 / 40 and figures["identity"] < naive, (naive, figures)
    assert figures["median"] <= naive - 0.5, (naive, figures)


def test_a_defended_cell_of_a_run_records_its_stand_in(tmp_path):
    import mmrb

    suite = {"name": "stand_in", "dataset": {"name": "indiana_synth", "n": 60, "seed": 0, "image_size": 16},
             "models": ["vision_only", {"name": "vision_only", "defense": {"name": "spatial_smoothing"}}],
             "attacks": [{"name": "none"}, {"source": "art", "name": "ProjectedGradientDescent", "label": "PGD",
                                            "params": {"max_iter": 3}}],
             "epsilons": [0.1], "seeds": [0], "limit": 12, "convergence_check": False}
    frame = mmrb.evaluate(suite, out=tmp_path / "out", cache=tmp_path / "cache", progress=False).frame
    assert (frame["error"].fillna("") == "").all(), frame["error"].tolist()
    cells = frame.set_index(["model", "attack"])["stand_in"].fillna("")
    assert cells[("vision_only+spatial_smoothing", "PGD")] == "median filter (exact)"
    assert cells[("vision_only", "PGD")] == "" and cells[("vision_only+spatial_smoothing", "none")] == ""

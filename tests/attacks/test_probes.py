"""Probes: random sign noise (budget, seeding, worst of its draws), image replacement (the text floor, exact on a
model whose floor is known) and gradient health (a quantised and a non-finite model, and trained models)."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from benchmark.attacks import Target
from benchmark.attacks.probes import gradient_health, image_replacement, random_noise, true_margin
from mmrb.core.errors import AttackError
from wrappers.estimators import ImageView
from wrappers.training import predict_logits


class LinearImageModel(nn.Module):
    """Image-only linear classifier with fixed random weights: smooth margins for the noise probe."""

    modalities = frozenset({"image"})
    config = {"name": "linear_image"}

    def __init__(self, side: int, transform=lambda x: x, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.linear = nn.Linear(2 * side * side, 2)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(2, 2 * side * side, generator=generator) * 0.1)
            self.linear.bias.zero_()
        self.transform = transform

    def tokenize(self, texts):
        return None

    def forward(self, images, text):
        return self.linear(self.transform(images).flatten(1))


class KeywordModel(nn.Module):
    """Text "keyword zero" / "keyword one" fixes the class and the image is ignored; any other text leaves it to
    the image: class 1 exactly when the frontal view's mean lies in (0.3, 0.7)."""

    modalities = frozenset({"image", "text"})
    config = {"name": "keyword"}

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(4.0))

    def tokenize(self, texts):
        return {"code": torch.tensor([2 if "keyword one" in t else 1 if "keyword zero" in t else 0 for t in texts])}

    def forward(self, images, text):
        mean = images[:, 0].mean((1, 2))
        band = ((mean > 0.3) & (mean < 0.7)).float()
        code = text["code"]
        by_text = torch.stack([(code == 1).float(), (code == 2).float()], 1)
        by_image = torch.stack([1 - band, band], 1)
        return self.scale * torch.where((code > 0)[:, None], by_text, by_image)


def flat_images(means: list[float], side: int = 8) -> np.ndarray:
    """Images whose every pixel (both views) equals the given mean."""
    return np.stack([np.full((2, side, side), m, dtype=np.float32) for m in means])


def accuracy(model, images, texts, labels) -> float:
    return float((predict_logits(model, images, texts).argmax(1).numpy() == labels).mean())


def target_of(model, images, texts, labels, view: bool = False) -> Target:
    return Target(model, images, list(texts), np.asarray(labels), ImageView(model, images, texts) if view else None)


# --- random_noise ---------------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(eps=st.floats(0, 1), draws=st.integers(1, 4), seed=st.integers(0, 2**31 - 1), data_seed=st.integers(0, 1000))
def test_random_noise_stays_in_the_budget_and_the_pixel_range(eps, draws, seed, data_seed):
    images = np.random.default_rng(data_seed).random((5, 2, 6, 6), dtype=np.float32)
    images[0] = 0.0  # clipping at both ends
    images[1] = 1.0
    labels = np.arange(5) % 2
    crafted = random_noise({"draws": draws}, target_of(LinearImageModel(6), images, [""] * 5, labels), eps, seed)
    delta = np.abs(crafted.images - images)
    assert delta.max() <= eps + 1e-6
    assert crafted.images.min() >= 0 and crafted.images.max() <= 1
    # every pixel moved by exactly ε, unless clipping stopped it at 0 or 1
    moved_fully = np.isclose(delta, eps, atol=1e-6) | np.isin(crafted.images, (0.0, 1.0))
    assert moved_fully.all()
    assert crafted.queries.tolist() == [draws] * 5


def test_random_noise_is_seeded():
    images = np.random.default_rng(0).random((6, 2, 8, 8), dtype=np.float32)
    target = target_of(LinearImageModel(8), images, [""] * 6, np.arange(6) % 2)
    first, again = (random_noise({"draws": 3}, target, 0.1, seed=7).images for _ in range(2))
    other = random_noise({"draws": 3}, target, 0.1, seed=8).images
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 0


def test_random_noise_keeps_the_worst_of_its_draws():
    """Draw k is the same for every `draws` >= k (one stream), so more draws can only lower each margin."""
    images = np.random.default_rng(1).random((40, 2, 8, 8), dtype=np.float32)
    model = LinearImageModel(8, seed=3)
    labels = predict_logits(model, images, None).argmax(1).numpy()
    target = target_of(model, images, [""] * 40, labels)

    def margins(draws: int) -> np.ndarray:
        x = random_noise({"draws": draws}, target, 0.1, seed=0).images
        return true_margin(predict_logits(model, x, None), torch.as_tensor(labels)).numpy()

    one, many = margins(1), margins(20)
    assert (many <= one + 1e-6).all()
    assert (many < one - 1e-4).mean() > 0.5  # measured: most samples find a worse draw among 20


def test_random_noise_rejects_what_it_cannot_run():
    images = flat_images([0.5, 0.5])
    target = target_of(LinearImageModel(8), images, ["", ""], np.array([0, 1]))
    with pytest.raises(AttackError, match="params.draws"):
        random_noise({"draws": 0}, target, 0.1, 0)
    with pytest.raises(AttackError, match="budget"):
        random_noise({}, target, None, 0)
    with pytest.raises(AttackError, match="'steps'"):
        random_noise({"steps": 3}, target, 0.1, 0)


def test_random_noise_is_weaker_than_pgd_on_a_trained_model(trained, test_split):
    """On the trained early_fusion at ε = 0.2, the worst of 10 noises leaves far more accuracy than PGD."""
    from benchmark.attacks import craft

    model = trained("early_fusion")
    x, texts, y = test_split.images, list(test_split.texts), test_split.labels
    target = target_of(model, x, texts, y, view=True)
    noise = accuracy(model, random_noise({}, target, 0.2, 0).images, texts, y)
    pgd = accuracy(model, craft("art", "ProjectedGradientDescent", {"max_iter": 20}, target, 0.2, 0).images, texts, y)
    print(f"early_fusion ε=0.2: clean {accuracy(model, x, texts, y):.3f}, noise {noise:.3f}, PGD-20 {pgd:.3f}")
    assert noise <= accuracy(model, x, texts, y)
    assert noise > pgd + 0.1


# --- image_replacement ----------------------------------------------------------------------------------------

KEYWORD_CASE = dict(
    # sample:   0 text says 0 (right), 1 text says 1 (right), 2 text says 1 (wrong), 3-4 image decides (label 0,
    #           images outside the band), 5 image decides (label 1, image outside the band: wrong when clean)
    texts=["keyword zero", "keyword one", "keyword one", "clear lungs", "no findings", "opacity"],
    labels=np.array([0, 1, 0, 0, 0, 1]),
    means=[0.9, 0.1, 0.1, 0.1, 0.9, 0.9],
)


def test_image_replacement_equals_the_known_floor_without_band_images():
    """No test, blank (0) or saturated (1) image lies in the band: samples 3 and 4 keep class 0 whatever image
    they get. Robust: 0, 1 (text decides, rightly), 3, 4 -> floor 4/6; 2 and 5 are wrong when clean."""
    case = KEYWORD_CASE
    images, model = flat_images(case["means"]), KeywordModel()
    crafted = image_replacement({}, target_of(model, images, case["texts"], case["labels"]), None, 0)
    assert accuracy(model, crafted.images, case["texts"], case["labels"]) == pytest.approx(4 / 6)
    assert crafted.queries.tolist() == [6 + 2] * 6


def test_image_replacement_uses_its_extra_images():
    """An extra image in the band (mean 0.5) for samples 3 and 4 turns them to class 1: floor 2/6."""
    case = KEYWORD_CASE
    images, model = flat_images(case["means"]), KeywordModel()
    extra = flat_images([0.9, 0.9, 0.9, 0.5, 0.5, 0.9])
    crafted = image_replacement({"extra": extra}, target_of(model, images, case["texts"], case["labels"]), None, 0)
    assert accuracy(model, crafted.images, case["texts"], case["labels"]) == pytest.approx(2 / 6)
    np.testing.assert_array_equal(crafted.images[[3, 4]], extra[[3, 4]])


def test_image_replacement_tries_every_other_test_image():
    """A seventh test sample whose own image lies in the band (label 1, right) lends it to samples 3 and 4; the
    blank image turns sample 6 itself to class 0. Robust: 0 and 1 -> floor 2/7 (blank and saturated images
    alone would leave 0, 1, 3 and 4: 4/7)."""
    case = KEYWORD_CASE
    texts, labels = case["texts"] + ["effusion"], np.append(case["labels"], 1)
    images, model = flat_images(case["means"] + [0.5]), KeywordModel()
    crafted = image_replacement({}, target_of(model, images, texts, labels), None, 0)
    assert accuracy(model, crafted.images, texts, labels) == pytest.approx(2 / 7)
    np.testing.assert_array_equal(crafted.images[[3, 4]], images[[6, 6]])


def test_image_replacement_rejects_what_it_cannot_run():
    case = KEYWORD_CASE
    target = target_of(KeywordModel(), flat_images(case["means"]), case["texts"], case["labels"])
    with pytest.raises(AttackError, match="params.extra"):
        image_replacement({"extra": flat_images([0.5])}, target, None, 0)
    with pytest.raises(AttackError, match="'draws'"):
        image_replacement({"draws": 2}, target, None, 0)


def test_image_replacement_on_trained_models(trained, test_split):
    """Floors measured on the trained tiny models: each floor is at most the clean accuracy; for vision_only (no
    text) a sample survives exactly when every candidate image (the test images, blank, saturated) is predicted as
    its label."""
    x, texts, y = test_split.images, list(test_split.texts), test_split.labels
    floors = {}
    for name in ("vision_only", "early_fusion", "late_fusion"):
        model = trained(name)
        start = time.perf_counter()
        crafted = image_replacement({}, target_of(model, x, texts, y), None, 0)
        seconds = time.perf_counter() - start
        floors[name] = accuracy(model, crafted.images, texts, y)
        print(f"{name}: clean {accuracy(model, x, texts, y):.3f}, floor {floors[name]:.3f} "
              f"({len(y)} samples, {seconds:.2f} s)")
        assert floors[name] <= accuracy(model, x, texts, y)
    model = trained("vision_only")
    pool = np.concatenate([x, np.zeros_like(x[:1]), np.ones_like(x[:1])])
    predicted = predict_logits(model, pool, None).argmax(1).numpy()
    assert floors["vision_only"] == pytest.approx(np.mean([(predicted == label).all() for label in y]))


def test_image_replacement_with_an_unbounded_attack_as_extra(trained, test_split):
    """An ART PGD entry at ε = 1 as `extra` is crafted on the target and can only lower the floor."""
    model = trained("early_fusion")
    x, texts, y = test_split.images[:24], list(test_split.texts[:24]), test_split.labels[:24]
    target = target_of(model, x, texts, y, view=True)
    plain = accuracy(model, image_replacement({}, target, None, 0).images, texts, y)
    entry = {"source": "art", "name": "ProjectedGradientDescent", "params": {"max_iter": 10}, "epsilon": 1.0}
    crafted = image_replacement({"extra": entry}, target, None, 0)
    with_pgd = accuracy(model, crafted.images, texts, y)
    print(f"early_fusion floor on 24 samples: {plain:.3f} replacement only, {with_pgd:.3f} with PGD ε=1")
    assert with_pgd <= plain
    assert (crafted.params["candidates"], crafted.params["extra"]) == (24 + 2, 1)
    pool, pgd, *escalation = crafted.params["cascade"]  # the pool first, then PGD on its survivors, escalated
    assert pool["name"] == "pool" and pgd["attacked"] == pool["robust"] and pgd["name"] == "ProjectedGradientDescent"


# --- gradient_health ------------------------------------------------------------------------------------------

def test_a_quantised_model_has_zero_input_gradients():
    images = np.random.default_rng(0).random((12, 2, 8, 8), dtype=np.float32)
    model = LinearImageModel(8, transform=lambda x: torch.round(x * 8) / 8)
    assert gradient_health(model, images, None, np.arange(12) % 2) == {"zero_gradient": 1.0, "nonfinite_gradient": 0.0,
                                                                       "zero_gradient_bpda": 0.0, "stochastic": 0.0}


def test_a_square_root_at_black_pixels_gives_non_finite_gradients():
    images = np.random.default_rng(0).random((10, 2, 8, 8), dtype=np.float32)
    images[:4, :, 0, 0] = 0.0  # d√x/dx = ∞ at 0
    model = LinearImageModel(8, transform=torch.sqrt)
    health = gradient_health(model, images, None, np.arange(10) % 2)
    assert health == {"zero_gradient": 0.0, "nonfinite_gradient": pytest.approx(0.4), "zero_gradient_bpda": 0.0,
                      "stochastic": 0.0}


def test_trained_models_have_healthy_gradients_and_are_left_as_found(trained, test_split):
    model = trained("early_fusion")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    requires = [p.requires_grad for p in model.parameters()]
    model.train()
    health = gradient_health(model, test_split.images, list(test_split.texts), test_split.labels)
    assert health == {"zero_gradient": 0.0, "nonfinite_gradient": 0.0, "zero_gradient_bpda": 0.0, "stochastic": 0.0}
    assert model.training
    model.eval()
    assert [p.requires_grad for p in model.parameters()] == requires
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert np.isnan(gradient_health(trained("text_only"), None, list(test_split.texts), test_split.labels)["zero_gradient"])


# --- the fast path: branch outputs recorded once and recombined ----------------------------------------------

class LeakyBranchModel(nn.Module):
    """Has `vision` and `text` branches, but its forward also reads the images directly: the recorded-branch
    shortcut must notice and score every pair in full."""

    modalities = frozenset({"image", "text"})
    config = {"name": "leaky"}

    def __init__(self, side: int) -> None:
        super().__init__()
        self.vision = nn.Sequential(nn.Flatten(), nn.Linear(2 * side * side, 2))
        self.text = nn.Embedding(3, 2)

    def tokenize(self, texts):
        return {"code": torch.tensor([len(t) % 3 for t in texts])}

    def forward(self, images, text):
        return self.vision(images) + self.text(text["code"]) + 5 * (images.float().mean((1, 2, 3))[:, None] - 0.5) * \
            torch.tensor([1.0, -1.0])


def test_a_model_that_reads_images_outside_its_branches_is_scored_in_full():
    from benchmark.attacks.probes import _branch_margins, _pair_margins

    images = np.random.default_rng(0).random((7, 2, 6, 6), dtype=np.float32)
    texts, labels = ["a", "bb", "ccc", "dddd", "a", "bb", "ccc"], torch.tensor([0, 1, 0, 1, 1, 0, 1])
    model = LeakyBranchModel(6).eval()
    pool = torch.cat([torch.as_tensor(images), torch.zeros(1, 2, 6, 6), torch.ones(1, 2, 6, 6)])
    tokens = model.tokenize(texts)
    with torch.no_grad():
        assert _branch_margins(model, pool, tokens, labels, 512) is None
    assert isinstance(model.vision, nn.Sequential) and isinstance(model.text, nn.Embedding)  # restored
    crafted = image_replacement({}, target_of(model, images, texts, labels.numpy()), None, 0)
    worst = _pair_margins(model, pool, tokens, labels, 5).min(1).values
    chosen = true_margin(predict_logits(model, crafted.images, texts), labels)
    torch.testing.assert_close(chosen, worst)


@pytest.mark.parametrize("name", ["early_fusion", "late_fusion", "ensemble_fusion"])
def test_recorded_branches_give_the_full_models_margins(trained, test_split, name):
    """The shortcut (each candidate image and each text through the model once, pairs recombined) equals
    running the full model on every (text, image) pair, on 16 test samples."""
    from benchmark.attacks.probes import _branch_margins, _pair_margins

    model = trained(name).eval()
    x, texts, y = test_split.images[:16], list(test_split.texts[:16]), torch.as_tensor(test_split.labels[:16])
    pool = torch.cat([torch.as_tensor(x), torch.zeros(1, *x.shape[1:]), torch.ones(1, *x.shape[1:])])
    tokens = model.tokenize(texts)
    with torch.no_grad():
        fast = _branch_margins(model, pool, tokens, y, 512)
        full = _pair_margins(model, pool, tokens, y, 512)
    assert fast is not None
    torch.testing.assert_close(fast, full, rtol=1e-4, atol=1e-4)

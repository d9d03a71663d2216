"""Feature-space targeted PGD: it raises the similarity to the target within ε, and reports the CLIP scores."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import wrappers
from benchmark.attacks import Target, craft
from benchmark.attacks.feature import FeaturePGD, target_similarity
from benchmark.data.synth_domains import target_domain
from mmrb.core.errors import AttackError
from wrappers.clip_encoder import TINY_ARCH, ClipEncoder
from wrappers.training import LabelledSet


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """Every test of this module runs on one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="module")
def encoder() -> ClipEncoder:
    torch.manual_seed(0)
    return ClipEncoder(TINY_ARCH, image_size=32).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def clip_model(train_set, cache_dir):
    small = LabelledSet(train_set.images[:160], train_set.texts[:160], train_set.labels[:160], "first-160")
    model = wrappers.create_model("clip_lp", image_size=32, pretrain={"epochs": 10, "batch_size": 32},
                                  head_recipe={"epochs": 5})
    return model.train_on(small, cache_dir, seed=0)


def test_feature_pgd_raises_the_target_similarity_within_epsilon(clip_model, test_split):
    images = torch.as_tensor(test_split.images[:12])
    targets = torch.as_tensor(target_domain(12, 0, 32)[0])
    adv = FeaturePGD(clip_model.encode_image, eps=8 / 255, steps=10)(images, targets)
    before = target_similarity(clip_model.encode_image, images, targets)
    after = target_similarity(clip_model.encode_image, adv, targets)
    assert (adv - images).abs().max().item() <= 8 / 255 + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert after.mean() > before.mean() + 0.2 and (after > before).mean() >= 0.9
    assert torch.equal(adv[:, 1], images[:, 1])  # the encoder reads the frontal view only: the lateral is untouched


@settings(max_examples=8, deadline=None)
@given(eps=st.floats(0.0, 0.3), steps=st.integers(1, 3), seed=st.integers(0, 100))
def test_feature_pgd_stays_in_the_budget_and_pixel_range(encoder, eps, steps, seed):
    g = torch.Generator().manual_seed(seed)
    images, targets = torch.rand(3, 2, 32, 32, generator=g), torch.rand(3, 2, 32, 32, generator=g)
    adv = FeaturePGD(encoder.encode_image, eps=eps, steps=steps, random_start=True, seed=seed)(images, targets)
    assert (adv - images).abs().max().item() <= eps + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0


def test_catalogue_feature_attack_reports_the_papers_clip_scores(clip_model, test_split):
    images = test_split.images[:16]
    target = Target(clip_model, images, test_split.texts[:16], test_split.labels[:16])
    crafted = craft("mmrb", "feature_pgd", {"steps": 10}, target, 8 / 255, seed=0)
    assert np.abs(crafted.images - images).max() <= 8 / 255 + 1e-6
    p = crafted.params
    assert p["target_similarity_adv"] > p["target_similarity_clean"]
    assert {"clip_score_clean", "clip_score_adv"} <= set(p)
    with pytest.raises(AttackError, match="it takes: steps"):
        craft("mmrb", "feature_pgd", {"iterations": 3}, target, 8 / 255, seed=0)


def test_feature_attack_needs_an_image_encoder(trained, test_split):
    model = trained("vision_only")
    target = Target(model, test_split.images[:2], test_split.texts[:2], test_split.labels[:2])
    with pytest.raises(AttackError, match="needs an image encoder"):
        craft("mmrb", "feature_pgd", {}, target, 0.03, seed=0)

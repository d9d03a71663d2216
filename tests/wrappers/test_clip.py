"""CLIP models: one build/save/load path, the image contract, pre-training, caching, and the mmrb model contract."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import wrappers
from mmrb.core.errors import ModelError
from wrappers.clip_encoder import (
    TINY_ARCH,
    WEIGHTS_FILE,
    ClipEncoder,
    PretrainRecipe,
    build_clip,
    obtain_pretrained_clip,
    pretrain_clip,
    save_clip,
)
from wrappers.estimators import ImageView
from wrappers.training import LabelledSet, load_checkpoint, load_verified, save_checkpoint

FAST = {"epochs": 2, "batch_size": 32}


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """Every test of this module runs on one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="module")
def small_set(train_set) -> LabelledSet:
    return LabelledSet(train_set.images[:96], train_set.texts[:96], train_set.labels[:96], train_set.fingerprint + "-96")


def test_tiny_clip_saved_to_and_loaded_from_a_local_folder_gives_the_same_embeddings(tmp_path):
    torch.manual_seed(0)
    encoder = ClipEncoder(TINY_ARCH).eval()
    save_clip(encoder.clip, encoder.cfg, tmp_path / "tiny")
    loaded = ClipEncoder(f"local-dir:{tmp_path / 'tiny'}").eval()
    images = torch.rand(3, 2, 64, 64)
    assert torch.allclose(encoder.encode_image(images), loaded.encode_image(images), atol=1e-6)
    texts = ["small left pleural effusion.", "the heart is normal in size."]
    assert torch.allclose(encoder.embed_texts(texts), loaded.embed_texts(texts), atol=1e-6)
    assert (tmp_path / "tiny" / WEIGHTS_FILE).exists()


def test_encoder_reads_the_frontal_view_resized_and_normalised_inside():
    torch.manual_seed(0)
    encoder = ClipEncoder(TINY_ARCH).eval()
    images = torch.rand(2, 2, 32, 32)
    other_lateral = images.clone()
    other_lateral[:, 1] = 0.0
    prepared = encoder.prepare(images)
    assert prepared.shape == (2, 3, 64, 64)
    assert torch.equal(prepared[:, 0], prepared[:, 2])
    assert torch.allclose(encoder.encode_image(images), encoder.encode_image(other_lateral))
    assert torch.allclose(encoder.encode_image(images).norm(dim=1), torch.ones(2))


def test_unknown_architecture_names_the_options():
    with pytest.raises(ModelError, match="local-dir:FOLDER"):
        build_clip("no-such-clip")
    with pytest.raises(ModelError, match="unknown override.*allowed: clip"):
        wrappers.create_model("clip_lp", clipp="x")
    with pytest.raises(ModelError, match="pick the model clip_ran"):
        wrappers.create_model("clip_lp", defense="ran")


def test_pretraining_lowers_the_contrastive_loss(small_set):
    torch.manual_seed(0)
    encoder = ClipEncoder(TINY_ARCH)
    losses = pretrain_clip(encoder, small_set.images[:, 0], small_set.texts, PretrainRecipe(epochs=4, batch_size=32), 0)
    assert losses[-1] < 0.9 * losses[0]


def test_pretrained_clip_is_cached_and_a_corrupt_entry_is_rebuilt(small_set, tmp_path, caplog):
    recipe = PretrainRecipe(epochs=1, batch_size=32)
    args = (TINY_ARCH, None, small_set.images[:, 0], small_set.texts, recipe, tmp_path, 0)
    spec = obtain_pretrained_clip(*args)
    folder = spec.split(":", 1)[1]
    weights = (tmp_path / "clip" / "pretrained").glob("*/" + WEIGHTS_FILE).__next__()
    stamp = weights.stat().st_mtime_ns
    assert obtain_pretrained_clip(*args) == spec and weights.stat().st_mtime_ns == stamp  # a hit: not retrained
    assert obtain_pretrained_clip(TINY_ARCH, None, small_set.images[:, 0], small_set.texts, recipe, tmp_path, 1) != spec
    weights.write_bytes(b"not safetensors")
    with caplog.at_level(logging.WARNING, logger="wrappers.clip"):
        assert obtain_pretrained_clip(*args) == spec
    assert [r for r in caplog.records if folder in r.getMessage() and "corrupt" in r.getMessage()]
    ClipEncoder(spec)  # rebuilt and loadable
    assert obtain_pretrained_clip(TINY_ARCH, None, small_set.images[:, 0], small_set.texts, PretrainRecipe(epochs=0),
                                  tmp_path, 0) == TINY_ARCH


def test_defended_clip_follows_the_model_contract_and_runs_an_art_attack(small_set, test_split, cache_dir, tmp_path):
    model = wrappers.create_model("clip_ran", pretrain=FAST, head_recipe={"epochs": 5})
    with pytest.raises(ModelError, match="train_on"):
        model(torch.as_tensor(test_split.images[:2]), None)
    model.train_on(small_set, cache_dir, seed=0)
    assert model.tokenize(["x"]) is None and model.modalities == frozenset({"image"})
    images = test_split.images[:8]
    logits = model(torch.as_tensor(images), None)
    assert logits.shape == (8, 2)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    from art.attacks.evasion import FastGradientMethod

    view = ImageView(model, images, test_split.texts[:8])
    adv = FastGradientMethod(view, eps=0.03).generate(images)
    assert np.abs(adv - images).max() <= 0.03 + 1e-6
    assert not np.allclose(view.predict(adv), view.predict(images))
    again = wrappers.create_model("clip_ran", pretrain=FAST, head_recipe={"epochs": 5}).train_on(small_set, cache_dir, 0)
    assert torch.allclose(again(torch.as_tensor(images), None), logits)  # pre-trained CLIP and head from the cache
    save_checkpoint(model, tmp_path / "saved", "key", tmp_path)  # the generic model cache stores and rebuilds it too
    assert torch.allclose(load_checkpoint(tmp_path / "saved")(torch.as_tensor(images), None), logits, atol=1e-6)
    fresh = wrappers.create_model("clip_ran", pretrain=FAST, head_recipe={"epochs": 5})
    assert torch.allclose(load_verified(fresh, tmp_path / "saved", tmp_path).eval()(torch.as_tensor(images), None), logits,
                          atol=1e-6)


def test_fusion_and_zero_shot_models(small_set, test_split, cache_dir):
    fusion = wrappers.create_model("clip_fusion", pretrain=FAST, head_recipe={"epochs": 5}).train_on(small_set, cache_dir, 0)
    tokens = fusion.tokenize(test_split.texts[:4])
    assert set(tokens) == {"input_ids"} and fusion.modalities == frozenset({"image", "text"})
    assert fusion(torch.as_tensor(test_split.images[:4]), tokens).shape == (4, 2)
    zero_shot = wrappers.create_model("clip_zeroshot", pretrain=FAST, labels=["cardiomegaly", "effusion"])
    zero_shot.train_on(small_set, cache_dir, 0)
    assert zero_shot.prompt_weights().shape == (64, 4)
    logits = zero_shot(torch.as_tensor(test_split.images[:4]))
    assert logits.shape == (4, 2) and torch.all(logits[:, 0] == 0)


def test_the_generic_trainer_calls_train_on_and_caches_the_clip_model(train_set, tmp_path, test_split):
    """`mmrb run` trains CLIP models through obtain_trained's hook, and a second call loads the cached entry."""
    from wrappers.training import obtain_trained, predict_logits

    overrides = {"pretrain": FAST, "head_recipe": {"epochs": 5}}
    model = obtain_trained("clip_lp", overrides, train_set, tmp_path, seed=0)
    assert len(list((tmp_path / "models").glob("clip_lp-*"))) == 1
    again = obtain_trained("clip_lp", overrides, train_set, tmp_path, seed=0)
    x, texts = test_split.images[:6], test_split.texts[:6]
    torch.testing.assert_close(predict_logits(model, x, texts), predict_logits(again, x, texts))

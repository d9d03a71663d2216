"""Model registry, loaders (HF folder, timm checkpoint file), fusion structure and the trained-model cache."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import wrappers
from mmrb.core.errors import ModelError
from wrappers.fusion import EarlyFusion, EnsembleFusion, LateFusion
from wrappers.text import TextEncoder, load_text_encoder, make_tiny_bert
from wrappers.training import TEXT_DIR, load_checkpoint, obtain_trained, predict_logits

CORPUS = ["the heart is enlarged.", "the lungs are clear.", "small left pleural effusion.", "no acute disease."] * 5


def test_registry_lists_paper_and_tiny_families():
    names = wrappers.list_models()
    for family in ("vision_only", "text_only", "early_fusion", "late_fusion", "ensemble_fusion"):
        assert family in names and family + "_paper" in names
    assert {"early_fusion", "ensemble_fusion", "late_fusion"} <= set(wrappers.list_models("*fusion"))
    assert wrappers.list_models("*_fusion") == sorted(wrappers.list_models("*_fusion"))


def test_unknown_model_and_override_errors_name_the_fix():
    with pytest.raises(ModelError, match="(?i)did you mean early_fusion"):
        wrappers.create_model("early_fusoin")
    with pytest.raises(ModelError, match="allowed: .*arch"):
        wrappers.create_model("vision_only", archh="x")
    with pytest.raises(ModelError, match="unknown recipe field"):
        wrappers.create_model("vision_only", recipe={"learning_rate": 1})


def test_paper_presets_carry_the_paper_hyperparameters():
    from wrappers.configs import PRESETS, recipe_of, resolve_config

    assert PRESETS["paper"]["arch"] == "legacy_senet154"
    assert PRESETS["paper"]["text_encoder"] == "emilyalsentzer/Bio_ClinicalBERT"
    vision = recipe_of("vision", "paper")
    assert (vision.lr, vision.batch_size, vision.epochs, vision.scheduler) == (1e-4, 128, 13, "plateau")
    assert (recipe_of("text", "paper").lr, recipe_of("text", "paper").epochs) == (2e-5, 5)
    assert (recipe_of("early_fusion", "paper").lr, recipe_of("late_fusion", "paper").lr) == (1e-4, 1e-5)
    # a config's recipe is the one its family module declares next to its registration, overridden
    assert resolve_config("late_fusion", "tiny", {"recipe": {"epochs": 2}}, ())["recipe"] == {
        "lr": 1e-2, "epochs": 2, "batch_size": 64, "weight_decay": 0.0, "scheduler": None, "init_from_unimodal": False}


def test_text_encoder_loads_a_local_save_pretrained_folder(tmp_path):
    folder = make_tiny_bert(CORPUS, tmp_path / "bert")
    tokenizer, encoder = load_text_encoder(folder)
    enc = TextEncoder(folder, max_length=16)
    tokens = enc.tokenize(["the heart is enlarged.", "no acute disease."])
    assert tokens["input_ids"].shape == (2, 16)
    assert tokenizer.convert_ids_to_tokens(int(tokens["input_ids"][0, 0])) == "[CLS]"
    assert enc(tokens).shape == (2, encoder.config.hidden_size)


def test_unreachable_hub_name_says_how_to_load_offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail at once, as with no network
    with pytest.raises(ModelError, match="save_pretrained"):
        load_text_encoder("emilyalsentzer/Bio_ClinicalBERT")


def test_vision_backbone_loads_a_local_timm_checkpoint(tmp_path):
    source = wrappers.create_model("vision_only")
    path = tmp_path / "backbone.pth"
    torch.save(source.encoder.frontal.state_dict(), path)
    loaded = wrappers.create_model("vision_only", checkpoint_path=str(path))
    for view in (loaded.encoder.frontal, loaded.encoder.lateral):
        assert torch.equal(view.conv1.weight, source.encoder.frontal.conv1.weight)
    with pytest.raises(ModelError, match="does not exist"):
        wrappers.create_model("vision_only", checkpoint_path=str(tmp_path / "missing.pth"))


def test_views_have_separate_backbones_unless_shared():
    separate = wrappers.create_model("vision_only")
    shared = wrappers.create_model("vision_only", shared_backbone=True)
    assert separate.encoder.frontal is not separate.encoder.lateral
    assert shared.encoder.frontal is shared.encoder.lateral
    assert separate.encoder.feature_dim == 2 * separate.encoder.frontal.num_features


def test_fusion_models_combine_branches_as_the_paper(trained, test_split):
    x, texts = test_split.images[:6], test_split.texts[:6]
    early, late, ensemble = trained("early_fusion"), trained("late_fusion"), trained("ensemble_fusion")
    assert isinstance(early, EarlyFusion) and early.head.in_features == early.vision.feature_dim + early.text.feature_dim
    assert isinstance(late, LateFusion) and (late.head.in_features, late.head.out_features) == (4, 2)
    assert isinstance(ensemble, EnsembleFusion)
    with torch.no_grad():
        v, t = ensemble.branch_logits(torch.as_tensor(x), ensemble.tokenize(texts))
        assert torch.allclose(predict_logits(ensemble, x, texts), v + t, atol=1e-5)
        lv, lt = late.branch_logits(torch.as_tensor(x), late.tokenize(texts))
        assert torch.allclose(predict_logits(late, x, texts), late.head(torch.cat([lv, lt], 1)), atol=1e-5)
    # late and ensemble fusion reuse the trained single-modality models, frozen
    vision = trained("vision_only")
    assert torch.equal(late.vision.head.weight, vision.head.weight)
    assert torch.equal(ensemble.vision.head.weight, vision.head.weight)


def test_trained_models_beat_the_majority_class(trained, test_split):
    """The text, early and late fusion models beat the majority class (they reach 85-95 %). The image-only model
    on these 32 px generated images reaches 69-78 % against a majority of 66 % (recomputed BatchNorm statistics; 14
    seed x kernel draws), and the ensemble adds its logits: each either beats the majority class or is flagged
    (`constant_prediction` or `chance_level`), so that the leaderboard leaves it unranked, on any machine."""
    import pandas as pd

    from benchmark.evaluation.metrics import class_accuracy
    from benchmark.evaluation.soundness import UNRANKING_FLAGS, soundness_flags

    labels = test_split.labels
    majority = max(labels.mean(), 1 - labels.mean())
    for name in ("vision_only", "text_only", "early_fusion", "late_fusion", "ensemble_fusion"):
        predicted = predict_logits(trained(name), test_split.images, test_split.texts).argmax(1).numpy()
        acc = (predicted == labels).mean()
        if name not in ("vision_only", "ensemble_fusion"):
            assert acc > majority + 0.1, (name, acc, majority)
            continue
        recalls = [class_accuracy(labels, predicted, k) for k in (0, 1)]
        row = {"model": name, "attack": "none", "modality": "none", "epsilon": None, "attack_source": "mmrb",
               "robust_accuracy": acc, "robust_accuracy_ci_low": acc, "robust_accuracy_ci_high": acc,
               "clean_accuracy": acc, "clean_accuracy_normal": recalls[0], "clean_accuracy_abnormal": recalls[1],
               "n_normal": int((labels == 0).sum()), "n_abnormal": int((labels == 1).sum()),
               "worst_seed_min_recall": min(recalls), "worst_seed_balanced_accuracy": float(np.mean(recalls))}
        flagged = set(soundness_flags(pd.DataFrame([row]), [], [])["flag"]) & set(UNRANKING_FLAGS)
        assert acc > majority or flagged, (name, acc, majority, recalls)


def test_checkpoint_round_trip_and_cache_reuse(trained, train_set, cache_dir, test_split):
    from tests.conftest import TEST_OVERRIDES
    from wrappers.training import model_key

    model = trained("early_fusion")
    overrides = TEST_OVERRIDES.get("early_fusion", {})
    key = model_key("early_fusion", overrides, train_set.fingerprint, 0)  # the session cache also holds other tests' models
    folders = list((cache_dir / "models").glob(f"early_fusion-{key}"))
    assert len(folders) == 1
    config = json.loads((folders[0] / "config.json").read_text())
    assert config["name"] == "early_fusion" and config["text_encoder"] == TEXT_DIR
    reloaded = load_checkpoint(folders[0])
    x, texts = test_split.images[:5], test_split.texts[:5]
    assert torch.allclose(predict_logits(model, x, texts), predict_logits(reloaded, x, texts), atol=1e-5)
    again = obtain_trained("early_fusion", overrides, train_set, cache_dir, seed=0)
    assert len(list((cache_dir / "models").glob(f"early_fusion-{key}*"))) == 1
    assert torch.equal(again.head.weight, model.head.weight)


def test_cache_key_changes_with_the_data(train_set, cache_dir, tmp_path):
    from wrappers.training import LabelledSet

    other = LabelledSet(train_set.images[:40], train_set.texts[:40], train_set.labels[:40], "other-fingerprint")
    model = obtain_trained("vision_only", {"recipe": {"epochs": 1}}, other, tmp_path, seed=0)
    assert len(list((tmp_path / "models").glob("vision_only-*"))) == 1
    assert np.isfinite(predict_logits(model, other.images[:2], None).numpy()).all()


class _MeanPixelModel(torch.nn.Module):
    """The model protocol of docs/own-model.md: family, modalities, config, tokenize, forward."""

    family = "mean_pixel"
    modalities = frozenset({"image"})

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = config
        self.head = torch.nn.Linear(2, 2)

    def tokenize(self, texts):
        return None

    def forward(self, images, text=None):
        return self.head(images.mean((2, 3)))


def test_a_registered_custom_model_trains_caches_and_gets_a_view(train_set, tmp_path, test_split):
    from wrappers.estimators import ImageView
    from wrappers.registry import register_model

    @register_model("test_mean_pixel", _MeanPixelModel, "custom")
    def factory(**overrides):
        return _MeanPixelModel({"name": "test_mean_pixel", "recipe": {"lr": 0.05, "epochs": 3}, **overrides})

    model = obtain_trained("test_mean_pixel", {}, train_set, tmp_path)
    assert len(list((tmp_path / "models").glob("test_mean_pixel-*"))) == 1
    view = ImageView(model, test_split.images[:4])
    assert view.predict(test_split.images[:4]).shape == (4, 2)


def test_tiny_bert_is_reproducible_and_spells_out_unknown_words(tmp_path):
    a, b = make_tiny_bert(CORPUS, tmp_path / "a"), make_tiny_bert(CORPUS, tmp_path / "b")
    assert (a / "vocab.txt").read_bytes() == (b / "vocab.txt").read_bytes()
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    tokenizer, _ = load_text_encoder(a)
    assert tokenizer.tokenize("The heart is enlarged.") == ["the", "heart", "is", "enlarged", "."]
    pieces = tokenizer.tokenize("cardiomegaly")  # never seen: falls back to characters, not [UNK]
    assert "[UNK]" not in pieces and "".join(p.removeprefix("##") for p in pieces) == "cardiomegaly"

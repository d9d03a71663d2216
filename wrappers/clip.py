"""CLIP dual encoders (OpenCLIP) as mmrb models: zero-shot, CLIP fusion, and defended classifiers on frozen features.

One code path builds every CLIP: `build_clip(arch, pretrained)` takes `mmrb-tiny` (a 64-d ViT/transformer pair
small enough to pre-train on 2 CPU cores), any OpenCLIP architecture with a pretrained tag or checkpoint file
(`ViT-B-32` + `openai`), `hf-hub:org/name` (BiomedCLIP) or `local-dir:FOLDER` (an `open_clip_config.json` and
`open_clip_model.safetensors` written by `save_clip`). Pre-trained and fine-tuned CLIPs are cached as such folders.

The models follow the mmrb contract: `forward(images, text)` with images (n, 2, H, W) in [0, 1]; the frontal
view is resized to the CLIP's input size, replicated to 3 channels and normalised inside the model, so attacks
work in pixel space. CLIP models are trained by `train_on(data, cache_dir, seed)`: pre-training of the CLIP
(symmetric InfoNCE on frontal image + report pairs, Han et al. 2025 App. B.2; skipped for a given checkpoint),
then the head on frozen features; both are cached under `<cache>/clip/`.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import defenses.heads as defense_heads  # noqa: F401  (a global: the CLIP models' code digests cover every defense head)
from defenses.heads import create_defense, fit_head
from mmrb.core.errors import ModelError
from wrappers.cache import code_digest, digest, write_atomically
from wrappers.clip_encoder import (
    DEFAULT_LABELS,
    HEAD_FILE,
    TINY_ARCH,
    ClipEncoder,
    PretrainRecipe,
    cache_entry,
    obtain_pretrained_clip,
    pairs_fingerprint,
)
from wrappers.numerics import canonical_numerics, numerics_identity
from wrappers.registry import register_model

log = logging.getLogger(__name__)

class ClipModel(nn.Module):
    """Base of the CLIP-based mmrb models: a CLIP encoder (frozen after pre-training) and a head."""

    family = "clip"
    modalities = frozenset({"image"})

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.encoder = ClipEncoder(config["clip"], config.get("clip_pretrained"), config.get("image_size"))
        self.register_buffer("trained", torch.zeros((), dtype=torch.bool))

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor] | None:
        return None

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen CLIP image embedding of (n, 2, H, W) images (what the feature-space attack targets)."""
        return self.encoder.encode_image(images)

    def _check_trained(self) -> None:
        if not bool(self.trained):
            raise ModelError(f"{self.config['name']}: CLIP models are trained by model.train_on(data, cache_dir, seed) "
                             "(pre-training, then the head on frozen features), not by the generic fit loop")

    def pretrained_spec(self, data: Any, cache_dir: Path, seed: int) -> str:
        """The CLIP this model starts from: pre-trained on the frontal images + reports of `data` if its recipe says so."""
        recipe = PretrainRecipe.from_dict(self.config.get("pretrain"))
        return obtain_pretrained_clip(self.config["clip"], self.config.get("clip_pretrained"), data.images[:, 0],
                                      data.texts, recipe, cache_dir, seed, self.config.get("image_size"))

    def train_on(self, data: Any, cache_dir: str | Path, seed: int) -> ClipModel:
        """Pre-train (cached), freeze the CLIP, fit the head (cached); `data` is a training LabelledSet."""
        cache_dir = Path(cache_dir)
        spec = self.pretrained_spec(data, cache_dir, seed)
        if spec != self.config["clip"]:
            self.encoder = ClipEncoder(spec)
        self.encoder.requires_grad_(False).eval()
        key = digest({"config": self.config, "clip": spec, "data": pairs_fingerprint(data.images, data.texts),
                      "labels": np.asarray(data.labels).tolist(), "seed": seed, "code": code_digest(type(self), *self.code_objects()),
                      "numerics": numerics_identity("cpu")})
        folder = cache_dir / "clip" / "heads" / f"{self.config['name']}-{key}"
        head = self.head_module()
        if head is not None:
            if cache_entry(folder, HEAD_FILE):
                try:
                    head.load_state_dict(load_file(str(folder / HEAD_FILE)))
                except Exception as exc:  # a damaged file can fail in any library's own way
                    log.warning("cache entry %s is corrupt (%s); rebuilding it", folder, exc)
                    shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                torch.manual_seed(seed)
                with canonical_numerics():
                    self.fit_head(data, seed)
                write_atomically(folder, lambda tmp: save_file(
                    {k: v.detach().contiguous() for k, v in head.state_dict().items()}, str(tmp / HEAD_FILE)))
        self.trained.fill_(True)
        return self.eval()

    def head_module(self) -> nn.Module | None:
        """The trained part besides the CLIP (None: nothing to fit)."""
        return None

    def fit_head(self, data: Any, seed: int) -> list[float]:
        """Fit the head on frozen features of `data`; mean loss per epoch."""
        return []

    def code_objects(self) -> tuple[Any, ...]:
        """Objects whose source decides the head (their files go into its cache key)."""
        return ()


class ClipZeroShot(ClipModel):
    """Zero-shot classifier: per finding, "{label}" vs "No {label}" (Han et al. §5.3); abnormal = the most
    confident finding. Prompt embeddings come from OpenCLIP's zero-shot classifier builder."""

    family = "clip_zeroshot"

    def forward(self, images: torch.Tensor, text: Any = None) -> torch.Tensor:
        self._check_trained()
        weights = self.prompt_weights()  # (D, 2L): positives then negatives
        sims = self.encoder.encode_image(images) @ weights
        n_labels = weights.shape[1] // 2
        margin = (sims[:, :n_labels] - sims[:, n_labels:]).amax(1) * self.encoder.clip.logit_scale.exp()
        return torch.stack([torch.zeros_like(margin), margin], dim=1)

    @torch.no_grad()
    def prompt_weights(self) -> torch.Tensor:
        """(D, 2L) normalised embeddings of the "{label}" prompts, then the "No {label}" prompts."""
        from open_clip import build_zero_shot_classifier

        labels = list(self.config["labels"])
        positive = build_zero_shot_classifier(self.encoder.clip, self.encoder.tokenizer, labels, ("{}",), None)
        negative = build_zero_shot_classifier(self.encoder.clip, self.encoder.tokenizer, labels, ("No {}",), None)
        return torch.cat([positive, negative], dim=1)


class ClipDefended(ClipModel):
    """A classifier on frozen CLIP image features with a fine-tuning method of `defenses` (LP, MLP, RAN, NMTune)."""

    family = "clip_defended"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.head = create_defense(config["defense"], self.encoder.embed_dim, **config.get("defense_params", {}))

    def head_module(self) -> nn.Module:
        return self.head

    def code_objects(self) -> tuple[Any, ...]:
        return (type(self.head),)

    def fit_head(self, data: Any, seed: int) -> list[float]:
        features = self.encoder.embed_images(data.images, normalize=self.head.features == "normalised")
        return fit_head(self.head, features, torch.as_tensor(data.labels), seed, **self.config.get("head_recipe", {}))

    def head_input(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen CLIP features the head reads: L2-normalised, or raw for a head that asks for them (NMTune)."""
        return self.encoder.encode_image(images, normalize=self.head.features == "normalised")

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The tuned features the head classifies (Z for MLP/RAN, g for NMTune, F for LP)."""
        return self.head.transform(self.head_input(images))

    def forward(self, images: torch.Tensor, text: Any = None) -> torch.Tensor:
        self._check_trained()
        return self.head(self.head_input(images))


class ClipFusion(ClipModel):
    """CLIP image embedding ⊕ CLIP text embedding of the report -> linear head (CLIP frozen), so CLIP models
    sit on the same leaderboard as the VisionBERT fusion models."""

    family = "clip_fusion"
    modalities = frozenset({"image", "text"})

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.head = create_defense("lp", 2 * self.encoder.embed_dim)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return {"input_ids": self.encoder.tokenize(texts)}

    def head_module(self) -> nn.Module:
        return self.head

    def code_objects(self) -> tuple[Any, ...]:
        return (type(self.head),)

    def fit_head(self, data: Any, seed: int) -> list[float]:
        features = torch.cat([self.encoder.embed_images(data.images), self.encoder.embed_texts(list(data.texts))], 1)
        return fit_head(self.head, features, torch.as_tensor(data.labels), seed, **self.config.get("head_recipe", {}))

    def forward(self, images: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        self._check_trained()
        return self.head(torch.cat([self.encoder.encode_image(images), self.encoder.encode_text(text["input_ids"])], 1))


#: Tiny preset: mmrb-tiny pre-trained from scratch on the suite's training pairs (~30 s on 2 CPU cores).
TINY_PRETRAIN = {"epochs": 30, "lr": 1e-3, "batch_size": 64, "weight_decay": 0.1, "warmup_epochs": 1}
CONFIG_KEYS = ("clip", "clip_pretrained", "image_size", "pretrain", "defense", "defense_params", "head_recipe", "labels")


def _resolve(name: str, overrides: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The model config: defaults, overridden; unknown keys raise naming the allowed ones."""
    bad = sorted(set(overrides) - set(CONFIG_KEYS))
    if bad:
        raise ModelError(f"model {name!r}: unknown override(s) {bad}; allowed: {', '.join(CONFIG_KEYS)}")
    if overrides.get("defense", defaults.get("defense")) != defaults.get("defense"):
        raise ModelError(f"model {name!r}: defense {overrides['defense']!r} differs from its own "
                         f"({defaults.get('defense')!r}); pick the model clip_{overrides['defense']} instead")
    config = {"name": name, "preset": "clip", "clip": TINY_ARCH, "clip_pretrained": None, **defaults, **overrides}
    if "pretrain" not in overrides and config["clip"] != TINY_ARCH:
        config["pretrain"] = {"epochs": 0}  # a given CLIP is used as it is unless a pre-training recipe is given
    PretrainRecipe.from_dict(config.get("pretrain"), f"models.{name}.params.pretrain")
    return config


def _register(name: str, cls: type[ClipModel], defaults: dict[str, Any]) -> None:
    # preset "clip": not a VisionBERT preset, so the generic trainer injects no tiny-BERT text encoder
    @register_model(name, cls, "clip", CONFIG_KEYS)
    def factory(**overrides: Any) -> ClipModel:
        return cls(_resolve(name, overrides, {"pretrain": dict(TINY_PRETRAIN), **defaults}))


def defended_model(defense: str, **overrides: Any) -> ClipDefended:
    """A CLIP classifier with any registered defense head (also one without a `clip_<defense>` model entry)."""
    name = f"clip_{defense}"
    return ClipDefended(_resolve(name, overrides, {"pretrain": dict(TINY_PRETRAIN), "defense": defense}))


#: This family's built-in models: name -> (family, modalities, preset, training recipe), read by wrappers.registry from
#: this file's text, without importing it (no torch). No TrainRecipe: a CLIP model trains itself (`train_on`: the
#: CLIP's pre-training, TINY_PRETRAIN, then its head).
BUILTIN_MODELS = {
    "clip_zeroshot": ("clip_zeroshot", "image", "clip", None),
    "clip_fusion": ("clip_fusion", "image+text", "clip", None),
    "clip_lp": ("clip_defended", "image", "clip", None),  # clip_<defense>: that defense head on frozen CLIP features
    "clip_mlp": ("clip_defended", "image", "clip", None),
    "clip_ran": ("clip_defended", "image", "clip", None),
    "clip_nmtune": ("clip_defended", "image", "clip", None),
}

_register("clip_zeroshot", ClipZeroShot, {"labels": list(DEFAULT_LABELS)})
_register("clip_fusion", ClipFusion, {})
for _name, (_family, _modalities, _preset, _recipe) in BUILTIN_MODELS.items():
    if _family == ClipDefended.family:
        _register(_name, ClipDefended, {"defense": _name.removeprefix("clip_")})

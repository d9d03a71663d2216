"""VisionBERT fusion models of Mozhegova et al. (2025): early, late and ensemble fusion."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from wrappers.configs import TEXT_KEYS, VISION_KEYS, resolve_config
from wrappers.registry import register_model
from wrappers.text import TextClassifier, TextEncoder
from wrappers.vision import TwoViewEncoder, VisionClassifier

BRANCH_NAMES = {"tiny": ("vision_only", "text_only"), "paper": ("vision_only_paper", "text_only_paper")}


def _branch_configs(config: dict) -> tuple[dict, dict]:
    """Configs of the single-modality models a fusion model is made of (same preset, same keys)."""
    vision_name, text_name = BRANCH_NAMES[config["preset"]]
    vision = resolve_config("vision", config["preset"], {k: config[k] for k in VISION_KEYS}, VISION_KEYS)
    text = resolve_config("text", config["preset"], {k: config[k] for k in TEXT_KEYS}, TEXT_KEYS)
    return {"name": vision_name, **vision}, {"name": text_name, **text}


class EarlyFusion(nn.Module):
    """VisionBERT_EarlyFusion: [frontal ⊕ lateral SE-ResNet features ⊕ BERT [CLS]] -> linear, trained jointly (Fig. 1)."""

    family = "early_fusion"
    modalities = frozenset({"image", "text"})

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = config
        self.vision = TwoViewEncoder(config["arch"], config["pretrained"], config["checkpoint_path"],
                                     config["shared_backbone"])
        self.text = TextEncoder(config["text_encoder"], config["max_length"])
        self.head = nn.Linear(self.vision.feature_dim + self.text.feature_dim, 2)

    def branch_configs(self) -> tuple[dict, dict]:
        return _branch_configs(self.config)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.text.tokenize(texts)

    def forward(self, images: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(torch.cat([self.vision(images), self.text(text)], dim=1))


class LateFusion(nn.Module):
    """VisionBERT_LateFusion: frozen image and text classifiers; a 4-in 2-out linear head on their logits (Fig. 2)."""

    family = "late_fusion"
    modalities = frozenset({"image", "text"})

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = config
        vision_config, text_config = _branch_configs(config)
        self.vision = VisionClassifier(vision_config)
        self.text = TextClassifier(text_config)
        self.head = nn.Linear(4, 2)

    def branch_configs(self) -> tuple[dict, dict]:
        return _branch_configs(self.config)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.text.tokenize(texts)

    def branches(self) -> dict[str, nn.Module]:
        """The single-modality classifiers inside (wrappers.protocol): results report the attacked one alone."""
        return {"image": self.vision, "text": self.text}

    def branch_logits(self, images: torch.Tensor, text: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the image and the text classifier (the paper's bracketed single-modality scores)."""
        return self.vision(images), self.text(None, text)

    def forward(self, images: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(torch.cat(self.branch_logits(images, text), dim=1))


class EnsembleFusion(LateFusion):
    """VisionBERT_EnsembleFusion: the sum of the image and text classifiers' logits, no training (Fig. 3)."""

    family = "ensemble_fusion"

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        del self.head

    def forward(self, images: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        vision_logits, text_logits = self.branch_logits(images, text)
        return vision_logits + text_logits


def _register(name: str, cls: type[nn.Module], preset: str) -> None:
    @register_model(name, cls, preset, VISION_KEYS + TEXT_KEYS)
    def factory(**overrides) -> nn.Module:
        config = resolve_config(cls.family, preset, overrides, VISION_KEYS + TEXT_KEYS)
        return cls({"name": name, "preset": preset, **config})


for _preset, _suffix in (("tiny", ""), ("paper", "_paper")):
    _register("early_fusion" + _suffix, EarlyFusion, _preset)
    _register("late_fusion" + _suffix, LateFusion, _preset)
    _register("ensemble_fusion" + _suffix, EnsembleFusion, _preset)

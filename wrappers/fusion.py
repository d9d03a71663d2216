"""VisionBERT fusion models of Mozhegova et al. (2025): early, late and ensemble fusion.

How each trains is declared here: its recipe per preset (`BUILTIN_MODELS`) and, where it is built on the trained
single-modality models, `uses_trained_branches` / `load_branches` / `fit_recipe`, which `wrappers.training` calls."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from wrappers.configs import TEXT_KEYS, VISION_KEYS, TrainRecipe, resolve_config
from wrappers.registry import register_model
from wrappers.text import TextClassifier, TextEncoder
from wrappers.training import LabelledSet, fit, model_device, predict_logits
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

    def uses_trained_branches(self, recipe: TrainRecipe) -> bool:
        """Its encoders start from the trained single-modality models only if the recipe says so."""
        return recipe.init_from_unimodal

    def load_branches(self, vision: VisionClassifier, text: TextClassifier) -> None:
        self.vision.load_state_dict(vision.encoder.state_dict())
        self.text.load_state_dict(text.encoder.state_dict())

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

    def uses_trained_branches(self, recipe: TrainRecipe) -> bool:
        """Always built on the trained single-modality classifiers (stage 1), kept frozen."""
        return True

    def load_branches(self, vision: VisionClassifier, text: TextClassifier) -> None:
        self.vision.load_state_dict(vision.state_dict())
        self.text.load_state_dict(text.state_dict())

    def fit_recipe(self, data: LabelledSet, recipe: TrainRecipe, seed: int) -> list[float]:
        """Stage 2: branches frozen, train the 4->2 head on their (precomputed) logits."""
        self.vision.requires_grad_(False)
        self.text.requires_grad_(False)
        branch = torch.cat([predict_logits(self.vision, data.images, None),
                            predict_logits(self.text, None, data.texts)], dim=1).to(model_device(self))
        return fit(self.head, lambda idx: self.head(branch[idx]), data.labels, recipe, seed)

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

    def fit_recipe(self, data: LabelledSet, recipe: TrainRecipe, seed: int) -> list[float]:
        """Nothing to train: the sum of the trained branches' logits."""
        return []

    def forward(self, images: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        vision_logits, text_logits = self.branch_logits(images, text)
        return vision_logits + text_logits


#: This family's built-in models: name -> (family, modalities, preset, training recipe: TrainRecipe fields), read by
#: wrappers.registry from this file's text, without importing it (no torch). The paper's recipes: Mozhegova et al.
#: (2025), Sec. 4.1. The tiny early fusion trains all three encoders jointly from their initial weights, as the paper
#: (which starts from generic pretrained weights, not the task-trained single-modality models: init_from_unimodal).
BUILTIN_MODELS = {
    "early_fusion": ("early_fusion", "image+text", "tiny", {"lr": 5e-4, "epochs": 8, "batch_size": 32}),
    "early_fusion_paper": ("early_fusion", "image+text", "paper", {"lr": 1e-4, "epochs": 5, "batch_size": 16}),
    "late_fusion": ("late_fusion", "image+text", "tiny", {"lr": 1e-2, "epochs": 60, "batch_size": 64}),
    "late_fusion_paper": ("late_fusion", "image+text", "paper", {"lr": 1e-5, "epochs": 5, "batch_size": 16}),
    "ensemble_fusion": ("ensemble_fusion", "image+text", "tiny", {"epochs": 0}),
    "ensemble_fusion_paper": ("ensemble_fusion", "image+text", "paper", {"epochs": 0}),
}


def _register(name: str, cls: type[nn.Module], preset: str) -> None:
    @register_model(name, cls, preset, VISION_KEYS + TEXT_KEYS)
    def factory(**overrides) -> nn.Module:
        config = resolve_config(cls.family, preset, overrides, VISION_KEYS + TEXT_KEYS)
        return cls({"name": name, "preset": preset, **config})


_CLASSES = {cls.family: cls for cls in (EarlyFusion, LateFusion, EnsembleFusion)}
for _name, (_family, _modalities, _preset, _recipe) in BUILTIN_MODELS.items():
    _register(_name, _CLASSES[_family], _preset)

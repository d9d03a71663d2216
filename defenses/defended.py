"""A model behind an input defense: the defense transforms the image (or the report, before tokenisation) and the
model classifies the result. `DefendedModel(model, defense)` keeps the model contract (forward(images, text),
modalities, tokenize, config), so every attack of the catalogue runs on it unchanged — naively: the defense's
NumPy steps give no gradient — and adaptively through `defenses.adaptive.Adapted` (BPDA, EOT)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def defend(model: nn.Module, defense: Any, data: Any, cache_dir: Any, key: str, seed: int) -> nn.Module:
    """`model` with `defense`: behind it (an input defense), or fine-tuned by it (a training defense, cached under
    the defended model's content `key`)."""
    if defense.kind == "training":
        from defenses.adversarial_training import obtain_finetuned

        return obtain_finetuned(model, defense, data, cache_dir, key, seed)
    return DefendedModel(model, defense)


class DefendedModel(nn.Module):
    """`model` with `defense` (a defenses.input.base.InputDefense) in front of the input it defends."""

    def __init__(self, model: nn.Module, defense: Any) -> None:
        super().__init__()
        self.model, self.defense = model, defense
        self.modalities = model.modalities
        self.randomised = bool(defense.randomised)  # scored by the majority of draws (wrappers.training.predict_proba)
        self.config = {**getattr(model, "config", {}), "defense": defense.describe()}


    def tokenize(self, texts: Sequence[str]) -> Any:
        if self.defense.modality == "text":
            texts = self.defense.texts(texts)
        return self.model.tokenize(texts)

    def forward(self, images: torch.Tensor | None, text: Any = None) -> torch.Tensor:
        if images is not None and self.defense.modality == "image":
            images = self.defense.images(images)
        return self.model(images, text)

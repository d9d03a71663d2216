"""What every fine-tuning method on frozen features is: a head with a transform, a classifier and a loss."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mmrb.core.errors import ModelError


@dataclass(frozen=True)
class HeadRecipe:
    """How a head is trained: AdamW with cosine decay over `epochs` of shuffled mini-batches."""

    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 50
    batch_size: int = 64

    def with_overrides(self, overrides: dict[str, Any]) -> HeadRecipe:
        """A copy with `overrides`; unknown keys raise naming the allowed ones."""
        allowed = {f.name for f in fields(self)}
        bad = sorted(set(overrides) - allowed)
        if bad:
            raise ModelError(f"field 'head_recipe': unknown key(s) {bad}; allowed: {sorted(allowed)}")
        return replace(self, **overrides)


class DefenseHead(nn.Module):
    """A head on frozen features F: `transform(F)` gives the tuned features, `classifier` the logits."""

    name: ClassVar[str] = ""
    PARAMS: ClassVar[tuple[str, ...]] = ()
    recipe: ClassVar[HeadRecipe] = HeadRecipe()
    #: the frozen features it reads: "normalised" (unit L2 norm, as CLIP's zero-shot scores) or "raw" (the image
    #: projection's output, as NMTune's authors feed their tuner)
    features: ClassVar[str] = "normalised"

    def __init__(self, dim: int, n_classes: int = 2) -> None:
        super().__init__()
        self.dim, self.n_classes = dim, n_classes
        self.classifier = nn.Linear(dim, n_classes)

    def transform(self, features: torch.Tensor) -> torch.Tensor:
        """The tuned features the classifier reads (identity: linear probing)."""
        return features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.transform(features))

    def loss(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss on a batch and its named parts (cross-entropy only here)."""
        ce = F.cross_entropy(self(features), labels)
        return ce, {"ce": ce.item()}


def fit_head(head: DefenseHead, features: torch.Tensor, labels: torch.Tensor, seed: int,
             **overrides: Any) -> list[float]:
    """Train `head` with its own loss and recipe (overridable) on frozen features; mean loss per epoch."""
    recipe = head.recipe.with_overrides(overrides)
    features, labels = features.detach().float(), torch.as_tensor(labels, dtype=torch.long)
    steps = recipe.epochs * math.ceil(len(labels) / recipe.batch_size)
    optimizer = torch.optim.AdamW(head.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    generator = torch.Generator().manual_seed(seed)
    head.train()
    losses = []
    for _ in range(recipe.epochs):
        total, seen = 0.0, 0
        for idx in torch.randperm(len(labels), generator=generator).split(recipe.batch_size):
            if len(idx) < 2:  # BatchNorm and batch statistics need two samples
                continue
            loss, _ = head.loss(features[idx], labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total, seen = total + loss.item() * len(idx), seen + len(idx)
        losses.append(total / max(seen, 1))
    head.eval()
    return losses

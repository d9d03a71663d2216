"""Defense heads of a comparison: resolved by name or `file.py:Class`, each fit with the same hyper-parameter search
on a validation split, seeded before it is built."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.studies.defenses.spec import DefenseEntry, SearchSpec
from defenses.heads.registry import defense_head_class
from mmrb.core.errors import ModelError


def build_head(entry: DefenseEntry, dim: int, seed: int, base: Path | None = None):
    """A fresh head of the defense, its weights drawn from `seed` (the same head whatever ran before)."""
    cls = defense_head_class(entry.name, base)
    torch.manual_seed(seed)
    try:
        return cls(dim, 2, **entry.params)
    except TypeError as exc:
        raise ModelError(f"defense {entry.label!r}: bad params {sorted(entry.params)} ({exc}); it takes: "
                         f"{', '.join(cls.PARAMS) or 'none'}") from None


@dataclass(frozen=True)
class Fitted:
    """A head fit with the setting the validation split chose, and what the search saw."""

    head: Any
    lr: float
    epochs: int
    validation_accuracy: float
    seconds: float


def fit_searched(entry: DefenseEntry, features: dict[str, torch.Tensor], labels: dict[str, np.ndarray],
                 search: SearchSpec, seed: int, base: Path | None = None) -> Fitted:
    """Fit one head per (lr, epochs) of the search on features["train"] (each from the same seeded start) and keep
    the one with the best validation accuracy (the first on a tie): every defense gets the same budget."""
    import time

    from defenses.heads import fit_head

    start = time.perf_counter()
    best: tuple[float, Any, float, int] | None = None
    for lr, epochs in itertools.product(search.lr, search.epochs):
        head = build_head(entry, features["train"].shape[1], seed, base)
        fit_head(head, features["train"], torch.as_tensor(labels["train"]), seed, lr=lr, epochs=epochs)
        with torch.no_grad():
            accuracy = float((head(features["validation"]).argmax(1).numpy() == labels["validation"]).mean())
        if best is None or accuracy > best[0]:
            best = (accuracy, head, lr, epochs)
    accuracy, head, lr, epochs = best
    return Fitted(head.eval(), lr, epochs, accuracy, round(time.perf_counter() - start, 2))


def classifier(clip_spec: str, head: Any, image_size: int | None = None):
    """The defended classifier (CLIP frozen + head) as an mmrb model, for attacks that need the whole model;
    `image_size`: the input size of a new (untrained) architecture, not of a saved CLIP."""
    from wrappers.clip import defended_model

    size = {"image_size": image_size} if image_size else {}
    model = defended_model("lp", clip=clip_spec, pretrain={"epochs": 0}, **size)
    model.head = head
    model.encoder.requires_grad_(False).eval()
    model.trained.fill_(True)
    return model.eval()


def check_defenses(entries: list[DefenseEntry], clip: str, image_size: int, images: np.ndarray, texts: list[str],
                   where: str, base: Path | None = None) -> None:
    """Before any pre-training: each defense, on an untrained CLIP of the suite's architecture, returns finite (n, 2)
    logits on a batch of test images (benchmark.run.preflight)."""
    from benchmark.run.preflight import BATCH, check_built
    from wrappers.clip_encoder import ClipEncoder

    dim = ClipEncoder(clip, None, image_size).embed_dim
    for i, entry in enumerate(entries):
        model = classifier(clip, build_head(entry, dim, 0, base), image_size)
        check_built(model, images[:BATCH], texts[:BATCH], f"{where}: defense {entry.label!r} (defenses.{i})")

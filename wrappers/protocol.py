"""The model protocol: what every mmrb model is, so that attacks, the runner and the leaderboard can use it.

A model is an `nn.Module` with
- `family` (str) and `modalities` (a frozenset of "image" and/or "text"), as class attributes;
- `config` (dict): at least `name`; `recipe` (`lr`, `epochs`, `batch_size`, `weight_decay`, `scheduler`) sets how
  mmrb trains it; every other key is passed back to its factory when a saved checkpoint is rebuilt, so the factory
  must accept every key of the config it writes;
- `tokenize(texts) -> dict[str, Tensor] | None`: one row of equal-length tensors per text (None: no text input);
- `forward(images, text) -> logits (n, 2)`: images (n, 2, H, W) in [0, 1] (frontal, lateral; normalise inside the
  model so ε is in pixel units), text the `tokenize` output for the same rows; class 1 = abnormal;
- optionally `branches() -> {"image": module, "text": module}`: single-modality classifiers inside the model (late
  and ensemble fusion), each called as `module(images, text)`; results then report the attacked branch alone;
- optionally, how mmrb trains it besides `fit` on the whole model (`wrappers.training`): `train_on(data, cache_dir,
  seed)` (it trains itself: CLIP), or `uses_trained_branches(recipe)` + `branch_configs()` + `load_branches(vision,
  text)` (it starts from the trained single-modality models) and `fit_recipe(data, recipe, seed)` (what its recipe
  trains: late fusion's head, nothing for ensemble fusion).
The reusable parts: `wrappers.TwoViewEncoder` (frontal + lateral SE-ResNet features, `feature_dim`) and
`wrappers.TextEncoder` (BERT [CLS] features, `tokenize`, `feature_dim`; `"tiny_bert"` is built by mmrb from the
training reports).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from mmrb.core.errors import ModelError


@runtime_checkable
class MultimodalModel(Protocol):
    """The contract every mmrb model meets (see the module docstring)."""

    family: str
    modalities: frozenset[str]
    config: dict[str, Any]

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor] | None: ...

    def forward(self, images: torch.Tensor | None, text: dict[str, torch.Tensor] | None) -> torch.Tensor: ...


def check_model(model: Any, images: np.ndarray, texts: Sequence[str], where: str = "model") -> None:
    """Raise ModelError (one line naming `where` and what is wrong) unless `model` meets the protocol and returns
    finite (n, 2) logits on this batch."""
    missing = [a for a in ("family", "modalities", "config", "tokenize", "forward") if not hasattr(model, a)]
    if missing:
        raise ModelError(f"{where}: the model lacks {', '.join(missing)} (see wrappers.protocol.MultimodalModel)")
    modalities = set(model.modalities)
    if not modalities or not modalities <= {"image", "text"}:
        raise ModelError(f"{where}: modalities must be a non-empty subset of {{'image', 'text'}}, got {sorted(modalities)}")
    if not isinstance(model.config, dict) or "name" not in model.config:
        raise ModelError(f"{where}: config must be a dict with at least 'name'")
    from wrappers.training import predict_logits

    try:
        logits = predict_logits(model, images if "image" in modalities else None, texts)
    except Exception as exc:
        raise ModelError(f"{where}: forward on a batch of {len(texts)} samples raised {type(exc).__name__}: {exc}") from exc
    if tuple(logits.shape) != (len(texts), 2):
        raise ModelError(f"{where}: forward must return logits of shape (n, 2) = ({len(texts)}, 2), got {tuple(logits.shape)}")
    if not torch.isfinite(logits).all():
        raise ModelError(f"{where}: forward returned non-finite logits (NaN or inf) on a batch of {len(texts)} samples")

"""A randomised model, shipped as a test case and a worked example of how mmrb scores a model that draws afresh.

`jittered_early_fusion` is mmrb's early fusion that, at prediction time, shifts each image by a random number of
pixels (up to SHIFT in each direction, wrapping around) and adds fresh Gaussian noise (std NOISE) on every forward
pass; `noisy_early_fusion` adds the noise only. Both are trained exactly like `early_fusion` (the randomness is off in
training mode, so the same seed gives the same weights): their deterministic twin. Randomness at inference fools an
attack that follows one draw's gradient and a score taken from one lucky forward pass; whether it buys anything
beyond that is what EOT and majority scoring measure (docs/honest-numbers.md: the noise buys nothing, the random
shift keeps most of its samples even under EOT at the protocol's budget).

mmrb detects it (two forward passes on the same inputs differ: `randomised_model`), attacks it with EOT (the logits
averaged over `defenses.adaptive.EOT_DRAWS` draws, evaluated as one batch) and scores it by the majority decision of
`wrappers.training.SCORING_DRAWS` draws, so its ranked figure is what it withstands most of the time. Submit it:
`mmrb submit examples/randomised_model/card.yaml`; compare it with its twin: `mmrb run examples/randomised_model/randomised_twin.yaml
--import examples/randomised_model/jittered.py`.
"""
from __future__ import annotations

import torch

import mmrb
from wrappers.configs import TEXT_KEYS, VISION_KEYS, resolve_config
from wrappers.fusion import EarlyFusion

#: The draw at every forward pass: a shift of up to SHIFT pixels per axis and Gaussian noise of std NOISE.
SHIFT, NOISE = 2, 0.02


def jitter(images: torch.Tensor, shift: int = SHIFT, noise: float = NOISE) -> torch.Tensor:
    """`images` (n, c, h, w) each rolled by its own random (dy, dx) in [-shift, shift]² plus N(0, noise²), clipped to
    [0, 1]: a permutation of pixels and an added draw, so the gradient passes through both."""
    n, _, h, w = images.shape
    dy = torch.randint(-shift, shift + 1, (n, 1, 1, 1), device=images.device)
    dx = torch.randint(-shift, shift + 1, (n, 1, 1, 1), device=images.device)
    rows = (torch.arange(h, device=images.device).view(1, 1, h, 1) - dy) % h
    cols = (torch.arange(w, device=images.device).view(1, 1, 1, w) - dx) % w
    shifted = images.gather(2, rows.expand(n, images.shape[1], h, w))
    shifted = shifted.gather(3, cols.expand(n, images.shape[1], h, w))
    return (shifted + noise * torch.randn_like(shifted)).clamp(0, 1)


class JitteredEarlyFusion(EarlyFusion):
    """Early fusion with a random shift and fresh noise on its image at every forward pass (not in training)."""

    def forward(self, images: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.training:
            images = jitter(images, int(self.config.get("shift", SHIFT)), float(self.config.get("noise", NOISE)))
        return super().forward(images, text)


class NoisyEarlyFusion(EarlyFusion):
    """Early fusion with fresh Gaussian noise on its image at every forward pass (not in training): randomness alone."""

    def forward(self, images: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.training:
            images = jitter(images, 0, NOISE)
        return super().forward(images, text)


def _config(name: str, overrides: dict) -> dict:
    keys = VISION_KEYS + TEXT_KEYS
    return {"name": name, "preset": "tiny", **resolve_config("early_fusion", "tiny", overrides, keys)}


@mmrb.register_model("jittered_early_fusion", JitteredEarlyFusion, "tiny", VISION_KEYS + TEXT_KEYS)
def jittered_early_fusion(**overrides) -> JitteredEarlyFusion:
    return JitteredEarlyFusion(_config("jittered_early_fusion", overrides))


@mmrb.register_model("noisy_early_fusion", NoisyEarlyFusion, "tiny", VISION_KEYS + TEXT_KEYS)
def noisy_early_fusion(**overrides) -> NoisyEarlyFusion:
    return NoisyEarlyFusion(_config("noisy_early_fusion", overrides))

"""A masked model, shipped as a test case and a worked example of how mmrb ranks gradient masking.

`rounded_early_fusion` is mmrb's early fusion with one extra step: it rounds its image input to the 8-bit grid
(`torch.round(x * 255) / 255`) before its own forward. On 8-bit images the rounding changes nothing that matters
(below half a grey level), and it removes nothing of an 8/255 perturbation, so the model is exactly as robust as its
twin without the step (the same weights). But the rounding's gradient is zero everywhere: every gradient attack
(FGSM, PGD, APGD, FAB) sees a flat loss and reports the clean accuracy as "robust".

mmrb catches it: gradient health finds a zero input gradient on every sample (`masked_gradients`), measures that
BPDA (the rounding passed straight through in the backward pass, Athalye et al. 2018) restores it, and the standard
evaluation the leaderboard ranks by attacks through BPDA, so the model is ranked by what it really withstands.
Submit it: `mmrb submit examples/masked_model/card.yaml`.

`detached_early_fusion` masks its gradient in a way no BPDA rule can see (`x · 0 + x.detach()`): mmrb raises
`masking_unresolved` and lists it unranked, with the reason, instead of publishing its inflated figure.
"""
from __future__ import annotations

import torch

import mmrb
from wrappers.configs import TEXT_KEYS, VISION_KEYS, resolve_config
from wrappers.fusion import EarlyFusion


class RoundedEarlyFusion(EarlyFusion):
    """Early fusion that quantises its image input to 8 bits first: the same weights, a zero input gradient."""

    def forward(self, images: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        return super().forward(torch.round(images * 255) / 255, text)


class DetachedEarlyFusion(EarlyFusion):
    """Early fusion that cuts its image input out of the autograd graph: a zero input gradient BPDA cannot undo."""

    def forward(self, images: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        return super().forward(images * 0 + images.detach(), text)


def _config(name: str, overrides: dict) -> dict:
    keys = VISION_KEYS + TEXT_KEYS
    return {"name": name, "preset": "tiny", **resolve_config("early_fusion", "tiny", overrides, keys)}


@mmrb.register_model("rounded_early_fusion", RoundedEarlyFusion, "tiny", VISION_KEYS + TEXT_KEYS)
def rounded_early_fusion(**overrides) -> RoundedEarlyFusion:
    return RoundedEarlyFusion(_config("rounded_early_fusion", overrides))


@mmrb.register_model("detached_early_fusion", DetachedEarlyFusion, "tiny", VISION_KEYS + TEXT_KEYS)
def detached_early_fusion(**overrides) -> DetachedEarlyFusion:
    return DetachedEarlyFusion(_config("detached_early_fusion", overrides))

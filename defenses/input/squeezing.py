"""Bit-depth reduction (ART's `FeatureSqueezing`; Xu et al. 2018). Its stand-in is the straight-through estimator:
the rounding's gradient taken as the identity (Bengio et al. 2013; Athalye et al. 2018, §4.1)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from defenses.input.base import InputDefense, through
from defenses.registry import Range, input_defense

if TYPE_CHECKING:
    import torch


@input_defense("feature_squeezing", params={"bit_depth": Range(1, 64, whole=True)})
class FeatureSqueezing(InputDefense):
    """Pixel values rounded to `bit_depth` bits, before the model."""
    gradient, stand_in_name = "straight-through", "identity"

    def __init__(self, seed: int = 0, bit_depth: int = 4) -> None:
        from art.defences.preprocessor import FeatureSqueezing as ArtSqueezing

        super().__init__(seed, bit_depth=bit_depth)
        self._art = ArtSqueezing(clip_values=(0.0, 1.0), bit_depth=int(bit_depth))

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return through(lambda v: self._art(v)[0], x, self.name, self.stand_in)

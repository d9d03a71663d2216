"""JPEG compression of each view (ART's `JpegCompression`; Dziugaite et al. 2016, Das et al. 2017)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from defenses.input.base import InputDefense, per_view, through
from defenses.registry import input_defense

if TYPE_CHECKING:
    import torch


@input_defense("jpeg", params=("quality",))
class Jpeg(InputDefense):
    """Each view JPEG-compressed at `quality` (1-95) and decoded, before the model."""

    def __init__(self, seed: int = 0, quality: int = 50) -> None:
        from art.defences.preprocessor import JpegCompression

        super().__init__(seed, quality=quality)
        self._art = JpegCompression(clip_values=(0.0, 1.0), quality=int(quality), channels_first=True)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return through(per_view(lambda v: self._art(v)[0]), x, self.name)

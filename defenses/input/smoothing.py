"""Median filtering of each view (ART's `SpatialSmoothing`; Xu et al. 2018)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from defenses.input.base import InputDefense, per_view, through
from defenses.registry import input_defense

if TYPE_CHECKING:
    import torch


@input_defense("spatial_smoothing", params=("window_size",))
class SpatialSmoothing(InputDefense):
    """Each view median-filtered in a `window_size` × `window_size` window, before the model."""

    def __init__(self, seed: int = 0, window_size: int = 3) -> None:
        from art.defences.preprocessor import SpatialSmoothing as ArtSmoothing

        super().__init__(seed, window_size=window_size)
        self._art = ArtSmoothing(window_size=int(window_size), channels_first=True, clip_values=(0.0, 1.0))

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return through(per_view(lambda v: self._art(v)[0]), x, self.name)

"""Median filtering of each view (ART's `SpatialSmoothing`; Xu et al. 2018). Its stand-in is exact: the same median
filter in torch (scipy's `median_filter` with `mode="reflect"`, as ART calls it), differentiable almost everywhere
(the gradient goes to the pixel each median selects)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from defenses.input.base import InputDefense, per_view, through
from defenses.registry import Range, input_defense

if TYPE_CHECKING:
    import torch


def median_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """`scipy.ndimage.median_filter(x, size=(1, …, size, size), mode="reflect")` over the last two axes, in torch: the
    border extended by reflection about the edge (`d c b a | a b c d | d c b a`, for any window), the window's centre
    at index size // 2 (lower right for an even window), the element of rank size² // 2 (the larger middle one)."""
    import torch

    def reflect(length: int) -> torch.Tensor:
        index = torch.arange(-(size // 2), length + size - 1 - size // 2, device=x.device) % (2 * length)
        return torch.where(index >= length, 2 * length - 1 - index, index)

    padded = x[..., reflect(x.shape[-2])[:, None], reflect(x.shape[-1])[None, :]]
    windows = padded.unfold(-2, size, 1).unfold(-2, size, 1).flatten(-2)  # (..., H, W, size²)
    return windows.kthvalue(size * size // 2 + 1, dim=-1).values


@input_defense("spatial_smoothing", params={"window_size": Range(1, None, whole=True)})
class SpatialSmoothing(InputDefense):
    """Each view median-filtered in a `window_size` × `window_size` window, before the model."""
    gradient, stand_in_name = "exact", "median filter"

    def __init__(self, seed: int = 0, window_size: int = 3) -> None:
        from art.defences.preprocessor import SpatialSmoothing as ArtSmoothing

        super().__init__(seed, window_size=window_size)
        self.window_size = int(window_size)
        self._art = ArtSmoothing(window_size=self.window_size, channels_first=True, clip_values=(0.0, 1.0))

    def stand_in(self, x: torch.Tensor) -> torch.Tensor:
        """The same median filter in torch (clipped to [0, 1] as ART clips)."""
        return median_filter(x, self.window_size).clamp(0.0, 1.0)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return through(per_view(lambda v: self._art(v)[0]), x, self.name, self.stand_in)

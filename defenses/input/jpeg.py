"""JPEG compression of each view (ART's `JpegCompression`; Dziugaite et al. 2016, Das et al. 2017). Its stand-in is a
differentiable approximation: kornia's `jpeg_codec_differentiable` (Shin & Song 2017; Reich et al. 2024: the same
DCT, quantisation tables and quality scaling, with a cubic in place of each rounding step) on the view truncated to
8 bits as ART truncates it; BPDA takes its gradient and keeps ART's output."""
from __future__ import annotations

from typing import TYPE_CHECKING

from defenses.input.base import InputDefense, per_view, through
from defenses.registry import Range, input_defense

if TYPE_CHECKING:
    import torch


@input_defense("jpeg", params={"quality": Range(1, 95, whole=True)})
class Jpeg(InputDefense):
    """Each view JPEG-compressed at `quality` (1-95) and decoded, before the model."""
    gradient, stand_in_name = "approximation", "kornia differentiable JPEG"

    def __init__(self, seed: int = 0, quality: int = 50) -> None:
        from art.defences.preprocessor import JpegCompression

        super().__init__(seed, quality=quality)
        self.quality = int(quality)
        self._art = JpegCompression(clip_values=(0.0, 1.0), quality=self.quality, channels_first=True)

    def stand_in(self, x: torch.Tensor) -> torch.Tensor:
        """kornia's differentiable JPEG of each view (a grey image: three equal channels, no chroma)."""
        import torch
        from kornia.enhance import jpeg_codec_differentiable

        eight_bit = x + (torch.floor(x * 255) / 255 - x).detach()  # ART's cast to uint8, straight through
        n, views, h, w = x.shape
        grey = eight_bit.reshape(n * views, 1, h, w).expand(-1, 3, -1, -1)
        quality = torch.tensor([float(self.quality)], dtype=x.dtype, device=x.device)
        return jpeg_codec_differentiable(grey, quality).mean(1).reshape(n, views, h, w).clamp(0.0, 1.0)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return through(per_view(lambda v: self._art(v)[0]), x, self.name, self.stand_in)

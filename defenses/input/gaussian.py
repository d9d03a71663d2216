"""Gaussian noise added at prediction time (ART's `GaussianAugmentation` with `augmentation=False`): a randomised
defense, attacked adaptively with EOT (the mean gradient over draws). The noise is added, so the identity is its
exact gradient (but where the clip to [0, 1] binds)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from defenses.input.base import InputDefense, through
from defenses.registry import Range, input_defense

if TYPE_CHECKING:
    import torch


@input_defense("gaussian_augmentation", params={"sigma": Range(0, None)})
class GaussianNoise(InputDefense):
    """Gaussian noise of standard deviation `sigma` on the image, a fresh draw per call (seeded per model)."""
    randomised = True
    gradient, stand_in_name = "exact", "identity"

    def __init__(self, seed: int = 0, sigma: float = 0.05) -> None:
        from art.defences.preprocessor import GaussianAugmentation

        super().__init__(seed, sigma=sigma)
        self._art = GaussianAugmentation(sigma=float(sigma), augmentation=False, clip_values=(0.0, 1.0),
                                         apply_predict=True)
        self._rng = np.random.RandomState(seed)

    def _noisy(self, x: np.ndarray) -> np.ndarray:
        state = np.random.get_state()  # ART draws from NumPy's global generator: draw from this defense's own
        np.random.set_state(self._rng.get_state())
        try:
            out = self._art(x)[0]
        finally:
            self._rng.set_state(np.random.get_state())
            np.random.set_state(state)
        return out

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return through(self._noisy, x, self.name, self.stand_in)

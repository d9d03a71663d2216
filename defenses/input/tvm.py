"""Total variation minimisation (ART's `TotalVarMin`; Guo et al. 2018): slow on CPU (about 0.7 s per 32-px view).
Its stand-in is the identity, as the last resort: an optimisation solved in NumPy per view has no torch twin here (an
unrolled torch solver would be the better stand-in; Athalye et al. 2018 broke this defense with the identity)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from defenses.input.base import InputDefense, per_view, through
from defenses.registry import Range, input_defense

if TYPE_CHECKING:
    import torch


@input_defense("total_var_min", params={"prob": Range(0, 1), "lamb": Range(0, None),
                                         "max_iter": Range(1, None, whole=True)})
class TotalVariation(InputDefense):
    """Each view reconstructed from a random `prob` share of its pixels by total-variation minimisation."""
    randomised = True
    gradient = stand_in_name = "identity"

    def __init__(self, seed: int = 0, prob: float = 0.3, lamb: float = 0.5, max_iter: int = 10) -> None:
        from art.defences.preprocessor import TotalVarMin

        super().__init__(seed, prob=prob, lamb=lamb, max_iter=max_iter)
        self._art = TotalVarMin(prob=float(prob), lamb=float(lamb), max_iter=int(max_iter), clip_values=(0.0, 1.0))

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return through(per_view(lambda v: self._art(v)[0]), x, self.name, self.stand_in)

"""Total variation minimisation (ART's `TotalVarMin`; Guo et al. 2018): each view is rebuilt from a random `prob`
share of its pixels by minimising ‖mask · (z − x)‖₂ + λ · TV(z) (TV: the summed L2 norms of the differences between
neighbouring rows and between neighbouring columns), solved by L-BFGS-B for `max_iter` iterations. ART takes images
channels-last, (n, H, W, channels): each view goes in as an (H, W) grey image with one channel.

Its stand-in is a differentiable approximation: the same objective, with a fresh mask of the same density, minimised
by SOLVER_STEPS steps of gradient descent unrolled in torch, so the attack differentiates through the solver
(Athalye et al. 2018 broke this defense with the identity; the unrolled solver is the better gradient). Measured on
generated chest X-ray views (tests/attacks/test_stand_ins.py), mean |stand-in − ART| in 1/255 against
|identity − ART|: 4.7 vs 22.6 at 32 px, 3.6 vs 13.1 at 64 px (part of it the two masks' different draws)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from defenses.input.base import InputDefense, through
from defenses.registry import Range, input_defense

if TYPE_CHECKING:
    import torch

#: The unrolled solver of the stand-in: steps of gradient descent and their size (calibrated against ART's L-BFGS-B
#: output at the default prob 0.3, λ 0.5, 10 iterations).
SOLVER_STEPS, SOLVER_STEP_SIZE = 100, 0.02


def tv_objective(z: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, lamb: float) -> torch.Tensor:
    """ART's objective (norm 2) over the last two axes, summed over every leading index (view)."""
    fidelity = (mask * (z - x) ** 2).sum((-2, -1)).add(1e-12).sqrt()
    rows = (z[..., 1:, :] - z[..., :-1, :]).pow(2).sum(-1).add(1e-12).sqrt().sum(-1)
    cols = (z[..., :, 1:] - z[..., :, :-1]).pow(2).sum(-2).add(1e-12).sqrt().sum(-1)
    return (fidelity + lamb * (rows + cols)).sum()


@input_defense("total_var_min", params={"prob": Range(0, 1), "lamb": Range(0, None),
                                         "max_iter": Range(1, None, whole=True)})
class TotalVariation(InputDefense):
    """Each view reconstructed from a random `prob` share of its pixels by total-variation minimisation."""
    randomised = True
    gradient, stand_in_name = "approximation", "unrolled TV solver"

    def __init__(self, seed: int = 0, prob: float = 0.3, lamb: float = 0.5, max_iter: int = 10) -> None:
        from art.defences.preprocessor import TotalVarMin

        super().__init__(seed, prob=prob, lamb=lamb, max_iter=max_iter)
        self.prob, self.lamb = float(prob), float(lamb)
        self._art = TotalVarMin(prob=self.prob, lamb=self.lamb, max_iter=int(max_iter), clip_values=(0.0, 1.0))
        self._rng = np.random.RandomState(seed)

    def _solve(self, x: np.ndarray) -> np.ndarray:
        """ART's TVM of each view of (n, views, H, W) images, channels-last as ART expects, drawing its masks from
        this defense's own generator."""
        n, views, h, w = x.shape
        state = np.random.get_state()
        np.random.set_state(self._rng.get_state())
        try:
            out = self._art(x.reshape(n * views, h, w, 1))[0]
        finally:
            self._rng.set_state(np.random.get_state())
            np.random.set_state(state)
        return out.reshape(n, views, h, w)

    def stand_in(self, x: torch.Tensor) -> torch.Tensor:
        """The objective minimised by SOLVER_STEPS unrolled gradient steps from x, with a fresh mask."""
        import torch

        mask = (torch.rand_like(x) < self.prob).to(x.dtype)
        with torch.enable_grad():
            z = x if x.requires_grad else x.detach().requires_grad_(True)
            source = z
            for _ in range(SOLVER_STEPS):
                (grad,) = torch.autograd.grad(tv_objective(z, source, mask, self.lamb), z, create_graph=True)
                z = z - SOLVER_STEP_SIZE * grad
        return z.clamp(0.0, 1.0)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return through(self._solve, x, self.name, self.stand_in)

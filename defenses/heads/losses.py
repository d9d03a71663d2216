"""Feature regularisers of RAN (Han et al. 2025, §3.2) and NMTune (Chen et al., ICLR 2024), as pure functions."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """L_COV = (1/D) Σ_{i≠j} C(Z)_ij², C(Z) = Σ_n (z_n − z̄)(z_n − z̄)ᵀ / (n − 1) (§3.2; Bardes et al. 2022)."""
    n, d = z.shape
    centred = z - z.mean(0, keepdim=True)
    cov = centred.T @ centred / max(n - 1, 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / d


def consistency_loss(f: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """L_MSE = ‖F̂ − Ẑ‖²₂ between L2-normalised frozen and transformed features (§3.2), averaged over samples."""
    return (F.normalize(f, dim=1) - F.normalize(z, dim=1)).pow(2).sum(1).mean()


def class_centroids(z: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, D) means of the L2-normalised features per class in the batch, and which classes are present."""
    zn = F.normalize(z, dim=1)
    onehot = F.one_hot(labels, n_classes).to(zn.dtype)
    counts = onehot.sum(0)
    return onehot.T @ zn / counts.clamp(min=1)[:, None], counts > 0


def adversarial_margin_loss(z: torch.Tensor, labels: torch.Tensor, n_classes: int,
                            centroids: torch.Tensor | None = None) -> torch.Tensor:
    """L_ADV of §3.2, with its ambiguities resolved as follows (also in docs/clip-defenses.md):

    L_ADV = −[ (1/n) Σ_i dist(ẑ_i) + (2 / (m(m−1))) Σ_{a<b} arccos(ĉ_a · ĉ_b) ],
    dist(ẑ_i) = (1/(m−1)) Σ_{k≠y_i} ‖ẑ_i − c_k‖₂.

    - the printed sum "(1/D) Σ_{i=1}^{D}" runs over the n samples of the batch (f_i is "the feature of x_i"),
      not over the D feature dimensions;
    - it acts on the trainable transformed features Z (L2-normalised: ẑ), not on the frozen F, which no loss can
      move; normalising keeps it bounded (unnormalised features could be scaled apart without limit);
    - the centroids c_k are the class means of ẑ in the batch (the m classes present), differentiable, unless
      given; the arccos term uses the unit centroids ĉ_k and is averaged once over all pairs of classes a<b
      (the printed "c_{y_i} · c_j" has no j to sum over), not per sample;
    - both terms are maximised, as the text says ("maximize the distance ... and the separation of the
      centroids"), so the minus sign applies to both (the printed "+ arccos" would pull centroids together).
    L_ADV grows as a feature approaches another class's centroid; it is 0 when fewer than two classes are present.
    """
    zn = F.normalize(z, dim=1)
    if centroids is None:
        centroids, present = class_centroids(z, labels, n_classes)
    else:
        present = torch.ones(len(centroids), dtype=torch.bool, device=z.device)
    if int(present.sum()) < 2:
        return z.sum() * 0.0
    distances = ((zn[:, None, :] - centroids[None]).pow(2).sum(-1) + 1e-12).sqrt()  # (n, K); sqrt(· + ε): finite grads
    wrong = present[None, :] & (torch.arange(len(centroids), device=z.device)[None, :] != labels[:, None])
    dist = (distances * wrong).sum(1) / wrong.sum(1).clamp(min=1)
    unit = F.normalize(centroids[present], dim=1)
    a, b = torch.triu_indices(len(unit), len(unit), offset=1)
    angle = torch.arccos((unit[a] * unit[b]).sum(1).clamp(-1 + 1e-6, 1 - 1e-6)).mean()
    return -(dist.mean() + angle)


def singular_value_loss(g: torch.Tensor, k: int = 5) -> torch.Tensor:
    """NMTune's spectrum term: the mean of the top-k normalised singular values s/Σs of the feature batch
    (Chen et al. 2024, Eq. 4); it rises as the spectrum concentrates on a few directions (NMTune maximises it)."""
    s = torch.linalg.svdvals(g)
    return (s / s.sum().clamp(min=1e-12))[:k].mean()

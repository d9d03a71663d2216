"""Feature-space targeted PGD on an image encoder (Han et al. 2025, §3.1, Eq. 3.1 and Fig. 2).

x_adv = argmax_{‖x_adv − x‖∞ ≤ ε} cos(f(x_adv), f(x_target)), by PGD with signed gradient steps from x, each
projected back onto the ε-ball and [0, 1]. x_target comes from another domain (the generated abdominal CT slices
of `benchmark.data.synth_domains`, standing in for MEDICAT); the paper's Table 1 reports the CLIP score of x_clean
and of x_adv against the target's caption, which `craft` records in the attack's params. `space: head` aims at the
features the model's head classifies (`model.features`: Z of MLP/RAN, g of NMTune) instead of CLIP's: the attack
adapted to each defense.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.attacks import Crafted, Target
from benchmark.attacks.registry import register_attack
from mmrb.core.errors import AttackError

PARAMS = ("steps", "alpha", "random_start", "batch_size", "target_seed", "space")


class FeaturePGD:
    """Targeted PGD in feature space, in the shape of torchattacks' PGD: `FeaturePGD(encoder, eps, alpha, steps)(x, x_target)`."""

    def __init__(self, encoder: Callable[[torch.Tensor], torch.Tensor], eps: float, alpha: float | None = None,
                 steps: int = 10, random_start: bool = False, seed: int = 0) -> None:
        if eps < 0 or steps < 1:
            raise AttackError(f"feature_pgd: need eps >= 0 and steps >= 1; got eps={eps}, steps={steps}")
        self.encoder, self.eps, self.steps = encoder, eps, steps
        self.alpha = 2.5 * eps / steps if alpha is None else alpha  # Madry et al.'s step, as the catalogue's default
        self.random_start, self.seed = random_start, seed

    def __call__(self, images: torch.Tensor, target_images: torch.Tensor) -> torch.Tensor:
        """Adversarial images within ε of `images` whose features point towards those of `target_images`."""
        with torch.no_grad():
            goal = F.normalize(self.encoder(target_images), dim=1)
        x = images.clone().detach()
        if self.random_start:
            noise = torch.empty_like(x).uniform_(-self.eps, self.eps, generator=torch.Generator().manual_seed(self.seed))
            x = (x + noise).clamp(0, 1)
        for _ in range(self.steps):
            x.requires_grad_(True)
            similarity = (F.normalize(self.encoder(x), dim=1) * goal).sum()
            (grad,) = torch.autograd.grad(similarity, x)
            with torch.no_grad():
                x = x + self.alpha * grad.sign()
                x = (images + (x - images).clamp(-self.eps, self.eps)).clamp(0, 1)
        return x.detach()


def target_similarity(encoder: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                      target_images: torch.Tensor) -> np.ndarray:
    """cos(f(x), f(x_target)) per sample."""
    with torch.no_grad():
        return F.cosine_similarity(encoder(images), encoder(target_images), dim=1).numpy()


@register_attack("feature_pgd", params=PARAMS, gradient=True, steps="steps", step_size="alpha",
                 random_start=("random_start", True))
def craft(params: dict, target: Target, epsilon: float | None, seed: int) -> Crafted:
    """The `feature_pgd` attack of source mmrb: needs a model with `encode_image` (the CLIP models)."""
    from benchmark.data.synth_domains import target_domain

    unknown = set(params) - set(PARAMS)
    if unknown:
        raise AttackError(f"mmrb feature_pgd: unknown params {sorted(unknown)}; it takes: {', '.join(PARAMS)}")
    if epsilon is None:
        raise AttackError("mmrb feature_pgd is an image attack: give it epsilons (modality: image)")
    model = target.model
    if not hasattr(model, "encode_image"):
        raise AttackError(f"mmrb feature_pgd needs an image encoder: model {model.config.get('name')!r} has no "
                          "encode_image(images) (use a CLIP model, e.g. clip_lp)")
    space = params.get("space", "clip")
    if space not in ("clip", "head"):
        raise AttackError(f"mmrb feature_pgd: params.space must be 'clip' (the CLIP image features) or 'head' (the "
                          f"features the model's head classifies, adapted to each defense); got {space!r}")
    if space == "head" and not hasattr(model, "features"):
        raise AttackError(f"mmrb feature_pgd: space 'head' needs a model with features(images) (clip_lp, clip_ran, "
                          f"...); model {model.config.get('name')!r} has none")
    model.eval()
    n, size = len(target.images), target.images.shape[-1]
    x_target, captions = target_domain(n, params.get("target_seed", seed), size)
    attack = FeaturePGD(model.encode_image if space == "clip" else model.features, epsilon, params.get("alpha"), params.get("steps", 10),
                        params.get("random_start", False), seed)
    batch = params.get("batch_size", 64)
    clean = torch.as_tensor(target.images, dtype=torch.float32)
    goal = torch.as_tensor(x_target)
    adv = torch.cat([attack(clean[i:i + batch], goal[i:i + batch]) for i in range(0, n, batch)])
    record = {"steps": attack.steps, "alpha": attack.alpha,
              "target_similarity_clean": float(target_similarity(model.encode_image, clean, goal).mean()),
              "target_similarity_adv": float(target_similarity(model.encode_image, adv, goal).mean())}
    if hasattr(model, "encoder") and hasattr(model.encoder, "embed_texts"):
        from wrappers.clip_encoder import clip_score

        record["clip_score_clean"] = float(clip_score(model.encoder, clean, captions).mean())
        record["clip_score_adv"] = float(clip_score(model.encoder, adv, captions).mean())
    return Crafted(adv.numpy(), list(target.texts), attack.steps, record)

"""Co-Attack (Zhang et al., ACM MM 2022): the text first, then an image perturbation crafted against the adversarial
text so the two add up, under one stated joint budget (image L∞ ε, word fraction).

1. Text: HotFlip word swaps (`benchmark.attacks.hotflip`), the gradient taken through the fused model with each
   report's own image, at most `round_half_up(word_fraction × n_words)` words per report.
2. Image: PGD on the clean image with the adversarial text, maximising the classification loss plus `weight` × the
   cosine distance of the fused representation (the input of the model's `head`; its logits for a model without one)
   from the clean pair's (the paper's eq. 5, with the classifier's loss added as for a classifier).
Both budgets are asserted on the output. params: `word_fraction` (0.1), `top_n` (5), `steps` (20), `step_size`
(2.5·ε/steps), `random_start` (true), `weight` (1.0).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.attacks import Crafted, Target, hotflip
from benchmark.attacks.adaptive import StraightThrough
from benchmark.attacks.probes import true_margin
from benchmark.attacks.registry import register_attack
from mmrb.core.errors import AttackError

DEFAULTS: dict[str, Any] = {"word_fraction": 0.1, "top_n": 5, "steps": 20, "step_size": None, "random_start": True,
                            "weight": 1.0}


@contextlib.contextmanager
def fused_representation(model: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect what the model's `head` receives on each forward (empty when it has no head: logits are used)."""
    seen: list[torch.Tensor] = []
    head = getattr(model, "head", None)
    hook = head.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0])) if head is not None else None
    try:
        yield seen
    finally:
        if hook is not None:
            hook.remove()


def _represent(model, images, tokens) -> tuple[torch.Tensor, torch.Tensor]:
    with fused_representation(model) as seen, StraightThrough():  # BPDA through rounding steps, like mmrb pgd
        logits = model(images, tokens)
    return logits, (seen[-1] if seen else logits)


def assert_joint_budget(clean: np.ndarray, adv: np.ndarray, epsilon: float, texts, adv_texts, fraction: float) -> None:
    """Raise AttackError if the image moved more than ε or any report more words than its budget."""
    linf = float(np.abs(adv - clean).max()) if adv.size else 0.0
    if linf > epsilon + 1e-6 or adv.min(initial=0.0) < 0.0 or adv.max(initial=1.0) > 1.0:
        raise AttackError(f"mmrb co_attack: image outside its budget (‖δ‖∞ = {linf:.6g}, ε = {epsilon:.6g}) or [0, 1]")
    hotflip.assert_budget(texts, adv_texts, fraction, "co_attack")


@register_attack("co_attack", modality="joint", gradient=True, white_box=True, params=tuple(DEFAULTS),
                 defaults=DEFAULTS, steps="steps", step_size="step_size", random_start=("random_start", True))
def co_attack(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """Text first, then the image against the adversarial text (module docstring); each sample keeps its own report."""
    if epsilon is None or not np.isfinite(epsilon) or epsilon <= 0:
        raise AttackError(f"mmrb co_attack needs an image budget ε > 0, got {epsilon!r}")
    model = target.model
    if not {"image", "text"} <= set(model.modalities):
        raise AttackError("mmrb co_attack attacks both modalities; the model must take an image and a report")
    p = {**DEFAULTS, **params}
    fraction, steps = float(p["word_fraction"]), int(p["steps"])
    size = float(p["step_size"] or 2.5 * epsilon / steps)
    text = hotflip.hotflip({"word_fraction": fraction, "top_n": p["top_n"]}, target, None, seed)
    clean = np.asarray(target.images, dtype=np.float32)
    device = next(model.parameters()).device
    x0 = torch.as_tensor(clean, device=device)
    y = torch.as_tensor(np.asarray(target.labels), device=device, dtype=torch.long)
    tokens = {k: v.to(device) for k, v in model.tokenize(list(target.texts)).items()}
    adv_tokens = {k: v.to(device) for k, v in model.tokenize(text.texts).items()}
    mode = model.training
    model.eval()
    try:
        with torch.no_grad():
            _, anchor = _represent(model, x0, tokens)
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        noise = (torch.rand(x0.shape, generator=gen) * 2 - 1).to(device) * epsilon if p["random_start"] else 0.0
        x = (x0 + noise).clamp(0, 1)
        best, best_margin = x0.clone(), torch.full((len(x0),), float("inf"), device=device)
        for step in range(steps + 1):
            x = x.detach().requires_grad_(step < steps)
            with torch.enable_grad():
                logits, rep = _represent(model, x, adv_tokens)
                margin = true_margin(logits.detach(), y)  # per sample, the iterate of lowest true-class margin is kept
                better = margin < best_margin
                best[better], best_margin[better] = x.detach()[better], margin[better]
                if step == steps:
                    break
                distance = 1 - F.cosine_similarity(rep, anchor, dim=1)
                loss = (-true_margin(logits, y) + float(p["weight"]) * distance).sum()
                grad, = torch.autograd.grad(loss, x)
            x = torch.min(torch.max(x.detach() + size * grad.sign(), x0 - epsilon), x0 + epsilon).clamp(0, 1)
    finally:
        model.train(mode)
    adv = best.cpu().numpy().astype(np.float32)
    assert_joint_budget(clean, adv, epsilon, target.texts, text.texts, fraction)
    queries = (text.queries if text.queries is not None else 0) + steps
    return Crafted(adv, list(text.texts), steps, {**p, "step_size": size}, np.asarray(queries, dtype=np.int64))

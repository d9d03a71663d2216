"""Co-Attack (Zhang et al., ACM MM 2022): the text first, then an image perturbation crafted against the adversarial
text so the two add up, under one stated joint budget (image L∞ ε, word fraction).

1. Text (`text_attack`): HotFlip word swaps (`benchmark.attacks.hotflip`), the gradient taken through the fused model
   with each report's own image, or BERT-Attack's masked-LM substitutions (`benchmark.attacks.bert_attack`, the
   paper's own text step; needs no BERT in the model, so it runs on the CLIP models); `auto` (the default) takes
   HotFlip where the model has a BERT text encoder, else BERT-Attack. Each candidate is scored, as in the paper, by the
   cosine distance of the fused representation from the clean pair's (`text_objective: embedding`,
   benchmark.attacks.text_objective), and the budget is spent in full. At most `round_half_up(word_fraction ×
   n_words)` words per report.
2. Image: PGD on the clean image with the adversarial text, maximising the classification loss plus `weight` × the
   cosine distance of the fused representation (the input of the model's `head`; its logits for a model without one)
   from the clean pair's (the paper's eq. 5, with the classifier's loss added as for a classifier).
Both budgets are asserted on the output. params: `word_fraction` (0.1), `text_attack` (auto), `top_n` (5, HotFlip's
candidates per word), `max_candidates` (48, BERT-Attack's), `steps` (20), `step_size` (2.5·ε/steps), `random_start`
(true), `weight` (1.0), `text_objective` (`embedding`: the paper's — the text step's words are scored by the distance
of the fused representation from the clean pair's, benchmark.attacks.text_objective; `classification`: by the
decision).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.attacks import Crafted, Target, hotflip
from benchmark.attacks.probes import true_margin
from benchmark.attacks.registry import register_attack
from benchmark.attacks.text_objective import distance, objective_problems, represent
from defenses.adaptive import StraightThrough
from mmrb.core.errors import AttackError

DEFAULTS: dict[str, Any] = {"word_fraction": 0.1, "text_attack": "auto", "top_n": 5, "max_candidates": 48, "steps": 20,
                            "step_size": None, "random_start": True, "weight": 1.0, "text_objective": "embedding"}
#: The text steps a joint attack can take (`text_attack`); auto: HotFlip on a model with a BERT, else BERT-Attack.
TEXT_ATTACKS = ("auto", "hotflip", "bert_attack")


def text_attack_problems(params: dict[str, Any]) -> list[tuple[str, str]]:
    """An unknown `text_attack` or `text_objective`, before any work."""
    choice = params.get("text_attack", "auto")
    found = [] if choice in TEXT_ATTACKS else [("params.text_attack", f"one of {', '.join(TEXT_ATTACKS)}; got {choice!r}")]
    return found + objective_problems(params, "text_objective")


def text_step(p: dict[str, Any], target: Target, seed: int) -> Crafted:
    """The joint attack's word substitutions on `target` (its images bound): HotFlip or BERT-Attack (`text_attack`),
    with the joint budget's word fraction."""
    from benchmark.attacks import bert_attack

    choice = p.get("text_attack", "auto")
    if choice == "auto":
        choice = "hotflip" if hotflip.bert_encoder(target.model) is not None else "bert_attack"
    objective = p.get("text_objective", "classification")
    if choice == "hotflip":
        crafted = hotflip.hotflip({"word_fraction": p["word_fraction"], "top_n": p["top_n"], "objective": objective},
                                  target, None, seed)
    else:
        crafted = bert_attack.bert_attack({"word_fraction": p["word_fraction"], "max_candidates": p["max_candidates"],
                                           "objective": objective}, target, None, seed)
    return replace(crafted, params={**crafted.params, "text_attack": choice})


def joint_setup(name: str, params: dict[str, Any], defaults: dict[str, Any], target: Target,
                epsilon: float | None) -> tuple[dict[str, Any], float, int, float]:
    """A joint attack's checks and budget: AttackError unless ε > 0 and the model reads an image and a report; the
    params over `defaults`, the word fraction, the steps and the step size (2.5·ε/steps unless given)."""
    if epsilon is None or not np.isfinite(epsilon) or epsilon <= 0:
        raise AttackError(f"mmrb {name} needs an image budget ε > 0, got {epsilon!r}")
    if not {"image", "text"} <= set(target.model.modalities):
        raise AttackError(f"mmrb {name} attacks both modalities; the model must take an image and a report")
    p = {**defaults, **params}
    steps = int(p["steps"])
    return p, float(p["word_fraction"]), steps, float(p["step_size"] or 2.5 * epsilon / steps)


def _represent(model, images, tokens) -> tuple[torch.Tensor, torch.Tensor]:
    with StraightThrough():  # BPDA through rounding steps, like mmrb pgd
        return represent(model, images, tokens)


def assert_joint_budget(clean: np.ndarray, adv: np.ndarray, epsilon: float, texts, adv_texts, fraction: float) -> None:
    """Raise AttackError if the image moved more than ε or any report more words than its budget."""
    linf = float(np.abs(adv - clean).max()) if adv.size else 0.0
    if linf > epsilon + 1e-6 or adv.min(initial=0.0) < 0.0 or adv.max(initial=1.0) > 1.0:
        raise AttackError(f"mmrb co_attack: image outside its budget (‖δ‖∞ = {linf:.6g}, ε = {epsilon:.6g}) or [0, 1]")
    hotflip.assert_budget(texts, adv_texts, fraction, "co_attack")


def dual_encoder(model: torch.nn.Module) -> bool:
    """Whether the model is a CLIP-style dual encoder that exposes both embeddings (`encode_image`, and
    `encoder.encode_text` of its tokens): SGA's cross-modal loss applies."""
    return callable(getattr(model, "encode_image", None)) and \
        callable(getattr(getattr(model, "encoder", None), "encode_text", None))


def rescaled(x: torch.Tensor, scale: float) -> torch.Tensor:
    """`x` resized by `scale` and back to its own size (bilinear, differentiable): SGA's scale-set augmentation for
    models that take one input size. Scale 1 is the identity."""
    if scale == 1:
        return x
    size = x.shape[-2:]
    small = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    return F.interpolate(small, size=size, mode="bilinear", align_corners=False)


def guided_pgd(model: torch.nn.Module, clean: np.ndarray, labels: np.ndarray, epsilon: float, steps: int, size: float,
               seed: int, guides: list[dict[str, torch.Tensor]], anchor: dict[str, torch.Tensor],
               scored: dict[str, torch.Tensor], weight: float = 1.0, random_start: bool = True,
               scales: tuple[float, ...] = (1.0,), start: np.ndarray | None = None,
               cross_modal: bool = False) -> np.ndarray:
    """L∞ PGD on the images (sign steps of `size`, projected on ε around `clean` and [0, 1]) maximising, averaged over
    every report set in `guides` (tokenized, one report per sample) and every image scale in `scales`, the negative
    true-class margin plus `weight` × the cosine distance of the fused representation from the clean pair's (`clean`
    with the `anchor` reports, scale 1). Per sample the iterate of lowest true-class margin with the `scored` reports
    at scale 1 is returned. `start`: the first iterate (e.g. an earlier stage's), else `clean` (+ uniform noise of
    size ε with `random_start`, drawn from `seed`). BPDA through rounding steps, like mmrb's pgd. `cross_modal` (a
    dual encoder, `dual_encoder`): the loss is instead SGA's image-text alignment — the cosine distance of each scaled
    image's embedding from each guiding report's embedding — and the classifier only picks the iterate."""
    device = next(model.parameters()).device
    on = lambda tokens: {k: v.to(device) for k, v in tokens.items()}  # noqa: E731
    shared = len(guides) == 1 and guides[0] is scored and tuple(scales) == (1.0,)  # one forward scores and steps
    guides, anchor, scored = [on(g) for g in guides], on(anchor), on(scored)
    x0 = torch.as_tensor(clean, device=device)
    y = torch.as_tensor(np.asarray(labels), device=device, dtype=torch.long)
    mode = model.training
    model.eval()
    try:
        with torch.no_grad():
            _, reference = _represent(model, x0, anchor)
            embedded = [model.encoder.encode_text(g["input_ids"]) for g in guides] if cross_modal else []
        if start is not None:
            x = torch.as_tensor(start, device=device)
        elif random_start:
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            x = (x0 + (torch.rand(x0.shape, generator=gen) * 2 - 1).to(device) * epsilon).clamp(0, 1)
        else:
            x = x0.clone()
        best, best_margin = x0.clone(), torch.full((len(x0),), float("inf"), device=device)
        for step in range(steps + 1):
            x = x.detach().requires_grad_(step < steps)
            with torch.enable_grad():
                terms = [(_represent(model, rescaled(x, scale), tokens), scale) for tokens in guides for scale in scales] \
                    if (step < steps and not cross_modal) or shared else []
                if shared:
                    margin = true_margin(terms[0][0][0].detach(), y)
                else:
                    with torch.no_grad():
                        margin = true_margin(_represent(model, x, scored)[0], y)
                better = margin < best_margin  # per sample, the iterate of lowest true-class margin is kept
                best[better], best_margin[better] = x.detach()[better], margin[better]
                if step == steps:
                    break
                if cross_modal:
                    loss = sum(distance(model.encode_image(rescaled(x, scale)), text).sum()
                               for scale in scales for text in embedded) / (len(scales) * len(embedded))
                else:
                    loss = sum((-true_margin(logits, y) + weight * distance(rep, reference)).sum()
                               for (logits, rep), _ in terms) / len(terms)
                grad, = torch.autograd.grad(loss, x)
            x = torch.min(torch.max(x.detach() + size * grad.sign(), x0 - epsilon), x0 + epsilon).clamp(0, 1)
    finally:
        model.train(mode)
    return best.cpu().numpy().astype(np.float32)


@register_attack("co_attack", modality="joint", gradient=True, white_box=True, params=tuple(DEFAULTS),
                 defaults=DEFAULTS, check=text_attack_problems, steps="steps", step_size="step_size", random_start=("random_start", True))
def co_attack(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """Text first, then the image against the adversarial text (module docstring); each sample keeps its own report."""
    p, fraction, steps, size = joint_setup("co_attack", params, DEFAULTS, target, epsilon)
    model = target.model
    text = text_step(p, target, seed)
    clean = np.asarray(target.images, dtype=np.float32)
    adv_tokens = model.tokenize(text.texts)
    adv = guided_pgd(model, clean, target.labels, epsilon, steps, size, seed, guides=[adv_tokens],
                     anchor=model.tokenize(list(target.texts)), scored=adv_tokens, weight=float(p["weight"]),
                     random_start=bool(p["random_start"]))
    assert_joint_budget(clean, adv, epsilon, target.texts, text.texts, fraction)
    queries = (text.queries if text.queries is not None else 0) + steps
    return Crafted(adv, list(text.texts), steps, {**p, "text_attack": text.params["text_attack"], "step_size": size},
                   np.asarray(queries, dtype=np.int64))

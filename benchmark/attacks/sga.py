"""SGA, the Set-level Guidance Attack (Lu et al., ICCV 2023), for classifiers that read an image and a report: an
adversarial pair crafted against sets — of image scales and of reports — so that it transfers to other models.

Three stages in the paper's and its official code's order (text → image → text):

1. text, guided by the clean image: word swaps (HotFlip, `benchmark.attacks.hotflip`, from the embedding gradient; or
   BERT-Attack on a model without a BERT: `text_attack`, as Co-Attack's), at most `round_half_up(word_fraction ×
   n_words)` words per report;
2. image, guided by the set of adversarial reports: PGD on the image averaged over every image scale in `scales`
   (resized and back to the model's size: the paper's scale-invariant set; 1 always in it) and every report of the
   set (the stage-1 report and `paraphrases` WordNet synonym paraphrases of it: the paper's caption set, the
   generated studies having one report each);
3. text again, from the original report, guided by the adversarial image **over the scale set**: the text step scores
   the mean logits of the adversarial image at every scale (`ScaleSet`).

The loss of stage 2: on a CLIP-style dual encoder (`co_attack.dual_encoder`: `encode_image` and
`encoder.encode_text`), the paper's cross-modal loss — the cosine distance between each scaled image's embedding and
each guiding report's embedding; on a fusion classifier, which has no separate image-text alignment, mmrb's stated
adaptation: the negative true-class margin plus `weight` × the cosine distance of the fused representation from the
clean pair's (Co-Attack's objective, `benchmark.attacks.co_attack.guided_pgd`). Stage 2 runs every step (no early
stop) and keeps, per sample, the iterate of lowest true-class margin on the source.

Ablations by parameter: `paraphrases: 0` (the scale set only), `scales: [1.0]` (the report set only).

Budgets (image L∞ ε, word fraction) are asserted on the output; each sample keeps its own report. Crafted on a
source model and scored on every target (a `transfer:` section), the pair shows what set-level guidance adds to
transfer beside the sequential joint attack and PGD of the same steps without early stop. params: `word_fraction`
(0.1), `text_attack` (auto), `top_n` (5), `max_candidates` (48), `steps` (10, of the image stage), `step_size`
(2.5·ε/steps), `random_start` (true), `weight` (1.0), `scales` ([0.5, 0.75, 1.25, 1.5]), `paraphrases` (2),
`paraphrase_fraction` (0.2).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from benchmark.attacks import Crafted, Target
from benchmark.attacks.co_attack import (
    assert_joint_budget,
    dual_encoder,
    guided_pgd,
    joint_setup,
    rescaled,
    text_attack_problems,
    text_step,
)
from benchmark.attacks.registry import register_attack
from benchmark.attacks.text import synonym_swap
from benchmark.data.text_resources import ensure_text_resources

DEFAULTS: dict[str, Any] = {"word_fraction": 0.1, "text_attack": "auto", "top_n": 5, "max_candidates": 48, "steps": 10,
                            "step_size": None, "random_start": True,
                            "weight": 1.0, "scales": [0.5, 0.75, 1.25, 1.5], "paraphrases": 2,
                            "paraphrase_fraction": 0.2}


def _problems(params: dict[str, Any]) -> list[tuple[str, str]]:
    scales = params.get("scales", DEFAULTS["scales"])
    found = text_attack_problems(params)
    if not isinstance(scales, list) or not scales or not all(
            isinstance(s, (int, float)) and not isinstance(s, bool) and 0.25 <= s <= 4 for s in scales):
        found.append(("params.scales", f"a non-empty list of image scales in [0.25, 4], e.g. [0.5, 0.75, 1.25, 1.5]; "
                                       f"got {scales!r}"))
    paraphrases = params.get("paraphrases", DEFAULTS["paraphrases"])
    if isinstance(paraphrases, bool) or not isinstance(paraphrases, int) or paraphrases < 0:
        found.append(("params.paraphrases", f"a number of report paraphrases ≥ 0; got {paraphrases!r}"))
    return found


def report_set(texts: list[str], paraphrases: int, fraction: float, seed: int) -> list[list[str]]:
    """The report sets, as one list per member (the reports themselves first, then each paraphrase round): WordNet
    synonym swaps of `fraction` of the words, each round seeded apart."""
    return [list(texts)] + [synonym_swap(texts, fraction, seed=1000 * (seed + 1) + k) for k in range(paraphrases)]


class ScaleSet(torch.nn.Module):
    """`model` seen through a scale set: its logits averaged over the images resized by each scale and back (SGA's
    stage-3 guidance); reports are passed through. Text attacks run on it like on the model."""

    def __init__(self, model: torch.nn.Module, scales: tuple[float, ...]) -> None:
        super().__init__()
        self.inner, self.scales = model, tuple(scales)
        self.modalities = model.modalities

    def tokenize(self, texts):
        return self.inner.tokenize(texts)

    def forward(self, images, tokens):
        if images is None:
            return self.inner(images, tokens)
        return torch.stack([self.inner(rescaled(images, s), tokens) for s in self.scales]).mean(0)


@register_attack("sga", modality="joint", gradient=True, white_box=True, params=tuple(DEFAULTS), defaults=DEFAULTS,
                 steps="steps", step_size="step_size", random_start=("random_start", True), check=_problems)
def sga(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """Text against the clean image, image against the adversarial report set and scales, text again against the
    adversarial image's scales (module docstring); each sample keeps its own report."""
    p, fraction, steps, size = joint_setup("sga", params, DEFAULTS, target, epsilon)
    model = target.model
    scales = tuple(dict.fromkeys([1.0, *map(float, p["scales"])]))
    ensure_text_resources()
    clean, texts = np.asarray(target.images, dtype=np.float32), list(target.texts)
    first = text_step(p, target, seed)
    adv_tokens = model.tokenize(first.texts)
    guides = [adv_tokens] + [model.tokenize(t) for t in report_set(list(first.texts), int(p["paraphrases"]),
                                                                     float(p["paraphrase_fraction"]), seed)[1:]]
    cross_modal = dual_encoder(model)
    adv = guided_pgd(model, clean, target.labels, epsilon, steps, size, seed, guides=guides,
                     anchor=model.tokenize(texts), scored=adv_tokens, random_start=bool(p["random_start"]),
                     weight=float(p["weight"]), scales=scales, cross_modal=cross_modal)
    last = text_step(p, replace(target, model=ScaleSet(model, scales), images=adv, view=None), seed)
    assert_joint_budget(clean, adv, epsilon, texts, last.texts, fraction)
    forwards = steps * len(scales) * len(guides)
    queries = sum(t.queries if t.queries is not None else 0 for t in (first, last)) + forwards
    return Crafted(adv, list(last.texts), steps, {**p, "text_attack": last.params["text_attack"], "step_size": size,
                                                  "scales": list(scales), "order": "text-image-text",
                                                  "loss": "cross_modal" if cross_modal else "margin+fused_distance"},
                   np.asarray(queries, dtype=np.int64))

"""SGA, the Set-level Guidance Attack (Lu et al., ICCV 2023), for classifiers that read an image and a report: an
adversarial pair crafted against sets — of image scales and of reports — so that it transfers to other models.

The paper attacks image-text retrieval models; mmrb's models classify, so the objective is the classification loss
(the negative true-class margin) plus `weight` × the cosine distance of the fused representation from the clean
pair's, as in mmrb's Co-Attack (`benchmark.attacks.co_attack.guided_pgd`). Three stages, alternating modalities:

1. image, guided by the report set: PGD on the image averaged over every image scale in `scales` (resized and back to
   the model's size: the scale-invariant set of the paper) and every report of the sample's report set (the report
   and `paraphrases` WordNet synonym paraphrases of it: the paper's caption set, the generated reports having one
   caption each);
2. text, guided by the adversarial image: HotFlip word swaps (`benchmark.attacks.hotflip`) chosen by the embedding
   gradient with the stage-1 image, or BERT-Attack on a model without a BERT (`text_attack`, as Co-Attack's), at
   most `round_half_up(word_fraction × n_words)` words per report;
3. image, guided by the adversarial report: PGD from the stage-1 image, averaged over the scales, with the
   adversarial report.

Budgets (image L∞ ε, word fraction) are asserted on the output; each sample keeps its own report. Crafted on a
source model and scored on every target (a `transfer:` section), the pair shows what set-level guidance adds to
transfer beside plain PGD. params: `word_fraction` (0.1), `text_attack` (auto), `top_n` (5), `max_candidates` (48),
`steps` (10 per image stage), `step_size`
(2.5·ε/steps), `random_start` (true), `weight` (1.0), `scales` ([0.5, 0.75, 1.25, 1.5]; 1 is always in the set),
`paraphrases` (2), `paraphrase_fraction` (0.2).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from benchmark.attacks import Crafted, Target
from benchmark.attacks.co_attack import assert_joint_budget, guided_pgd, joint_setup, text_attack_problems, text_step
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


@register_attack("sga", modality="joint", gradient=True, white_box=True, params=tuple(DEFAULTS), defaults=DEFAULTS,
                 steps="steps", step_size="step_size", random_start=("random_start", True), check=_problems)
def sga(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """Image against the report set and scales, text against the adversarial image, image against the adversarial
    text (module docstring); each sample keeps its own report."""
    p, fraction, steps, size = joint_setup("sga", params, DEFAULTS, target, epsilon)
    model = target.model
    scales = tuple(dict.fromkeys([1.0, *map(float, p["scales"])]))
    ensure_text_resources()
    clean, texts = np.asarray(target.images, dtype=np.float32), list(target.texts)
    tokens = model.tokenize(texts)
    guides = [tokens] + [model.tokenize(t) for t in report_set(texts, int(p["paraphrases"]),
                                                                 float(p["paraphrase_fraction"]), seed)[1:]]
    stage = dict(weight=float(p["weight"]), scales=scales)
    first = guided_pgd(model, clean, target.labels, epsilon, steps, size, seed, guides=guides, anchor=tokens,
                       scored=tokens, random_start=bool(p["random_start"]), **stage)
    text = text_step(p, replace(target, images=first), seed)
    adv_tokens = model.tokenize(text.texts)
    adv = guided_pgd(model, clean, target.labels, epsilon, steps, size, seed, guides=[adv_tokens], anchor=tokens,
                     scored=adv_tokens, start=first, **stage)
    assert_joint_budget(clean, adv, epsilon, texts, text.texts, fraction)
    forwards = steps * len(scales) * (len(guides) + 1)
    queries = (text.queries if text.queries is not None else 0) + forwards
    return Crafted(adv, list(text.texts), 2 * steps, {**p, "text_attack": text.params["text_attack"], "step_size": size,
                                                      "scales": list(scales)},
                   np.asarray(queries, dtype=np.int64))

"""mmrb's own attacks: only what ART, torchattacks and TextAttack do not provide.

- `none`: the clean inputs, scored like any attack so each table has its clean row;
- `synonym_swap` (params: fraction) and `word_deletion` (params: fraction): the paper's fraction-based
  "Synonym replacing" and "Half-sentence deleting" (benchmark/attacks/text.py);
- `joint`: an image attack and a text attack on the same samples (params: image, text, order);
- `feature_pgd` (image) and `caption_rewrite` (text): Han et al. (2025)'s feature-space targeted PGD on a CLIP
  image encoder and rule-based adversarial caption rewrite (benchmark/attacks/feature.py, caption.py);
- `pgd`: mmrb's own L∞ PGD (texts by position, early stop, per-sample random starts, BPDA/EOT; benchmark/attacks/pgd.py),
  the text floor's unbounded attack;
- `standard`: the strong evaluation for binary tasks the leaderboard ranks by (benchmark/attacks/standard.py);
- `random_noise` and `image_replacement`: soundness probes — random sign noise of size ε, and the text floor
  (every other test image, blank and saturated images in place of each sample's own; benchmark/attacks/probes.py).
"""
from __future__ import annotations

import difflib

from benchmark.attacks import Crafted, Problem, Target, check_attack, craft, register_source
from mmrb.core.errors import AttackError

ATTACKS = ("none", "synonym_swap", "word_deletion", "joint", "worst_case", "feature_pgd", "caption_rewrite", "standard",
           "random_noise", "image_replacement", "pgd")
JOINT_ORDERS = ("text_first", "independent")
PARAMS = {"none": (), "synonym_swap": ("fraction",), "word_deletion": ("fraction",), "joint": ("image", "text", "order"),
          "worst_case": ("of",),
          "feature_pgd": ("steps", "alpha", "random_start", "batch_size", "target_seed"),
          "caption_rewrite": ("max_words", "rewriter", "fraction"),
          "standard": ("steps", "restarts", "fab_steps", "queries", "attacks", "eot"),
          "random_noise": ("draws", "batch_size"), "image_replacement": ("extra", "batch_size", "escalate"),
          "pgd": ("steps", "restarts", "step_size", "random_start", "loss", "eot", "bpda", "batch_size")}


def check(name: str, params: dict) -> list[Problem]:
    """Unknown mmrb attacks and parameters, fractions outside [0, 1], and joint attacks' parts, before any work."""
    if name not in ATTACKS:
        close = difflib.get_close_matches(name, ATTACKS, n=2)
        return [("name", f"unknown mmrb attack {name!r}{'; did you mean ' + ', '.join(close) + '?' if close else ''}; "
                         f"known: {', '.join(ATTACKS)}")]
    problems = [(f"params.{p}", f"mmrb {name} has no parameter {p!r}; it takes: {', '.join(PARAMS[name]) or 'none'}")
                for p in sorted(set(params) - set(PARAMS[name]))]
    if name == "standard":
        from benchmark.attacks.standard import check as check_standard

        problems += check_standard(params)
    if name == "pgd":
        from benchmark.attacks.pgd import check as check_pgd

        problems += check_pgd(params)
    fraction = params.get("fraction", 0.5)
    if not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        problems.append(("params.fraction", f"a fraction of the words, in [0, 1]; got {fraction!r}"))
    if name == "joint":
        if params.get("order", "text_first") not in JOINT_ORDERS:
            problems.append(("params.order", f"allowed: {', '.join(JOINT_ORDERS)}; got {params.get('order')!r}"))
        for part, default in (("image", "art"), ("text", "mmrb")):
            entry = params.get(part)
            if not isinstance(entry, dict) or "name" not in entry:
                problems.append((f"params.{part}", "needs {source, name, params} of the " + part + " attack"))
                continue
            problems += [(f"params.{part}.{field}", message) for field, message in
                         check_attack(entry.get("source", default), entry["name"], entry.get("params", {}))]
    return problems


@register_source("mmrb")
def craft_mmrb(name: str, params: dict, target: Target, epsilon: float | None, seed: int) -> Crafted:
    if name == "none":
        return Crafted(target.images, list(target.texts), 0)
    if name in ("synonym_swap", "word_deletion"):
        from benchmark.attacks import text

        unknown = set(params) - {"fraction"}
        if unknown:
            raise AttackError(f"mmrb {name}: unknown params {sorted(unknown)}; it takes: fraction")
        fraction = params.get("fraction", 0.2 if name == "synonym_swap" else 0.5)
        attack = text.synonym_swap if name == "synonym_swap" else text.word_deletion
        return Crafted(target.images, attack(target.texts, fraction, seed), 0, {"fraction": fraction})
    if name == "joint":
        return craft_joint(params, target, epsilon, seed)
    if name == "standard":
        from benchmark.attacks.standard import craft_standard

        return craft_standard(params, target, epsilon, seed)
    if name in ("random_noise", "image_replacement"):
        from benchmark.attacks import probes

        return getattr(probes, name)(params, target, epsilon, seed)
    if name == "pgd":
        from benchmark.attacks import pgd

        return pgd.craft(params, target, epsilon, seed)
    if name == "feature_pgd":
        from benchmark.attacks import feature

        return feature.craft(params, target, epsilon, seed)
    if name == "caption_rewrite":
        from benchmark.attacks import caption

        return caption.craft(params, target, seed)
    raise AttackError(f"unknown mmrb attack {name!r}; known: {', '.join(ATTACKS)}")


def craft_joint(params: dict, target: Target, epsilon: float | None, seed: int) -> Crafted:
    """Text attack, then the image attack crafted against the attacked texts (order text_first, the
    default) or against the clean texts (order independent); the model then sees both perturbations."""
    try:
        image, text = dict(params["image"]), dict(params["text"])
    except (KeyError, TypeError):
        raise AttackError("mmrb joint needs params {image: {source, name, params}, text: {source, name, params}}") from None
    order = params.get("order", "text_first")
    if order not in JOINT_ORDERS:
        raise AttackError(f"mmrb joint: order {order!r}; allowed: {', '.join(JOINT_ORDERS)}")
    texts = craft(text.get("source", "mmrb"), text["name"], text.get("params", {}), target, None, seed).texts
    image_target = target.with_texts(texts) if order == "text_first" else target
    images = craft(image.get("source", "art"), image["name"], image.get("params", {}), image_target, epsilon, seed)
    return Crafted(images.images, texts, images.steps, {"image": images.params, "text": text, "order": order})

"""mmrb's own attacks: only what ART, torchattacks and TextAttack do not provide.

- `none`: the clean inputs, scored like any attack so each table has its clean row;
- `synonym_swap` (params: fraction) and `word_deletion` (params: fraction): the paper's fraction-based
  "Synonym replacing" and "Half-sentence deleting" (benchmark/attacks/text.py);
- `joint`: an image attack and a text attack on the same samples (params: image, text, order);
- `feature_pgd` (image) and `caption_rewrite` (text): Han et al. (2025)'s feature-space targeted PGD on a CLIP
  image encoder and rule-based adversarial caption rewrite (benchmark/attacks/feature.py, caption.py).
"""
from __future__ import annotations

from benchmark.attacks import Crafted, Target, craft, register_source
from benchmark.errors import AttackError

ATTACKS = ("none", "synonym_swap", "word_deletion", "joint", "feature_pgd", "caption_rewrite")
JOINT_ORDERS = ("text_first", "independent")


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

"""mmrb's attacks that only arrange others: the clean row, the sequential joint attack and the per-sample worst case.

- `none`: the clean inputs, scored like any attack so each table has its clean row;
- `joint`: an image attack and a text attack on the same samples (params: image, text, order);
- `worst_case`: per sample the worst of other attacks of the suite (params: of), combined by the cell engine.
"""
from __future__ import annotations

from typing import Any

from benchmark.attacks import Crafted, Problem, Target, check_attack, craft
from benchmark.attacks.registry import register_attack
from mmrb.core.errors import AttackError

JOINT_ORDERS = ("text_first", "independent")
JOINT_PARTS = (("image", "art"), ("text", "mmrb"))  # (part, default source)


@register_attack("none", modality="none", bounded=False)
def clean(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    return Crafted(target.images, list(target.texts), 0)


@register_attack("worst_case", combines="of", params=("of",))
def worst_case(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    raise AttackError("mmrb worst_case combines other cells' results; it is scored by the cell engine")


def joint_problems(params: dict[str, Any]) -> list[Problem]:
    """The order and both parts of a joint attack, before any work."""
    problems = []
    if params.get("order", "text_first") not in JOINT_ORDERS:
        problems.append(("params.order", f"allowed: {', '.join(JOINT_ORDERS)}; got {params.get('order')!r}"))
    for part, default in JOINT_PARTS:
        entry = params.get(part)
        if not isinstance(entry, dict) or "name" not in entry:
            problems.append((f"params.{part}", "needs {source, name, params} of the " + part + " attack"))
            continue
        problems += [(f"params.{part}.{field}", message) for field, message in
                     check_attack(entry.get("source", default), entry["name"], entry.get("params", {}))]
    return problems


@register_attack("joint", modality="joint", params=("image", "text", "order"), check=joint_problems, calls=JOINT_PARTS)
def joint(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
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

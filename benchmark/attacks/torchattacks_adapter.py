"""Adapter for torchattacks: a YAML entry -> a torchattacks attack on the image view's module."""
from __future__ import annotations

import inspect

import numpy as np
import torch

from benchmark.attacks import Crafted, Problem, Target, budget_params, param_problems, reject_unknown
from benchmark.attacks.registry import AttackInfo, Library, register_library
from mmrb.core.errors import AttackError, did_you_mean

#: Attacks that query only points of their L∞ ε-ball (they project every iterate): their samples can be attacked in
#: groups. Minimal-norm attacks (FAB, CW, DeepFool, ...) may query beyond it, near another sample, so they run one
#: sample at a time (ImageView.craft_in_groups with no budget).
PROJECTED = frozenset({"FGSM", "FFGSM", "RFGSM", "BIM", "PGD", "EOTPGD", "TPGD", "UPGD", "APGD", "APGDT", "MIFGSM",
                       "NIFGSM", "SINIFGSM", "VMIFGSM", "VNIFGSM", "DIFGSM", "TIFGSM", "Jitter", "Square"})


def attack_class(name: str) -> type:
    """The torchattacks attack class called `name`."""
    import torchattacks

    cls = getattr(torchattacks, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, torchattacks.attack.Attack)):
        known = [n for n in dir(torchattacks) if inspect.isclass(getattr(torchattacks, n))]
        hint = did_you_mean(name, known)
        raise AttackError(f"torchattacks has no attack {name!r}" + (f"; {hint}" if hint else ""))
    return cls


def resolve_params(cls: type, params: dict, epsilon: float | None) -> dict:
    """Suite params plus mmrb defaults: eps, alpha = 2.5·ε/steps (as for ART)."""
    return reject_unknown(cls, budget_params(cls, params, epsilon, "alpha", "steps"), "torchattacks", ("model",))


def check(name: str, params: dict) -> list[Problem]:
    """Unknown torchattacks attack names and constructor parameters, before any work."""
    try:
        cls = attack_class(name)
    except AttackError as exc:
        return [("name", str(exc))]
    return param_problems(cls, params, "torchattacks", ("model",))


def craft_torchattacks(name: str, params: dict, target: Target, epsilon: float | None, seed: int,
                       wrap: type[torch.nn.Module] | None = None) -> Crafted:
    """Run torchattacks' `name` on the view's module (images -> logits with each row's text looked up);
    `wrap` puts a module around it (the standard evaluation's two-class margin loss)."""
    cls = attack_class(name)
    kwargs = resolve_params(cls, params, epsilon)
    if "seed" in inspect.signature(cls.__init__).parameters:
        kwargs.setdefault("seed", seed)
    torch.manual_seed(seed)
    module = target.view.model if wrap is None else wrap(target.view.model)
    device = next(module.parameters()).device
    bounded = name in PROJECTED and "eps" in kwargs and kwargs.get("norm", "Linf") == "Linf"

    def attack_group(group: list[int]) -> np.ndarray:
        attack = cls(module, **kwargs)
        images = torch.as_tensor(target.images[group], device=device)
        labels = torch.as_tensor(target.labels[group], device=device)
        return attack(images, labels).detach().cpu().numpy()

    x_adv = target.view.craft_in_groups(target.images, kwargs["eps"] if bounded else None, attack_group)
    steps = int(kwargs.get("steps", kwargs.get("n_queries", 1)))
    return Crafted(x_adv, list(target.texts), steps, kwargs)


#: torchattacks' gradient-based L∞ attacks: the convergence check escalates them through steps, alpha, random_start.
GRADIENT = frozenset({"FGSM", "PGD", "BIM", "APGD", "MIFGSM", "RFGSM", "EOTPGD", "TPGD", "NIFGSM", "SINIFGSM", "VMIFGSM",
                      "VNIFGSM", "Jitter"})
#: torchattacks' attacks that only query the model.
BLACK_BOX = frozenset({"Square", "OnePixel", "Pixle", "SPSA"})


def parameters(name: str) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(attack_class(name).__init__).parameters)


def describe(name: str) -> AttackInfo:
    start = ("random_start", True) if "random_start" in parameters(name) else None
    return AttackInfo("torchattacks", name, gradient=name in GRADIENT, black_box=name in BLACK_BOX,
                      white_box=name not in BLACK_BOX, params=None,
                      steps="steps", step_size="alpha", random_start=start, module=__name__)


def names() -> list[str]:
    import torchattacks

    base = torchattacks.attack.Attack
    return sorted(n for n, c in vars(torchattacks).items() if inspect.isclass(c) and not n.startswith("_")
                  and issubclass(c, base) and c is not base and n != "MultiAttack")


register_library(Library("torchattacks", craft_torchattacks, check, describe, parameters, names, "torchattacks",
                         white_box=True))

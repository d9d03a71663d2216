"""Adapter for the Adversarial Robustness Toolbox: a YAML entry -> an ART evasion attack on the image view."""
from __future__ import annotations

import inspect

import numpy as np
import torch
from art.attacks import EvasionAttack, evasion

from benchmark.attacks import Crafted, Problem, Target, budget_params, param_problems, reject_unknown
from benchmark.attacks.registry import AttackInfo, Library, register_library
from mmrb.core.errors import AttackError, did_you_mean


def attack_class(name: str) -> type:
    """The ART evasion attack class called `name`."""
    cls = getattr(evasion, name, None)
    if not inspect.isclass(cls):
        known = [n for n in dir(evasion) if inspect.isclass(getattr(evasion, n))]
        hint = did_you_mean(name, known)
        raise AttackError(f"ART has no evasion attack {name!r}" + (f"; {hint}" if hint else ""))
    return cls


def resolve_params(cls: type, params: dict, epsilon: float | None, batch_size: int) -> dict:
    """Suite params plus mmrb defaults: eps, eps_step = 2.5·ε/steps (Madry et al.), quiet, batch size."""
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = budget_params(cls, params, epsilon, "eps_step", "max_iter")
    if "verbose" in accepted:
        kwargs.setdefault("verbose", False)
    if "batch_size" in accepted:
        kwargs.setdefault("batch_size", batch_size)
    return reject_unknown(cls, kwargs, "ART", ("estimator", "classifier"))


def check(name: str, params: dict) -> list[Problem]:
    """Unknown ART attack names and constructor parameters, before any work."""
    try:
        cls = attack_class(name)
    except AttackError as exc:
        return [("name", str(exc))]
    return param_problems(cls, params, "ART", ("estimator", "classifier"))


def craft_art(name: str, params: dict, target: Target, epsilon: float | None, seed: int) -> Crafted:
    """Run ART's `name` on the image view through ImageView.run_attack (groups of samples whose queries keep
    their texts; one sample at a time for attacks without an L∞ query budget)."""
    cls = attack_class(name)
    view = target.view
    kwargs = resolve_params(cls, params, epsilon, view.default_batch_size)
    np.random.seed(seed)  # ART draws random starts from numpy's global generator
    torch.manual_seed(seed)
    labels = np.eye(view.nb_classes, dtype=np.float32)[target.labels]
    attack = cls(view, **kwargs)  # constructor probes (AutoPGD's all-ones image) are placeholders: see ContextBinding
    x_adv = view.run_attack(attack, target.images, labels)
    return Crafted(x_adv, list(target.texts), int(kwargs.get("max_iter", 1)), kwargs)


#: ART's gradient-based L∞ attacks: the convergence check escalates them through max_iter, eps_step, num_random_init.
GRADIENT = frozenset({"FastGradientMethod", "ProjectedGradientDescent", "ProjectedGradientDescentPyTorch",
                      "BasicIterativeMethod", "AutoProjectedGradientDescent", "MomentumIterativeMethod"})
#: ART's attacks that only query the model.
BLACK_BOX = frozenset({"SquareAttack", "HopSkipJump", "BoundaryAttack", "ZooAttack", "SimBA", "GeoDA", "SignOPTAttack",
                       "PixelAttack", "ThresholdAttack"})


def parameters(name: str) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(attack_class(name).__init__).parameters)


def describe(name: str) -> AttackInfo:
    accepted = parameters(name)
    start = next(((p, 1) for p in ("num_random_init", "nb_random_init") if p in accepted), None)
    return AttackInfo("art", name, gradient=name in GRADIENT, black_box=name in BLACK_BOX,
                      white_box=name not in BLACK_BOX, params=None,
                      steps="max_iter", step_size="eps_step", random_start=start, module=__name__)


def names() -> list[str]:
    return sorted(n for n, c in vars(evasion).items() if inspect.isclass(c) and not n.startswith("_")
                  and issubclass(c, EvasionAttack) and c is not EvasionAttack)


register_library(Library("art", craft_art, check, describe, parameters, names, "adversarial-robustness-toolbox",
                         white_box=True))

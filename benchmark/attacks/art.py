"""Adapter for the Adversarial Robustness Toolbox: a YAML entry -> an ART evasion attack on the image view."""
from __future__ import annotations

import difflib
import inspect
import logging

import numpy as np
import torch
from art.attacks import evasion

from benchmark.attacks import Crafted, register_source
from benchmark.errors import AttackError

log = logging.getLogger(__name__)


def attack_class(name: str) -> type:
    """The ART evasion attack class called `name`."""
    cls = getattr(evasion, name, None)
    if not inspect.isclass(cls):
        known = [n for n in dir(evasion) if inspect.isclass(getattr(evasion, n))]
        close = difflib.get_close_matches(name, known, n=3)
        raise AttackError(f"ART has no evasion attack {name!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    return cls


def resolve_params(cls: type, params: dict, epsilon: float | None, batch_size: int) -> dict:
    """Suite params plus mmrb defaults: eps, eps_step = 2.5·ε/steps (Madry et al.), quiet, batch size."""
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = dict(params)
    if epsilon is not None and "eps" in accepted:
        kwargs["eps"] = epsilon
    if "eps_step" in accepted and "max_iter" in accepted and "eps" in kwargs:
        kwargs.setdefault("eps_step", 2.5 * kwargs["eps"] / kwargs.get("max_iter", accepted["max_iter"].default))
    if "verbose" in accepted:
        kwargs.setdefault("verbose", False)
    if "batch_size" in accepted:
        kwargs.setdefault("batch_size", batch_size)
    unknown = set(kwargs) - set(accepted)
    if unknown:
        raise AttackError(f"ART {cls.__name__} has no parameter(s) {sorted(unknown)}; "
                          f"it takes: {', '.join(p for p in accepted if p not in ('self', 'estimator', 'classifier'))}")
    return kwargs


@register_source("art")
def craft_art(name, params, view, x, y, epsilon, seed) -> Crafted:
    """Run ART's `name` on the view, one group of samples at a time (see ImageView.attack_groups)."""
    cls = attack_class(name)
    kwargs = resolve_params(cls, params, epsilon, view.default_batch_size)
    steps = int(kwargs.get("max_iter", 1))
    np.random.seed(seed)  # ART draws random starts from numpy's global generator
    torch.manual_seed(seed)
    labels = np.eye(view.nb_classes, dtype=np.float32)[y]
    groups = view.attack_groups(len(x), kwargs.get("eps"))
    if len(groups) > 1:
        log.info("%s at eps=%s: %d groups (view radius %.3f)", name, epsilon, len(groups), view.max_epsilon)
    x_adv = np.empty_like(x)
    for group in groups:
        # Some constructors query placeholder inputs (AutoPGD: an all-ones image); one bound sample answers them.
        with view.bound_to(group[:1]):
            attack = cls(view, **kwargs)
        with view.bound_to(group):
            x_adv[group] = attack.generate(x=x[group], y=labels[group])
    return Crafted(x_adv, steps, kwargs)

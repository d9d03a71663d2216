"""Defense registry in the style of timm: `register_defense`, `create_defense`, `list_defenses`."""
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from mmrb.core.errors import ModelError, unknown_name

_DEFENSES: dict[str, type] = {}


def register_defense(name: str) -> Callable[[type], type]:
    """Register a head class (a `defenses.head.DefenseHead`) under `name`."""

    def decorate(cls: type) -> type:
        if name in _DEFENSES:
            raise ModelError(f"defense {name!r} is registered twice")
        cls.name = name
        _DEFENSES[name] = cls
        return cls

    return decorate


def defense_class(name: str) -> type:
    """The class registered as `name`, or raise naming the closest registered names."""
    try:
        return _DEFENSES[name]
    except KeyError:
        raise unknown_name("defense", name, _DEFENSES) from None


def create_defense(name: str, dim: int, n_classes: int = 2, **params: Any):
    """A fresh head of defense `name` on `dim`-d frozen features; `params` are its loss weights and sizes."""
    cls = defense_class(name)
    try:
        return cls(dim, n_classes, **params)
    except TypeError as exc:
        raise ModelError(f"defense {name!r}: bad params {sorted(params)} ({exc}); it takes: "
                         f"{', '.join(cls.PARAMS) or 'none'}") from None


def list_defenses(pattern: str = "*") -> list[str]:
    """Registered defense names matching a shell-style pattern, sorted."""
    return sorted(n for n in _DEFENSES if fnmatch.fnmatch(n, pattern))

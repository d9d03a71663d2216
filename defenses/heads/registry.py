"""Defense registry in the style of timm: `register_defense`, `create_defense`, `list_defenses`."""
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmrb.core.errors import ModelError, unknown_name
from mmrb.core.plugins import import_plugin

_DEFENSES: dict[str, type] = {}


def register_defense(name: str) -> Callable[[type], type]:
    """Register a head class (a `defenses.heads.head.DefenseHead`) under `name`."""

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


def defense_head_class(name: str, base: Path | None = None) -> type:
    """A registered defense (`ran`) or a `DefenseHead` subclass named by reference (`my_heads.py:Gated`,
    `mypkg.heads:Gated`; a file relative to `base` first)."""
    from defenses.heads.head import DefenseHead

    if ":" not in name:
        return defense_class(name)
    where, _, attr = name.rpartition(":")
    module = import_plugin(where, base)
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, DefenseHead)):
        found = sorted(n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, DefenseHead)
                       and v is not DefenseHead)
        raise ModelError(f"{where} has no DefenseHead subclass {attr!r}; it defines: {', '.join(found) or 'none'} "
                         "(a defense is a defenses.DefenseHead subclass: docs/clip-defenses.md)")
    return cls

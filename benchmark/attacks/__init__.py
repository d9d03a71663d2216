"""Attack registry: one adapter per source library; a YAML entry names the source, the attack and its params."""
from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmark.errors import AttackError


@dataclass(frozen=True)
class Crafted:
    """Adversarial inputs and what was actually run (resolved params, iteration count)."""

    x_adv: np.ndarray
    steps: int
    params: dict[str, Any] = field(default_factory=dict)


#: craft(name, params, view, x, y, epsilon, seed) -> Crafted
Adapter = Callable[..., Crafted]
_SOURCES: dict[str, Adapter] = {}


def register_source(name: str) -> Callable[[Adapter], Adapter]:
    """Register the adapter that crafts attacks of one source library."""

    def decorate(adapter: Adapter) -> Adapter:
        _SOURCES[name] = adapter
        return adapter

    return decorate


def list_sources() -> list[str]:
    _load_adapters()
    return sorted(_SOURCES)


def craft(source: str, name: str, params: dict[str, Any], view, x: np.ndarray, y: np.ndarray,
          epsilon: float | None, seed: int) -> Crafted:
    """Run attack `name` of `source` on the view's inputs `x` with true labels `y`."""
    _load_adapters()
    if source not in _SOURCES:
        close = difflib.get_close_matches(source, _SOURCES, n=2)
        raise AttackError(f"unknown attack source {source!r}{' (did you mean ' + ', '.join(close) + '?)' if close else ''}; "
                          f"known: {', '.join(sorted(_SOURCES))}")
    return _SOURCES[source](name, params, view, x, y, epsilon, seed)


def _load_adapters() -> None:
    from benchmark.attacks import art, mmrb  # noqa: F401  (importing registers them)

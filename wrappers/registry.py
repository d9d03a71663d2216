"""Model registry in the style of timm: one decorator, one lookup, one listing."""
from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmark.errors import ModelError


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory, class (whose family and modalities it has) and preset (tiny, paper).

    `config_keys`, where given, are the overrides the factory takes besides `recipe`, so a suite's overrides can
    be checked before any model is built."""

    name: str
    factory: Callable[..., Any]
    cls: type
    preset: str
    config_keys: tuple[str, ...] | None = None

    @property
    def family(self) -> str:
        return self.cls.family

    @property
    def modalities(self) -> frozenset[str]:
        return self.cls.modalities


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, cls: type, preset: str,
                   config_keys: tuple[str, ...] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a model factory under `name`; the factory takes keyword overrides only (`config_keys` and
    `recipe`, where `config_keys` is given)."""

    def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
        if name in _MODELS:
            raise ModelError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelEntry(name, factory, cls, preset, config_keys)
        return factory

    return decorate


def unknown_name(kind: str, name: str, registered) -> ModelError:
    """The error for a name missing from a registry: the closest registered names, then all of them."""
    close = difflib.get_close_matches(name, list(registered), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ModelError(f"unknown {kind} {name!r}.{hint} Registered: {', '.join(sorted(registered))}")


def model_entry(name: str) -> ModelEntry:
    """The entry registered as `name`, or raise naming the closest registered names."""
    try:
        return _MODELS[name]
    except KeyError:
        raise unknown_name("model", name, _MODELS) from None


def create_model(name: str, **overrides: Any):
    """Build the registered model `name` (heads untrained); `overrides` replace preset config fields."""
    return model_entry(name).factory(**overrides)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))

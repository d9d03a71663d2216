"""Model families of mmrb and their ART estimators; `create_model` / `list_models` as in timm.

The model protocol is `wrappers.protocol.MultimodalModel`; `TwoViewEncoder` and `TextEncoder` are the reusable
image and text encoders of the VisionBERT models. Names are imported on first use: `wrappers.registry` knows the
built-in model names without importing torch, and imports a family's module when one of its models is asked for.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"MultimodalModel": "wrappers.protocol", "check_model": "wrappers.protocol",
            "create_model": "wrappers.registry", "list_models": "wrappers.registry", "model_entry": "wrappers.registry",
            "register_model": "wrappers.registry", "TextEncoder": "wrappers.text", "TwoViewEncoder": "wrappers.vision"}
_SUBMODULES = ("cache", "clip", "configs", "estimators", "fusion", "numerics", "protocol", "registry", "text", "training",
               "vision")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"wrappers.{name}")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'wrappers' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value

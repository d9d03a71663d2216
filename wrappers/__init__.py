"""Model families of mmrb and their ART estimators; `create_model` / `list_models` as in timm."""
from wrappers import clip, fusion, text, vision  # noqa: F401  (importing registers the families)
from wrappers.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]

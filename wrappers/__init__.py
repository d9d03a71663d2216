"""Model families of mmrb and their ART estimators; `create_model` / `list_models` as in timm.

The model protocol is `wrappers.protocol.MultimodalModel`; `TwoViewEncoder` and `TextEncoder` are the reusable
image and text encoders of the VisionBERT models."""
from wrappers import clip, fusion, text, vision  # noqa: F401  (importing registers the families)
from wrappers.protocol import MultimodalModel, check_model
from wrappers.registry import create_model, list_models, model_entry, register_model
from wrappers.text import TextEncoder
from wrappers.vision import TwoViewEncoder

__all__ = ["MultimodalModel", "TextEncoder", "TwoViewEncoder", "check_model", "create_model", "list_models",
           "model_entry", "register_model"]

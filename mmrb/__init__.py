"""mmrb's public API: `import mmrb`.

- `mmrb.evaluate(suite, models=...)`: run a suite (YAML path, mapping or Suite) on registered models and/or model
  objects; returns (DataFrame of results, run record). `backend="ray"` or `mmrb.RayBackend(...)`: cells as Ray tasks.
- `mmrb.register_model`, `mmrb.list_models`, `mmrb.create_model`: the model registry (plug-ins included).
- `mmrb.MultimodalModel`, `mmrb.check_model`: the model protocol; `mmrb.TwoViewEncoder`, `mmrb.TextEncoder`: the
  reusable encoders.
- `mmrb.ImageView`: the ART estimator over a multimodal model's image input, with each sample's text bound.
"""
from benchmark import PROTOCOL_VERSION, __version__
from benchmark.api import Evaluation, evaluate
from benchmark.backends import LocalBackend, RayBackend
from benchmark.suite import load_suite
from wrappers import create_model, list_models, register_model
from wrappers.estimators import ImageView
from wrappers.protocol import MultimodalModel, check_model
from wrappers.text import TextEncoder
from wrappers.vision import TwoViewEncoder

__all__ = ["PROTOCOL_VERSION", "Evaluation", "ImageView", "LocalBackend", "MultimodalModel", "RayBackend", "TextEncoder", "TwoViewEncoder",
           "__version__", "check_model", "create_model", "evaluate", "list_models", "load_suite", "register_model"]

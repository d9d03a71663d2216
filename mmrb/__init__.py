"""mmrb's public API: `import mmrb`.

- `mmrb.evaluate(suite, models=...)`: run a suite (YAML path, mapping or Suite) on registered models and/or model
  objects; returns (DataFrame of results, run record). `backend="ray"` or `mmrb.RayBackend(...)`: cells as Ray tasks.
- `mmrb.register_model`, `mmrb.list_models`, `mmrb.create_model`: the model registry (plug-ins included).
- `mmrb.MultimodalModel`, `mmrb.check_model`: the model protocol; `mmrb.TwoViewEncoder`, `mmrb.TextEncoder`: the
  reusable encoders.
- `mmrb.ImageView`: the ART estimator over a multimodal model's image input, with each sample's text bound.
- `mmrb.register_attack`: declare an attack of your own (one file, one decorator; `benchmark.attacks.registry`).

Names are imported on first use, so `import mmrb` (and `mmrb.core`, the base layer) stays light: torch is loaded when a
model, an estimator or a run is first touched.
"""
from __future__ import annotations

import importlib
from typing import Any

from mmrb.core.version import PROTOCOL_VERSION, __version__

#: public name -> the module that defines it
_EXPORTS = {
    "Evaluation": "benchmark.api", "evaluate": "benchmark.api",
    "LocalBackend": "benchmark.run.backends", "RayBackend": "benchmark.run.backends",
    "load_suite": "benchmark.spec.suite",
    "create_model": "wrappers", "list_models": "wrappers", "register_model": "wrappers",
    "ImageView": "wrappers.estimators",
    "MultimodalModel": "wrappers.protocol", "check_model": "wrappers.protocol",
    "TextEncoder": "wrappers.text", "TwoViewEncoder": "wrappers.vision",
    "register_attack": "benchmark.attacks.registry",
}

__all__ = ["PROTOCOL_VERSION", "__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mmrb' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

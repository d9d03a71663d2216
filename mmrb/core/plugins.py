"""The one plug-in loader: a user's module or Python file (a suite's `plugins:`, a card's model reference, a defense
head by reference) imported once, under a stable name, so that its code digest and pickling work."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from mmrb.core.errors import ModelError


def import_plugin(reference: str, base: Path | None = None):
    """Import a plug-in: a module name (`mypkg.gated`) or a Python file (`path/to/gated.py`, relative to `base`
    first, then the working directory). Importing it runs its `@register_model` decorators."""
    if reference.endswith(".py") or "/" in reference:
        candidates = [base / reference] if base is not None else []
        path = next((p for p in [*candidates, Path(reference)] if p.is_file()), None)
        if path is None:
            tried = ", ".join(str(p) for p in [*candidates, Path(reference).resolve()])
            where = "relative to the suite's (or card's) folder, then the working directory" if candidates else \
                "relative to the working directory"
            raise ModelError(f"plug-in file {reference!r} not found (a file is looked up {where}; tried {tried})")
        return _import_file(path.resolve())
    try:
        return importlib.import_module(reference)
    except ImportError as exc:
        raise ModelError(f"plug-in module {reference!r} cannot be imported ({exc}); install its package or put its "
                         f"folder on PYTHONPATH, or give a file path (path/to/module.py)") from exc


def _import_file(path: Path):
    """Import a Python file as a module named after its path (so its code digest and pickling work)."""
    name = "mmrb_plugin_" + "_".join(path.with_suffix("").parts[-3:]).replace("-", "_").replace(".", "_")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    if str(path.parent) not in sys.path:  # the file can import the modules next to it, as `python file.py` can
        sys.path.append(str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ModelError(f"plug-in file {path} raised on import: {type(exc).__name__}: {exc}") from exc
    return module

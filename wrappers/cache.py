"""Content addressing for the caches: digests of values and of the code that decides a result.

A cache key must change whenever anything that decides the cached bytes changes: the resolved config,
the data, the seed, and the code. `code_digest` hashes the source files of the modules that define the
given objects (classes, functions, modules, or instances of classes), so editing a factory's default or
a model class retrains; library modules (torch, timm, ...) are covered by their versions instead.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import sys
import types
from importlib import metadata
from pathlib import Path
from typing import Any

#: Packages whose code is identified by their installed version rather than by hashing their files.
LIBRARIES = ("torch", "torchvision", "timm", "transformers", "tokenizers", "safetensors", "numpy",
             "art", "torchattacks", "textattack", "open_clip", "sklearn", "scipy")
_DISTRIBUTIONS = {"art": "adversarial-robustness-toolbox", "sklearn": "scikit-learn", "open_clip": "open_clip_torch"}


def digest(obj: Any, length: int = 16) -> str:
    """sha256 of a JSON-able value (keys sorted; other objects by str), as hex."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_digest(path: str | Path, length: int = 64) -> str:
    """sha256 of a file's bytes, as hex (streamed: works for multi-GB checkpoints)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def library_version(name: str) -> str:
    """Installed version of a library by its import name ('absent' if not installed)."""
    try:
        return metadata.version(_DISTRIBUTIONS.get(name, name))
    except metadata.PackageNotFoundError:
        return "absent"


def _module_of(obj: Any) -> types.ModuleType | None:
    if isinstance(obj, types.ModuleType):
        return obj
    if not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj)):
        obj = type(obj)
    return sys.modules.get(getattr(obj, "__module__", "") or "")


@functools.lru_cache(maxsize=512)
def _source_digest(path: str, mtime_ns: int, size: int) -> str:
    return file_digest(path)


def _modules_referenced(module: types.ModuleType) -> set[types.ModuleType]:
    """Modules whose objects `module` holds in its globals (its imports, roughly). A package's own submodules are
    left out: they become its attributes whenever anything imports them, so following them would make the digest
    depend on what happened to be imported before (their importers reach them when they matter)."""
    found = set()
    own = module.__name__ + "."
    for value in vars(module).values():
        other = value if isinstance(value, types.ModuleType) else _module_of(value) if (
            inspect.isclass(value) or inspect.isfunction(value)) else None
        if other is not None and other is not module and not (hasattr(module, "__path__") and other.__name__.startswith(own)):
            found.add(other)
    return found


def _closure(modules: list[types.ModuleType]) -> dict[str, types.ModuleType]:
    """The modules and, transitively, the non-library modules they import (libraries are leaves)."""
    seen: dict[str, types.ModuleType] = {}
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module.__name__ in seen:
            continue
        seen[module.__name__] = module
        top = module.__name__.split(".")[0]
        if top not in LIBRARIES and top not in sys.stdlib_module_names and top != "builtins":
            todo.extend(_modules_referenced(module))
    return seen


def code_digest(*objects: Any) -> str:
    """Digest of the code defining `objects`: the source files of their modules and of every non-library
    module those import (transitively), plus the versions of the libraries reached. Standard-library
    modules are ignored; objects without a source file hash their own source text where inspect finds it."""
    parts: dict[str, str] = {}
    for name, module in sorted(_closure([m for m in map(_module_of, objects) if m is not None]).items()):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "builtins":
            continue
        if top in LIBRARIES:
            parts[top] = library_version(top)
            continue
        path = getattr(module, "__file__", None)
        if path and os.path.isfile(path):
            stat = os.stat(path)
            parts[name] = _source_digest(path, stat.st_mtime_ns, stat.st_size)
        else:
            try:
                parts[name] = digest(inspect.getsource(module))
            except (OSError, TypeError):
                parts[name] = "unknown"
    return digest(parts)


from mmrb.core.io import build_lock, write_atomically  # noqa: E402,F401  (re-exported for the model layer)

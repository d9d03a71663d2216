"""Content addressing for the caches: digests of values and of the code that decides a result.

A cache key must change whenever anything that decides the cached bytes changes: the resolved config,
the data, the seed, and the code. `code_digest` hashes the source files of the modules that define the
given objects (classes, functions, modules, or instances of classes) and of every module they import, found in the
source (imports inside functions too), so editing a factory's default, a model class or a helper it imports retrains;
library modules (torch, timm, anything installed in site-packages) are covered by their versions instead.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.machinery
import importlib.util
import inspect
import json
import os
import site
import sys
import sysconfig
import time
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


#: A file written this recently may change again within its mtime's clock tick, keeping mtime and size: it is read
#: afresh instead of from the caches keyed by (path, mtime, size), as git treats a "racily clean" file.
_RACY_NS = 2_000_000_000


def _racy(stat: os.stat_result) -> bool:
    return time.time_ns() - stat.st_mtime_ns < _RACY_NS


def _stat_digest(path: str) -> str:
    stat = os.stat(path)
    return file_digest(path) if _racy(stat) else _source_digest(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2048)
def _parsed_imports(path: str, mtime_ns: int, size: int) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """(level, module, names) of every import statement anywhere in a source file, function bodies included."""
    try:
        tree = ast.parse(Path(path).read_bytes(), filename=path)
    except (SyntaxError, ValueError):
        return ()  # its bytes are still in the digest
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(0, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", tuple(alias.name for alias in node.names)))
    return tuple(found)


def _imports(name: str, path: str, package: bool) -> list[str]:
    """The module names that the source of module `name` imports, relative imports resolved; `from m import x` gives
    m and m.x (x may be a submodule: names that are not are dropped when they cannot be found)."""
    stat = os.stat(path)
    parse = _parsed_imports.__wrapped__ if _racy(stat) else _parsed_imports
    here = name.split(".") if package else name.split(".")[:-1]
    out = []
    for level, module, names in parse(path, stat.st_mtime_ns, stat.st_size):
        if level:
            if level - 1 > len(here):
                continue
            module = ".".join([*here[:len(here) - level + 1], *([module] if module else [])])
        if module:
            out += [module, *(f"{module}.{n}" for n in names if n != "*")]
    return out


def _where(name: str, near: str | None = None) -> tuple[str | None, list[str] | None] | None:
    """(source file or None, where its submodules are or None: not a package) of module `name`, found without
    importing it (a top-level name also in the folder `near`, if not elsewhere); None if there is no such module."""
    module = sys.modules.get(name)
    if isinstance(module, types.ModuleType) and (getattr(module, "__file__", None) or module.__spec__ is None):
        return getattr(module, "__file__", None), list(getattr(module, "__path__", [])) or None
    parent = name.rpartition(".")[0]
    try:
        if parent:
            above = _where(parent, near)
            spec = importlib.machinery.PathFinder.find_spec(name, above[1]) if above and above[1] else None
        else:
            spec = importlib.util.find_spec(name)  # a top-level name: imports nothing
            if spec is None and near:
                spec = importlib.machinery.PathFinder.find_spec(name, [near])
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = spec.submodule_search_locations
    return spec.origin if spec.has_location else None, list(locations) if locations is not None else None


@functools.lru_cache(maxsize=1)
def _install_roots() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(folders of installed packages, folders of the standard library), each with a trailing separator."""
    paths = sysconfig.get_paths()
    sites = {paths.get("purelib"), paths.get("platlib"), *site.getsitepackages(), site.getusersitepackages()}
    stdlib = {paths.get("stdlib"), paths.get("platstdlib")}
    return tuple(os.path.realpath(p) + os.sep for p in sites if p), tuple(os.path.realpath(p) + os.sep for p in stdlib if p)


def _kind(path: str) -> str:
    """'installed' (a library: its version counts), 'stdlib' (ignored) or 'source' (hashed and followed)."""
    real = os.path.realpath(path)
    sites, stdlib = _install_roots()
    if real.startswith(sites) or {"site-packages", "dist-packages"} & set(Path(real).parts):
        return "installed"
    return "stdlib" if real.startswith(stdlib) else "source"


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def _installed_version(top: str) -> str:
    names = sorted(set(_distributions().get(top, [])))
    return ",".join(f"{n}=={metadata.version(n)}" for n in names) or "unknown"


def _code_parts(roots: list[tuple[str, str | None]]) -> dict[str, str]:
    """name -> digest of every module reached from `roots` ((module name, None), or (a name, a source file)) through
    the imports written in their source, at any depth; libraries by version, the standard library left out. What a
    source file imports is looked for next to it too (where `python file.py` and a plug-in file find it)."""
    parts: dict[str, str] = {}
    seen: set[str] = set()
    todo = [(name, path, os.path.dirname(os.path.abspath(path)) if path else None) for name, path in roots]
    while todo:
        name, path, near = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        package = False
        if path is None:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "builtins":
                continue
            if top in LIBRARIES:
                parts[top] = library_version(top)
                continue
            if "." in name:
                todo.append((name.rpartition(".")[0], None, near))  # importing a.b.c runs a/__init__ and a/b/__init__
            where = _where(name, near)
            if where is None:
                continue  # not a module (`from m import function`), or not installed
            path, package = where[0], where[1] is not None
        if path is None or not os.path.isfile(path):
            parts[name] = _loose_source(name)
            continue
        kind = _kind(path)
        if kind == "installed":
            parts[name.split(".")[0]] = _installed_version(name.split(".")[0])
        elif kind == "source":
            parts[name] = _stat_digest(path)
            if path.endswith(".py"):
                todo += [(other, None, near) for other in _imports(name, path, package)]
    return parts


def _loose_source(name: str) -> str:
    """A module without a source file (a namespace package, code made at run time): its source text where found."""
    module = sys.modules.get(name)
    if module is None or hasattr(module, "__path__"):
        return "no file"
    try:
        return digest(inspect.getsource(module))
    except (OSError, TypeError):
        return "unknown"


def code_digest(*objects: Any) -> str:
    """Digest of the code defining `objects` (modules, classes, functions, instances, or a `Path` of a Python file):
    the source files of their modules and of every module those import, found in the source (imports inside functions
    included), at any depth; libraries (LIBRARIES, and anything installed in site-packages) count by version, the
    standard library not at all."""
    roots: list[tuple[str, str | None]] = []
    for obj in objects:
        if isinstance(obj, Path):
            roots.append((obj.stem, str(obj)))
        elif (module := _module_of(obj)) is not None:
            roots.append((module.__name__, None))
    return digest(_code_parts(roots))


def reference_digest(reference: str) -> str:
    """Digest of what a user's reference names: 'path/file.py[:object]' or 'package.module[:object]' (as `code_digest`:
    the code and what it imports), any other file (its bytes) or a folder (every file's bytes); 'missing' if it names
    nothing found."""
    head = reference.rpartition(":")[0] if ":" in reference and not os.path.exists(reference) else reference
    if os.path.isfile(head):
        return code_digest(Path(head)) if head.endswith(".py") else _stat_digest(head)
    if os.path.isdir(head):
        files = sorted(p for p in Path(head).rglob("*") if p.is_file())
        return digest({p.relative_to(head).as_posix(): _stat_digest(str(p)) for p in files})
    if all(part.isidentifier() for part in head.split(".")) and _where(head) is not None:
        return digest(_code_parts([(head, None)]))
    return "missing"


from mmrb.core.io import build_lock, write_atomically  # noqa: E402,F401  (re-exported for the model layer)

"""Model registry in the style of timm, with lazy plug-in entries in the style of lm-eval's registry.

A model name is one of:
- a registered name (`@register_model` in mmrb or in any module imported before: a suite's `plugins:`, `--import`);
- an installed package's entry point in the group `mmrb.models` (`name = "pkg.module:factory"`, or a module whose
  import registers models);
- a reference `"package.module:object"` or `"path/to/file.py:object"`, resolved on first use: a factory decorated
  with `@register_model`, a class meeting `wrappers.protocol.MultimodalModel` (built as `cls(config)`), or a
  function whose return annotation is such a class.
"""
from __future__ import annotations

import ast
import contextlib
import contextvars
import fnmatch
import functools
import importlib
import importlib.util
import inspect
import pkgutil
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from mmrb.core.errors import ModelError, did_you_mean, unknown_name
from mmrb.core.plugins import import_plugin

ENTRY_POINT_GROUP = "mmrb.models"
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory, class (whose family and modalities it has) and preset (tiny, paper, custom).

    `config_keys`, where given, are the overrides the factory takes besides `recipe`, so a suite's overrides can
    be checked before any model is built. `instance` is a model object handed over by the Python API
    (`mmrb.evaluate(models=...)`); `trained` says whether its weights are final (else mmrb trains a copy)."""

    name: str
    factory: Callable[..., Any]
    cls: type
    preset: str = "custom"
    config_keys: tuple[str, ...] | None = None
    origin: str = "mmrb"
    instance: Any = None
    trained: bool = False

    @property
    def family(self) -> str:
        return getattr(self.cls, "family", self.cls.__name__)

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset(self.cls.modalities)


class Builtin(NamedTuple):
    """One of mmrb's own models, as its family module declares it in `BUILTIN_MODELS` (name -> the first four)."""

    family: str
    modalities: str  # "image", "text" or "image+text"
    preset: str
    recipe: dict[str, Any] | None  # wrappers.configs.TrainRecipe fields (None: the model trains itself, `train_on`)
    module: str  # the family module, whose import registers it


@functools.cache
def builtin_models() -> dict[str, Builtin]:
    """mmrb's own models: the `BUILTIN_MODELS` literal of each family module of this package, read from its source
    without importing it (no torch: suite validation, `mmrb models`); the module is imported when one of its models
    is first asked for. A built-in family is one file; tests/benchmark/test_first_use.py checks the declarations
    against the registrations."""
    found: dict[str, Builtin] = {}
    for module in pkgutil.iter_modules([str(_HERE)]):
        text = "" if module.ispkg else (_HERE / f"{module.name}.py").read_text(encoding="utf-8")
        if module.name == "registry" or "BUILTIN_MODELS" not in text:
            continue
        for node in ast.parse(text).body:
            targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None \
                    and any(getattr(t, "id", None) == "BUILTIN_MODELS" for t in targets):
                found.update({name: Builtin(*declared, f"{__package__}.{module.name}")
                              for name, declared in ast.literal_eval(node.value).items()})
    return found


_MODELS: dict[str, ModelEntry] = {}
#: Model entries provided for a block (`registered`): model objects of the Python API, submitted models.
_PROVIDED: contextvars.ContextVar[Mapping[str, ModelEntry]] = contextvars.ContextVar(
    "mmrb_provided_models", default=types.MappingProxyType({}))
_ENTRY_POINTS_LOADED = False
#: The folder a `file.py:object` model reference is resolved against first (a suite's folder while it is read).
_REFERENCE_BASE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("mmrb_reference_base", default=None)


@contextlib.contextmanager
def references_relative_to(base: Path | None) -> Iterator[None]:
    """Resolve `file.py:object` model names against `base` first (then the working directory), as `plugins:`
    are: a suite's models and plug-ins are both relative to the suite file."""
    token = _REFERENCE_BASE.set(base)
    try:
        yield
    finally:
        _REFERENCE_BASE.reset(token)


def register_model(name: str, cls: type, preset: str = "custom",
                   config_keys: tuple[str, ...] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a model factory under `name`; the factory takes keyword overrides only (`config_keys` and
    `recipe`, where `config_keys` is given) and returns an instance of `cls`."""

    def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
        old = _MODELS.get(name)  # the same factory registered again (its module re-imported) replaces itself
        if old is not None and (old.factory.__module__, old.factory.__qualname__) != (factory.__module__,
                                                                                      factory.__qualname__):
            raise ModelError(f"model {name!r} is registered twice ({old.factory.__module__} and {factory.__module__})")
        origin = "mmrb" if factory.__module__.split(".")[0] in ("wrappers", "defenses") else factory.__module__
        _MODELS[name] = ModelEntry(name, factory, cls, preset, config_keys, origin)
        factory.__mmrb_entry__ = _MODELS[name]  # a "module:factory" reference to it resolves to this entry
        return factory

    return decorate


@contextlib.contextmanager
def registered(entry: ModelEntry) -> Iterator[ModelEntry]:
    """`entry` known under its name for the duration of a block, in this context only (a context variable over the
    registry, which itself is not written): the Python API's model objects and submitted models. A run resolves its
    models once (`benchmark.run.runner.resolve_models`) and its plan carries them to every worker."""
    token = _PROVIDED.set({**_PROVIDED.get(), entry.name: entry})
    try:
        yield entry
    finally:
        _PROVIDED.reset(token)


def model_entry(name: str) -> ModelEntry:
    """The entry registered as `name` (resolving plug-in references and entry points on first use), or raise
    naming the closest registered names."""
    provided = _PROVIDED.get()
    if name in provided:
        return provided[name]
    if name in _MODELS:
        return _MODELS[name]
    if name in builtin_models():
        importlib.import_module(builtin_models()[name].module)  # registers the family's models
        return _MODELS[name]
    if ":" in name:
        _MODELS[name] = resolve_reference(name, _REFERENCE_BASE.get())
        return _MODELS[name]
    load_entry_points()
    try:
        return _MODELS[name]
    except KeyError:
        raise unknown_name("model", name, set(_MODELS) | set(builtin_models())) from None


def create_model(name: str, **overrides: Any):
    """Build the model `name` (heads untrained); `overrides` replace preset config fields."""
    return model_entry(name).factory(**overrides)


def known_name(name: str) -> bool:
    """Whether `name` is a built-in or already registered model (without importing any model library)."""
    return name in builtin_models() or name in _MODELS or name in _PROVIDED.get()


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names (entry points included) matching a shell-style pattern, sorted."""
    for module in sorted({entry.module for entry in builtin_models().values()}):
        importlib.import_module(module)
    load_entry_points()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern) and _MODELS[n].instance is None)


def load_entry_points() -> None:
    """Register the models of installed packages (entry point group `mmrb.models`), once per process."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = point.load()
        except Exception as exc:  # a broken plug-in names itself and does not hide the others
            raise ModelError(f"entry point {point.name!r} = {point.value!r} (group {ENTRY_POINT_GROUP}) cannot be "
                             f"imported: {type(exc).__name__}: {exc}") from exc
        if inspect.ismodule(obj) or point.name in _MODELS:
            continue  # importing the module registered its models
        _MODELS[point.name] = _entry_for(point.name, obj, f"entry point {point.value}")


def resolve_reference(reference: str, base: Path | None = None) -> ModelEntry:
    """The entry for `"module:object"` or `"file.py:object"` (a file relative to `base` first: a model card's folder)."""
    where, _, attr = reference.rpartition(":")
    if not where or not attr:
        raise ModelError(f"model reference {reference!r}: write 'package.module:factory' or 'path/to/file.py:factory'")
    module = import_plugin(where, base)
    obj = getattr(module, attr, None)
    if obj is None:
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        hint = did_you_mean(attr, found)
        raise ModelError(f"unknown object in {where} {attr!r}: the module has no {attr!r}{'; ' + hint if hint else ''}; "
                         f"it defines: {', '.join(sorted(found))}")
    return _entry_for(reference, obj, reference)


def _entry_for(name: str, obj: Any, origin: str) -> ModelEntry:
    """An entry for a plug-in object: a registered factory, a model class, or an annotated factory function."""
    entry = getattr(obj, "__mmrb_entry__", None)
    if entry is not None:
        return ModelEntry(name, entry.factory, entry.cls, entry.preset, entry.config_keys, origin)
    if inspect.isclass(obj) and _is_model_class(obj):
        def build(**overrides: Any) -> Any:
            return obj({"name": name, **overrides})
        build.__module__, build.__qualname__ = obj.__module__, obj.__qualname__
        return ModelEntry(name, build, obj, "custom", None, origin)
    if callable(obj):
        try:
            cls = typing.get_type_hints(obj).get("return")
        except Exception:  # unresolvable annotations
            cls = None
        if inspect.isclass(cls) and _is_model_class(cls):
            return ModelEntry(name, obj, cls, "custom", None, origin)
    raise ModelError(f"{origin}: {obj!r} is not a model factory. Give a class with `family` and `modalities` "
                     f"(wrappers.protocol.MultimodalModel), a function annotated `-> MyModel`, or a function "
                     f"decorated with @wrappers.register_model")


def _is_model_class(cls: type) -> bool:
    return isinstance(getattr(cls, "modalities", None), (set, frozenset)) and hasattr(cls, "forward")

"""What a suite can name: the attacks of each source with their parameters (`mmrb attacks [pattern]`)."""
from __future__ import annotations

import fnmatch
import inspect
from typing import NamedTuple

#: Constructor arguments the adapters fill in themselves (never a suite parameter).
INTERNAL = ("self", "args", "kwargs", "estimator", "classifier", "model")


class AttackInfo(NamedTuple):
    source: str
    name: str
    params: str  # "name=default, ..." as a suite entry's `params:` may set them
    note: str = ""


def matches(name: str, pattern: str) -> bool:
    """A shell-style pattern (`*PGD*`), or without wildcards a case-insensitive substring (`pgd`)."""
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatch(name.lower(), pattern.lower())
    return pattern.lower() in name.lower()


def _signature(cls: type) -> str:
    out = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name in INTERNAL or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = p.default
        shown = f"{default:.4g}" if isinstance(default, float) else repr(default)
        out.append(p.name if default is inspect.Parameter.empty else f"{p.name}={shown}")
    return ", ".join(out)


def _classes(module, base: type | None = None) -> list[tuple[str, type]]:
    return sorted((n, c) for n, c in vars(module).items() if inspect.isclass(c) and not n.startswith("_")
                  and (base is None or (issubclass(c, base) and c is not base)))


def list_attacks(pattern: str = "", sources: tuple[str, ...] = ("mmrb", "art", "torchattacks", "textattack")
                 ) -> list[AttackInfo]:
    """Every attack a suite can name, by source, with its parameters (a source whose library is missing is one
    row saying how to install it)."""
    rows: list[AttackInfo] = []
    if "mmrb" in sources:
        from benchmark.attacks import registry

        rows += [AttackInfo("mmrb", n, ", ".join(registry.info("mmrb", n).params or ()),
                            f"modality: {registry.info('mmrb', n).modality}") for n in registry.mmrb_attacks()]
    if "art" in sources:
        from art.attacks import EvasionAttack, evasion

        rows += [AttackInfo("art", n, _signature(c)) for n, c in _classes(evasion, EvasionAttack)]
    if "torchattacks" in sources:
        try:
            import torchattacks
        except ImportError:
            rows.append(AttackInfo("torchattacks", "-", "", "not installed: pip install 'mmrb[attacks]'"))
        else:
            rows += [AttackInfo("torchattacks", n, _signature(c))
                     for n, c in _classes(torchattacks, torchattacks.attack.Attack) if n not in ("MultiAttack",)]
    if "textattack" in sources:
        from benchmark.attacks.text import COMMON_PARAMS, RECIPE_PARAMS
        from benchmark.attacks.textattack_adapter import RECIPES

        rows += [AttackInfo("textattack", n, ", ".join(COMMON_PARAMS + RECIPE_PARAMS[n]), "modality: text")
                 for n in RECIPES]
    return [r for r in rows if not pattern or matches(r.name, pattern) or r.name == "-"]


def model_rows(pattern: str = "", imports: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str, str, str, str]]:
    """(name, family, modalities, preset, from) of every model matching `pattern` (see `matches`). Without
    plug-ins to import (`imports`, installed `mmrb.models` entry points) mmrb's own models come from
    BUILTIN_MODELS, with no model library imported; otherwise from the registry."""
    from importlib import metadata

    from wrappers.registry import BUILTIN_MODELS

    if not imports and not list(metadata.entry_points(group="mmrb.models")):
        return [(n, *BUILTIN_MODELS[n][:3], "mmrb") for n in sorted(BUILTIN_MODELS) if not pattern or matches(n, pattern)]
    import wrappers
    from wrappers.registry import import_plugin

    for reference in imports:
        import_plugin(reference)
    return [(name, e.family, "+".join(sorted(e.modalities)), e.preset, e.origin)
            for name in wrappers.list_models() if not pattern or matches(name, pattern)
            for e in [wrappers.model_entry(name)]]

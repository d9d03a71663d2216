"""What a suite can name: the attacks of each source with their parameters (`mmrb attacks [pattern]`)."""
from __future__ import annotations

import fnmatch
import inspect
from typing import NamedTuple

#: Constructor arguments the adapters fill in themselves (never a suite parameter).
INTERNAL = ("self", "args", "kwargs", "estimator", "classifier", "model")


class AttackListing(NamedTuple):
    """One line of `mmrb attacks`: an attack a suite can name and its parameters (its traits are the attack registry's
    `benchmark.attacks.registry.AttackInfo`)."""

    source: str
    name: str
    params: str  # "name=default, ..." as a suite entry's `params:` may set them
    note: str = ""


def matches(name: str, pattern: str) -> bool:
    """A shell-style pattern (`*PGD*`), or without wildcards a case-insensitive substring (`pgd`)."""
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatch(name.lower(), pattern.lower())
    return pattern.lower() in name.lower()


def _signature(parameters: dict[str, inspect.Parameter]) -> str:
    out = []
    for p in parameters.values():
        if p.name in INTERNAL or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = p.default
        shown = f"{default:.4g}" if isinstance(default, float) else repr(default)
        out.append(p.name if default is inspect.Parameter.empty else f"{p.name}={shown}")
    return ", ".join(out)


def list_attacks(pattern: str = "", sources: tuple[str, ...] | None = None) -> list[AttackListing]:
    """Every attack a suite can name, by source (default: every source of the attack registry), with its parameters
    (a source whose library is missing is one row saying how to install it)."""
    from benchmark.attacks import registry

    rows: list[AttackListing] = []
    for source in sources or registry.sources():
        try:
            names = registry.mmrb_attacks() if source == registry.MMRB else registry.library(source).names()
        except ImportError:
            rows.append(AttackListing(source, "-", "", "not installed: pip install 'mmrb[attacks]'"))
            continue
        for name in names:
            if pattern and not matches(name, pattern):
                continue
            modality = registry.info(source, name).modality
            rows.append(AttackListing(source, name, _signature(registry.parameters(source, name)),
                                      "" if modality == "image" else f"modality: {modality}"))
    return rows


def model_rows(pattern: str = "", imports: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str, str, str, str]]:
    """(name, family, modalities, preset, from) of every model matching `pattern` (see `matches`). Without
    plug-ins to import (`imports`, installed `mmrb.models` entry points) mmrb's own models come from
    their family modules' declarations (`wrappers.registry.builtin_models`), with no model library imported;
    otherwise from the registry."""
    from importlib import metadata

    from wrappers.registry import builtin_models

    if not imports and not list(metadata.entry_points(group="mmrb.models")):
        builtin = builtin_models()
        return [(n, *builtin[n][:3], "mmrb") for n in sorted(builtin) if not pattern or matches(n, pattern)]
    import wrappers
    from wrappers.registry import import_plugin

    for reference in imports:
        import_plugin(reference)
    return [(name, e.family, "+".join(sorted(e.modalities)), e.preset, e.origin)
            for name in wrappers.list_models() if not pattern or matches(name, pattern)
            for e in [wrappers.model_entry(name)]]

"""The attack registry: every attack mmrb can run is declared once, with its traits, and everything else reads them.

Suite validation (which sources and names exist, which parameters an attack takes), the grid (which attacks run at
each ε), the convergence check (which attacks it escalates, and through which parameters), the soundness flags and
the boards (black-box attacks, the soundness probes) and the cache key (the code that crafted a cell) all ask this
module; none keeps its own list.

- **An attack of mmrb's own** (or of your own): one file with one decorator on its craft function,

      @register_attack("my_noise", modality="image", params=("draws",))
      def my_noise(params, target, epsilon, seed) -> Crafted: ...

  A suite names it as `{source: mmrb, name: my_noise}` once the file is imported (built-in attacks live in
  `benchmark/attacks/` and are found there; your own file is a suite's `plugins:` entry, like a model's).
- **An attack library**: one adapter file `benchmark/attacks/<library>_adapter.py` that calls `register_library`
  with its craft and check functions and the traits of its attacks; the suite's `source:` is its name.

Sources are known without importing anything heavy (the adapter files are listed, not imported), so loading a suite
stays free of torch; an attack's traits import its module (and so torch) on first use.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mmrb.core.errors import AttackError

MMRB = "mmrb"
ADAPTER_SUFFIX = "_adapter"
_HERE = Path(__file__).resolve().parent
#: Modules of this package that are not attacks (shared machinery); every other module is imported to register.
_MACHINERY = frozenset({"registry", "cascade", "convergence"})

#: craft(params, target, epsilon, seed) -> Crafted
Craft = Callable[..., Any]
#: check(params) -> [(field, message)]: problems found without running the attack
Check = Callable[[dict], list]


@dataclass(frozen=True)
class AttackInfo:
    """What mmrb knows of one attack, declared where the attack is.

    `modality`: what it perturbs by default ("image", "text", "joint", or "none" for the clean row).
    `gradient`: an L∞ attack that follows the model's gradient, so the convergence check escalates it (through its
    `steps`/`step_size`/`random_start` parameters, by those names). `black_box`: it only queries the model;
    `white_box`: a single attack with the model's gradients (a black-box or transfer cell below every white-box cell
    raises a flag). `bounded`: it runs at each ε of the suite (False: one cell, no budget). `probe`: a soundness
    probe's role ("noise": random noise at ε; "floor": the text floor's image replacement). `combines`: it combines
    the outputs of other cells (worst_case), so it crafts nothing itself. `params`: the parameters it takes (None: the
    library's class decides). `craft`/`check`: its functions (None for a library attack: the library's own are used).
    """

    source: str
    name: str
    modality: str = "image"
    gradient: bool = False
    black_box: bool = False
    white_box: bool = False
    bounded: bool = True
    probe: str | None = None
    combines: bool = False
    params: tuple[str, ...] | None = ()
    steps: str | None = None
    step_size: str | None = None
    random_start: tuple[str, Any] | None = None
    defaults: dict[str, Any] = field(default_factory=dict, compare=False)
    craft: Craft | None = field(default=None, compare=False, repr=False)
    check: Check | None = field(default=None, compare=False, repr=False)
    module: str = ""


@dataclass(frozen=True)
class Library:
    """An attack library: how to craft and check its attacks by name, and the traits of each (`describe(name)` ->
    AttackInfo; it may import the library). `distribution`: the installed package whose version keys its cells."""

    name: str
    craft: Callable[..., Any]  # (name, params, target, epsilon, seed) -> Crafted
    check: Callable[[str, dict], list]  # (name, params) -> problems
    describe: Callable[[str], AttackInfo]
    parameters: Callable[[str], dict[str, inspect.Parameter]]  # name -> its constructor's parameters
    names: Callable[[], list[str]]  # the attacks it offers (`mmrb attacks`)
    distribution: str
    white_box: bool = False  # its attacks that are not black-box use the model's gradients
    module: str = ""


_ATTACKS: dict[tuple[str, str], AttackInfo] = {}
_LIBRARIES: dict[str, Library] = {}
_LOADED: set[str] = set()


def register_attack(name: str, *, source: str = MMRB, modality: str = "image", gradient: bool = False,
                    black_box: bool = False, white_box: bool = False, bounded: bool = True, probe: str | None = None,
                    combines: bool = False,
                    params: tuple[str, ...] = (), check: Check | None = None, steps: str | None = None,
                    step_size: str | None = None,
                    random_start: tuple[str, Any] | None = None,
                    defaults: dict[str, Any] | None = None) -> Callable[[Craft], Craft]:
    """Declare the attack `name` whose craft function the decorator wraps (see the module's docstring)."""
    if modality not in ("image", "text", "joint", "none"):
        raise AttackError(f"register_attack({name!r}): modality {modality!r}; allowed: image, text, joint, none")

    def decorate(craft: Craft) -> Craft:
        _ATTACKS[source, name] = AttackInfo(source, name, modality, gradient, black_box, white_box, bounded, probe, combines,
                                            tuple(params), steps, step_size, random_start, dict(defaults or {}),
                                            craft, check, craft.__module__)
        return craft

    return decorate


def register_library(library: Library) -> Library:
    """Declare an attack library (called by its adapter module on import)."""
    _LIBRARIES[library.name] = replace(library, module=library.module or library.craft.__module__)
    return library


def sources() -> list[str]:
    """The attack sources a suite may name: mmrb's own and one per adapter file (listed, not imported), plus any
    library registered from elsewhere."""
    adapters = {m.name.removesuffix(ADAPTER_SUFFIX) for m in pkgutil.iter_modules([str(_HERE)])
                if m.name.endswith(ADAPTER_SUFFIX)}
    return [MMRB, *sorted(adapters | set(_LIBRARIES))]


def _load(source: str) -> None:
    """Import what declares `source`'s attacks: every attack module of this package for mmrb, else its adapter."""
    if source in _LOADED:
        return
    if source == MMRB:
        for module in sorted(pkgutil.iter_modules([str(_HERE)]), key=lambda m: m.name):
            if not module.name.endswith(ADAPTER_SUFFIX) and module.name not in _MACHINERY:
                importlib.import_module(f"{__package__}.{module.name}")
    elif source not in _LIBRARIES:
        if source not in sources():
            raise AttackError(unknown("attack source", source, sources()))
        importlib.import_module(f"{__package__}.{source}{ADAPTER_SUFFIX}")
    _LOADED.add(source)


def unknown(kind: str, name: str, known: list[str]) -> str:
    """'unknown <kind> <name>; did you mean …?; known: …' (the one wording of every registry miss)."""
    close = difflib.get_close_matches(name, known, n=2)
    return (f"unknown {kind} {name!r}{'; did you mean ' + ', '.join(close) + '?' if close else ''}; "
            f"known: {', '.join(known)}")


def library(source: str) -> Library:
    """The adapter of a library source."""
    _load(source)
    return _LIBRARIES[source]


def mmrb_attacks() -> list[str]:
    """The names of mmrb's own attacks (built-in and registered by plug-ins)."""
    _load(MMRB)
    return sorted(name for source, name in _ATTACKS if source == MMRB)


def info(source: str, name: str) -> AttackInfo:
    """The traits of attack `name` of `source` (AttackError naming close matches if unknown)."""
    if (source, name) in _ATTACKS:
        return _ATTACKS[source, name]
    _load(source)
    if source == MMRB or (source, name) in _ATTACKS:
        if (source, name) not in _ATTACKS:
            raise AttackError(unknown(f"{source} attack", name, mmrb_attacks()))
        return _ATTACKS[source, name]
    return _LIBRARIES[source].describe(name)


def traits(source: str, name: str) -> AttackInfo:
    """Like `info`, but an attack that cannot be resolved here (a board reading entries made by another version or
    with a plug-in not imported) gets default traits instead of an error."""
    try:
        return info(source, name)
    except (AttackError, ImportError):
        white = source in _LIBRARIES and _LIBRARIES[source].white_box
        return AttackInfo(source, name, params=None, white_box=white)


def check(source: str, name: str, params: Any) -> list[tuple[str, str]]:
    """Problems of an attack entry found without running it: unknown source, attack name or parameter."""
    if source not in sources():
        return [("source", unknown("attack source", source, sources()))]
    if not isinstance(params, dict):
        return [("params", "must be a mapping of parameter names to values")]
    if source != MMRB:
        return library(source).check(name, params)
    try:
        attack = info(source, name)
    except AttackError as exc:
        return [("name", str(exc))]
    problems = [(f"params.{p}", f"mmrb {name} has no parameter {p!r}; it takes: {', '.join(attack.params) or 'none'}")
                for p in sorted(set(params) - set(attack.params or ()))]
    return problems + (attack.check(params) if attack.check else [])


def craft(source: str, name: str, params: dict, target: Any, epsilon: float | None, seed: int) -> Any:
    """Run attack `name` of `source` on `target` (ε: the image budget, None for text attacks) -> Crafted."""
    if source == MMRB:
        attack = info(source, name)
        if attack.craft is None or attack.combines:
            raise AttackError(f"mmrb {name} combines other cells' results; it cannot be crafted on its own")
        problems = check(source, name, params)
        if problems:
            raise AttackError(f"mmrb {name}: " + "; ".join(f"{field}: {message}" for field, message in problems))
        return attack.craft(params, target, epsilon, seed)
    if source not in sources():
        raise AttackError(unknown("attack source", source, sources()))
    return library(source).craft(name, params, target, epsilon, seed)


def parameters(source: str, name: str) -> dict[str, inspect.Parameter]:
    """The parameters attack `name` takes, with their defaults (the convergence check reads its steps)."""
    if source != MMRB:
        return library(source).parameters(name)
    attack = info(source, name)
    return {p: inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY,
                                 default=attack.defaults.get(p, inspect.Parameter.empty)) for p in attack.params or ()}


def code_modules(source: str, name: str) -> list[Any]:
    """The modules whose code decides what an attack crafts: every module of this package, adapters included
    (attacks call each other: joint, the standard evaluation, the floor), plus the attack's own module where it
    lives elsewhere (a plug-in)."""
    ours = [importlib.import_module(f"{__package__}.{m.name}")
            for m in sorted(pkgutil.iter_modules([str(_HERE)]), key=lambda m: m.name)]
    attack = traits(source, name)
    own = importlib.import_module(attack.module) if attack.module and not attack.module.startswith(__package__) else None
    return ours + ([own] if own is not None else [])


def library_distributions() -> dict[str, str]:
    """source -> the installed package whose version is part of every cell key (the built-in libraries, listed by
    their adapters; imported to ask)."""
    return {source: library(source).distribution for source in sources() if source != MMRB}

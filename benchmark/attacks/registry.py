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

Sources are known without importing anything heavy (the adapter files are listed, not imported), and so is what a
suite entry needs of an attack, its modality and what it combines (`declaration`: read from the source text of the
decorator or the adapter's `Library(...)`), so loading a suite stays free of torch; the other traits import the
attack's module (and so torch) on first use.
"""
from __future__ import annotations

import ast
import functools
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mmrb.core.errors import AttackError, unknown
from mmrb.core.modality import MODALITIES

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

    `modality`: what it perturbs (`mmrb.core.modality.MODALITIES`: "image", "text", "joint", or "none" for the clean
    row); a suite entry inherits it. "image" is also the default, which a suite may override (corruption's report
    kinds are text); any other declared modality a suite may only repeat.
    `gradient`: an L∞ attack that follows the model's gradient, so the convergence check escalates it (through its
    `steps`/`step_size`/`random_start` parameters, by those names). `black_box`: it only queries the model;
    `white_box`: a single attack with the model's gradients (a black-box or transfer cell below every white-box cell
    raises a flag). `bounded`: it runs at each ε of the suite (False: one cell, no budget). `probe`: a soundness
    probe's role ("noise": random noise at ε; "floor": the text floor's image replacement). `combines`: the parameter
    listing the labels of the cells whose outputs it combines (worst_case: "of"), so it crafts nothing itself.
    `params`: the parameters it takes (None: the library's class decides). `craft`/`check`: its functions (None for
    a library attack: the library's own are used).
    `module`: the module holding its code (its imports are followed for the cache key). `files`: the parameters that
    name a user's file or module (`"file.py:object"`, `"package.module:object"`): their contents are part of the key.
    `calls`: (parameter, default source) of the parameters that name other attacks it crafts ({source, name, params},
    or a list of them): their code is part of its key. `threshold`: it attacks the model at the run's decision
    threshold (the suite's `operating_point`), which is then part of its cells' keys.
    """

    source: str
    name: str
    modality: str = "image"
    gradient: bool = False
    black_box: bool = False
    white_box: bool = False
    bounded: bool = True
    probe: str | None = None
    combines: str | None = None
    params: tuple[str, ...] | None = ()
    steps: str | None = None
    step_size: str | None = None
    random_start: tuple[str, Any] | None = None
    defaults: dict[str, Any] = field(default_factory=dict, compare=False)
    craft: Craft | None = field(default=None, compare=False, repr=False)
    check: Check | None = field(default=None, compare=False, repr=False)
    module: str = ""
    files: tuple[str, ...] = ()
    calls: tuple[tuple[str, str], ...] = ()
    threshold: bool = False


@dataclass(frozen=True)
class Library:
    """An attack library: how to craft and check its attacks by name, and the traits of each (`describe(name)` ->
    AttackInfo; it may import the library). `distribution`: the installed package whose version keys its cells.
    `modality`: what its attacks perturb (written as a literal in the adapter: suites read it without importing it)."""

    name: str
    craft: Callable[..., Any]  # (name, params, target, epsilon, seed) -> Crafted
    check: Callable[[str, dict], list]  # (name, params) -> problems
    describe: Callable[[str], AttackInfo]
    parameters: Callable[[str], dict[str, inspect.Parameter]]  # name -> its constructor's parameters
    names: Callable[[], list[str]]  # the attacks it offers (`mmrb attacks`)
    distribution: str
    white_box: bool = False  # its attacks that are not black-box use the model's gradients
    module: str = ""
    modality: str = "image"


_ATTACKS: dict[tuple[str, str], AttackInfo] = {}
_LIBRARIES: dict[str, Library] = {}
_LOADED: set[str] = set()


def register_attack(name: str, *, source: str = MMRB, modality: str = "image", gradient: bool = False,
                    black_box: bool = False, white_box: bool = False, bounded: bool = True, probe: str | None = None,
                    combines: str | None = None,
                    params: tuple[str, ...] = (), check: Check | None = None, steps: str | None = None,
                    step_size: str | None = None,
                    random_start: tuple[str, Any] | None = None,
                    defaults: dict[str, Any] | None = None, files: tuple[str, ...] = (),
                    calls: tuple[tuple[str, str], ...] = (), threshold: bool = False) -> Callable[[Craft], Craft]:
    """Declare the attack `name` whose craft function the decorator wraps (see the module's docstring)."""
    if modality not in MODALITIES:
        raise AttackError(f"register_attack({name!r}): modality {modality!r}; allowed: {', '.join(MODALITIES)}")

    def decorate(craft: Craft) -> Craft:
        _ATTACKS[source, name] = AttackInfo(source, name, modality, gradient, black_box, white_box, bounded, probe, combines,
                                            tuple(params), steps, step_size, random_start, dict(defaults or {}),
                                            craft, check, craft.__module__, tuple(files), tuple(calls), threshold)
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


@dataclass(frozen=True)
class Declaration:
    """What a suite needs of an attack before any attack module is imported (so without torch): what it perturbs,
    and the parameter listing the labels of the cells it combines (None: it crafts)."""

    modality: str = "image"
    combines: str | None = None


def declaration(source: Any, name: Any) -> Declaration | None:
    """The declared `modality` and `combines` of attack `name` of `source`, without importing an attack module or
    library: a registered attack's (a suite's plug-ins are imported before it is read), else read from the source
    text of the built-in declarations (mmrb's `@register_attack(...)`, an adapter's `Library(...)`). None if
    not found (validation names the unknown attack)."""
    if not isinstance(source, str) or not isinstance(name, str):
        return None
    if (source, name) in _ATTACKS:
        return Declaration(_ATTACKS[source, name].modality, _ATTACKS[source, name].combines)
    if source in _LIBRARIES:
        return Declaration(_LIBRARIES[source].modality)
    if source == MMRB:
        return _builtin_declarations().get(name)
    return _adapter_declaration(source) if source in sources() else None


def combines(source: Any, name: Any) -> str | None:
    """The parameter naming the cells attack `name` combines (worst_case: "of"), None for an attack that crafts."""
    declared = declaration(source, name)
    return declared.combines if declared else None


def _literal_calls(path: Path, callee: str) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """The arguments of every call to `callee` written in a Python file, as literals (None where not a literal)."""

    def literal(node: ast.AST) -> Any:
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError):
            return None

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and callee in (getattr(node.func, "id", None), getattr(node.func, "attr", None)):
            yield [literal(a) for a in node.args], {k.arg: literal(k.value) for k in node.keywords if k.arg}


@functools.cache
def _builtin_declarations() -> dict[str, Declaration]:
    """name -> Declaration of mmrb's built-in attacks, from their decorators' literals (register_attack's defaults
    where not given); tests/benchmark/test_layers.py checks them against the registrations."""
    default = {p.name: p.default for p in inspect.signature(register_attack).parameters.values()}
    found = {}
    for module in pkgutil.iter_modules([str(_HERE)]):
        if module.ispkg or module.name.endswith(ADAPTER_SUFFIX) or module.name in _MACHINERY:
            continue
        for args, given in _literal_calls(_HERE / f"{module.name}.py", "register_attack"):
            if args and isinstance(args[0], str) and given.get("source", MMRB) == MMRB:
                found[args[0]] = Declaration(given.get("modality", default["modality"]),
                                             given.get("combines", default["combines"]))
    return found


@functools.cache
def _adapter_declaration(source: str) -> Declaration:
    """The modality of a built-in library's attacks, from its adapter's `Library(..., modality=...)` literal."""
    default = next(f.default for f in fields(Library) if f.name == "modality")
    given = [kw for _, kw in _literal_calls(_HERE / f"{source}{ADAPTER_SUFFIX}.py", "Library")]
    return Declaration(given[0].get("modality", default) if given else default)


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
    return replace(_LIBRARIES[source].describe(name), modality=_LIBRARIES[source].modality)


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
    """The module holding an attack's code: its own (`AttackInfo.module`: built-in or plug-in) for mmrb's attacks, its
    adapter for a library's; `wrappers.cache.code_digest` follows what it imports, at any depth. The other attacks
    it crafts are its `calls` (keyed apart); none for an attack that cannot be resolved here."""
    try:
        module = info(source, name).module if source == MMRB else library(source).module
    except (AttackError, ImportError):
        return []
    return [importlib.import_module(module)] if module else []


def library_distributions() -> dict[str, str]:
    """source -> the installed package whose version is part of every cell key (the built-in libraries, listed by
    their adapters; imported to ask)."""
    return {source: library(source).distribution for source in sources() if source != MMRB}

"""Where a run's cells are computed: a registry of backends, one file each in this package.

A backend only decides where a cell runs. Every cell is computed by `benchmark.run.engine.compute` on a
`benchmark.run.engine.Work` (the same code everywhere), and every outcome comes back to the driver, which alone
writes the run store (`benchmark.store.results.RunStore`, idempotent by cell key).

The built-in backends are `local` (this process, one cell after another: `local.LocalBackend`, the default) and `ray`
(Ray tasks: `ray.RayBackend`). **A new backend is one file** `benchmark/run/backends/<name>.py`, named after it, whose
class implements `Backend` and registers itself:

    @register_backend("dask")
    @dataclass(frozen=True)
    class DaskBackend:
        @classmethod
        def from_settings(cls, settings: BackendSettings) -> DaskBackend: ...  # the CLI's settings; optional
        def check(self, device: str) -> None: ...
        def describe(self) -> str: ...
        def execute(self, plan, pending, progress): ...

`mmrb run --backend dask`, the gate's `--mmrb-backend dask` and `mmrb.evaluate(..., backend="dask")` then offer and
use it: they read `list_backends()` and `backend_from()`. The files are listed, not imported, so this registry loads
no torch and no Ray; a backend's file is imported when it is first asked for. A backend registered from any other
module (a plug-in) is offered once that module is imported.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from mmrb.core.errors import MmrbError, unknown_name

if TYPE_CHECKING:
    from tqdm.auto import tqdm

    from benchmark.run.engine import CellResult, Plan
    from benchmark.spec.grid import Cell

    Pending = list[tuple[Cell, str]]  # (cell, cell key), in grid order

#: The name a run gets when it names no backend.
DEFAULT_BACKEND = "local"

#: Names importable from this package, each defined in one of its backend files (imported on first use).
_EXPORTS = {"LocalBackend": "local", "RayBackend": "ray", "WorkerContext": "ray"}


class Backend(Protocol):
    """Computes pending cells and yields each outcome as it finishes (in any order)."""

    def check(self, device: str) -> None:
        """Raise MmrbError before any work when this backend cannot run on `device`."""

    def describe(self) -> str:
        """A few words for the run's first line."""

    def execute(self, plan: Plan, pending: Pending, progress: Progress) -> Iterator[CellResult]:
        """Compute `pending` and yield one outcome per cell; tasks other than cells are added to `progress`."""


class Progress:
    """The run's one progress bar: a step per pending cell (taken by the runner when it commits the cell), plus a
    step per task a backend runs besides its cells (the Ray backend's trainings and transfer crafts)."""

    def __init__(self, bar: tqdm) -> None:
        self._bar = bar

    def note(self, text: str) -> None:
        """What is running now (the bar's postfix)."""
        self._bar.set_postfix_str(text)

    def add_tasks(self, n: int) -> None:
        """`n` more steps: tasks other than cells that this run will wait for."""
        self._bar.total += n
        self._bar.refresh()

    def task_done(self) -> None:
        """One step done: a committed cell, or another task finished."""
        self._bar.update()


@dataclass(frozen=True)
class BackendSettings:
    """The settings a backend is built from by name (the CLI's `--address`, `--num-cpus`, ...; their defaults).
    Each backend takes the ones it understands and may refuse the others (`LocalBackend` refuses Ray's)."""

    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    torch_threads: int | None = None
    max_retries: int = 3
    local_cpus: int | None = None


B = TypeVar("B", bound=type)

_BACKENDS: dict[str, Any] = {}  # name -> the backend's class


def register_backend(name: str) -> Callable[[B], B]:
    """Register the decorated backend class under `name` (a built-in one lives in this package's file `<name>.py`).
    `backend_from` builds it with its classmethod `from_settings(BackendSettings)`, or with no arguments."""

    def decorate(cls: B) -> B:
        _BACKENDS[name] = cls
        return cls

    return decorate


def _files() -> list[str]:
    """The backend files of this package, by name (listed, not imported; `_private` modules are not backends)."""
    return [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]


def list_backends() -> list[str]:
    """Every backend a run may name: one per file of this package, plus any registered from elsewhere."""
    return sorted(set(_files()) | set(_BACKENDS))


def backend_class(name: str) -> Any:
    """The class registered as `name`, importing its file on first use; an unknown name names the closest."""
    if name not in _BACKENDS and name in _files():
        importlib.import_module(f"{__name__}.{name}")
        if name not in _BACKENDS:
            raise MmrbError(f"{__name__}.{name} registers no backend {name!r}: a backend's file is named after it "
                            f"(@register_backend({name!r}))")
    if name not in _BACKENDS:
        raise unknown_name("backend", name, list_backends(), MmrbError)
    return _BACKENDS[name]


def backend_from(name: str, address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0,
                 torch_threads: int | None = None, max_retries: int = 3, local_cpus: int | None = None) -> Backend:
    """The backend called `name` (`list_backends()`) with the CLI's settings."""
    cls = backend_class(name)
    settings = BackendSettings(address, num_cpus, num_gpus, torch_threads, max_retries, local_cpus)
    build = getattr(cls, "from_settings", None)
    return build(settings) if build is not None else cls()


def as_backend(backend: str | Backend | None) -> Backend:
    """A backend from a name ("local", "ray", ...) or a backend object (None: local)."""
    if backend is None:
        return backend_from(DEFAULT_BACKEND)
    if isinstance(backend, str):
        return backend_from(backend)
    return backend


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

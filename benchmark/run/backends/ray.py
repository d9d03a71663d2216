"""The `ray` backend: a run's cells, and the trainings and transfer crafts they need, as Ray tasks.

On Ray (https://docs.ray.io), a run is a task graph:

- one training task per (model, training seed) that a pending cell needs: it loads the model from the shared
  cache or trains and caches it (under a per-model file lock, so two tasks never train the same key);
- one craft task per transfer craft (source model, attack, ε, seed), shared by all its targets;
- one task per cell, depending on its models' training tasks, its transfer craft, and the cells whose output
  it combines (`worst_case` parts, `compare_with`).

Trained weights and crafted examples travel through the cache folder, which every worker must see at the same
path (one machine, or a shared filesystem on a cluster); the data travel once through Ray's object store.
Ray retries a task whose worker died (`max_retries`); mmrb's own errors are not retried: they become the
cell's error row, as on the local backend.
"""
from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from benchmark.run.backends import BackendSettings, Progress, register_backend
from benchmark.run.engine import CellResult, Plan, Work, base_row, compute, needs_text_resources
from benchmark.spec.grid import Cell
from benchmark.spec.suite import Suite
from benchmark.spec.validate import check_device
from mmrb.core.errors import MmrbError
from wrappers.numerics import numerics_identity

if TYPE_CHECKING:
    from benchmark.run.backends import Pending


@register_backend("ray")
@dataclass(frozen=True)
class RayBackend(BackendSettings):
    """Cells, trainings and transfer crafts as Ray tasks.

    `address`: an existing cluster (`"auto"`, `"ray://head:10001"`, or `$RAY_ADDRESS`); None starts a local
    instance with `local_cpus` CPUs (default: all) and stops it afterwards. `ray.init` called by the user before
    is used as it is. Per task: `num_cpus`, `num_gpus` (give GPUs with `device="cuda"`: Ray hides GPUs from tasks
    that ask for none), `torch_threads` (default: `num_cpus`, at least 1; trainings run at the canonical 1 whatever
    it is, see `LocalBackend`). `max_retries`: re-runs of a task
    whose worker died (Ray's own retry; exceptions are never retried)."""

    name = "ray"

    @classmethod
    def from_settings(cls, settings: BackendSettings) -> RayBackend:
        """The Ray backend with the CLI's settings."""
        return cls(**asdict(settings))

    def check(self, device: str) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise MmrbError("--backend ray needs Ray: pip install 'mmrb[ray]' (or pip install ray)") from None
        if self.num_cpus <= 0 or self.num_gpus < 0 or self.max_retries < 0 or (self.torch_threads or 1) < 1:
            raise MmrbError(f"Ray backend: num_cpus must be > 0, num_gpus and max_retries >= 0, torch_threads >= 1 "
                            f"(got num_cpus={self.num_cpus}, num_gpus={self.num_gpus}, max_retries={self.max_retries}, "
                            f"torch_threads={self.torch_threads})")
        cuda = device.startswith("cuda")
        if device.startswith("cuda:"):
            raise MmrbError(f"--device {device} with --backend ray: give --device cuda; Ray assigns each task its GPU "
                            "(CUDA_VISIBLE_DEVICES), which the task sees as cuda:0")
        if cuda and self.num_gpus == 0:
            raise MmrbError(f"--device {device} with --backend ray: give each task a GPU share with --num-gpus (1, or "
                            "0.5 for two tasks per GPU); Ray hides GPUs from tasks that ask for none")
        if not cuda and self.num_gpus > 0:
            raise MmrbError(f"--num-gpus {self.num_gpus:g} with --device {device}: the tasks would hold GPUs and compute on "
                            "the CPU; add --device cuda")
        if not self.joins_a_cluster:
            check_device(device)  # a local instance has this machine's devices; a cluster's workers may have others

    @property
    def joins_a_cluster(self) -> bool:
        return bool(self.address or os.environ.get("RAY_ADDRESS"))

    @property
    def threads(self) -> int:
        return self.torch_threads or max(1, int(self.num_cpus))

    def describe(self) -> str:
        where = ((self.address or os.environ["RAY_ADDRESS"]) if self.joins_a_cluster
                 else f"a local Ray instance ({self.local_cpus or os.cpu_count()} CPUs)")
        return (f"Ray backend on {where}: {self.num_cpus:g} CPU, {self.num_gpus:g} GPU and {self.threads} torch "
                f"thread(s) per task")

    def execute(self, plan: Plan, pending: Pending, progress: Progress) -> Iterator[CellResult]:
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, num_cpus=None if self.joins_a_cluster else self.local_cpus,
                     include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            yield from _Graph(self, plan).run(pending, progress)
        finally:
            if started_here:
                ray.shutdown()


# ---- the worker side: one Work per run, kept by each worker process between tasks ----

@dataclass(frozen=True)
class WorkerContext:
    """What a worker process needs before its first task of a run: the plan (pickled, with the model entries the
    driver resolved), and the plug-in files and modules to import before unpickling it (where the plug-in models'
    and attacks' code lives)."""

    plan_bytes: bytes
    suite: Suite
    device: str
    threads: int
    sys_path: list[str]
    plugins: list[str]
    numerics: dict[str, Any]  # the driver's `numerics_identity`: it keyed the models, so every worker must share it
    run: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def of(cls, plan: Plan, threads: int) -> WorkerContext:
        from ray import cloudpickle

        from benchmark.attacks.registry import traits

        modules = {m for e in plan.models.values() if e.origin != "mmrb" for m in (e.factory.__module__, e.cls.__module__)}
        attacks = [*plan.suite.attacks, *(plan.suite.transfer.attacks if plan.suite.transfer else [])]
        modules |= {traits(a.source, a.name).module for a in attacks} - {""}
        plugins = []  # files imported by path first, then importable modules
        for module in sorted(modules):
            if module.startswith("mmrb_plugin_"):
                plugins.insert(0, sys.modules[module].__file__)
            elif module != "__main__" and not module.startswith(("benchmark.", "wrappers.", "defenses.")):
                plugins.append(module)  # (a driver script's own classes travel by value)
        return cls(cloudpickle.dumps(plan), plan.suite, plan.device, threads, list(sys.path), plugins,
                   numerics_identity(plan.device))

    def setup(self) -> Plan:
        """Check this worker's numerics, import the plug-ins, and return the driver's plan."""
        import importlib

        import torch
        from ray import cloudpickle

        from wrappers.registry import import_plugin

        here = numerics_identity(self.device)
        if here != self.numerics:
            import socket

            raise MmrbError(f"Ray worker on {socket.gethostname()}: its numerics {here} differ from the driver's "
                            f"{self.numerics}, which keyed the run's models and cells; run the cluster on nodes of "
                            "one CPU type and torch build (docs/ray.md)")
        torch.set_num_threads(self.threads)
        sys.path.extend(p for p in self.sys_path if p not in sys.path)
        for plugin in self.plugins:
            import_plugin(plugin) if plugin.endswith(".py") else importlib.import_module(plugin)
        if needs_text_resources(self.suite):
            from benchmark.data.text_resources import ensure_text_resources

            ensure_text_resources()
        return cloudpickle.loads(self.plan_bytes)


_WORK: dict[str, Work] = {}  # run id -> this worker's Work (its models stay loaded between tasks)


def _work(context: WorkerContext) -> Work:
    if context.run not in _WORK:
        _WORK.clear()  # one run at a time per worker process
        _WORK[context.run] = context.setup().work()
    return _WORK[context.run]


def _shippable(exc: Exception) -> Exception:
    """`exc`, or a RuntimeError with its text where it cannot be pickled (it travels to other tasks)."""
    from ray import cloudpickle

    try:
        cloudpickle.dumps(exc)
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _train_task(context: WorkerContext, spec, seed: int) -> Exception | None:
    """Load or train the model (into the shared cache); a failure is returned, for the cells to report."""
    try:
        _work(context).model(spec, seed)
    except Exception as exc:
        return _shippable(exc)
    return None


def _craft_task(context: WorkerContext, source, attack, epsilon, seed: int, trained: Exception | None) -> Exception | None:
    """Craft a transfer attack on its source once (into the shared cache); a failure is returned."""
    work = _work(context)
    if trained is not None:
        work.failed(trained, model=(source, seed))
    try:
        work.transfer_craft(source, attack, epsilon, seed)
    except Exception as exc:
        return _shippable(exc)
    return None


def _cell_task(context: WorkerContext, cell: Cell, key: str, trained: Exception | None, crafted: Exception | None,
               *after: Any) -> CellResult:
    """Score one cell; `after`: the outcomes of the cells it combines (their artifacts are in the cache)."""
    work = _work(context)
    if trained is not None:
        work.failed(trained, model=(cell.model, cell.seed))
    if crafted is not None:
        work.failed(crafted, craft=work.keys.transfer_craft(cell))
    return compute(work, cell, key)


class _Graph:
    """Submits a run's tasks with their dependencies, then yields cell outcomes as they finish."""

    def __init__(self, backend: RayBackend, plan: Plan) -> None:
        import ray

        self.plan, self.keys = plan, plan.keys
        self.context = ray.put(WorkerContext.of(plan, backend.threads))
        options = dict(num_cpus=backend.num_cpus, num_gpus=backend.num_gpus, max_retries=backend.max_retries,
                       retry_exceptions=False)
        self.train = ray.remote(_train_task).options(name="mmrb-train", **options)
        self.craft = ray.remote(_craft_task).options(name="mmrb-craft", **options)
        self.cell = ray.remote(_cell_task).options(name="mmrb-cell", **options)
        self.trainings: dict[tuple[str, int], Any] = {}
        self.crafts: dict[str, Any] = {}
        self.cells: dict[str, Any] = {}

    def training(self, spec, seed: int):
        if (spec.label, seed) not in self.trainings:
            self.trainings[spec.label, seed] = self.train.remote(self.context, spec, seed)
        return self.trainings[spec.label, seed]

    def transfer(self, cell: Cell):
        key = self.keys.transfer_craft(cell)
        if key not in self.crafts:
            self.crafts[key] = self.craft.remote(self.context, cell.source, cell.attack, cell.epsilon, cell.seed,
                                                 self.training(cell.source, cell.seed))
        return self.crafts[key]

    def submit(self, cell: Cell, key: str, pending: dict[str, Cell]):
        """The cell's task, after the tasks of the pending cells it combines (submitted first)."""
        if key in self.cells:
            return self.cells[key]
        after = []
        for other in self.keys.combined(cell):
            other_key = self.keys.cell(other)
            if other_key in pending:
                after.append(self.submit(other, other_key, pending))
        crafted = self.transfer(cell) if cell.source is not None else None
        self.cells[key] = self.cell.remote(self.context, cell, key, self.training(cell.model, cell.seed), crafted, *after)
        return self.cells[key]

    def run(self, pending: Pending, progress: Progress) -> Iterator[CellResult]:
        import ray

        by_key = dict((k, c) for c, k in pending)
        for cell, key in sorted(pending, key=lambda p: p[0].seed):  # a worker keeps one seed's models loaded
            self.submit(cell, key, by_key)
        waiting = {ref: key for key, ref in self.cells.items()}
        others = list(self.trainings.values()) + list(self.crafts.values())
        progress.add_tasks(len(others))
        submitted = f"Ray tasks: {len(self.trainings)} trainings, {len(self.crafts)} transfer crafts, {len(self.cells)} cells"
        while waiting or others:  # every task is waited for (a cell can be seen ready before its training)
            progress.note(f"{submitted}; {len(others) + len(waiting)} to go")
            ready, _ = ray.wait(list(waiting) + others, num_returns=1)
            ref = ready[0]
            if ref in waiting:
                key = waiting.pop(ref)
                yield self._outcome(ref, by_key[key], key)
            else:
                others.remove(ref)
                progress.task_done()
        progress.note(f"{submitted}; all done")

    def _outcome(self, ref, cell: Cell, key: str) -> CellResult:
        """The task's outcome; a task Ray could not finish (its worker died more than max_retries times, the
        cluster went away) becomes the cell's error row, retried by the next run."""
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            row = base_row(self.plan.suite, cell, len(self.plan.data.test.labels))
            row["error"] = f"Ray could not run this cell: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            return CellResult(cell, key, row, False)

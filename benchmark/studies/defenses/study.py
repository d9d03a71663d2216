"""Running a comparison: one unit of work per (seed, noise type, γ, defense), each committed to the run store of
`mmrb run` (benchmark.store.results.CellStore) the moment it is done, so a comparison killed at any point (kill -9
included) resumes into the same folder without recomputing a finished unit; CLIPs come from the content-addressed
cache; one progress bar.

Where the units run is the backend's choice (`mmrb compare-defenses --backend`): `local` (the default) computes
them one after another in this process; `ray` (benchmark.run.backends.ray.RayBackend, its settings) makes a Ray task
per (seed, noise type) holding every γ of that type (they share the noisy-corpus memo; the clean CLIP is a group of
its own), each after its seed's general-CLIP task (one per seed, so no two tasks pre-train the same CLIP). A task
returns its units' rows; the driver alone writes the store, committing each unit as its task finishes."""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from benchmark.studies.defenses import corpora
from benchmark.studies.defenses.heads import check_defenses, classifier, defense_head_class, fit_searched
from benchmark.studies.defenses.scoring import attack_rows, clean_rows, spectrum_share
from benchmark.studies.defenses.spec import DefenseEntry, DefenseSuite
from mmrb.core.errors import MmrbError
from mmrb.core.provenance import provenance as make_provenance

log = logging.getLogger(__name__)
PACKAGES = ("torch", "open_clip_torch", "adversarial-robustness-toolbox", "numpy", "scipy")
STUDY_VERSION = 2  # bump when a unit's rows change meaning (keys then differ: a one-time recompute)


def unit_key(suite: DefenseSuite, data_fingerprint: str, seed: int, kind: str, ratio: float, entry: DefenseEntry) -> str:
    """Content key of one unit: what decides its rows (the suite's recipes, data, attacks and search, the unit)."""
    import benchmark.studies.defenses.scoring as scoring_module
    from benchmark.run.keys import attack_code
    from benchmark.studies.defenses import heads as heads_module
    from wrappers.cache import code_digest, digest

    recipe = suite.model_dump(include={"clip", "image_size", "base", "noisy", "noise_attack", "data", "search", "attacks", "attack_clips",
                                       "attack_limit", "convergence_check", "spectrum_k"})
    return digest({"v": STUDY_VERSION, "recipe": recipe, "data": data_fingerprint, "seed": seed, "noise": kind,
                   "ratio": ratio, "defense": entry.model_dump(),
                   "code": code_digest(scoring_module, heads_module, corpora),
                   "attacks": [attack_code(a.source, a.name, a.params) for a in suite.attacks]})


def run_study(suite: DefenseSuite, out: Path, cache_dir: Path, fresh: bool = False, progress: bool = True,
              base: Path | None = None, backend: Any = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every unit of the comparison (resumed from `out`'s run store); the rows as a frame and the run's metadata.
    `backend`: "local" (None, the default: this process) or "ray" / a `RayBackend` (a Ray task per seed and noise
    type; see the module's docstring)."""
    from tqdm import tqdm

    from benchmark.run.backends import as_backend
    from benchmark.store.results import CellStore

    backend = as_backend(backend)
    if getattr(backend, "name", None) not in ("local", "ray"):
        raise MmrbError(f"compare-defenses runs on the local or the ray backend, not on {backend.describe()}")
    backend.check("cpu")
    torch.set_num_threads(suite.threads)
    start = time.time()
    data = corpora.load_data(suite, cache_dir)
    check_defenses(suite.defenses, suite.clip, suite.image_size, data.tests["ID"].images, data.tests["ID"].texts,
                   f"defenses suite {suite.name!r}", base)
    units = [(seed, kind, ratio, entry) for seed in suite.seeds for kind, ratio in corpora.grid(suite)
             for entry in suite.defenses]
    keys = [unit_key(suite, data.fingerprint, *unit) for unit in units]
    out.mkdir(parents=True, exist_ok=True)
    with CellStore(out, fresh, {"name": suite.name, "source": "compare-defenses", "hash": suite.content_hash}) as store:
        done = store.finished() & set(keys)
        pending = [(u, k) for u, k in zip(units, keys) if k not in done]
        if progress:
            print(f"{suite.name}: {len(units)} units ({len(suite.seeds)} seeds × {len(corpora.grid(suite))} CLIPs × "
                  f"{len(suite.defenses)} defenses); {len(done)} already committed in {out}, {len(pending)} to run"
                  + ("" if backend.name == "local" else f" ({backend.describe()})"), flush=True)
        with tqdm(total=len(pending), disable=not progress, desc=suite.name, unit="unit") as bar:
            if backend.name == "ray":
                computed = _ray_units(backend, suite, data, cache_dir, base, pending, bar, out)
            else:
                computed = _local_units(suite, data, cache_dir, base, pending, bar)
            with contextlib.closing(computed):  # an error here stops the backend's tasks too
                for key, record in computed:
                    store.commit(key, record)
                    bar.update()
        rows = [r for stored in store.rows(keys) for r in stored["rows"]]
    meta = make_provenance(suite=suite.name, suite_hash=suite.content_hash, data_fingerprint=data.fingerprint,
                           seeds=list(suite.seeds), packages=PACKAGES)
    meta.update(seconds=round(time.time() - start, 1), computed=len(pending), loaded=len(done),
                backend=backend.describe())
    return pd.DataFrame(rows), meta


Pending = list[tuple[tuple[int, str, float, DefenseEntry], str]]  # ((seed, kind, γ, defense), unit key), in order


def _record(suite: DefenseSuite, seed: int, kind: str, ratio: float, entry: DefenseEntry,
            rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the store keeps of one unit."""
    common = {"seed": seed, "noise": kind, "ratio": ratio, "method": entry.label}
    return {"suite": suite.name, "rows": [{**common, **r} for r in rows]}


def _local_units(suite: DefenseSuite, data: corpora.Data, cache_dir: Path, base: Path | None, pending: Pending,
                 bar: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """The local backend: the pending units one after another in this process, one CLIP in memory at a time."""
    memo: dict = {}
    generals: dict[int, str] = {}  # each seed's general CLIP, looked up in the cache once
    loaded: dict[tuple[int, str, float], dict[str, Any]] = {}
    for (seed, kind, ratio, entry), key in pending:
        bar.set_postfix_str(f"seed {seed} · {kind} γ={ratio:g} · {entry.label}")
        if (seed, kind, ratio) not in loaded:
            loaded.clear()  # one CLIP in memory at a time
            if seed not in generals:
                generals[seed] = corpora.general_clip(data, suite, cache_dir, seed)
            spec = corpora.noisy_clip(data, generals[seed], suite, cache_dir, seed, kind, ratio, memo)
            loaded[seed, kind, ratio] = _clip_state(spec, data, suite, attacked(suite, kind))
        yield key, _record(suite, seed, kind, ratio, entry, _unit_rows(loaded[seed, kind, ratio], data, suite, seed,
                                                                       entry, base))


# ---- the ray backend: a general-CLIP task per seed, then a task per (seed, noise type) ----

@dataclass(frozen=True)
class _TaskContext:
    """What every task of one comparison needs (put once into Ray's object store: the data travel once)."""

    suite: DefenseSuite
    data: corpora.Data
    cache_dir: Path
    base: Path | None
    threads: int
    numerics: dict[str, Any]  # the driver's: the CLIPs' cache keys hold it, so every worker must share it
    sys_path: list[str]

    def setup(self) -> None:
        """Check this worker's numerics, set its torch threads, see the driver's import path."""
        from wrappers.numerics import numerics_identity

        here = numerics_identity("cpu")
        if here != self.numerics:
            import socket

            raise MmrbError(f"Ray worker on {socket.gethostname()}: its numerics {here} differ from the driver's "
                            f"{self.numerics}; run the cluster on nodes of one CPU type and torch build (docs/ray.md)")
        torch.set_num_threads(self.threads)
        sys.path.extend(p for p in self.sys_path if p not in sys.path)


@dataclass(frozen=True)
class _Failure:
    """A unit (or a seed's general CLIP) that raised in a task: where, what, and the worker's traceback."""

    where: str
    error: str
    trace: str

    @classmethod
    def of(cls, where: str, exc: BaseException) -> _Failure:
        import traceback

        return cls(where, f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)))


def _where(seed: int, kind: str, ratio: float | None = None, label: str | None = None) -> str:
    """A unit's name in messages: seed, noise type, γ, defense."""
    if kind == "general":
        return f"the general CLIP of seed {seed}"
    return f"seed {seed}, noise {kind}" + (f" γ={ratio:g}" if ratio is not None else "") + \
        (f", defense {label}" if label else "")


def _general_task(context: _TaskContext, seed: int) -> str | _Failure:
    """Obtain (pre-train once into the shared cache, or load) the general CLIP of `seed`: its spec."""
    try:
        context.setup()
        return corpora.general_clip(context.data, context.suite, context.cache_dir, seed)
    except Exception as exc:
        return _Failure.of(_where(seed, "general"), exc)


def _group_task(context: _TaskContext, seed: int, kind: str, units: list[tuple[float, DefenseEntry, str]],
                general: str | _Failure) -> tuple[list[tuple[str, dict[str, Any]]], _Failure | None]:
    """Every pending unit of one (seed, noise type), γ after γ: each unit's (key, record), and the failure that
    stopped the task (the units before it are returned, to be committed)."""
    if isinstance(general, _Failure):
        return [], general
    suite, data = context.suite, context.data
    done: list[tuple[str, dict[str, Any]]] = []
    memo: dict = {}
    state: dict[str, Any] | None = None
    where = _where(seed, kind)
    try:
        context.setup()
        for i, (ratio, entry, key) in enumerate(units):
            where = _where(seed, kind, ratio)
            if i == 0 or units[i - 1][0] != ratio:
                state = None  # one CLIP in memory at a time
                spec = corpora.noisy_clip(data, general, suite, context.cache_dir, seed, kind, ratio, memo)
                state = _clip_state(spec, data, suite, attacked(suite, kind))
            where = _where(seed, kind, ratio, entry.label)
            done.append((key, _record(suite, seed, kind, ratio, entry,
                                      _unit_rows(state, data, suite, seed, entry, context.base))))
    except Exception as exc:
        return done, _Failure.of(where, exc)
    return done, None


def _ray_units(backend: Any, suite: DefenseSuite, data: corpora.Data, cache_dir: Path, base: Path | None,
               pending: Pending, bar: Any, out: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The ray backend: the pending units as Ray tasks; each unit's (key, record) as its task finishes. A failed
    unit stops the comparison with an error naming it (the tasks still running are cancelled; what was committed
    stays committed, and the next run resumes)."""
    import ray

    from wrappers.numerics import numerics_identity

    groups: dict[tuple[int, str], list[tuple[float, DefenseEntry, str]]] = {}
    for (seed, kind, ratio, entry), key in pending:
        groups.setdefault((seed, kind), []).append((ratio, entry, key))
    if not groups:
        return
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=backend.address, num_cpus=None if backend.joins_a_cluster else backend.local_cpus,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    refs: list[Any] = []
    complete = False
    try:
        where = None if base is None else Path(base).resolve()  # paths as seen by workers in other folders
        context = ray.put(_TaskContext(suite, data, Path(cache_dir).resolve(), where, backend.threads,
                                       numerics_identity("cpu"), list(sys.path)))
        options = dict(num_cpus=backend.num_cpus, num_gpus=backend.num_gpus, max_retries=backend.max_retries,
                       retry_exceptions=False)
        general_remote = ray.remote(_general_task).options(name="mmrb-defenses-general-clip", **options)
        group_remote = ray.remote(_group_task).options(name="mmrb-defenses-units", **options)
        generals = {seed: general_remote.remote(context, seed) for seed in dict.fromkeys(s for s, _ in groups)}
        waiting = {group_remote.remote(context, seed, kind, units, generals[seed]): (seed, kind, units)
                   for (seed, kind), units in groups.items()}
        refs = [*generals.values(), *waiting]
        while waiting:
            bar.set_postfix_str(f"Ray: {len(waiting)} of {len(groups)} tasks (seed × noise type) to go, after "
                                f"{len(generals)} general-CLIP task(s)")
            ready, _ = ray.wait(list(waiting), num_returns=1)
            seed, kind, units = waiting.pop(ready[0])
            try:
                finished, failure = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # the worker died more than max_retries times, the cluster left
                ratios = ", ".join(f"{r:g}" for r in dict.fromkeys(r for r, _, _ in units))
                finished, failure = [], _Failure(_where(seed, kind) + f" γ in [{ratios}]",
                                                 f"Ray could not run this task: {type(exc).__name__}: "
                                                 f"{str(exc).splitlines()[0] if str(exc) else ''}", "")
            yield from finished
            if failure is not None:
                if failure.trace:
                    log.info("compare-defenses: %s failed in a Ray task:\n%s", failure.where, failure.trace)
                last = [line for line in failure.trace.strip().splitlines() if line.startswith("  File ")][-1:]
                raise MmrbError(f"compare-defenses: {failure.where} failed in a Ray task: {failure.error}"
                                + (f" (at{last[0][len('  File'):]})" if last else "")
                                + f"; the units finished before it are committed in {out} (run the same command "
                                "again to resume; -v logs the worker's traceback)")
        complete = True
    finally:
        for ref in [] if complete else refs:  # a failure, Ctrl-C: the tasks still queued or running are not needed
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: S110 - finished already, or Ray is gone
                pass
        if started_here:
            ray.shutdown()


def attacked(suite: DefenseSuite, kind: str) -> bool:
    """Whether the heads on this CLIP are attacked (`attack_clips`: primary = γ 0 only; noisy = all but the
    controls'; all)."""
    controls = {n.type for n in suite.noise if n.control}
    return {"primary": kind == "none", "noisy": kind not in controls, "all": True}[suite.attack_clips]


def _clip_state(spec: str, data: corpora.Data, suite: DefenseSuite, attack: bool = True) -> dict[str, Any]:
    """One CLIP's frozen raw features of every split, its zero-shot scores and its feature spectrum; `attack`:
    whether its heads are attacked."""
    from wrappers.clip_encoder import ClipEncoder

    encoder = ClipEncoder(spec).eval().requires_grad_(False)
    splits = {"train": data.train, "validation": data.validation, **data.tests}
    raw = {name: encoder.embed_images(split.images, normalize=False) for name, split in splits.items()}
    spectrum = spectrum_share(raw["ID"], suite.spectrum_k)
    return {"spec": spec, "raw": raw, "spectrum": spectrum, "zero_shot": _zero_shot(spec, data), "attack": attack}


def _zero_shot(spec: str, data: corpora.Data) -> dict[str, float]:
    """Zero-shot accuracy of the CLIP on each test set (the paper's Table 4)."""
    import wrappers
    from wrappers.training import predict_proba

    model = wrappers.create_model("clip_zeroshot", clip=spec, pretrain={"epochs": 0})
    model.trained.fill_(True)
    return {domain: float((predict_proba(model, split.images, None).argmax(1) == split.labels).mean())
            for domain, split in data.tests.items()}


def _unit_rows(state: dict[str, Any], data: corpora.Data, suite: DefenseSuite, seed: int, entry: DefenseEntry,
               base: Path | None) -> list[dict[str, Any]]:
    """One defense on one CLIP: searched and fit, scored clean on every test set and under every attack."""
    cls = defense_head_class(entry.name, base)
    normalised = cls.features == "normalised"
    features = {name: torch.nn.functional.normalize(f, dim=1) if normalised else f for name, f in state["raw"].items()}
    labels = {"train": data.train.labels, "validation": data.validation.labels}
    fitted = fit_searched(entry, features, labels, suite.search, seed, base)
    head = fitted.head
    rows = clean_rows(head, features, data.tests)
    if suite.attacks and state.get("attack", True):
        model = classifier(state["spec"], head)
        for attack in suite.attacks:
            rows += attack_rows(model, attack, data.tests, suite, seed)
    shared = {"lr": fitted.lr, "epochs": fitted.epochs, "validation_accuracy": fitted.validation_accuracy,
              "fit_seconds": fitted.seconds, "spectrum": state["spectrum"],
              "zero_shot": json.dumps(state["zero_shot"], sort_keys=True)}
    return [{**r, **shared} for r in rows]

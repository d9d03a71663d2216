"""The Python API under the CLI, in the style of RobustBench's `benchmark(model, ...)` and lm-eval's
`simple_evaluate`: one call runs a suite (a path, a mapping or a Suite) on registered models and/or model objects
and returns the per-cell results as a DataFrame, with the run record."""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from torch import nn

from benchmark import default_cache
from benchmark.run.backends import Backend
from benchmark.run.runner import RunRecord, run_suite
from benchmark.spec.suite import ModelSpec, Suite, load_suite, suite_from_data
from mmrb.core.errors import ModelError, SuiteError
from wrappers.registry import ModelEntry, model_entry, registered


class Evaluation(NamedTuple):
    """What `evaluate` returns: `frame` (one row per cell and training seed: results.csv) and the run record;
    `cells` aggregates the seeds (mean, interval, convergence verdict), as the tables and the leaderboard do."""

    frame: pd.DataFrame
    record: RunRecord

    @property
    def cells(self) -> pd.DataFrame:
        from benchmark.evaluation.aggregate import aggregate_run

        return aggregate_run(self.record)


def evaluate(suite: str | Path | Mapping[str, Any] | Suite, models: Mapping[str, nn.Module] | None = None, *,
             trained: bool = True, only_given: bool = False, out: str | Path | None = None,
             cache: str | Path | None = None, device: str = "cpu", progress: bool = True, fresh: bool = False,
             leaderboard: str | Path | None = None, backend: str | Backend | None = None) -> Evaluation:
    """Run `suite` and return its results.

    `models` maps names to model objects (`wrappers.protocol.MultimodalModel`); each is evaluated under its name,
    in place of a suite model of that name or beside the suite's models (`only_given=True`: instead of them, also
    as the transfer targets; the suite then needs no `models:`). `trained=True`: the objects' weights are final and
    used as they are for every training seed (the seeds then vary only the attacks' randomness); `trained=False`:
    mmrb trains a copy per seed with the object's `config["recipe"]`, like a registered model, starting from weights
    re-initialised from the training seed (`reinitialised`): two calls give the same figures, and the second
    resumes. Every model is checked on a batch before any work (benchmark.run.preflight). Results go to `out` (default
    `runs/<suite name>`, which must hold this suite's results or none; committed cells there are resumed; `fresh`:
    discarded), models and attacks are cached in `cache` (default $MMRB_CACHE or ~/.cache/mmrb); `progress`: the
    plan line and a progress bar on stderr (False: silent); `leaderboard`: a folder to merge the aggregated cells
    into (none by default). `backend`: where cells run, "local" (default: this process) or "ray" /
    `benchmark.run.backends.RayBackend(address=..., num_cpus=..., num_gpus=...)` (Ray tasks; the same results)."""
    cache = Path(cache) if cache is not None else default_cache()
    with provided_models(models or {}, trained):
        given = list(models or {})
        suite = with_models(as_suite(suite, given if only_given else ()), given, only_given)
        out = Path(out) if out is not None else Path("runs") / suite.name
        record = run_suite(suite, out, cache, device=device, progress=progress, fresh=fresh, backend=backend)
    if leaderboard is not None:
        from benchmark.evaluation.evidence import read_samples
        from benchmark.run.suite_boards import provenance, publish

        publish(record.rows, provenance(suite.name, suite.content_hash, record.data_fingerprint, suite.seed), leaderboard,
                read_samples(Path(record.results_path).parent))
    return Evaluation(pd.read_csv(record.results_path, keep_default_na=False, na_values=[""]), record)


def as_suite(suite: str | Path | Mapping[str, Any] | Suite, default_models: Sequence[str] = ()) -> Suite:
    """A Suite from a YAML path, a mapping of the same fields, or a Suite; `default_models`: the models of a suite
    that names none (`evaluate(only_given=True)` needs no placeholder `models:`)."""
    if isinstance(suite, Suite):
        return suite
    if isinstance(suite, Mapping):
        data = dict(suite)
        if default_models and not data.get("models"):
            data["models"] = list(default_models)
        return suite_from_data(data)
    if isinstance(suite, (str, Path)):
        return load_suite(suite, default_models)
    raise SuiteError(f"a suite is a YAML path, a mapping or a benchmark.spec.suite.Suite, not {type(suite).__name__}")


def with_models(suite: Suite, names: list[str], only_given: bool = False) -> Suite:
    """`suite` with the models `names` added to its models (or replacing them and the transfer targets)."""
    if not names:
        return suite
    specs = [ModelSpec(name=n) for n in names]
    if only_given:
        update: dict[str, Any] = {"models": specs}
        if suite.transfer is not None:
            update["transfer"] = suite.transfer.model_copy(update={"targets": specs})
        return suite.model_copy(update=update)
    listed = {m.name for m in suite.models}
    return suite.model_copy(update={"models": [*suite.models, *(s for s in specs if s.name not in listed)]})


@contextlib.contextmanager
def provided_models(models: Mapping[str, nn.Module], trained: bool) -> Iterator[None]:
    """Register model objects under their names for the duration of a run."""
    with contextlib.ExitStack() as stack:
        for name, module in models.items():
            if not isinstance(module, nn.Module) or not hasattr(module, "modalities"):
                raise ModelError(f"models[{name!r}] must be an nn.Module with family, modalities, config, tokenize and "
                                 "forward (wrappers.protocol.MultimodalModel)")
            try:
                existing = model_entry(name)
            except ModelError:
                existing = None
            if existing is not None and existing.instance is None:
                raise ModelError(f"models[{name!r}]: {name!r} is a registered model; give the object another name")
            stack.enter_context(registered(ModelEntry(name, _copier(module, trained), type(module), "provided", None,
                                                      "python", module, trained)))
        yield


def _copier(module: nn.Module, trained: bool = True) -> Callable[..., nn.Module]:
    """The factory of a model object: a copy of it (`trained`), else the object re-initialised from the seed set
    by whoever builds it (mmrb seeds every build with the training seed, `wrappers.training.build_model`)."""
    def build(**overrides: Any) -> nn.Module:
        return copy.deepcopy(module) if trained else reinitialised(module)

    build.__module__, build.__qualname__ = type(module).__module__, type(module).__qualname__
    return build


def reinitialised(module: nn.Module) -> nn.Module:
    """A copy of `module` with fresh initial weights drawn from torch's current seed: every submodule with
    `reset_parameters` (nn.Linear, nn.Conv2d, nn.Embedding, norms, ...) is reset, so the object's own random
    initialisation does not matter. Pretrained parts are reset too (register a factory to start from them); a bare
    nn.Parameter of a module without reset_parameters keeps the object's value (and so enters the cache key)."""
    fresh = copy.deepcopy(module)
    for sub in fresh.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()
    return fresh
